//! Follower paths of a code beyond its destination: app deep links, and
//! where a disabled or expired code sends followers.

use crate::{Destination, ValidationError};
use serde::{Deserialize, Serialize};

/// Longest Android package name accepted (Android's own limit is 255 bytes).
pub const MAX_PACKAGE_LEN: usize = 255;

/// Links that open the shop's app when it is installed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppLinks {
    /// iOS: a universal link (an https URL the shop's app claims). iPhones and
    /// iPads are sent there instead of the destination: iOS opens the app when
    /// it is installed and the web page otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ios: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub android: Option<AndroidLink>,
}

/// Android: an `intent://` link to the app, with a fallback when it is not
/// installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AndroidLink {
    /// The app's package name, e.g. `com.shop.app`.
    pub package: String,
    /// The https URL the app handles (an Android App Link); the code's
    /// destination when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Where Android goes when the app is not installed.
    #[serde(default)]
    pub fallback: AndroidFallback,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AndroidFallback {
    /// The web page (the URL with the scan token), in the browser.
    #[default]
    Web,
    /// The app's page in the Play Store.
    Store,
}

impl AppLinks {
    /// Checks the forms; URLs are normalised in place like destinations.
    pub fn validate(&mut self) -> Result<(), ValidationError> {
        if let Some(ios) = &mut self.ios {
            *ios = https_url(ios, "app_links.ios")?;
        }
        if let Some(android) = &mut self.android {
            if !is_package(&android.package) {
                return Err(ValidationError::new(
                    "app_links",
                    "android.package must be a Java package name like com.shop.app \
                     (letters, digits and '_', in at least two parts separated by dots)",
                ));
            }
            if let Some(url) = &mut android.url {
                *url = https_url(url, "app_links.android.url")?;
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.ios.is_none() && self.android.is_none()
    }
}

/// An app link must be https: universal links and App Links are verified
/// against the host's https files, and an intent URL is built from it.
fn https_url(raw: &str, what: &str) -> Result<String, ValidationError> {
    let url = Destination::parse(raw)
        .map_err(|e| ValidationError::new("app_links", format!("{what}: {}", e.message)))?;
    if url.url().scheme() != "https" {
        return Err(ValidationError::new(
            "app_links",
            format!("{what}: must be an https URL (app links are https only)"),
        ));
    }
    Ok(url.into_string())
}

/// `com.shop.app`: two or more parts of `[A-Za-z][A-Za-z0-9_]*`.
fn is_package(name: &str) -> bool {
    name.len() <= MAX_PACKAGE_LEN
        && name.split('.').count() >= 2
        && name.split('.').all(|part| {
            let mut bytes = part.bytes();
            bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
                && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
}

/// Where followers of a disabled or expired code go instead of its page:
/// a destination like any (every rule of [`Destination::parse`]).
pub fn validate_fallback(raw: &str) -> Result<String, ValidationError> {
    Destination::parse(raw)
        .map(Destination::into_string)
        .map_err(|e| ValidationError::new("fallback_url", e.message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packages() {
        for ok in ["com.shop.app", "io.x1.y_2", "A.b"] {
            assert!(is_package(ok), "{ok}");
        }
        for bad in [
            "shop",
            "com..app",
            "com.1shop",
            "com.shop-app",
            ".com.x",
            "com.x.",
        ] {
            assert!(!is_package(bad), "{bad}");
        }
    }

    #[test]
    fn app_links_are_https_and_normalised() {
        let mut links = AppLinks {
            ios: Some("HTTPS://Shop.Example/app/".into()),
            android: Some(AndroidLink {
                package: "com.shop.app".into(),
                url: None,
                fallback: AndroidFallback::Store,
            }),
        };
        links.validate().unwrap();
        assert_eq!(links.ios.as_deref(), Some("https://shop.example/app/"));
        let mut http = AppLinks {
            ios: Some("http://shop.example/".into()),
            android: None,
        };
        let e = http.validate().unwrap_err();
        assert!(e.message.contains("https"), "{e}");
        let mut bad = AppLinks {
            ios: None,
            android: Some(AndroidLink {
                package: "shop".into(),
                url: None,
                fallback: AndroidFallback::Web,
            }),
        };
        assert_eq!(bad.validate().unwrap_err().field, "app_links");
        let parsed: AppLinks =
            serde_json::from_str(r#"{"android":{"package":"com.shop.app"}}"#).unwrap();
        assert_eq!(
            parsed.android.unwrap().fallback,
            AndroidFallback::Web,
            "the web page unless the store is asked for"
        );
    }

    #[test]
    fn fallback_is_a_destination() {
        assert_eq!(
            validate_fallback("https://Shop.Example").unwrap(),
            "https://shop.example/"
        );
        assert_eq!(
            validate_fallback("javascript:alert(1)").unwrap_err().field,
            "fallback_url"
        );
    }
}
