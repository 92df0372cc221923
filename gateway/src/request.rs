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

/// The `key=value` pairs of a query string, decoded as
/// `application/x-www-form-urlencoded` (what `url::form_urlencoded::parse`
/// gives), but a pair with nothing to decode (no `%`, no `+`) is borrowed:
/// no decoding pass and no UTF-8 check, which the QR path's cached hits
/// would otherwise pay on every request.
pub fn query_pairs(
    query: &str,
) -> impl Iterator<Item = (std::borrow::Cow<'_, str>, std::borrow::Cow<'_, str>)> {
    query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            if piece.bytes().any(|b| b == b'%' || b == b'+') {
                // One piece without `&` is one pair.
                url::form_urlencoded::parse(piece.as_bytes())
                    .next()
                    .unwrap_or_default()
            } else {
                let (key, value) = piece.split_once('=').unwrap_or((piece, ""));
                (key.into(), value.into())
            }
        })
}

#[cfg(test)]
mod tests {
    use super::query_pairs;
    use proptest::prelude::*;

    #[test]
    fn pairs_are_split_and_decoded() {
        let pairs: Vec<(String, String)> = query_pairs("size=512&&fg=%23ff0000&x&a+b=c=d&=v")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let expected = [
            ("size", "512"),
            ("fg", "#ff0000"),
            ("x", ""),
            ("a b", "c=d"),
            ("", "v"),
        ];
        assert_eq!(pairs, expected.map(|(k, v)| (k.to_string(), v.to_string())));
    }

    proptest! {
        #[test]
        fn the_same_pairs_as_form_urlencoded(query in "[a-z0-9=&%+é\\-]{0,40}") {
            let ours: Vec<_> = query_pairs(&query).collect();
            let theirs: Vec<_> = url::form_urlencoded::parse(query.as_bytes()).collect();
            prop_assert_eq!(ours, theirs);
        }
    }
}
