//! Types shared by the gateway and the analytics crate.
//!
//! **Invariant:** this crate does no I/O — no sockets, no files, no clocks.
//! Everything here is a pure function of its inputs, so the same validation
//! runs in the admin API, in the store loaders and in tests.

pub mod access;
pub mod change;
pub mod channel;
pub mod code;
pub mod commission;
pub mod currency;
pub mod destination;
pub mod follow;
pub mod integration;
pub mod profile;
pub mod qr_style;
pub mod record;
pub mod route;
pub mod text;

pub use access::{ApiKey, KeyKind, Principal};
pub use change::CodeChange;
pub use channel::{ChannelName, Utm};
pub use code::CodeName;
pub use commission::CommissionPlan;
pub use destination::Destination;
pub use follow::{AndroidFallback, AndroidLink, AppLinks};
pub use integration::{Integration, Provider};
pub use profile::OwnerProfile;
pub use qr_style::{LogoRef, QrStyle};
pub use record::CodeRecord;
pub use route::RouteRule;

/// A value that failed validation: which field, and why, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: &'static str,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// Slugs (codes and channels) use this alphabet.
pub(crate) fn is_slug_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}
