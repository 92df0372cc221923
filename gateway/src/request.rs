//! The request type every handler takes, and reading its body within the
//! server's bounds (the JSON API and the console both do).

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use std::time::Duration;

pub type Request = http::Request<Incoming>;

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// Longer than the limit (413).
    TooLarge,
    /// Not whole within the deadline (408): a client trickling it in must not
    /// hold its connection and task for ever.
    TooSlow,
    /// The connection failed (400).
    Broken(String),
}

/// The whole body, at most `limit` bytes, arrived within `deadline`.
pub async fn read_body(
    body: Incoming,
    limit: usize,
    deadline: Duration,
) -> Result<Bytes, BodyError> {
    match tokio::time::timeout(deadline, Limited::new(body, limit).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Ok(Err(e)) => Err(BodyError::Broken(e.to_string())),
        Err(_) => Err(BodyError::TooSlow),
    }
}
