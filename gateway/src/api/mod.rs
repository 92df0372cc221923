//! The JSON API, `/api/v1/...`. Who may call what:
//! - the admin key: everything;
//! - a creator key: analytics, stats and reads of the creator's own codes
//!   (another creator's code is 404, as if it did not exist);
//! - an ingest key: `POST /api/v1/conversions` only;
//! - a creator's bio page profile (`/owners/{owner}/profile`): the admin key,
//!   or that creator's key (it may change it too);
//! - QR logos (`/codes/{code}/logo`, `/owners/{owner}/logo`): the admin key
//!   sets and removes them; a creator key reads its own;
//! - codes in bulk: the admin key imports (`/codes/import`); an export
//!   (`/codes/export`) holds the codes the key sees, a creator's own;
//! - the review of flagged conversions (`/reviews`, `/codes/{code}/ban`):
//!   the admin key only;
//! - webhook endpoints (`/webhooks`): the admin key, or a creator key for
//!   its own (scoped to its codes);
//! - payment-provider endpoints (`/integrations`): the admin key registers
//!   them; the provider's events (`/integrations/{stripe|shopify}/{id}`)
//!   carry no key and are authenticated by the provider's signature.

mod analytics;
mod auth;
mod body;
mod bulk;
mod codes;
mod conversions;
mod erasure;
mod integrations;
mod keys;
mod logo;
mod profiles;
mod reviews;
mod scans;
mod times;
mod webhooks;

pub use auth::Principal;

use crate::error::ApiError;
use crate::request::Request;
use crate::response::Response;
use crate::state::AppState;
use auth::{authorize, forbidden};
use codelink_shared::CodeName;
use http::{header, Method, StatusCode};
use std::net::SocketAddr;

pub async fn handle(state: &AppState, req: Request, peer: SocketAddr) -> Response {
    // Keyed like scans: behind a CDN every caller would otherwise share one bucket.
    let client = state.scans.client_ip(&req, peer);
    if let Err(not_until) = state.api_limiter.check_key(&client) {
        return ApiError::rate_limited(
            "too many API requests from this address; slow down",
            not_until,
        )
        .into_response();
    }
    match route(state, req).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

/// The OpenAPI 3.1 document of the whole HTTP API (`gateway/openapi.json`).
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

/// `GET /api/v1/openapi.json`: public (no key), and the same bytes for the
/// life of the binary, so clients and CDNs may cache it.
fn openapi(req: &Request) -> Result<Response, ApiError> {
    if req.method() != Method::GET {
        return Err(ApiError::method_not_allowed("GET"));
    }
    let mut resp = crate::response::with_body(
        StatusCode::OK,
        "application/json",
        bytes::Bytes::from_static(OPENAPI_JSON.as_bytes()),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("public, max-age=3600"),
    );
    Ok(resp)
}

async fn route(state: &AppState, req: Request) -> Result<Response, ApiError> {
    if req.uri().path().trim_end_matches('/') == "/api/v1/openapi.json" {
        return openapi(&req);
    }
    // A provider's event: signed by the provider, no API key.
    if let Some(rest) = req.uri().path().strip_prefix("/api/v1/integrations/") {
        if let Some((provider @ ("stripe" | "shopify"), id)) =
            rest.trim_end_matches('/').split_once('/')
        {
            let (provider, id) = (provider.to_string(), id.to_string());
            return integrations::receive(state, &provider, &id, req).await;
        }
    }
    let (who, key_id) = authorize(state, &req).await?;
    let path = req.uri().path().trim_end_matches('/').to_string();
    let method = req.method().clone();
    let segments: Vec<&str> = path.split('/').skip(3).collect(); // "", "api", "v1"
    let admin_only = |who: &Principal| {
        if *who == Principal::Admin {
            Ok(())
        } else {
            Err(forbidden())
        }
    };
    // An ingest key reports conversions and reads nothing.
    if who == Principal::Ingest && segments.first() != Some(&"conversions") {
        return Err(forbidden());
    }
    match (segments.as_slice(), &method) {
        (["codes"], &Method::GET) => codes::list(state, &who, &req),
        (["codes"], &Method::POST) => {
            admin_only(&who)?;
            codes::create(state, req).await
        }
        (["codes"], _) => Err(ApiError::method_not_allowed("GET, POST")),
        (["codes", "import"], &Method::POST) => {
            admin_only(&who)?;
            bulk::import(state, req).await
        }
        (["codes", "import"], _) => Err(ApiError::method_not_allowed("POST")),
        (["codes", "export"], &Method::GET) => bulk::export(state, &who, &req).await,
        (["codes", "export"], _) => Err(ApiError::method_not_allowed("GET")),
        (["codes", code], m) => {
            let code = canonical_path_code(code)?;
            match *m {
                Method::GET => codes::get(state, &who, &code),
                Method::PATCH => {
                    admin_only(&who)?;
                    codes::patch(state, &code, req).await
                }
                Method::DELETE => {
                    admin_only(&who)?;
                    codes::disable(state, &code).await
                }
                _ => Err(ApiError::method_not_allowed("GET, PATCH, DELETE")),
            }
        }
        (["codes", code, "stats"], &Method::GET) => {
            let code = canonical_path_code(code)?;
            codes::stats(state, &who, &code).await
        }
        (["codes", _, "stats"], _) => Err(ApiError::method_not_allowed("GET")),
        (["codes", code, "scans"], &Method::GET) => {
            let code = canonical_path_code(code)?;
            scans::list(state, &who, &code, &req).await
        }
        (["codes", _, "scans"], _) => Err(ApiError::method_not_allowed("GET")),
        (["codes", code, "ban"], &Method::POST) => {
            admin_only(&who)?;
            let code = canonical_path_code(code)?;
            reviews::ban(state, &key_id, &code, req).await
        }
        (["codes", _, "ban"], _) => Err(ApiError::method_not_allowed("POST")),
        (["codes", code, "logo"], m) => {
            let code = canonical_path_code(code)?;
            match *m {
                Method::GET => logo::get(state, &who, &code).await,
                Method::PUT => {
                    admin_only(&who)?;
                    logo::put(state, &code, req).await
                }
                Method::DELETE => {
                    admin_only(&who)?;
                    logo::delete(state, &code).await
                }
                _ => Err(ApiError::method_not_allowed("GET, PUT, DELETE")),
            }
        }
        (["reviews"], &Method::GET) => {
            admin_only(&who)?;
            reviews::list(state, &req).await
        }
        (["reviews"], _) => Err(ApiError::method_not_allowed("GET")),
        (["reviews", id], &Method::GET) => {
            admin_only(&who)?;
            reviews::get(state, id).await
        }
        (["reviews", id], &Method::POST) => {
            admin_only(&who)?;
            reviews::decide(state, &key_id, id, req).await
        }
        (["reviews", _], _) => Err(ApiError::method_not_allowed("GET, POST")),
        (["keys"], &Method::GET) => {
            admin_only(&who)?;
            keys::list(state).await
        }
        (["keys"], &Method::POST) => {
            admin_only(&who)?;
            keys::create(state, req).await
        }
        (["keys"], _) => Err(ApiError::method_not_allowed("GET, POST")),
        (["keys", id], &Method::DELETE) => {
            admin_only(&who)?;
            keys::revoke(state, id).await
        }
        (["keys", _], _) => Err(ApiError::method_not_allowed("DELETE")),
        (["owners", owner, "profile"], m) => {
            let owner = profiles::visible_owner(&who, owner)?;
            match *m {
                Method::GET => profiles::get(state, &owner),
                Method::PUT => profiles::put(state, &owner, req).await,
                Method::DELETE => profiles::delete(state, &owner).await,
                _ => Err(ApiError::method_not_allowed("GET, PUT, DELETE")),
            }
        }
        (["owners", owner, "logo"], m) => {
            let owner = profiles::visible_owner(&who, owner)?;
            match *m {
                Method::GET => logo::get_owner(state, &owner).await,
                Method::PUT => {
                    admin_only(&who)?;
                    logo::put_owner(state, &owner, req).await
                }
                Method::DELETE => {
                    admin_only(&who)?;
                    logo::delete_owner(state, &owner).await
                }
                _ => Err(ApiError::method_not_allowed("GET, PUT, DELETE")),
            }
        }
        (["conversions"], &Method::POST) => {
            if !matches!(who, Principal::Admin | Principal::Ingest) {
                return Err(forbidden());
            }
            conversions::ingest(state, req).await
        }
        (["conversions"], _) => Err(ApiError::method_not_allowed("POST")),
        (["erasure"], &Method::POST) => {
            admin_only(&who)?;
            erasure::erase(state, req).await
        }
        (["erasure"], _) => Err(ApiError::method_not_allowed("POST")),
        (["webhooks"], &Method::GET) => webhooks::list(state, &who).await,
        (["webhooks"], &Method::POST) => webhooks::create(state, &who, req).await,
        (["webhooks"], _) => Err(ApiError::method_not_allowed("GET, POST")),
        (["webhooks", id], &Method::GET) => webhooks::get(state, &who, id).await,
        (["webhooks", id], &Method::DELETE) => webhooks::delete(state, &who, id).await,
        (["webhooks", _], _) => Err(ApiError::method_not_allowed("GET, DELETE")),
        (["webhooks", id, "enable"], &Method::POST) => webhooks::enable(state, &who, id).await,
        (["webhooks", _, "enable"], _) => Err(ApiError::method_not_allowed("POST")),
        (["integrations"], m) => {
            admin_only(&who)?;
            match *m {
                Method::GET => integrations::list(state).await,
                Method::POST => integrations::create(state, req).await,
                _ => Err(ApiError::method_not_allowed("GET, POST")),
            }
        }
        (["integrations", id], m) => {
            admin_only(&who)?;
            match *m {
                Method::GET => integrations::get(state, id).await,
                Method::PATCH => integrations::patch(state, id, req).await,
                Method::DELETE => integrations::delete(state, id).await,
                _ => Err(ApiError::method_not_allowed("GET, PATCH, DELETE")),
            }
        }
        (["analytics", report], &Method::GET) => analytics::handle(state, &who, report, &req).await,
        (["analytics", _], _) => Err(ApiError::method_not_allowed("GET")),
        _ => Err(ApiError::not_found(format!("no API endpoint at {path}"))),
    }
}

/// A code named in a path: unknown-shaped names are simply not found.
fn canonical_path_code(raw: &str) -> Result<String, ApiError> {
    CodeName::parse(raw)
        .map(CodeName::into_string)
        .map_err(|_| ApiError::not_found(format!("code '{raw}' not found")))
}
