//! Scan tokens: what travels to the destination as `cl_scan`.
//!
//! `{scan id}.{code}.{channel}.{signature}` — the 26-character scan id, the
//! code and channel of the scan (channel empty for the bare code), and 16
//! characters (80 bits) of HMAC-SHA256 over the rest with the server secret.
//! A conversion that names a token is attributed without looking the scan up
//! anywhere, and a forged or altered token fails the signature.

use crate::ScanId;
use sha2::{Digest, Sha256};

const SIG_BYTES: usize = 10;
const SIG_CHARS: usize = 16;
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanToken {
    pub scan_id: ScanId,
    pub code: String,
    pub channel: String,
}

/// Signs and verifies tokens. The HMAC key pads are absorbed once, so a
/// signature costs two SHA-256 compressions of a short message.
#[derive(Clone)]
pub struct Signer {
    inner: Sha256,
    outer: Sha256,
}

impl Signer {
    pub fn new(secret: &[u8]) -> Self {
        let mut key = [0u8; 64];
        if secret.len() > 64 {
            key[..32].copy_from_slice(&Sha256::digest(secret));
        } else {
            key[..secret.len()].copy_from_slice(secret);
        }
        let pad = |byte: u8| {
            let mut h = Sha256::new();
            h.update(key.map(|k| k ^ byte));
            h
        };
        Self {
            inner: pad(0x36),
            outer: pad(0x5c),
        }
    }

    fn signature(&self, message: &[u8]) -> [u8; SIG_CHARS] {
        let mut inner = self.inner.clone();
        inner.update(message);
        let mut outer = self.outer.clone();
        outer.update(inner.finalize());
        let mac = outer.finalize();
        let mut bits: u128 = 0;
        for b in &mac[..SIG_BYTES] {
            bits = (bits << 8) | *b as u128;
        }
        let mut out = [0u8; SIG_CHARS];
        for slot in out.iter_mut().rev() {
            *slot = ALPHABET[(bits & 31) as usize];
            bits >>= 5;
        }
        out
    }

    /// The token of a scan.
    pub fn token(&self, scan_id: ScanId, code: &str, channel: &str) -> String {
        let id = scan_id.encode();
        let mut out = String::with_capacity(id.len() + code.len() + channel.len() + SIG_CHARS + 3);
        out.push_str(std::str::from_utf8(&id).unwrap_or_default());
        out.push('.');
        out.push_str(code);
        out.push('.');
        out.push_str(channel);
        let sig = self.signature(out.as_bytes());
        out.push('.');
        out.push_str(std::str::from_utf8(&sig).unwrap_or_default());
        out
    }

    /// The scan a token names, if the token is well-formed and its signature
    /// holds. The token may also come in its [`compact`] form.
    pub fn verify(&self, token: &str) -> Option<ScanToken> {
        let expanded;
        let token = if token.contains('.') {
            token
        } else {
            expanded = token.replace('U', ".");
            &expanded
        };
        let (signed, sig) = token.rsplit_once('.')?;
        if sig.len() != SIG_CHARS {
            return None;
        }
        let expected = self.signature(signed.as_bytes());
        let diff = expected
            .iter()
            .zip(sig.as_bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b.to_ascii_uppercase()));
        if diff != 0 {
            return None;
        }
        let mut parts = signed.splitn(3, '.');
        let scan_id = ScanId::parse(parts.next()?)?;
        let code = parts.next()?.to_string();
        let channel = parts.next()?.to_string();
        Some(ScanToken {
            scan_id,
            code,
            channel,
        })
    }
}

/// A token with every `.` written as `U`, for fields that take only
/// letters, digits, `-` and `_` (Stripe Payment Links' `client_reference_id`).
/// Reversible: Crockford base32 (the scan id, the signature) has no `U`, and
/// codes and channels are lowercase.
pub fn compact(token: &str) -> String {
    token.replace('.', "U")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ScanIdGenerator;

    #[test]
    fn round_trip_and_tampering() {
        let signer = Signer::new(b"secret-0123456789");
        let id = ScanIdGenerator::new().next(1_700_000_000_000);
        let token = signer.token(id, "alice10", "yt");
        assert!(token.starts_with(&id.to_string()));
        let got = signer.verify(&token).unwrap();
        assert_eq!(got.scan_id, id);
        assert_eq!((got.code.as_str(), got.channel.as_str()), ("alice10", "yt"));

        let bare = signer.token(id, "alice10", "");
        assert_eq!(signer.verify(&bare).unwrap().channel, "");

        // Any change is refused: code, channel, id, signature, other secret.
        assert!(signer.verify(&token.replace("alice10", "bob10")).is_none());
        assert!(signer.verify(&token.replace(".yt.", ".ig.")).is_none());
        let mut chars: Vec<char> = token.chars().collect();
        chars[5] = if chars[5] == 'A' { 'B' } else { 'A' };
        assert!(signer.verify(&chars.iter().collect::<String>()).is_none());
        let last = token.len() - 1;
        let flipped = format!(
            "{}{}",
            &token[..last],
            if token.ends_with('0') { '1' } else { '0' }
        );
        assert!(signer.verify(&flipped).is_none());
        assert!(Signer::new(b"another-secret-xyz").verify(&token).is_none());

        // The compact form (Stripe's client_reference_id) names the same scan.
        let short = compact(&token);
        assert!(short
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
        assert_eq!(signer.verify(&short), signer.verify(&token));
        let under = signer.token(id, "u_u-2", "bu");
        assert_eq!(signer.verify(&compact(&under)).unwrap().code, "u_u-2");
        assert!(signer.verify(&compact(&token).replace('U', "u")).is_none());
        for junk in ["", ".", "...", "abc", &id.to_string()] {
            assert!(signer.verify(junk).is_none(), "{junk}");
        }
    }
}
