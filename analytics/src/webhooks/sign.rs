//! Standard Webhooks signatures: an endpoint's secret is `whsec_` + base64
//! of 24 random bytes; each attempt carries `webhook-id`,
//! `webhook-timestamp` (Unix seconds, of the attempt) and `webhook-signature:
//! v1,{base64 of HMAC-SHA256 over "{id}.{timestamp}.{body}"}`, keyed with the
//! secret's bytes (base64-decoded after `whsec_`).

use crate::token::Hmac;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// Random bytes in a new secret (the spec asks for 24 to 64).
const SECRET_BYTES: usize = 24;

/// A fresh `whsec_…` secret.
pub fn new_secret() -> String {
    use rand::RngCore;
    let mut key = [0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut key);
    format!("whsec_{}", STANDARD.encode(key))
}

/// The HMAC key of a `whsec_…` secret.
fn key_of(secret: &str) -> Option<Vec<u8>> {
    STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .ok()
}

/// The `webhook-signature` value for one attempt.
pub fn sign(secret: &str, id: &str, timestamp: u64, body: &[u8]) -> String {
    let key = key_of(secret).unwrap_or_default();
    let mac = Hmac::new(&key).mac(&[
        id.as_bytes(),
        b".",
        timestamp.to_string().as_bytes(),
        b".",
        body,
    ]);
    format!("v1,{}", STANDARD.encode(mac))
}

/// Whether one of the space-separated signatures of `header` is `v1` and
/// holds for this id, timestamp and body (what a receiver checks; the
/// timestamp's age is the receiver's to judge).
pub fn verify(secret: &str, id: &str, timestamp: u64, body: &[u8], header: &str) -> bool {
    let expected = sign(secret, id, timestamp, body);
    header.split(' ').any(|s| {
        s.len() == expected.len()
            && s.bytes()
                .zip(expected.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_webhooks_vector() {
        // The example of the Standard Webhooks specification and its libraries.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let sig = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(verify(
            secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body,
            &format!("v1,bm9wZQ== {sig}")
        ));
        assert!(!verify(
            secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265331,
            body,
            &sig
        ));
        assert!(!verify(
            secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232315}"#,
            &sig
        ));
    }

    #[test]
    fn secrets_are_24_random_bytes() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert!(a.starts_with("whsec_"));
        assert_eq!(key_of(&a).unwrap().len(), 24);
    }
}
