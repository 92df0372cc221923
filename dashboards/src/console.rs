//! What the console needs from the server it is mounted in: the analytics
//! front door, the code table and the operator actions. The gateway implements
//! [`Console`]; the console never goes back over HTTP to the API.

use codelink_analytics::Analytics;
use codelink_shared::{
    ApiKey, CodeChange, CodeRecord, Integration, KeyKind, Principal, Provider, ValidationError,
};
use std::future::Future;

/// Why an operator action failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleError {
    /// A field is wrong: shown next to that field.
    Invalid(ValidationError),
    /// The code name is taken.
    Conflict(String),
    NotFound(String),
    /// A backend did not answer; the action may be retried.
    Unavailable(String),
}

pub type Result<T> = std::result::Result<T, ConsoleError>;

pub trait Console: Send + Sync {
    fn analytics(&self) -> &Analytics;
    /// Base URL of short links, without a trailing slash.
    fn public_base(&self) -> &str;
    /// How long earnings stay estimated (ms).
    fn hold_ms(&self) -> u64;
    /// Every code being served (the in-memory table).
    fn codes(&self) -> Vec<CodeRecord>;
    /// One code by canonical (lowercase) name.
    fn code(&self, name: &str) -> Option<CodeRecord>;
    /// Who `key` signs in (admin or creator), with the key's id; `None` for a
    /// wrong or revoked key.
    fn sign_in(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<(Principal, String)>>> + Send;
    /// Whether a session still holds: the key with this id still signs `who`
    /// in, and the session with this nonce was not signed out.
    fn session_valid(
        &self,
        who: &Principal,
        key_id: &str,
        nonce: &str,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// Signs a session out for good, on every instance: `session_valid` is
    /// false for its nonce from now on (until `expires`, Unix seconds, when
    /// the cookie has expired anyway).
    fn end_session(&self, nonce: &str, expires: u64) -> impl Future<Output = Result<()>> + Send;
    fn create_code(&self, record: CodeRecord) -> impl Future<Output = Result<CodeRecord>> + Send;
    fn change_code(
        &self,
        code: &str,
        change: CodeChange,
    ) -> impl Future<Output = Result<CodeRecord>> + Send;
    fn keys(&self) -> impl Future<Output = Result<Vec<ApiKey>>> + Send;
    /// A new key and its secret (shown once).
    fn issue_key(
        &self,
        kind: KeyKind,
        creator: Option<String>,
    ) -> impl Future<Output = Result<(ApiKey, String)>> + Send;
    fn revoke_key(&self, id: &str) -> impl Future<Output = Result<Option<ApiKey>>> + Send;
    /// Payment-provider endpoints (Stripe, Shopify), oldest first.
    fn integrations(&self) -> impl Future<Output = Result<Vec<Integration>>> + Send;
    /// Registers one (no secret yet: the provider shows it once the inbound
    /// URL is entered), checked as the API checks it.
    fn add_integration(
        &self,
        provider: Provider,
        name: Option<String>,
        code: Option<String>,
    ) -> impl Future<Output = Result<Integration>> + Send;
    /// Sets or rolls the signing secret; `None` for an unknown id.
    fn set_integration_secret(
        &self,
        id: &str,
        secret: String,
    ) -> impl Future<Output = Result<Option<Integration>>> + Send;
    /// Removes one; `None` for an unknown id.
    fn delete_integration(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<Integration>>> + Send;
}
