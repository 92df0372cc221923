//! Logos drawn in the centre of a code's QR images: validated when uploaded,
//! decoded once per distinct logo (by SHA-256) when the code table is built.
//!
//! A logo is a PNG (decoded by the `png` crate, 16 to 2048 px a side) or an
//! SVG (parsed by `usvg`) of at most [`MAX_LOGO_BYTES`]. An SVG must be
//! static and self-contained: no scripts, no event attributes, no
//! `<foreignObject>`, no DOCTYPE or entities, no reference to anything but
//! `#fragment` or `data:`; it is refused, not cleaned, so the stored bytes
//! are the bytes that were checked. SVG logos are drawn into PNG output by
//! `resvg` (paths, fills, strokes, gradients; no text, no embedded raster
//! images) and embedded as-is into SVG output, as an `<image>` (which viewers
//! render without scripts or external loads anyway).

use bytes::Bytes;
use resvg::{tiny_skia, usvg};
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::Arc;

/// Largest logo upload, in bytes.
pub const MAX_LOGO_BYTES: usize = 64 * 1024;
/// Smallest and largest side of a PNG logo, in pixels.
pub const MIN_LOGO_PX: u32 = 16;
pub const MAX_LOGO_PX: u32 = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoKind {
    Png,
    Svg,
}

impl LogoKind {
    pub fn content_type(self) -> &'static str {
        match self {
            LogoKind::Png => "image/png",
            LogoKind::Svg => "image/svg+xml",
        }
    }

    /// From a `Content-Type` (parameters ignored); `None` for anything else.
    pub fn from_content_type(value: &str) -> Option<Self> {
        let mime = value.split(';').next().unwrap_or("").trim();
        if mime.eq_ignore_ascii_case("image/png") {
            Some(LogoKind::Png)
        } else if mime.eq_ignore_ascii_case("image/svg+xml") {
            Some(LogoKind::Svg)
        } else {
            None
        }
    }
}

/// Why an upload is refused; `message` says what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoError(pub String);

impl fmt::Display for LogoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn refuse(message: impl Into<String>) -> LogoError {
    LogoError(message.into())
}

/// A validated logo, decoded for drawing.
pub struct Logo {
    pub kind: LogoKind,
    pub bytes: Bytes,
    /// Lower-case hex SHA-256 of `bytes`: the key it is stored under.
    pub sha256: String,
    image: Decoded,
}

impl fmt::Debug for Logo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Logo")
            .field("kind", &self.kind)
            .field("bytes", &self.bytes.len())
            .field("sha256", &self.sha256)
            .finish()
    }
}

enum Decoded {
    /// Premultiplied RGBA, row-major.
    Raster {
        w: u32,
        h: u32,
        rgba: Vec<u8>,
    },
    Vector(Box<usvg::Tree>),
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Logo {
    /// Validates an upload (or a stored logo being loaded again).
    pub fn parse(kind: LogoKind, bytes: Bytes) -> Result<Arc<Logo>, LogoError> {
        if bytes.len() > MAX_LOGO_BYTES {
            return Err(refuse(format!(
                "the logo is {} bytes; at most {MAX_LOGO_BYTES} bytes (64 KiB) are accepted",
                bytes.len()
            )));
        }
        if bytes.is_empty() {
            return Err(refuse("the logo is empty; send the image as the body"));
        }
        let image = match kind {
            LogoKind::Png => decode_png(&bytes)?,
            LogoKind::Svg => Decoded::Vector(Box::new(parse_svg(&bytes)?)),
        };
        Ok(Arc::new(Logo {
            kind,
            sha256: sha256_hex(&bytes),
            bytes,
            image,
        }))
    }

    /// Width over height.
    pub fn aspect(&self) -> f64 {
        let (w, h) = match &self.image {
            Decoded::Raster { w, h, .. } => (f64::from(*w), f64::from(*h)),
            Decoded::Vector(tree) => (
                f64::from(tree.size().width()),
                f64::from(tree.size().height()),
            ),
        };
        if w > 0.0 && h > 0.0 {
            w / h
        } else {
            1.0
        }
    }

    /// The logo drawn `w`×`h` pixels (its box, aspect already fitted by the
    /// caller): premultiplied RGBA.
    pub fn rasterize(&self, w: u32, h: u32) -> Vec<u8> {
        let (w, h) = (w.max(1), h.max(1));
        match &self.image {
            Decoded::Raster { w: sw, h: sh, rgba } => resample(rgba, *sw, *sh, w, h),
            Decoded::Vector(tree) => {
                let Some(mut pixmap) = tiny_skia::Pixmap::new(w, h) else {
                    return vec![0; (w * h * 4) as usize];
                };
                let size = tree.size();
                let transform = tiny_skia::Transform::from_scale(
                    w as f32 / size.width(),
                    h as f32 / size.height(),
                );
                resvg::render(tree, transform, &mut pixmap.as_mut());
                pixmap.take()
            }
        }
    }

    /// `data:` URI of the stored bytes, for embedding into SVG output.
    pub fn data_uri(&self) -> String {
        format!(
            "data:{};base64,{}",
            self.kind.content_type(),
            base64(&self.bytes)
        )
    }
}

fn decode_png(bytes: &[u8]) -> Result<Decoded, LogoError> {
    let not_png = |e: png::DecodingError| {
        refuse(format!(
            "the body is not a readable PNG ({e}); send a PNG file with Content-Type image/png"
        ))
    };
    // The decoded image is bounded before any pixel is read: 2048² RGBA 16-bit.
    let limits = png::Limits {
        bytes: (MAX_LOGO_PX * MAX_LOGO_PX * 8) as usize,
    };
    let mut decoder = png::Decoder::new_with_limits(bytes, limits);
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(not_png)?;
    let (w, h) = (reader.info().width, reader.info().height);
    for (name, side) in [("width", w), ("height", h)] {
        if !(MIN_LOGO_PX..=MAX_LOGO_PX).contains(&side) {
            return Err(refuse(format!(
                "the PNG's {name} is {side} px; a logo must be {MIN_LOGO_PX} to {MAX_LOGO_PX} px a side"
            )));
        }
    }
    let mut buf = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut buf).map_err(not_png)?;
    let channels = match frame.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err(refuse("the PNG's palette could not be expanded")),
    };
    let mut rgba = Vec::with_capacity((w * h * 4) as usize);
    for y in 0..h as usize {
        let row = &buf[y * frame.line_size..][..w as usize * channels];
        for px in row.chunks_exact(channels) {
            let (r, g, b, a) = match channels {
                1 => (px[0], px[0], px[0], 255),
                2 => (px[0], px[0], px[0], px[1]),
                3 => (px[0], px[1], px[2], 255),
                _ => (px[0], px[1], px[2], px[3]),
            };
            let pm = |c: u8| ((u16::from(c) * u16::from(a) + 127) / 255) as u8;
            rgba.extend_from_slice(&[pm(r), pm(g), pm(b), a]);
        }
    }
    // Kept at most KEPT_LOGO_PX a side: a logo is never drawn larger than
    // 40 % of a 4096 px image, and a 2048² logo would hold 16 MiB per logo.
    let fit = f64::from(KEPT_LOGO_PX) / f64::from(w.max(h));
    if fit < 1.0 {
        let (dw, dh) = (
            ((f64::from(w) * fit).round() as u32).max(1),
            ((f64::from(h) * fit).round() as u32).max(1),
        );
        let rgba = resample(&rgba, w, h, dw, dh);
        return Ok(Decoded::Raster { w: dw, h: dh, rgba });
    }
    Ok(Decoded::Raster { w, h, rgba })
}

/// Longest side of a PNG logo as kept decoded in memory.
const KEPT_LOGO_PX: u32 = 1024;

/// Elements and attribute names refused anywhere in an SVG logo, compared
/// case-insensitively.
const SVG_FORBIDDEN: [(&str, &str); 8] = [
    (
        "<script",
        "remove the <script> element: a logo must be static",
    ),
    (
        "<foreignobject",
        "remove the <foreignObject> element: a logo holds SVG shapes only",
    ),
    ("<!doctype", "remove the DOCTYPE: entities are not accepted"),
    ("<!entity", "remove the ENTITY declarations"),
    ("<iframe", "remove the <iframe> element"),
    ("<embed", "remove the <embed> element"),
    (
        "@import",
        "remove the CSS @import: a logo must be self-contained",
    ),
    (
        "javascript:",
        "remove javascript: URLs: a logo must be static",
    ),
];

fn parse_svg(bytes: &[u8]) -> Result<usvg::Tree, LogoError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| refuse("the SVG is not UTF-8 text; export it as plain UTF-8 SVG"))?;
    let lower = text.to_ascii_lowercase();
    if !lower.contains("<svg") {
        return Err(refuse(
            "the body has no <svg> element; send an SVG file with Content-Type image/svg+xml",
        ));
    }
    for (needle, fix) in SVG_FORBIDDEN {
        if lower.contains(needle) {
            return Err(refuse(format!("the SVG is refused: {fix}")));
        }
    }
    check_svg_attributes(&lower)?;
    // Nothing outside the file is ever read (the checks above already refuse
    // such references; this is the second lock).
    let options = usvg::Options {
        resources_dir: None,
        image_href_resolver: usvg::ImageHrefResolver {
            resolve_data: usvg::ImageHrefResolver::default_data_resolver(),
            resolve_string: Box::new(|_, _| None),
        },
        ..usvg::Options::default()
    };
    let tree = usvg::Tree::from_str(text, &options).map_err(|e| {
        refuse(format!(
            "the SVG does not parse ({e}); export it again as a plain SVG file"
        ))
    })?;
    let size = tree.size();
    if !(size.width() >= 1.0 && size.height() >= 1.0) {
        return Err(refuse(
            "the SVG has no size: give the <svg> element a viewBox or width and height",
        ));
    }
    if !tree.root().has_children() {
        return Err(refuse("the SVG draws nothing"));
    }
    Ok(tree)
}

/// Every attribute whose name is `on…` (an event handler) is refused, and so
/// is every `href`, `xlink:href` or CSS `url(…)` that points anywhere but at
/// `#fragment` or a `data:` URI.
fn check_svg_attributes(lower: &str) -> Result<(), LogoError> {
    let bytes = lower.as_bytes();
    for (i, _) in lower.match_indices("on") {
        // An attribute name starts after whitespace and ends at '='.
        let before = i.checked_sub(1).map(|j| bytes[j]);
        if !before.is_some_and(|b| b.is_ascii_whitespace() || b == b'/') {
            continue;
        }
        let name_end = lower[i..]
            .find(|c: char| !c.is_ascii_alphanumeric() && c != '-')
            .map_or(lower.len(), |n| i + n);
        let rest = lower[name_end..].trim_start();
        if name_end > i + 2 && rest.starts_with('=') && inside_tag(lower, i) {
            return Err(refuse(format!(
                "the SVG is refused: remove the event attribute {}: a logo must be static",
                &lower[i..name_end]
            )));
        }
    }
    for (i, _) in lower.match_indices("href") {
        let rest = lower[i + 4..].trim_start();
        let Some(rest) = rest.strip_prefix('=') else {
            continue;
        };
        let rest = rest.trim_start();
        let value = rest.trim_start_matches(['"', '\'']).trim_start();
        if !(value.starts_with('#') || value.starts_with("data:")) {
            return Err(refuse(
                "the SVG is refused: an href points outside the file; a logo may only \
                 reference #ids or data: URIs",
            ));
        }
    }
    for (i, _) in lower.match_indices("url(") {
        let value = lower[i + 4..].trim_start().trim_start_matches(['"', '\'']);
        if !(value.starts_with('#') || value.starts_with("data:")) {
            return Err(refuse(
                "the SVG is refused: a url(…) points outside the file; a logo may only \
                 reference #ids or data: URIs",
            ));
        }
    }
    Ok(())
}

/// Whether position `i` lies inside a tag (after a `<`, before its `>`).
fn inside_tag(text: &str, i: usize) -> bool {
    let open = text[..i].rfind('<');
    let close = text[..i].rfind('>');
    match (open, close) {
        (Some(o), Some(c)) => o > c,
        (Some(_), None) => true,
        _ => false,
    }
}

/// Resamples premultiplied RGBA: an area average when shrinking (each output
/// pixel averages the source pixels it covers), bilinear when enlarging.
fn resample(src: &[u8], sw: u32, sh: u32, dw: u32, dh: u32) -> Vec<u8> {
    let (sw, sh, dw, dh) = (sw as usize, sh as usize, dw as usize, dh as usize);
    let mut out = vec![0u8; dw * dh * 4];
    let shrink = sw >= dw && sh >= dh;
    for y in 0..dh {
        for x in 0..dw {
            let px = if shrink {
                let (x0, x1) = (x * sw / dw, ((x + 1) * sw).div_ceil(dw).min(sw));
                let (y0, y1) = (y * sh / dh, ((y + 1) * sh).div_ceil(dh).min(sh));
                let mut acc = [0u32; 4];
                for sy in y0..y1 {
                    for sx in x0..x1 {
                        let p = &src[(sy * sw + sx) * 4..][..4];
                        for c in 0..4 {
                            acc[c] += u32::from(p[c]);
                        }
                    }
                }
                let n = ((x1 - x0) * (y1 - y0)).max(1) as u32;
                acc.map(|v| ((v + n / 2) / n) as u8)
            } else {
                let fx = ((x as f64 + 0.5) * sw as f64 / dw as f64 - 0.5).max(0.0);
                let fy = ((y as f64 + 0.5) * sh as f64 / dh as f64 - 0.5).max(0.0);
                let (x0, y0) = (fx as usize, fy as usize);
                let (x1, y1) = ((x0 + 1).min(sw - 1), (y0 + 1).min(sh - 1));
                let (tx, ty) = (fx - x0 as f64, fy - y0 as f64);
                let at = |sx: usize, sy: usize, c: usize| f64::from(src[(sy * sw + sx) * 4 + c]);
                [0, 1, 2, 3].map(|c| {
                    let top = at(x0, y0, c) * (1.0 - tx) + at(x1, y0, c) * tx;
                    let bottom = at(x0, y1, c) * (1.0 - tx) + at(x1, y1, c) * tx;
                    (top * (1.0 - ty) + bottom * ty).round() as u8
                })
            };
            out[(y * dw + x) * 4..][..4].copy_from_slice(&px);
        }
    }
    out
}

/// Standard base64 with padding (data URLs, Shopify's signatures).
pub fn base64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_known_values() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    fn svg(body: &str) -> Result<Arc<Logo>, LogoError> {
        Logo::parse(LogoKind::Svg, Bytes::from(body.to_string()))
    }

    #[test]
    fn svg_checks() {
        let ok = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><defs><linearGradient id="g"><stop offset="0" stop-color="red"/></linearGradient></defs><circle cx="5" cy="5" r="4" fill="url(#g)"/></svg>"##;
        let logo = svg(ok).unwrap();
        assert_eq!(logo.aspect(), 1.0);
        let px = logo.rasterize(20, 20);
        assert_eq!(px.len(), 20 * 20 * 4);
        assert!(px[(10 * 20 + 10) * 4 + 3] > 200, "the circle is drawn");
        for (bad, says) in [
            (
                r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"><script>x()</script></svg>"#,
                "<script>",
            ),
            (
                r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1" onload="x()"><rect width="1" height="1"/></svg>"#,
                "onload",
            ),
            (
                r#"<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" viewBox="0 0 1 1"><image xlink:href="https://evil.example/a.png" width="1" height="1"/></svg>"#,
                "href",
            ),
            (
                r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"><rect fill="url(https://x/y)" width="1" height="1"/></svg>"#,
                "url(",
            ),
            (
                r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"><foreignObject/></svg>"#,
                "foreignObject",
            ),
            ("<svg><rect", "does not parse"),
            ("hello", "no <svg>"),
        ] {
            let e = svg(bad).unwrap_err();
            assert!(e.0.contains(says), "{bad}: {e}");
        }
        // A word like "contour" or "font" is not an event attribute.
        svg(r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 2 2"><rect id="contour" width="2" height="2" fill="#123"/></svg>"##).unwrap();
    }

    #[test]
    fn png_checks() {
        let e = Logo::parse(LogoKind::Png, Bytes::from_static(b"GIF89a....")).unwrap_err();
        assert!(e.0.contains("not a readable PNG"), "{e}");
        let e = Logo::parse(LogoKind::Png, Bytes::from(vec![0u8; MAX_LOGO_BYTES + 1])).unwrap_err();
        assert!(e.0.contains("64 KiB"), "{e}");
    }

    #[test]
    fn resample_keeps_a_flat_colour() {
        let src: Vec<u8> = [10u8, 20, 30, 255].repeat(7 * 5);
        for (w, h) in [(3, 2), (14, 10), (7, 5)] {
            let out = resample(&src, 7, 5, w, h);
            assert!(out.chunks(4).all(|p| p == [10, 20, 30, 255]), "{w}x{h}");
        }
    }
}
