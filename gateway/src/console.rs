//! The web console (`codelink-dashboards`) mounted under `/ui/`: the gateway
//! reads the request body (bounded in size and time), then hands the request
//! to the console with this server as its [`Console`]: the analytics front
//! door, the code table and the operator actions of `admin.rs`.

use crate::admin;
use crate::request::{read_body, BodyError, Request};
use crate::response::{self, Response};
use crate::state::AppState;
use crate::store::StoreError;
use codelink_analytics::Analytics;
use codelink_dashboards::{Console, ConsoleError};
use codelink_shared::{ApiKey, CodeChange, CodeRecord, Integration, KeyKind, Principal, Provider};
use http::StatusCode;
use std::net::SocketAddr;

pub async fn handle(state: &AppState, req: Request, peer: SocketAddr) -> Response {
    let client = state.scans.client_ip(&req, peer);
    let (parts, body) = req.into_parts();
    let read = read_body(
        body,
        state.config.max_body_bytes,
        state.config.body_timeout(),
    )
    .await;
    let body = match read {
        Ok(body) => body,
        Err(BodyError::TooLarge) => {
            return response::html_page(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Form too large",
                "This form is larger than the server accepts.",
            )
        }
        Err(BodyError::TooSlow) => {
            return response::html_page(
                StatusCode::REQUEST_TIMEOUT,
                "Too slow",
                "The form took too long to arrive. Try again.",
            )
        }
        Err(BodyError::Broken(_)) => {
            return response::html_page(
                StatusCode::BAD_REQUEST,
                "Form not received",
                "The form did not arrive whole. Try again.",
            )
        }
    };
    let req = http::Request::from_parts(parts, body);
    state.ui.handle(state, req, client).await
}

fn console_error(e: StoreError) -> ConsoleError {
    match e {
        StoreError::Conflict(m) => ConsoleError::Conflict(m),
        StoreError::NotFound(m) => ConsoleError::NotFound(m),
        StoreError::Invalid(v) => ConsoleError::Invalid(v),
        StoreError::QrUnreadable(m) => {
            ConsoleError::Invalid(codelink_shared::ValidationError::new("qr", m))
        }
        other => {
            tracing::warn!(error = %other, "store unavailable (console)");
            ConsoleError::Unavailable("the code store is unreachable".into())
        }
    }
}

impl Console for AppState {
    fn analytics(&self) -> &Analytics {
        &self.analytics
    }

    fn public_base(&self) -> &str {
        &self.public_base
    }

    fn hold_ms(&self) -> u64 {
        self.config.hold_ms()
    }

    fn codes(&self) -> Vec<CodeRecord> {
        self.codes
            .snapshot()
            .values()
            .map(|c| c.record.clone())
            .collect()
    }

    fn code(&self, name: &str) -> Option<CodeRecord> {
        self.codes.get(name).map(|c| c.record.clone())
    }

    async fn sign_in(&self, key: &str) -> Result<Option<(Principal, String)>, ConsoleError> {
        admin::authenticate(self, key).await.map_err(console_error)
    }

    async fn session_valid(
        &self,
        who: &Principal,
        key_id: &str,
        nonce: &str,
    ) -> Result<bool, ConsoleError> {
        admin::session_valid(self, who, key_id, nonce)
            .await
            .map_err(console_error)
    }

    async fn end_session(&self, nonce: &str, expires: u64) -> Result<(), ConsoleError> {
        let expires = i64::try_from(expires).unwrap_or(i64::MAX);
        self.store
            .end_session(nonce, expires)
            .await
            .map_err(console_error)
    }

    async fn create_code(&self, record: CodeRecord) -> Result<CodeRecord, ConsoleError> {
        admin::create_code(self, record)
            .await
            .map_err(console_error)
    }

    async fn change_code(
        &self,
        code: &str,
        change: CodeChange,
    ) -> Result<CodeRecord, ConsoleError> {
        admin::change_code(self, code, change)
            .await
            .map_err(console_error)
    }

    async fn keys(&self) -> Result<Vec<ApiKey>, ConsoleError> {
        admin::list_keys(self).await.map_err(console_error)
    }

    async fn issue_key(
        &self,
        kind: KeyKind,
        creator: Option<String>,
    ) -> Result<(ApiKey, String), ConsoleError> {
        admin::issue_key(self, kind, creator)
            .await
            .map_err(console_error)
    }

    async fn revoke_key(&self, id: &str) -> Result<Option<ApiKey>, ConsoleError> {
        admin::revoke_key(self, id).await.map_err(console_error)
    }

    async fn integrations(&self) -> Result<Vec<Integration>, ConsoleError> {
        admin::list_integrations(self).await.map_err(console_error)
    }

    async fn add_integration(
        &self,
        provider: Provider,
        name: Option<String>,
        code: Option<String>,
    ) -> Result<Integration, ConsoleError> {
        admin::register_integration(self, provider, String::new(), name, code)
            .await
            .map_err(console_error)?
            .ok_or_else(|| {
                ConsoleError::Invalid(codelink_shared::ValidationError::new(
                    "provider",
                    format!(
                        "{} endpoints are registered: delete one first",
                        admin::MAX_INTEGRATIONS
                    ),
                ))
            })
    }

    async fn set_integration_secret(
        &self,
        id: &str,
        secret: String,
    ) -> Result<Option<Integration>, ConsoleError> {
        if secret.is_empty() {
            return Err(ConsoleError::Invalid(
                codelink_shared::ValidationError::new(
                    "secret",
                    "paste the provider's signing secret",
                ),
            ));
        }
        let Some(mut integration) = self.store.integration(id).await.map_err(console_error)? else {
            return Ok(None);
        };
        integration.secret = secret;
        admin::put_integration(self, &mut integration)
            .await
            .map_err(console_error)?;
        Ok(Some(integration))
    }

    async fn delete_integration(&self, id: &str) -> Result<Option<Integration>, ConsoleError> {
        self.store
            .delete_integration(id)
            .await
            .map_err(console_error)
    }
}
