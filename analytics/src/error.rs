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
    /// Opening the backends failed.
    #[error("{0}")]
    Open(String),
}

impl From<SinkError> for Error {
    fn from(e: SinkError) -> Self {
        Error::Unavailable(e.to_string())
    }
}
