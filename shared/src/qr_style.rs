//! A code's QR brand preset: the colours, error correction and margin its
//! public QR images use unless a request says otherwise, and whether a
//! request may pick other colours at all.

use crate::ValidationError;
use serde::{Deserialize, Serialize};

/// Largest quiet zone, in modules (as the public `margin` option).
pub const MAX_MARGIN: u32 = 32;
/// A logo's side in percent of the code's width: the default and the bounds.
/// Up to the bound the gateway's QR reader decides (it refuses a style whose
/// images do not read); past it no code reads reliably.
pub const DEFAULT_LOGO_SIZE: u8 = 22;
pub const MIN_LOGO_SIZE: u8 = 10;
pub const MAX_LOGO_SIZE: u8 = 40;
/// Longest call to action under a framed code, in characters.
pub const MAX_FRAME_TEXT: usize = 32;
/// Module styles a preset may name.
pub const STYLES: [&str; 3] = ["square", "rounded", "dots"];

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QrStyle {
    /// Colour of the dark modules: hex `rgb` or `rrggbb`, optionally `#`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fg: Option<String>,
    /// Colour of the light modules and the quiet zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bg: Option<String>,
    /// Error correction: L, M, Q or H.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecc: Option<String>,
    /// Quiet zone in modules, 0–32.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin: Option<u32>,
    /// Whether a public QR request may choose its own `fg`/`bg` (default
    /// true). False keeps every image of the code in the preset's colours.
    #[serde(default = "yes")]
    pub custom_colors: bool,
    /// Module style: square (default), rounded or dots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub style: Option<String>,
    /// Frame the code, with a call to action under it (default false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub frame: bool,
    /// The call to action under a framed code; default `Use code {CODE}`.
    /// 1–32 printable ASCII characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_text: Option<String>,
    /// The logo's side in percent of the code's width, 10–40 (default 22).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_size: Option<u8>,
}

/// A code's uploaded QR logo as its record names it: the bytes are stored
/// apart, under their SHA-256 (shared by every code with the same logo).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogoRef {
    /// `image/png` or `image/svg+xml`.
    pub content_type: String,
    pub bytes: u32,
    /// Lower-case hex SHA-256 of the bytes.
    pub sha256: String,
}

impl QrStyle {
    /// Checks the forms of the values; whether the colours contrast enough is
    /// the renderer's to say.
    pub fn validate(&self) -> Result<(), ValidationError> {
        for (name, value) in [("fg", &self.fg), ("bg", &self.bg)] {
            if let Some(v) = value {
                if parse_hex(v).is_none() {
                    return Err(ValidationError::new(
                        "qr",
                        format!("{name} must be a hex colour rgb or rrggbb, optionally with a leading #"),
                    ));
                }
            }
        }
        if let Some(e) = &self.ecc {
            if !matches!(e.as_str(), "L" | "M" | "Q" | "H" | "l" | "m" | "q" | "h") {
                return Err(ValidationError::new("qr", "ecc must be one of L, M, Q, H"));
            }
        }
        if self.margin.is_some_and(|m| m > MAX_MARGIN) {
            return Err(ValidationError::new(
                "qr",
                format!("margin must be from 0 to {MAX_MARGIN} modules"),
            ));
        }
        if let Some(style) = &self.style {
            if !STYLES.iter().any(|s| style.eq_ignore_ascii_case(s)) {
                return Err(ValidationError::new(
                    "qr",
                    "style must be one of square, rounded, dots",
                ));
            }
        }
        if let Some(text) = &self.frame_text {
            let printable = text.bytes().all(|b| (0x20..=0x7e).contains(&b));
            let len = text.chars().count();
            if !printable || !(1..=MAX_FRAME_TEXT).contains(&len) || text.trim().is_empty() {
                return Err(ValidationError::new(
                    "qr",
                    format!(
                        "frame_text must be 1 to {MAX_FRAME_TEXT} printable ASCII characters \
                         (letters, digits, spaces and punctuation), not only spaces"
                    ),
                ));
            }
        }
        if let Some(pct) = self.logo_size {
            if !(MIN_LOGO_SIZE..=MAX_LOGO_SIZE).contains(&pct) {
                return Err(ValidationError::new(
                    "qr",
                    format!(
                        "logo_size must be from {MIN_LOGO_SIZE} to {MAX_LOGO_SIZE} (percent of the code's width)"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// `rgb` or `rrggbb` (optionally `#`) as three bytes.
pub fn parse_hex(value: &str) -> Option<(u8, u8, u8)> {
    let hex = value.strip_prefix('#').unwrap_or(value);
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let digit = |i: usize| u8::from_str_radix(&hex[i..=i], 16).ok();
    match hex.len() {
        3 => Some((digit(0)? * 17, digit(1)? * 17, digit(2)? * 17)),
        6 => Some((
            u8::from_str_radix(&hex[0..2], 16).ok()?,
            u8::from_str_radix(&hex[2..4], 16).ok()?,
            u8::from_str_radix(&hex[4..6], 16).ok()?,
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_checked() {
        let ok = QrStyle {
            fg: Some("#1a2b3c".into()),
            bg: Some("fff".into()),
            ecc: Some("H".into()),
            margin: Some(2),
            custom_colors: false,
            style: Some("dots".into()),
            frame: true,
            frame_text: Some("Scan me: 10% off!".into()),
            logo_size: Some(25),
        };
        assert!(ok.validate().is_ok());
        for bad in [
            QrStyle {
                style: Some("hearts".into()),
                ..ok.clone()
            },
            QrStyle {
                frame_text: Some("x".repeat(33)),
                ..ok.clone()
            },
            QrStyle {
                frame_text: Some("caf\u{e9}".into()),
                ..ok.clone()
            },
            QrStyle {
                frame_text: Some("   ".into()),
                ..ok.clone()
            },
            QrStyle {
                frame_text: Some("a\nb".into()),
                ..ok.clone()
            },
            QrStyle {
                logo_size: Some(41),
                ..ok.clone()
            },
            QrStyle {
                logo_size: Some(9),
                ..ok.clone()
            },
        ] {
            assert_eq!(bad.validate().unwrap_err().field, "qr", "{bad:?}");
        }
        assert_eq!(parse_hex("#fff"), Some((255, 255, 255)));
        assert_eq!(parse_hex("1a2b3c"), Some((0x1a, 0x2b, 0x3c)));
        for bad in ["#ggg", "12345", "", "#1234567"] {
            assert!(parse_hex(bad).is_none(), "{bad}");
        }
        let bad = QrStyle {
            margin: Some(33),
            ..ok.clone()
        };
        assert_eq!(bad.validate().unwrap_err().field, "qr");
        let bad = QrStyle {
            ecc: Some("X".into()),
            ..ok
        };
        assert!(bad.validate().is_err());
        let parsed: QrStyle = serde_json::from_str(r#"{"fg":"000"}"#).unwrap();
        assert!(
            parsed.custom_colors,
            "custom colours are allowed unless turned off"
        );
    }
}
