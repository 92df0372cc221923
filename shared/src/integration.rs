//! A brand's inbound endpoint for a payment provider's events (Stripe,
//! Shopify): which provider signs them, with which secret, and what to credit
//! when an event names no scan and no code.

use crate::{CodeName, ValidationError};
use serde::{Deserialize, Serialize};

/// Shortest and longest signing secret taken.
pub const SECRET_LEN: std::ops::RangeInclusive<usize> = 8..=256;
/// Longest endpoint name.
pub const NAME_MAX: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Stripe,
    Shopify,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Stripe => "stripe",
            Provider::Shopify => "shopify",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "stripe" => Some(Provider::Stripe),
            "shopify" => Some(Provider::Shopify),
            _ => None,
        }
    }
}

/// A registered endpoint. Unlike an API key, the secret is kept as given:
/// verifying an HMAC needs the key itself, not a hash of it. It is never
/// shown again after registration.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Integration {
    /// Random, 24 hex characters; the last segment of the inbound URL.
    pub id: String,
    pub provider: Provider,
    /// Stripe's endpoint signing secret (`whsec_…`) or the Shopify app's
    /// client secret (webhooks created in the Shopify admin: the secret
    /// shown under Settings → Notifications → Webhooks).
    pub secret: String,
    #[serde(default)]
    pub name: Option<String>,
    /// Canonical code credited when an event names neither a scan nor a
    /// code (a shop that sells for one creator).
    #[serde(default)]
    pub code: Option<String>,
    pub created_at: i64,
}

/// Without the secret: a record printed in a log or a panic does not leak it.
impl std::fmt::Debug for Integration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Integration")
            .field("id", &self.id)
            .field("provider", &self.provider)
            .field("secret_set", &!self.secret.is_empty())
            .field("name", &self.name)
            .field("code", &self.code)
            .field("created_at", &self.created_at)
            .finish()
    }
}

impl Integration {
    /// The path the provider posts to.
    pub fn path(&self) -> String {
        format!(
            "/api/v1/integrations/{}/{}",
            self.provider.as_str(),
            self.id
        )
    }

    /// Whether a signing secret was given: an endpoint registered before
    /// the provider showed its secret (Stripe shows it once the endpoint's
    /// URL is entered) takes no event until one is set.
    pub fn has_secret(&self) -> bool {
        !self.secret.is_empty()
    }

    /// Checks the fields a brand gives and canonicalises the code (an empty
    /// secret is "not set yet").
    pub fn validate(&mut self) -> Result<(), ValidationError> {
        if !self.has_secret() {
            // Nothing to check yet.
        } else if !SECRET_LEN.contains(&self.secret.len())
            || !self.secret.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(ValidationError::new(
                "secret",
                format!(
                    "must be {} to {} printable ASCII characters without spaces: \
                     paste the provider's signing secret as shown",
                    SECRET_LEN.start(),
                    SECRET_LEN.end()
                ),
            ));
        }
        if self.provider == Provider::Stripe
            && self.has_secret()
            && !self.secret.starts_with("whsec_")
        {
            return Err(ValidationError::new(
                "secret",
                "a Stripe endpoint secret starts with 'whsec_' (Developers → Webhooks → \
                 your endpoint → Signing secret, or the one `stripe listen` prints); \
                 not an API key",
            ));
        }
        if let Some(name) = &self.name {
            if name.chars().count() > NAME_MAX || name.chars().any(char::is_control) {
                return Err(ValidationError::new(
                    "name",
                    format!("must be at most {NAME_MAX} characters, without control characters"),
                ));
            }
        }
        if let Some(code) = self.code.take().filter(|c| !c.is_empty()) {
            self.code = Some(
                CodeName::parse(&code)
                    .map_err(|e| ValidationError::new("code", e.message))?
                    .into_string(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stripe(secret: &str) -> Integration {
        Integration {
            id: "a".repeat(24),
            provider: Provider::Stripe,
            secret: secret.into(),
            name: None,
            code: Some("Summer-Sale".into()),
            created_at: 0,
        }
    }

    #[test]
    fn debug_leaves_the_secret_out() {
        let printed = format!("{:?}", stripe("whsec_0123456789"));
        assert!(!printed.contains("whsec_0123456789"), "{printed}");
        assert!(printed.contains("secret_set: true"), "{printed}");
    }

    #[test]
    fn validates_secret_and_code() {
        let mut ok = stripe("whsec_0123456789");
        ok.validate().unwrap();
        assert_eq!(ok.code.as_deref(), Some("summer-sale"));
        assert_eq!(
            ok.path(),
            format!("/api/v1/integrations/stripe/{}", "a".repeat(24))
        );
        assert_eq!(
            stripe("sk_live_0123456789").validate().unwrap_err().field,
            "secret"
        );
        assert_eq!(
            stripe("whsec_1 2345678").validate().unwrap_err().field,
            "secret"
        );
        let mut shopify = stripe("shpss_short");
        shopify.provider = Provider::Shopify;
        shopify.validate().unwrap();
        shopify.secret = "short".into();
        assert_eq!(shopify.validate().unwrap_err().field, "secret");
        shopify.secret = String::new();
        shopify.validate().unwrap();
        assert!(!shopify.has_secret());
    }
}
