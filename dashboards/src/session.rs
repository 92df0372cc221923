//! Sessions: a key typed once into the sign-in form becomes a signed,
//! expiring cookie (`HttpOnly`, `SameSite=Strict`, `Secure` behind https).
//! The cookie names who signed in and the id of the key they used, never the
//! key: every page checks that this key still signs them in, so revoking it
//! ends the session.
//!
//! Forms that change something carry a CSRF token: an HMAC of the session's
//! nonce (the sign-in form: of a pre-session cookie's nonce).

use crate::crypto::{b64, hmac, same, unb64};
use codelink_shared::Principal;

pub const SESSION_COOKIE: &str = "cl_session";
pub const PRE_COOKIE: &str = "cl_pre";

/// A signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub who: Principal,
    pub key_id: String,
    /// Unix seconds.
    pub expires: u64,
    pub nonce: String,
}

pub struct Sessions {
    key: [u8; 32],
    ttl_secs: u64,
    secure: bool,
}

impl Sessions {
    /// `secret`: the server secret (the signing key is derived from it).
    pub fn new(secret: &[u8], ttl_secs: u64, secure: bool) -> Self {
        Self {
            key: hmac(secret, b"codelink console sessions v1"),
            ttl_secs,
            secure,
        }
    }

    fn sign(&self, payload: &str) -> String {
        format!(
            "{}.{}",
            b64(payload.as_bytes()),
            b64(&hmac(&self.key, payload.as_bytes()))
        )
    }

    fn verify(&self, value: &str) -> Option<String> {
        let (payload, sig) = value.split_once('.')?;
        let payload = String::from_utf8(unb64(payload)?).ok()?;
        same(&unb64(sig)?, &hmac(&self.key, payload.as_bytes())).then_some(payload)
    }

    fn cookie(&self, name: &str, value: &str, max_age: u64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{name}={value}; Path=/ui; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}")
    }

    /// A new session for `who`, and its `Set-Cookie` value.
    pub fn issue(&self, who: Principal, key_id: String, now: u64) -> (Session, String) {
        let session = Session {
            who,
            key_id,
            expires: now.saturating_add(self.ttl_secs),
            nonce: nonce(),
        };
        let who = match &session.who {
            Principal::Admin => "a".to_string(),
            Principal::Creator(c) => format!("c:{c}"),
            Principal::Ingest => "i".to_string(),
        };
        let payload = format!(
            "v1|{who}|{}|{}|{}",
            session.key_id, session.expires, session.nonce
        );
        let cookie = self.cookie(SESSION_COOKIE, &self.sign(&payload), self.ttl_secs);
        (session, cookie)
    }

    /// The session in a `Cookie` header, if it is signed by us and not expired.
    pub fn read(&self, cookie_header: &str, now: u64) -> Option<Session> {
        let payload = self.verify(cookie(cookie_header, SESSION_COOKIE)?)?;
        let mut parts = payload.split('|');
        if parts.next()? != "v1" {
            return None;
        }
        let who = match parts.next()? {
            "a" => Principal::Admin,
            c => Principal::Creator(c.strip_prefix("c:")?.to_string()),
        };
        let key_id = parts.next()?.to_string();
        let expires: u64 = parts.next()?.parse().ok()?;
        let nonce = parts.next()?.to_string();
        (expires > now).then_some(Session {
            who,
            key_id,
            expires,
            nonce,
        })
    }

    /// `Set-Cookie` that ends the session.
    pub fn clear(&self) -> String {
        self.cookie(SESSION_COOKIE, "", 0)
    }

    /// The CSRF token of forms in this session (or pre-session nonce).
    pub fn csrf(&self, nonce: &str) -> String {
        b64(&hmac(&self.key, format!("csrf|{nonce}").as_bytes()))
    }

    pub fn csrf_ok(&self, nonce: &str, token: &str) -> bool {
        same(self.csrf(nonce).as_bytes(), token.as_bytes())
    }

    /// The pre-session nonce of the sign-in form (a new one when absent), and
    /// the `Set-Cookie` to send when it is new.
    pub fn pre_session(&self, cookie_header: &str) -> (String, Option<String>) {
        match cookie(cookie_header, PRE_COOKIE)
            .and_then(|v| self.verify(v))
            .filter(|n| n.len() == 32)
        {
            Some(n) => (n, None),
            None => {
                let n = nonce();
                let set = self.cookie(PRE_COOKIE, &self.sign(&n), 3600);
                (n, Some(set))
            }
        }
    }
}

fn nonce() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_round_trip_and_refuse_tampering() {
        let s = Sessions::new(b"0123456789abcdef", 3600, true);
        let (session, set) = s.issue(Principal::Creator("alice".into()), "abc123".into(), 1000);
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Secure")
        );
        let value = set.split(';').next().unwrap();
        let header = format!("x=1; {value}");
        assert_eq!(s.read(&header, 1001), Some(session.clone()));
        // Expired.
        assert_eq!(s.read(&header, 1000 + 3600), None);
        // Another secret, or a changed payload, does not verify.
        let other = Sessions::new(b"another secret!!", 3600, false);
        assert_eq!(other.read(&header, 1001), None);
        let forged_payload = b64(b"v1|a|abc123|99999|n");
        let sig = value.split_once('.').unwrap().1;
        assert_eq!(
            s.read(&format!("{SESSION_COOKIE}={forged_payload}.{sig}"), 1001),
            None
        );
        // CSRF tokens are per nonce.
        let t = s.csrf(&session.nonce);
        assert!(s.csrf_ok(&session.nonce, &t));
        assert!(!s.csrf_ok("other", &t));
        // Over plain http the cookie is not marked Secure.
        let plain = Sessions::new(b"0123456789abcdef", 3600, false);
        assert!(!plain
            .issue(Principal::Admin, "k".into(), 0)
            .1
            .contains("Secure"));
    }
}
