//! QR image options and rendering for the `/qr` endpoints.
//!
//! This module holds pure functions only (no I/O, no async) so the HTTP layer
//! can call them from any context and cache the bytes they return:
//!
//! * [`parse_query`] turns the query string of a QR image request into a
//!   [`QrRequest`]: validated [`QrOptions`] (size, error correction level,
//!   quiet-zone margin, colours) plus the raw `channel` value, which the caller
//!   validates itself.
//! * [`render`] draws the code as a 1-bit indexed PNG (encoded by
//!   `qr_png` from one packed row per module row) or as an SVG.
//! * [`contrast_ratio`] is the WCAG 2 contrast ratio used to refuse colour
//!   pairs that scanners cannot read.
//!
//! Every failure is a [`QrOptionError`] that names the offending option and
//! says what is allowed, so it can be sent back to the client as-is.

use std::fmt::Write as _;

use qrcode::types::QrError;
use qrcode::{Color, EcLevel, QrCode};

/// Smallest accepted image size in pixels.
pub const MIN_SIZE: u32 = 64;
/// Largest accepted image size in pixels: bounds memory and CPU per request.
pub const MAX_SIZE: u32 = 4096;
/// Largest accepted quiet zone, in modules.
pub const MAX_MARGIN: u32 = 32;

/// Minimum WCAG contrast ratio between foreground and background. Below this,
/// phone cameras in ordinary light fail to binarise the image reliably.
const MIN_CONTRAST: f64 = 3.0;

/// How dark modules are drawn. Finder patterns stay solid (rounded squares in
/// the rounded and dot styles) so that scanners still find the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModuleStyle {
    Square,
    Rounded,
    Dots,
}

impl ModuleStyle {
    pub fn name(self) -> &'static str {
        match self {
            ModuleStyle::Square => "square",
            ModuleStyle::Rounded => "rounded",
            ModuleStyle::Dots => "dots",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [ModuleStyle::Square, ModuleStyle::Rounded, ModuleStyle::Dots]
            .into_iter()
            .find(|s| value.eq_ignore_ascii_case(s.name()))
    }
}

/// Output image format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Png,
    Svg,
    /// A one-page vector PDF for print (`size` read as pixels at 300 dpi).
    Pdf,
}

/// QR error correction level: L (~7 %), M (~15 %), Q (~25 %), H (~30 %) of the
/// code words can be restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ecc {
    L,
    M,
    Q,
    H,
}

impl Ecc {
    fn level(self) -> EcLevel {
        match self {
            Ecc::L => EcLevel::L,
            Ecc::M => EcLevel::M,
            Ecc::Q => EcLevel::Q,
            Ecc::H => EcLevel::H,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Ecc::L => "L",
            Ecc::M => "M",
            Ecc::Q => "Q",
            Ecc::H => "H",
        }
    }
}

/// An sRGB colour with 8 bits per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// Lower-case `rrggbb`, without a leading `#`.
    pub fn hex(&self) -> String {
        format!("{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }

    /// [`Rgb::hex`] appended to `out`, without allocating.
    pub fn push_hex(&self, out: &mut String) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for c in [self.0, self.1, self.2] {
            out.push(char::from(HEX[usize::from(c >> 4)]));
            out.push(char::from(HEX[usize::from(c & 0xf)]));
        }
    }

    /// WCAG 2 relative luminance, 0.0 (black) to 1.0 (white).
    fn luminance(self) -> f64 {
        fn linear(c: u8) -> f64 {
            let c = f64::from(c) / 255.0;
            // WCAG 2 prints 0.03928 as the threshold, the sRGB standard says
            // 0.04045; no 8-bit value lies between them, so both agree.
            if c <= 0.04045 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        }
        0.2126 * linear(self.0) + 0.7152 * linear(self.1) + 0.0722 * linear(self.2)
    }
}

/// Validated image options. Derives `Hash` so it can be part of a cache key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QrOptions {
    /// Image width and height in pixels.
    pub size: u32,
    pub ecc: Ecc,
    /// Quiet zone around the code, in modules (the spec asks for 4).
    pub margin: u32,
    /// Colour of the dark modules.
    pub fg: Rgb,
    /// Colour of the light modules and the quiet zone.
    pub bg: Rgb,
    /// How the dark modules are drawn.
    pub style: ModuleStyle,
    /// A frame around the code with a line of text under it.
    pub frame: bool,
    /// Side of a logo, in percent of the code's width (used with a logo only).
    pub logo_size: u8,
}

impl Default for QrOptions {
    fn default() -> Self {
        QrOptions {
            size: 512,
            ecc: Ecc::M,
            margin: 4,
            fg: Rgb(0x00, 0x00, 0x00),
            bg: Rgb(0xff, 0xff, 0xff),
            style: ModuleStyle::Square,
            frame: false,
            logo_size: codelink_shared::qr_style::DEFAULT_LOGO_SIZE,
        }
    }
}

/// What a QR image request asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QrRequest {
    pub options: QrOptions,
    /// The `channel` query value exactly as given (after URL decoding); the
    /// caller validates it.
    pub channel: Option<String>,
}

/// A rejected option: `option` is its name, `message` says what is allowed.
#[derive(Debug, thiserror::Error)]
#[error("{option}: {message}")]
pub struct QrOptionError {
    pub option: &'static str,
    pub message: String,
}

impl QrOptionError {
    pub(crate) fn new(option: &'static str, message: impl Into<String>) -> Self {
        QrOptionError {
            option,
            message: message.into(),
        }
    }
}

/// Names accepted by [`parse_query`]; also listed in the unknown-option error.
const OPTION_NAMES: [&str; 8] = [
    "channel", "size", "ecc", "margin", "fg", "bg", "style", "frame",
];

/// Parses the query string of a QR image request (without or with the leading
/// `?`). A missing or empty query gives the defaults.
pub fn parse_query(query: Option<&str>) -> Result<QrRequest, QrOptionError> {
    parse_query_on(query, QrOptions::default(), true)
}

/// The options of a code's brand preset (what its images use unless a
/// request says otherwise), its colours checked as a request's are.
pub fn preset(style: &codelink_shared::QrStyle) -> Result<QrOptions, QrOptionError> {
    let mut options = QrOptions::default();
    if let Some(fg) = &style.fg {
        options.fg = parse_colour(fg).ok_or_else(|| colour_error("fg"))?;
    }
    if let Some(bg) = &style.bg {
        options.bg = parse_colour(bg).ok_or_else(|| colour_error("bg"))?;
    }
    if let Some(ecc) = &style.ecc {
        options.ecc =
            parse_ecc(ecc).ok_or_else(|| QrOptionError::new("ecc", "must be one of L, M, Q, H"))?;
    }
    if let Some(margin) = style.margin {
        options.margin = margin.min(MAX_MARGIN);
    }
    if let Some(name) = &style.style {
        options.style = ModuleStyle::parse(name)
            .ok_or_else(|| QrOptionError::new("style", "must be one of square, rounded, dots"))?;
    }
    options.frame = style.frame;
    if let Some(pct) = style.logo_size {
        options.logo_size = pct;
    }
    check_colours(options.fg, options.bg)?;
    Ok(options)
}

/// [`parse_query`] over `base` (a code's preset) instead of the defaults;
/// with `custom_colors` false, `fg` and `bg` are refused.
pub fn parse_query_on(
    query: Option<&str>,
    base: QrOptions,
    custom_colors: bool,
) -> Result<QrRequest, QrOptionError> {
    let mut options = base;
    let mut channel = None;
    // One flag per entry of OPTION_NAMES, to refuse repeats: with two values
    // it is ambiguous which one the client meant.
    let mut seen = [false; OPTION_NAMES.len()];

    // Tolerate a leading '?' so callers may pass either form.
    let query = query.unwrap_or("");
    let query = query.strip_prefix('?').unwrap_or(query);

    for (key, value) in crate::request::query_pairs(query) {
        let Some(index) = OPTION_NAMES.iter().position(|name| *name == key) else {
            return Err(unknown_option(&key));
        };
        let name = OPTION_NAMES[index];
        if std::mem::replace(&mut seen[index], true) {
            return Err(QrOptionError::new(
                name,
                "given more than once: each option may appear at most once",
            ));
        }
        match name {
            "channel" => channel = Some(value.into_owned()),
            "size" => {
                options.size =
                    parse_in_range(&value, MIN_SIZE, MAX_SIZE).ok_or_else(size_range_error)?
            }
            "margin" => {
                options.margin =
                    parse_in_range(&value, 0, MAX_MARGIN).ok_or_else(margin_range_error)?
            }
            "ecc" => {
                options.ecc = parse_ecc(&value)
                    .ok_or_else(|| QrOptionError::new("ecc", "must be one of L, M, Q, H"))?
            }
            "fg" | "bg" if !custom_colors => {
                return Err(QrOptionError::new(
                    name,
                    "this code's QR colours are set by its owner: leave out fg and bg",
                ))
            }
            "style" => {
                options.style = ModuleStyle::parse(&value).ok_or_else(|| {
                    QrOptionError::new("style", "must be one of square, rounded, dots")
                })?
            }
            "frame" => {
                options.frame = match value.as_ref() {
                    "1" => true,
                    "0" => false,
                    _ => return Err(QrOptionError::new("frame", "must be 0 or 1")),
                }
            }
            "fg" => options.fg = parse_colour(&value).ok_or_else(|| colour_error("fg"))?,
            "bg" => options.bg = parse_colour(&value).ok_or_else(|| colour_error("bg"))?,
            _ => unreachable!("every OPTION_NAMES entry has a match arm"),
        }
    }

    check_colours(options.fg, options.bg)?;
    Ok(QrRequest { options, channel })
}

fn unknown_option(key: &str) -> QrOptionError {
    // The name is client input that may end up in a response body: escape it
    // with Debug and cap its length.
    let shown: String = key.chars().take(40).collect();
    let ellipsis = if key.chars().count() > 40 { "…" } else { "" };
    QrOptionError::new(
        "query",
        format!(
            "unknown option {shown:?}{ellipsis}: allowed options are {}",
            OPTION_NAMES.join(", ")
        ),
    )
}

fn size_range_error() -> QrOptionError {
    QrOptionError::new(
        "size",
        format!("must be an integer from {MIN_SIZE} to {MAX_SIZE}"),
    )
}

fn margin_range_error() -> QrOptionError {
    QrOptionError::new(
        "margin",
        format!("must be an integer from 0 to {MAX_MARGIN}"),
    )
}

fn colour_error(option: &'static str) -> QrOptionError {
    QrOptionError::new(
        option,
        "must be a hex colour rgb or rrggbb, optionally with a leading #",
    )
}

/// Plain decimal digits only: `u32::from_str` would also take a leading `+`,
/// which is not a form we want to promise.
fn parse_in_range(value: &str, min: u32, max: u32) -> Option<u32> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Overflow (a very long digit string) fails here and is simply out of range.
    let n: u32 = value.parse().ok()?;
    (min..=max).contains(&n).then_some(n)
}

fn parse_ecc(value: &str) -> Option<Ecc> {
    [Ecc::L, Ecc::M, Ecc::Q, Ecc::H]
        .into_iter()
        .find(|ecc| value.eq_ignore_ascii_case(ecc.name()))
}

fn parse_colour(value: &str) -> Option<Rgb> {
    let hex = value.strip_prefix('#').unwrap_or(value);
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    // All bytes are ASCII hex digits from here on, so slicing by byte is safe.
    let channel = |s: &str| u8::from_str_radix(s, 16).ok();
    match hex.len() {
        // `rgb` is shorthand for `rrggbb`: each digit is doubled (0xf -> 0xff).
        3 => Some(Rgb(
            channel(&hex[0..1])? * 0x11,
            channel(&hex[1..2])? * 0x11,
            channel(&hex[2..3])? * 0x11,
        )),
        6 => Some(Rgb(
            channel(&hex[0..2])?,
            channel(&hex[2..4])?,
            channel(&hex[4..6])?,
        )),
        _ => None,
    }
}

/// Refuses colour pairs that many scanners cannot read.
fn check_colours(fg: Rgb, bg: Rgb) -> Result<(), QrOptionError> {
    // Black on white, the default, passes: skip the powf calls (they ran on
    // every cached image request).
    if (fg, bg) == (Rgb(0, 0, 0), Rgb(0xff, 0xff, 0xff)) {
        return Ok(());
    }
    // Inverted first: a light-on-dark code may have plenty of contrast and
    // still fail, because many decoders only look for dark finder patterns.
    if fg.luminance() > bg.luminance() {
        return Err(QrOptionError::new(
            "fg",
            format!(
                "must be darker than bg (fg {} is lighter than bg {}): inverted, \
                 light-on-dark codes are not read by many scanners",
                fg.hex(),
                bg.hex()
            ),
        ));
    }
    let ratio = contrast_ratio(fg, bg);
    if ratio < MIN_CONTRAST {
        return Err(QrOptionError::new(
            "fg",
            format!(
                "contrast with bg is {ratio:.2}:1, must be at least {MIN_CONTRAST}:1 \
                 for scanners to read the code"
            ),
        ));
    }
    Ok(())
}

/// WCAG 2 contrast ratio of two colours, from 1.0 (same) to 21.0 (black/white).
/// Symmetric in its arguments.
pub fn contrast_ratio(a: Rgb, b: Rgb) -> f64 {
    let (la, lb) = (a.luminance(), b.luminance());
    let (light, dark) = if la >= lb { (la, lb) } else { (lb, la) };
    (light + 0.05) / (dark + 0.05)
}

/// The code and where it sits in the image; shared by both output formats.
pub(crate) struct Layout {
    /// Modules per side of the code itself, without the margin.
    pub(crate) width: usize,
    /// `width * width` module colours, row-major.
    pub(crate) modules: Vec<Color>,
    /// Whether each module is part of a function pattern (finder, timing,
    /// alignment, format or version information), row-major.
    pub(crate) functional: Vec<bool>,
    /// Module side length in pixels.
    scale: usize,
    /// Pixel offset of the top-left module from the image's top-left corner:
    /// the margin plus half of the rounding leftover, so the code is centred.
    origin: usize,
}

pub(crate) fn layout(content: &str, options: &QrOptions) -> Result<Layout, QrOptionError> {
    // Re-check the bounds: options may be built without parse_query, and the
    // size decides how much memory the PNG buffer takes.
    if !(MIN_SIZE..=MAX_SIZE).contains(&options.size) {
        return Err(size_range_error());
    }
    if options.margin > MAX_MARGIN {
        return Err(margin_range_error());
    }

    let code = QrCode::with_error_correction_level(content.as_bytes(), options.ecc.level())
        .map_err(|e| match e {
            QrError::DataTooLong => QrOptionError::new(
                "code",
                format!(
                    "content of {} bytes is too long for a QR code at ecc {}; \
                     use a lower ecc or shorter content",
                    content.len(),
                    options.ecc.name()
                ),
            ),
            other => QrOptionError::new("code", format!("cannot be encoded as QR: {other}")),
        })?;

    let width = code.width();
    let margin = options.margin as usize;
    let size = options.size as usize;
    let total = width + 2 * margin;
    // Integer scale keeps every module edge on a pixel boundary: fractional
    // modules blur into grey pixels that scanners misread.
    let scale = size / total;
    if scale == 0 {
        return Err(QrOptionError::new(
            "size",
            format!("too small for this code: at least {total} px needed at this margin"),
        ));
    }
    let leftover = size - total * scale;
    Ok(Layout {
        width,
        functional: (0..width * width)
            .map(|i| code.is_functional(i % width, i / width))
            .collect(),
        modules: code.to_colors(),
        scale,
        origin: leftover / 2 + margin * scale,
    })
}

/// Renders `content` as a QR code. PNG output is exactly `size`×`size` pixels;
/// SVG output declares the same width and height. The same size check applies
/// to both, so an option set works in either format or in neither.
pub fn render(
    content: &str,
    options: &QrOptions,
    format: Format,
) -> Result<Vec<u8>, QrOptionError> {
    let layout = layout(content, options)?;
    match format {
        Format::Png => render_png(&layout, options),
        Format::Svg => Ok(render_svg(&layout, options)),
        Format::Pdf => crate::qr_brand::render_plain_pdf(content, options),
    }
}

/// Renders `content` with a code's brand: `brand`'s logo (which forces ecc
/// H), the options' frame and module style. The plain look (square modules,
/// no frame, no logo) is [`render`]'s image byte for byte; anything else is
/// drawn by `qr_brand` and, like plain images in other colours, returned only
/// if the gateway's QR reader reads it back.
pub fn render_branded(
    content: &str,
    options: &QrOptions,
    format: Format,
    brand: &Brand,
) -> Result<Vec<u8>, RenderError> {
    let options = effective(options, brand);
    if options.style == ModuleStyle::Square && !options.frame && brand.logo.is_none() {
        let bytes = render(content, &options, format)?;
        let default = QrOptions::default();
        if (options.fg, options.bg) != (default.fg, default.bg) {
            crate::qr_brand::check(content, &options, brand)?;
        }
        return Ok(bytes);
    }
    crate::qr_brand::render(content, &options, format, brand)
}

/// The options a render really uses: a logo forces ecc H.
pub fn effective(options: &QrOptions, brand: &Brand) -> QrOptions {
    let mut options = *options;
    if brand.logo.is_some() {
        options.ecc = Ecc::H;
    }
    options
}

pub use crate::qr_brand::{check, Brand, RenderError};

fn render_png(layout: &Layout, options: &QrOptions) -> Result<Vec<u8>, QrOptionError> {
    let size = options.size as usize;
    // 1 bit per pixel, rows padded to whole bytes as PNG requires; palette
    // index 0 is bg, so a zeroed row is all background.
    let stride = size.div_ceil(8);
    let scale = layout.scale;
    // One packed row per module row: each stands for `scale` pixel rows.
    let mut rows = vec![0u8; stride * layout.width];
    for (row_modules, row) in layout
        .modules
        .chunks_exact(layout.width)
        .zip(rows.chunks_exact_mut(stride))
    {
        for (mx, module) in row_modules.iter().enumerate() {
            if *module == Color::Dark {
                set_bits(row, layout.origin + mx * scale, scale);
            }
        }
    }
    let blank = vec![0u8; stride];
    let below = size - layout.origin - layout.width * scale;
    let mut bands = Vec::with_capacity(layout.width + 2);
    bands.push((&blank[..], layout.origin));
    bands.extend(rows.chunks_exact(stride).map(|row| (row, scale)));
    bands.push((&blank[..], below));
    let (fg, bg) = (options.fg, options.bg);
    Ok(crate::qr_png::encode(
        options.size,
        options.size,
        [[bg.0, bg.1, bg.2], [fg.0, fg.1, fg.2]],
        &bands,
    ))
}

/// Sets `len` bits starting at bit `start` (most significant bit first, as in
/// PNG rows), whole bytes at a time where possible.
fn set_bits(row: &mut [u8], start: usize, len: usize) {
    let end = start + len;
    let mut bit = start;
    while bit < end && !bit.is_multiple_of(8) {
        row[bit / 8] |= 0x80 >> (bit % 8);
        bit += 1;
    }
    while bit + 8 <= end {
        row[bit / 8] = 0xff;
        bit += 8;
    }
    while bit < end {
        row[bit / 8] |= 0x80 >> (bit % 8);
        bit += 1;
    }
}

fn render_svg(layout: &Layout, options: &QrOptions) -> Vec<u8> {
    // The SVG works in module units and lets the viewer scale it, so the
    // pixel origin and rounding leftover of the PNG do not apply.
    let margin = options.margin as usize;
    let total = layout.width + 2 * margin;
    let mut svg = String::with_capacity(256 + layout.modules.len() * 4);
    // Writing to a String cannot fail, hence the ignored fmt::Results.
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {total} {total}" width="{size}" height="{size}" shape-rendering="crispEdges"><rect width="{total}" height="{total}" fill="#{bg}"/><path fill="#{fg}" d=""##,
        size = options.size,
        bg = options.bg.hex(),
        fg = options.fg.hex(),
    );
    // One sub-path per horizontal run of dark modules keeps the single path
    // short compared with one square per module.
    for (y, row) in layout.modules.chunks_exact(layout.width).enumerate() {
        let mut x = 0;
        while x < row.len() {
            if row[x] != Color::Dark {
                x += 1;
                continue;
            }
            let run_start = x;
            while x < row.len() && row[x] == Color::Dark {
                x += 1;
            }
            let run = x - run_start;
            let _ = write!(
                svg,
                "M{} {}h{run}v1h-{run}z",
                run_start + margin,
                y + margin
            );
        }
    }
    svg.push_str("\"/></svg>");
    svg.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://127.0.0.1:8080/alice10/yt-video42";
    const SHORT_URL: &str = "http://a.io/abc";
    const ALL_ECC: [Ecc; 4] = [Ecc::L, Ecc::M, Ecc::Q, Ecc::H];

    fn parse_err(query: &str) -> QrOptionError {
        match parse_query(Some(query)) {
            Ok(request) => panic!("{query:?} should be refused, got {request:?}"),
            Err(e) => e,
        }
    }

    use codelink_testkit::qr::{decode_png, decode_qr};

    fn assert_png_round_trip(content: &str, options: &QrOptions) {
        let png = render(content, options, Format::Png)
            .unwrap_or_else(|e| panic!("render {options:?}: {e}"));
        let (w, h, luma) = decode_png(&png);
        assert_eq!((w, h), (options.size, options.size), "{options:?}");
        assert_eq!(decode_qr(w, h, &luma), content, "{options:?}");
    }

    #[test]
    fn parse_defaults() {
        for query in [None, Some(""), Some("?")] {
            let request = parse_query(query).unwrap();
            assert_eq!(request.options, QrOptions::default());
            assert_eq!(request.channel, None);
        }
        let d = QrOptions::default();
        assert_eq!((d.size, d.ecc, d.margin), (512, Ecc::M, 4));
        assert_eq!((d.fg.hex(), d.bg.hex()), ("000000".into(), "ffffff".into()));
    }

    #[test]
    fn parse_all_options() {
        let request = parse_query(Some(
            "channel=yt&size=1000&ecc=h&margin=0&fg=1a237e&bg=FFF8E1&style=Dots&frame=1",
        ))
        .unwrap();
        assert_eq!(request.channel.as_deref(), Some("yt"));
        assert_eq!(
            request.options,
            QrOptions {
                size: 1000,
                ecc: Ecc::H,
                margin: 0,
                fg: Rgb(0x1a, 0x23, 0x7e),
                bg: Rgb(0xff, 0xf8, 0xe1),
                style: ModuleStyle::Dots,
                frame: true,
                logo_size: 22,
            }
        );
        for (query, option) in [("style=hearts", "style"), ("frame=yes", "frame")] {
            assert_eq!(parse_err(query).option, option, "{query}");
        }
        // Bounds are inclusive; a leading '?' is tolerated.
        let request = parse_query(Some("?size=64&margin=32&ecc=q")).unwrap();
        assert_eq!((request.options.size, request.options.margin), (64, 32));
        assert_eq!(request.options.ecc, Ecc::Q);
        assert_eq!(parse_query(Some("size=4096")).unwrap().options.size, 4096);
        // The channel is kept as given, URL-decoded, for the caller to judge.
        let request = parse_query(Some("channel=a%20b%2F")).unwrap();
        assert_eq!(request.channel.as_deref(), Some("a b/"));
    }

    #[test]
    fn parse_encoded_hash_colours() {
        let request = parse_query(Some("fg=%23123&bg=%23fff8e1")).unwrap();
        assert_eq!(request.options.fg, Rgb(0x11, 0x22, 0x33));
        assert_eq!(request.options.bg, Rgb(0xff, 0xf8, 0xe1));
        // An unencoded '#' would start the URL fragment and never reach us, but
        // accept it anyway if a caller passes the raw text.
        assert_eq!(
            parse_query(Some("fg=#000")).unwrap().options.fg,
            Rgb(0, 0, 0)
        );
    }

    #[test]
    fn bad_size() {
        for query in [
            "size=63",
            "size=4097",
            "size=abc",
            "size=",
            "size=+512",
            "size=-1",
            "size=99999999999",
        ] {
            let e = parse_err(query);
            assert_eq!(e.option, "size", "{query}");
            assert_eq!(e.to_string(), "size: must be an integer from 64 to 4096");
        }
    }

    #[test]
    fn bad_ecc() {
        for query in ["ecc=X", "ecc=", "ecc=LL"] {
            let e = parse_err(query);
            assert_eq!(e.option, "ecc", "{query}");
            assert!(e.message.contains("L, M, Q, H"), "{e}");
        }
    }

    #[test]
    fn bad_margin() {
        for query in ["margin=33", "margin=x", "margin=-1"] {
            let e = parse_err(query);
            assert_eq!(e.option, "margin", "{query}");
            assert_eq!(e.message, "must be an integer from 0 to 32");
        }
    }

    #[test]
    fn bad_colour_syntax() {
        for (query, option) in [
            ("fg=zzz", "fg"),
            ("fg=12345", "fg"),
            ("fg=%23%23000", "fg"),
            ("bg=ggg", "bg"),
            ("bg=", "bg"),
        ] {
            let e = parse_err(query);
            assert_eq!(e.option, option, "{query}");
            assert!(e.message.contains("rrggbb"), "{e}");
        }
    }

    #[test]
    fn fg_equal_to_bg_is_refused() {
        let e = parse_err("fg=777&bg=777777");
        assert_eq!(e.option, "fg");
        assert!(e.message.contains("contrast"), "{e}");
        // Dark but still too close to the background.
        let e = parse_err("fg=999999");
        assert_eq!(e.option, "fg");
        assert!(e.message.contains("at least 3:1"), "{e}");
    }

    #[test]
    fn fg_lighter_than_bg_is_refused() {
        let e = parse_err("fg=ffffff&bg=000000");
        assert_eq!(e.option, "fg");
        assert!(e.message.contains("lighter than bg"), "{e}");
        // Only bg given: judged against the default black fg, and still
        // reported on fg, the colour that would have to change.
        let e = parse_err("bg=000");
        assert_eq!(e.option, "fg");
        assert!(e.message.contains("contrast"), "{e}");
        assert!(parse_err("fg=ccc&bg=222")
            .message
            .contains("lighter than bg"));
    }

    #[test]
    fn unknown_option_is_refused() {
        let e = parse_err("size=200&colour=red");
        assert_eq!(e.option, "query");
        assert!(e.message.contains("unknown option \"colour\""), "{e}");
        assert!(
            e.message.contains("channel, size, ecc, margin, fg, bg"),
            "{e}"
        );
        // Names are case-sensitive, and hostile names are escaped and capped.
        assert!(parse_err("Size=200").message.contains("\"Size\""));
        let e = parse_err(&format!("{}%0A=1", "x".repeat(100)));
        assert!(!e.message.contains('\n'));
        assert!(e.message.len() < 150, "{e}");
    }

    #[test]
    fn repeated_option_is_refused() {
        for (query, option) in [
            ("size=200&size=200", "size"),
            ("ecc=L&margin=1&ecc=H", "ecc"),
            ("channel=a&channel=b", "channel"),
            ("fg=000&fg=000", "fg"),
        ] {
            let e = parse_err(query);
            assert_eq!(e.option, option, "{query}");
            assert!(e.message.contains("more than once"), "{e}");
        }
    }

    #[test]
    fn contrast_ratio_values() {
        let (black, white) = (Rgb(0, 0, 0), Rgb(255, 255, 255));
        assert!((contrast_ratio(black, white) - 21.0).abs() < 1e-9);
        assert!((contrast_ratio(white, black) - 21.0).abs() < 1e-9);
        assert!((contrast_ratio(white, white) - 1.0).abs() < 1e-9);
        // #767676 on white is the well-known 4.54:1 WCAG AA threshold grey.
        let grey = contrast_ratio(Rgb(0x76, 0x76, 0x76), white);
        assert!((grey - 4.54).abs() < 0.01, "{grey}");
    }

    #[test]
    fn rgb_hex() {
        assert_eq!(Rgb(0x1a, 0x2b, 0x3c).hex(), "1a2b3c");
        assert_eq!(Rgb(0, 0, 0xff).hex(), "0000ff");
        for rgb in [
            Rgb(0x1a, 0x2b, 0x3c),
            Rgb(0, 0, 0xff),
            Rgb(0xf0, 0x0f, 0x99),
        ] {
            let mut pushed = String::from("x");
            rgb.push_hex(&mut pushed);
            assert_eq!(pushed, format!("x{}", rgb.hex()));
        }
    }

    #[test]
    fn png_round_trip_all_ecc_and_sizes() {
        for ecc in ALL_ECC {
            for size in [200, 512, 1000] {
                let options = QrOptions {
                    size,
                    ecc,
                    ..QrOptions::default()
                };
                assert_png_round_trip(URL, &options);
            }
        }
    }

    #[test]
    fn png_round_trip_at_64_px() {
        // At 64 px every module is one pixel; the long URL still fits at the
        // default margin, and a short one fits with room to spare.
        for ecc in ALL_ECC {
            for content in [URL, SHORT_URL] {
                for margin in [1, 4] {
                    let options = QrOptions {
                        size: 64,
                        ecc,
                        margin,
                        ..QrOptions::default()
                    };
                    assert_png_round_trip(content, &options);
                }
            }
        }
    }

    #[test]
    fn png_round_trip_custom_colours() {
        let request = parse_query(Some("fg=1a237e&bg=fff8e1")).unwrap();
        for ecc in ALL_ECC {
            for size in [200, 512] {
                let options = QrOptions {
                    size,
                    ecc,
                    ..request.options
                };
                assert_png_round_trip(URL, &options);
            }
        }
    }

    #[test]
    fn png_is_one_bit_indexed_with_bg_fg_palette() {
        let options = parse_query(Some("fg=1a237e&bg=fff8e1&size=300"))
            .unwrap()
            .options;
        let png = render(URL, &options, Format::Png).unwrap();
        let reader = png::Decoder::new(&png[..]).read_info().unwrap();
        let info = reader.info();
        assert_eq!(info.color_type, png::ColorType::Indexed);
        assert_eq!(info.bit_depth, png::BitDepth::One);
        assert_eq!(
            info.palette.as_deref(),
            Some(&[0xff, 0xf8, 0xe1, 0x1a, 0x23, 0x7e][..])
        );
    }

    #[test]
    fn png_pixels_match_modules_and_are_centred() {
        // Sizes that are not a multiple of the module count leave pixels over;
        // 1000 px at margin 4 gives 27 px modules, which exercises the
        // whole-byte path of set_bits, the smaller ones the partial bytes.
        // 2000 and 4096 px take qr_png's run encoder, the others may not.
        for (size, margin) in [
            (200u32, 0u32),
            (200, 3),
            (1000, 4),
            (97, 1),
            (2000, 2),
            (4096, 4),
        ] {
            let options = QrOptions {
                size,
                margin,
                ..QrOptions::default()
            };
            let code = QrCode::with_error_correction_level(URL, EcLevel::M).unwrap();
            let (size, margin) = (size as usize, margin as usize);
            let width = code.width();
            let total = width + 2 * margin;
            let scale = size / total;
            let leftover = size - total * scale;
            let origin = leftover / 2 + margin * scale;
            let colours = code.to_colors();
            let module = |p: usize| {
                p.checked_sub(origin)
                    .map(|d| d / scale)
                    .filter(|m| *m < width)
            };

            let (_, _, luma) = decode_png(&render(URL, &options, Format::Png).unwrap());
            for y in 0..size {
                for x in 0..size {
                    let dark = match (module(x), module(y)) {
                        (Some(mx), Some(my)) => colours[my * width + mx] == Color::Dark,
                        _ => false,
                    };
                    assert_eq!(
                        luma[y * size + x],
                        if dark { 0 } else { 255 },
                        "size {size}, margin {margin}, pixel {x},{y}"
                    );
                }
            }
        }
    }

    #[test]
    fn png_sizes_are_no_larger_than_before_or_than_segnos() {
        // Bytes of the same QR (this content, ecc, margin 4): the renderer
        // before issue 15 (png crate, unfiltered, default compression) and
        // segno 1.6.6 (Python, zlib level 9) at the same module scale. The
        // target is segno's size at 4096 px; at 2048 px ours is ~3 % larger.
        let content = "http://127.0.0.1:8080/bench1?qr=1";
        for (ecc, size, before, segno) in [
            (Ecc::M, 512, 657, 603),
            (Ecc::M, 1024, 1107, 1057),
            (Ecc::M, 2048, 3070, 2848),
            (Ecc::M, 4096, 24482, 7038),
            (Ecc::H, 512, 626, 596),
            (Ecc::H, 1024, 958, 967),
            (Ecc::H, 2048, 3150, 3055),
            (Ecc::H, 4096, 23870, 7537),
        ] {
            let options = QrOptions {
                size,
                ecc,
                ..QrOptions::default()
            };
            let png = render(content, &options, Format::Png).unwrap();
            assert!(
                png.len() <= before,
                "{ecc:?} {size}: {} > {before}",
                png.len()
            );
            if size == 4096 {
                assert!(
                    png.len() <= segno,
                    "{ecc:?} {size}: {} > {segno}",
                    png.len()
                );
            }
        }
    }

    #[test]
    fn too_small_size_is_refused() {
        let options = QrOptions {
            size: 64,
            margin: 32,
            ..QrOptions::default()
        };
        for format in [Format::Png, Format::Svg] {
            let e = render(URL, &options, format).unwrap_err();
            assert_eq!(e.option, "size");
            // Version 3 at ecc M is 29 modules, plus 2 × 32 margin.
            assert_eq!(
                e.message,
                "too small for this code: at least 93 px needed at this margin"
            );
        }
    }

    #[test]
    fn render_rechecks_bounds() {
        let options = QrOptions {
            size: 100_000,
            ..QrOptions::default()
        };
        assert_eq!(
            render(URL, &options, Format::Png).unwrap_err().option,
            "size"
        );
        let options = QrOptions {
            margin: 33,
            ..QrOptions::default()
        };
        assert_eq!(
            render(URL, &options, Format::Svg).unwrap_err().option,
            "margin"
        );
    }

    #[test]
    fn content_too_long_is_refused() {
        let content = "x".repeat(3000);
        let e = render(
            &content,
            &QrOptions {
                ecc: Ecc::H,
                ..QrOptions::default()
            },
            Format::Png,
        )
        .unwrap_err();
        assert_eq!(e.option, "code");
        assert!(e.message.contains("too long"), "{e}");
    }

    #[test]
    fn svg_output() {
        let options = parse_query(Some("fg=1a237e&bg=fff8e1&size=300&margin=2"))
            .unwrap()
            .options;
        let svg = String::from_utf8(render(URL, &options, Format::Svg).unwrap()).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.ends_with("</svg>"), "{svg}");
        let code = QrCode::with_error_correction_level(URL, EcLevel::M).unwrap();
        let total = code.width() + 4;
        assert!(
            svg.contains(&format!("viewBox=\"0 0 {total} {total}\"")),
            "{svg}"
        );
        assert!(svg.contains("width=\"300\" height=\"300\""), "{svg}");
        assert!(svg.contains("shape-rendering=\"crispEdges\""));
        assert!(svg.contains("<rect") && svg.contains("fill=\"#fff8e1\""));
        assert_eq!(svg.matches("<path").count(), 1);
        assert!(svg.contains("<path fill=\"#1a237e\""));

        // The runs cover exactly the dark modules: sum of the `h{n}` widths.
        let d = svg
            .split(" d=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let covered: usize = d
            .split('h')
            .skip(1)
            .filter(|part| !part.starts_with('-'))
            .map(|part| part.split('v').next().unwrap().parse::<usize>().unwrap())
            .sum();
        let dark = code
            .to_colors()
            .iter()
            .filter(|c| **c == Color::Dark)
            .count();
        assert_eq!(covered, dark);
    }
}
