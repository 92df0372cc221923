//! `/api/v1/analytics/*` — filled in once the query module lands.

use super::Principal;
use crate::error::ApiError;
use crate::response::Response;
use crate::router::Request;
use crate::state::AppState;

pub(super) async fn handle(
    _state: &AppState,
    _who: &Principal,
    report: &str,
    _req: &Request,
) -> Result<Response, ApiError> {
    Err(ApiError::not_found(format!(
        "no analytics report '{report}'"
    )))
}
