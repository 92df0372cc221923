//! The one error type of the crate's front door ([`crate::Analytics`]).

use crate::sink::SinkError;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A backend (Redis, ClickHouse, the embedded store) did not answer.
    #[error("{0}")]
    Unavailable(String),
    /// Too many analytics queries are running; try again after this long.
    #[error("too many analytics queries at once")]
    Busy { retry_after: Duration },
    /// The query ran longer than the configured timeout.
    #[error("the query took longer than {0:?}")]
    Timeout(Duration),
    /// The question cannot be answered as asked (the message says why).
    #[error("{0}")]
    InvalidQuery(String),
    /// Conversions could not be written or spooled by every sink; nothing was
    /// claimed, so the same event ids can be sent again.
    #[error("the conversions could not be stored")]
    NotStored,
    /// Analytics are being rebuilt for data an earlier version wrote (the
    /// embedded store does this by itself at start-up).
    #[error("analytics are being rebuilt from data an earlier version wrote: {remaining} stored entries to go")]
    Migrating { remaining: u64 },
    /// ClickHouse holds rows an earlier version wrote whose rollups were
    /// never built: `codelink migrate` builds them.
    #[error("ClickHouse holds rows written by an earlier version whose rollups are not built yet: run `codelink migrate`")]
    MigrationRequired,
    /// Event `index` of a report contradicts what is stored (a refund of an
    /// unknown purchase, or of more than is left of it); nothing of the
    /// report was kept.
    #[error("[{index}].{field}: {message}")]
    Rejected {
        index: usize,
        field: &'static str,
        message: String,
    },
    /// Event `index` reuses an event id that was first sent with another
    /// body; nothing of the report was kept.
    #[error("event_id '{event_id}' was first sent with a different body")]
    IdempotencyConflict { index: usize, event_id: String },
    /// Opening the backends failed.
    #[error("{0}")]
    Open(String),
}

impl From<SinkError> for Error {
    fn from(e: SinkError) -> Self {
        Error::Unavailable(e.to_string())
    }
}
