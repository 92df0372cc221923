//! Verifying a provider's signature on the raw body: pure functions of the
//! header, the body, the secret and the time.
//!
//! - Stripe: `Stripe-Signature: t={unix s},v1={hex},[v1={hex}…]`, each `v1`
//!   an HMAC-SHA256 of `{t}.{body}` keyed with the endpoint secret; valid if
//!   any `v1` matches (Stripe sends two while a secret is being rolled), and
//!   `t` is within [`STRIPE_TOLERANCE_SECS`] of now (Stripe's libraries'
//!   default). Other schemes (`v0`, test-mode extras) are ignored.
//! - Shopify: `X-Shopify-Hmac-Sha256: {base64}` of HMAC-SHA256(body) keyed
//!   with the app's client secret. Nothing time-bound is signed.

use codelink_dashboards::{hmac, same};

/// How far a Stripe signature's timestamp may be from now, either way.
pub const STRIPE_TOLERANCE_SECS: i64 = 300;
/// Most `v1` signatures read from one header.
const MAX_SIGNATURES: usize = 8;

#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No signature header.
    Missing,
    /// The header is not in the provider's format.
    Malformed(&'static str),
    /// No signature in the header matches the body.
    Mismatch,
    /// The signature holds but its timestamp is more than the tolerance
    /// away from now.
    Expired { age_secs: i64 },
}

/// Checks a `Stripe-Signature` header: the signed timestamp when it holds.
pub fn stripe(header: Option<&str>, body: &[u8], secret: &str, now: i64) -> Result<i64, Refusal> {
    let header = header.ok_or(Refusal::Missing)?;
    let mut t = None;
    let mut signatures: Vec<[u8; 32]> = Vec::new();
    for element in header.split(',') {
        let Some((key, value)) = element.trim().split_once('=') else {
            return Err(Refusal::Malformed("each element is key=value"));
        };
        match key {
            "t" => {
                let v: i64 = value
                    .parse()
                    .map_err(|_| Refusal::Malformed("t is not a Unix time in seconds"))?;
                if t.replace(v).is_some() {
                    return Err(Refusal::Malformed("t is given twice"));
                }
            }
            "v1" if signatures.len() < MAX_SIGNATURES => {
                signatures.push(unhex(value).ok_or(Refusal::Malformed("v1 is not 64 hex digits"))?);
            }
            _ => {}
        }
    }
    let t = t.ok_or(Refusal::Malformed("no t= timestamp"))?;
    if signatures.is_empty() {
        return Err(Refusal::Malformed("no v1= signature"));
    }
    let mut signed = Vec::with_capacity(body.len() + 21);
    signed.extend_from_slice(t.to_string().as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    let expected = hmac(secret.as_bytes(), &signed);
    // Every candidate is compared, so the time taken does not tell which matched.
    let matched = signatures
        .iter()
        .fold(false, |any, s| same(s, &expected) | any);
    if !matched {
        return Err(Refusal::Mismatch);
    }
    // Saturating: a signed `t` near i64::MIN/MAX must not wrap into range.
    let age_secs = now.saturating_sub(t);
    if age_secs.unsigned_abs() > STRIPE_TOLERANCE_SECS.unsigned_abs() {
        return Err(Refusal::Expired { age_secs });
    }
    Ok(t)
}

/// Checks an `X-Shopify-Hmac-Sha256` header.
pub fn shopify(header: Option<&str>, body: &[u8], secret: &str) -> Result<(), Refusal> {
    let header = header.ok_or(Refusal::Missing)?.trim();
    if header.len() != 44 || !header.ends_with('=') {
        return Err(Refusal::Malformed(
            "X-Shopify-Hmac-Sha256 is the base64 of a 32-byte HMAC (44 characters)",
        ));
    }
    let expected = crate::qr_logo::base64(&hmac(secret.as_bytes(), body));
    if same(header.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(Refusal::Mismatch)
    }
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    let s = s.as_bytes();
    if s.len() != 64 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 32];
    for (i, pair) in s.chunks(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `v1` value Stripe would send for `body` at `t` (for tests and the
    /// README's examples).
    fn stripe_v1(secret: &str, t: i64, body: &[u8]) -> String {
        let mut signed = format!("{t}.").into_bytes();
        signed.extend_from_slice(body);
        hmac(secret.as_bytes(), &signed)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    const SECRET: &str = "whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"evt_1","type":"charge.refunded"}"#;

    #[test]
    fn stripe_header() {
        let now = 1_800_000_000;
        let good = stripe_v1(SECRET, now - 10, BODY);
        let header = format!("t={},v1={},v0=ignored", now - 10, good);
        assert_eq!(stripe(Some(&header), BODY, SECRET, now), Ok(now - 10));
        // A rolled secret: either signature may be the good one.
        let two = format!("t={},v1={},v1={good}", now - 10, "0".repeat(64));
        assert_eq!(stripe(Some(&two), BODY, SECRET, now), Ok(now - 10));
        assert_eq!(
            stripe(Some(&header), b"{}", SECRET, now),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            stripe(Some(&header), BODY, "whsec_other", now),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            stripe(Some(&header), BODY, SECRET, now + 300),
            Err(Refusal::Expired { age_secs: 310 })
        );
        assert_eq!(stripe(None, BODY, SECRET, now), Err(Refusal::Missing));
        // Timestamps at the ends of i64 are expired, not an overflow.
        for t in [i64::MIN, now - i64::MAX - 1, i64::MAX] {
            let h = format!("t={t},v1={}", stripe_v1(SECRET, t, BODY));
            assert!(
                matches!(
                    stripe(Some(&h), BODY, SECRET, now),
                    Err(Refusal::Expired { .. })
                ),
                "{t}"
            );
        }
        for bad in [
            "",
            "t=1",
            "v1=00",
            "t=x,v1=00",
            &format!("t=1,t=2,v1={good}"),
        ] {
            assert!(
                matches!(
                    stripe(Some(bad), BODY, SECRET, now),
                    Err(Refusal::Malformed(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn shopify_header() {
        let good = crate::qr_logo::base64(&hmac(b"shpss_x", BODY));
        assert_eq!(shopify(Some(&good), BODY, "shpss_x"), Ok(()));
        assert_eq!(
            shopify(Some(&good), b"{}", "shpss_x"),
            Err(Refusal::Mismatch)
        );
        assert!(matches!(
            shopify(Some("abc"), BODY, "shpss_x"),
            Err(Refusal::Malformed(_))
        ));
        assert_eq!(shopify(None, BODY, "shpss_x"), Err(Refusal::Missing));
    }
}
