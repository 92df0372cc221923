//! Routing rules of a code: ordered, first match wins, each sending the
//! follower to its own destination.
//!
//! A rule matches when every condition it gives holds; a list of values means
//! any one of them. The conditions:
//!
//! - `device`: `ios`, `android`, `desktop` (from the user agent: iOS and
//!   iPadOS, Android, and desktop-class browsers; bots and TVs are none);
//! - `os`: `ios`, `android`, `windows`, `macos`, `linux`, `chromeos`;
//! - `in_app`: an in-app browser by name (`instagram`, `tiktok`, …, see
//!   [`IN_APPS`]) or `any` for every in-app browser;
//! - `country`: ISO 3166-1 alpha-2 (`DE`), from the trusted CDN header or
//!   GeoIP;
//! - `language`: language tags (`de`, `pt-BR`) matched, case-insensitively
//!   and on subtag boundaries, as a prefix of the request's *preferred*
//!   `Accept-Language` entry (the highest `q`, the first among equals): `de`
//!   matches `de-AT`, `pt-br` does not match `pt-PT`;
//! - a time window, all UTC: `from` (inclusive) and `until` (exclusive)
//!   RFC 3339 instants, `hours` `[start, end)` of the day (`[22, 6]` wraps
//!   past midnight), `weekdays` (`mon` … `sun`).
//!
//! A rule's `name` (a slug) is what a scan records as the rule that sent it;
//! when not given it is the rule's position (`"1"`, `"2"`, …) at the time the
//! rules were written.

use crate::{Destination, ValidationError};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// At most this many rules per code.
pub const MAX_RULES: usize = 32;
/// At most this many values per list of a rule.
pub const MAX_VALUES: usize = 64;
/// Longest rule name.
pub const MAX_NAME: usize = 32;
/// Longest language tag.
pub const MAX_LANGUAGE: usize = 35;

pub const DEVICES: &[&str] = &["ios", "android", "desktop"];
pub const OSES: &[&str] = &["ios", "android", "windows", "macos", "linux", "chromeos"];
/// The in-app browsers the classifier names (`codelink_analytics::classify`
/// uses this list).
pub const IN_APPS: &[&str] = &[
    "instagram",
    "facebook",
    "messenger",
    "threads",
    "tiktok",
    "youtube",
    "snapchat",
    "twitter",
    "linkedin",
    "pinterest",
    "wechat",
    "line",
    "telegram",
    "discord",
    "reddit",
    "kakaotalk",
    "viber",
];
/// `in_app: ["any"]` matches every in-app browser.
pub const ANY_IN_APP: &str = "any";
pub const WEEKDAYS: &[&str] = &["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// One routing rule (the stored form, also what the API shows).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    /// A slug (letters, digits, `-`, `_`; stored lowercase), unique in the
    /// code; defaults to the rule's position, `"1"` for the first.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Where a matching scan goes (the code's channel UTM still appended).
    pub destination: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub os: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub in_app: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub country: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub language: Vec<String>,
    /// RFC 3339; the rule applies from this instant on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// RFC 3339; the rule applies before this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// `[start, end)` UTC hours, each 0–24; `start > end` wraps past midnight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<[u8; 2]>,
    /// UTC weekdays, `mon` … `sun`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weekdays: Vec<String>,
}

impl RouteRule {
    /// Unix seconds of `from`, once validated.
    pub fn from_secs(&self) -> Option<i64> {
        self.from.as_deref().and_then(parse_time)
    }

    /// Unix seconds of `until`, once validated.
    pub fn until_secs(&self) -> Option<i64> {
        self.until.as_deref().and_then(parse_time)
    }
}

fn parse_time(raw: &str) -> Option<i64> {
    OffsetDateTime::parse(raw, &Rfc3339)
        .ok()
        .map(OffsetDateTime::unix_timestamp)
}

fn canonical_time(raw: &str) -> Option<String> {
    let t = OffsetDateTime::parse(raw, &Rfc3339).ok()?;
    t.to_offset(time::UtcOffset::UTC).format(&Rfc3339).ok()
}

/// Checks and canonicalises the rules of a code in place: values lowercase
/// (countries uppercase), times in UTC, names filled in by position.
pub fn validate_routes(rules: &mut [RouteRule]) -> Result<(), ValidationError> {
    if rules.len() > MAX_RULES {
        return Err(ValidationError::new(
            "routes",
            format!("at most {MAX_RULES} rules per code"),
        ));
    }
    for (i, rule) in rules.iter_mut().enumerate() {
        let n = i + 1;
        validate_rule(rule, n)
            .map_err(|m| ValidationError::new("routes", format!("rule {n}: {m}")))?;
    }
    for (i, rule) in rules.iter().enumerate() {
        if rules[..i].iter().any(|r| r.name == rule.name) {
            return Err(ValidationError::new(
                "routes",
                format!(
                    "rule {}: name '{}' is used by an earlier rule",
                    i + 1,
                    rule.name
                ),
            ));
        }
    }
    Ok(())
}

fn validate_rule(rule: &mut RouteRule, position: usize) -> Result<(), String> {
    if rule.name.is_empty() {
        rule.name = position.to_string();
    }
    rule.name.make_ascii_lowercase();
    if rule.name.len() > MAX_NAME || !rule.name.bytes().all(crate::is_slug_byte) {
        return Err(format!(
            "name must be 1 to {MAX_NAME} of letters, digits, '-' and '_'"
        ));
    }
    rule.destination = Destination::parse(&rule.destination)
        .map_err(|e| format!("destination {}", e.message))?
        .into_string();
    for (field, list) in [
        ("device", &mut rule.device),
        ("os", &mut rule.os),
        ("in_app", &mut rule.in_app),
        ("country", &mut rule.country),
        ("language", &mut rule.language),
        ("weekdays", &mut rule.weekdays),
    ] {
        if list.len() > MAX_VALUES {
            return Err(format!("{field}: at most {MAX_VALUES} values"));
        }
        for value in list.iter_mut() {
            canonical_value(field, value)?;
        }
        list.sort_unstable();
        list.dedup();
    }
    for (field, value) in [("from", &mut rule.from), ("until", &mut rule.until)] {
        if let Some(raw) = value {
            *raw = canonical_time(raw).ok_or_else(|| {
                format!("{field}: '{raw}' is not an RFC 3339 time such as 2027-01-31T23:59:59Z")
            })?;
        }
    }
    if let (Some(from), Some(until)) = (rule.from_secs(), rule.until_secs()) {
        if from >= until {
            return Err("from must be before until".into());
        }
    }
    if let Some([start, end]) = rule.hours {
        if start > 24 || end > 24 || start == end {
            return Err("hours: [start, end) with hours 0 to 24, start and end different".into());
        }
    }
    let has_condition = !(rule.device.is_empty()
        && rule.os.is_empty()
        && rule.in_app.is_empty()
        && rule.country.is_empty()
        && rule.language.is_empty()
        && rule.weekdays.is_empty())
        || rule.from.is_some()
        || rule.until.is_some()
        || rule.hours.is_some();
    if !has_condition {
        return Err(
            "has no condition (it would match every scan: change the code's destination instead)"
                .into(),
        );
    }
    Ok(())
}

fn canonical_value(field: &str, value: &mut String) -> Result<(), String> {
    let one_of = |allowed: &[&str], value: &mut String| {
        value.make_ascii_lowercase();
        if allowed.contains(&value.as_str()) {
            Ok(())
        } else {
            Err(format!(
                "{field}: '{value}' is not one of {}",
                allowed.join(", ")
            ))
        }
    };
    match field {
        "device" => one_of(DEVICES, value),
        "os" => one_of(OSES, value),
        "weekdays" => one_of(WEEKDAYS, value),
        "in_app" => {
            value.make_ascii_lowercase();
            if value == ANY_IN_APP || IN_APPS.contains(&value.as_str()) {
                Ok(())
            } else {
                Err(format!(
                    "in_app: '{value}' is not one of any, {}",
                    IN_APPS.join(", ")
                ))
            }
        }
        "country" => {
            value.make_ascii_uppercase();
            if value.len() == 2 && value.bytes().all(|b| b.is_ascii_uppercase()) {
                Ok(())
            } else {
                Err(format!(
                    "country: '{value}' is not a two-letter ISO 3166-1 code such as DE"
                ))
            }
        }
        _ => {
            value.make_ascii_lowercase();
            let ok = value.len() <= MAX_LANGUAGE
                && value.split('-').all(|part| {
                    (1..=8).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_alphanumeric())
                })
                && value
                    .split('-')
                    .next()
                    .is_some_and(|p| p.len() >= 2 && p.bytes().all(|b| b.is_ascii_alphabetic()));
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "language: '{value}' is not a language tag such as de or pt-BR"
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> RouteRule {
        RouteRule {
            destination: "https://shop.example/de".into(),
            country: vec!["de".into(), "AT".into()],
            ..RouteRule::default()
        }
    }

    #[test]
    fn canonical_and_named_by_position() {
        let mut rules = vec![
            rule(),
            RouteRule {
                name: "iOS-App".into(),
                destination: "https://apps.example/".into(),
                device: vec!["IOS".into()],
                language: vec!["pt-BR".into()],
                from: Some("2027-01-01T01:00:00+01:00".into()),
                hours: Some([22, 6]),
                weekdays: vec!["sat".into(), "sun".into()],
                ..RouteRule::default()
            },
        ];
        validate_routes(&mut rules).unwrap();
        assert_eq!(rules[0].name, "1");
        assert_eq!(rules[0].country, ["AT", "DE"]);
        assert_eq!(rules[1].name, "ios-app");
        assert_eq!(rules[1].device, ["ios"]);
        assert_eq!(rules[1].language, ["pt-br"]);
        assert_eq!(rules[1].from.as_deref(), Some("2027-01-01T00:00:00Z"));
        assert_eq!(rules[1].from_secs(), Some(1_798_761_600));
    }

    #[test]
    fn errors_name_the_rule() {
        let cases: Vec<(RouteRule, &str)> = vec![
            (
                RouteRule {
                    destination: "javascript:alert(1)".into(),
                    ..rule()
                },
                "rule 2: destination",
            ),
            (
                RouteRule {
                    device: vec!["phone".into()],
                    ..rule()
                },
                "rule 2: device: 'phone' is not one of ios, android, desktop",
            ),
            (
                RouteRule {
                    country: vec!["DEU".into()],
                    ..rule()
                },
                "rule 2: country",
            ),
            (
                RouteRule {
                    in_app: vec!["myspace".into()],
                    ..rule()
                },
                "rule 2: in_app",
            ),
            (
                RouteRule {
                    language: vec!["d".into()],
                    ..rule()
                },
                "rule 2: language",
            ),
            (
                RouteRule {
                    from: Some("tomorrow".into()),
                    ..rule()
                },
                "rule 2: from",
            ),
            (
                RouteRule {
                    from: Some("2027-01-02T00:00:00Z".into()),
                    until: Some("2027-01-01T00:00:00Z".into()),
                    ..rule()
                },
                "rule 2: from must be before until",
            ),
            (
                RouteRule {
                    hours: Some([9, 25]),
                    ..rule()
                },
                "rule 2: hours",
            ),
            (
                RouteRule {
                    destination: "https://shop.example/".into(),
                    ..RouteRule::default()
                },
                "rule 2: has no condition",
            ),
            (
                RouteRule {
                    name: "1".into(),
                    ..rule()
                },
                "rule 2: name '1' is used by an earlier rule",
            ),
            (
                RouteRule {
                    country: vec!["DE".into(); MAX_VALUES + 1],
                    ..rule()
                },
                "rule 2: country: at most 64 values",
            ),
        ];
        for (bad, expected) in cases {
            let mut rules = vec![rule(), bad];
            let e = validate_routes(&mut rules).unwrap_err();
            assert_eq!(e.field, "routes");
            assert!(e.message.starts_with(expected), "{e} vs {expected}");
        }
        let mut many = vec![rule(); MAX_RULES + 1];
        assert!(validate_routes(&mut many)
            .unwrap_err()
            .message
            .contains("at most 32 rules"));
    }
}
