//! Branded QR images: a logo in the centre, a frame with a call to action,
//! rounded or dot modules, and the self-check that every such image reads.
//!
//! Pure functions, like `qr_render.rs`, which parses the options and calls
//! [`render`] here for anything but the plain look. One [`Geometry`] in
//! module units serves both outputs: the PNG draws it with anti-aliased
//! edges (8-bit RGB), the SVG writes it as paths (the frame's text too, from
//! the built-in bitmap font, so a print shop needs no font).
//!
//! **Self-check:** a render is returned only if the gateway's own QR reader
//! (`rqrr`) reads back exactly the encoded URL. A PNG is checked on its own
//! pixels (logo included); an SVG on the same geometry drawn as a PNG with
//! the logo's area left blank, which is the worst any logo can do. When the
//! check fails, [`diagnose`] redraws without the logo, then with square
//! modules, then without the frame, to say which choice made it unreadable.

use crate::qr_font;
use crate::qr_logo::Logo;
use crate::qr_render::{layout, Format, ModuleStyle, QrOptionError, QrOptions};
use qrcode::Color;
use std::fmt::Write as _;

/// What a code adds to its images beyond the options.
#[derive(Clone, Copy, Default)]
pub struct Brand<'a> {
    pub logo: Option<&'a Logo>,
    /// The call to action under a framed code (already defaulted by the caller).
    pub frame_text: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Option(#[from] QrOptionError),
    /// The styled image does not read back; the message says which choice to change.
    #[error("{0}")]
    Unreadable(String),
}

/// Quiet zone inside a frame, at least (modules).
const MIN_FRAMED_QUIET: usize = 2;
/// Blank space outside the frame and the frame's stroke (modules).
const FRAME_PAD: usize = 1;
const FRAME_BORDER: usize = 1;
/// Radius of a rounded module's free corners and a dot, in modules.
const ROUND: f64 = 0.5;
const DOT: f64 = 0.5;
/// Corner radius of a finder pattern's outer square (modules). Readers
/// locate a code by the finders' corners: a larger radius pulls them in
/// and the reader's perspective fit misses the grid.
const FINDER_ROUND: f64 = 0.5;

/// Side, in module units, of what the self-check of an SVG draws per unit.
const CHECK_PX_PER_UNIT: usize = 12;
/// Images are shrunk (by whole-pixel box averages) to at most this side for
/// the reader: more pixels only cost time.
const CHECK_MAX_SIDE: usize = 1024;

/// The image in module units ("units").
struct Geometry {
    width: usize,
    dark: Vec<bool>,
    functional: Vec<bool>,
    style: ModuleStyle,
    /// Symbol's top-left corner.
    sym: usize,
    total_w: usize,
    total_h: usize,
    frame: Option<Frame>,
    /// First module and side of the square left blank for the logo.
    knockout: Option<(usize, usize)>,
    /// Where the logo is drawn: x, y, w, h (units).
    logo_rect: Option<[f64; 4]>,
}

struct Frame {
    /// The band under the symbol that holds the text (units, stroke included).
    band: usize,
    text: String,
}

impl Geometry {
    fn new(
        content: &str,
        options: &QrOptions,
        brand: &Brand,
        with_logo: bool,
    ) -> Result<Geometry, QrOptionError> {
        let layout = layout(content, options)?;
        let width = layout.width;
        let dark: Vec<bool> = layout.modules.iter().map(|c| *c == Color::Dark).collect();
        let margin = options.margin as usize;
        let framed = options.frame;
        let quiet = if framed {
            margin.max(MIN_FRAMED_QUIET)
        } else {
            margin
        };
        let ring = if framed { FRAME_PAD + FRAME_BORDER } else { 0 };
        let sym = ring + quiet;
        let total_w = 2 * sym + width;
        let frame = framed.then(|| Frame {
            // About a fifth of the width: room for a line of large type.
            band: ((total_w * 18).div_ceil(100)).max(6),
            text: brand.frame_text.to_string(),
        });
        let total_h = match &frame {
            Some(f) => sym + width + quiet + f.band + FRAME_PAD,
            None => total_w,
        };
        let (knockout, logo_rect) = match brand.logo.filter(|_| with_logo) {
            Some(logo) => {
                // Bounded here too (a stored record may hold any number):
                // the cleared square always fits in the symbol.
                let pct = usize::from(options.logo_size.min(80));
                let mut side = (width * pct + 50) / 100;
                // Same parity as the symbol, so the square sits exactly in the middle.
                if width.saturating_sub(side) % 2 == 1 {
                    side += 1;
                }
                let cleared = side + 2;
                let first = width.saturating_sub(cleared) / 2;
                let aspect = logo.aspect();
                let (w, h) = if aspect >= 1.0 {
                    (side as f64, side as f64 / aspect)
                } else {
                    (side as f64 * aspect, side as f64)
                };
                let centre = sym as f64 + width as f64 / 2.0;
                (
                    Some((first, cleared)),
                    Some([centre - w / 2.0, centre - h / 2.0, w, h]),
                )
            }
            None => (None, None),
        };
        Ok(Geometry {
            width,
            dark,
            functional: layout.functional,
            style: options.style,
            sym,
            total_w,
            total_h,
            frame,
            knockout,
            logo_rect,
        })
    }

    fn is_dark(&self, x: isize, y: isize) -> bool {
        let w = self.width as isize;
        if x < 0 || y < 0 || x >= w || y >= w {
            return false;
        }
        let (x, y) = (x as usize, y as usize);
        self.dark[y * self.width + x] && !self.knocked_out(x, y)
    }

    fn knocked_out(&self, x: usize, y: usize) -> bool {
        self.knockout
            .is_some_and(|(k, n)| (k..k + n).contains(&x) && (k..k + n).contains(&y))
    }

    /// Whether the module is part of one of the three finder patterns.
    fn in_finder(&self, x: usize, y: usize) -> bool {
        let far = self.width - 7;
        (y < 7 && (x < 7 || x >= far)) || (x < 7 && y >= far)
    }

    /// Whether the module belongs to an alignment or timing pattern: a
    /// function module outside the corners' finder, format and version areas.
    fn locates(&self, x: usize, y: usize) -> bool {
        let w = self.width;
        let corner = (y < 9 && (x < 9 || x + 8 >= w)) || (x < 9 && y + 8 >= w);
        let version = (x + 11 >= w && y < 6) || (y + 11 >= w && x < 6);
        self.functional[y * w + x] && !corner && !version
    }

    /// Finder patterns are drawn as rounded squares (not dots) in the
    /// rounded and dot styles: their 1:1:3:1:1 proportions must survive.
    fn styled_finders(&self) -> bool {
        self.style != ModuleStyle::Square
    }

    /// Every shape that is drawn in fg, in units.
    fn shapes(&self) -> Vec<Shape> {
        let mut out = Vec::new();
        if let Some(f) = &self.frame {
            let (p, b) = (FRAME_PAD as f64, FRAME_BORDER as f64);
            let (tw, th) = (self.total_w as f64, self.total_h as f64);
            let inner = (self.total_w - 2 * (FRAME_PAD + FRAME_BORDER)) as f64;
            // The band under the hole is the frame's own colour: the text is cut out of it.
            debug_assert!(f.band > FRAME_BORDER);
            out.push(Shape::Ring {
                outer: RRect::new(p, p, tw - p, th - p, [1.5; 4]),
                inner: RRect::new(p + b, p + b, p + b + inner, p + b + inner, [1.0; 4]),
            });
        }
        let s = self.sym as f64;
        if self.styled_finders() {
            let far = (self.width - 7) as f64;
            for (fx, fy) in [(0.0, 0.0), (far, 0.0), (0.0, far)] {
                let (x, y) = (s + fx, s + fy);
                out.push(Shape::Ring {
                    outer: RRect::new(x, y, x + 7.0, y + 7.0, [FINDER_ROUND; 4]),
                    inner: RRect::new(x + 1.0, y + 1.0, x + 6.0, y + 6.0, [FINDER_ROUND * 0.6; 4]),
                });
                out.push(Shape::Rect(RRect::new(
                    x + 2.0,
                    y + 2.0,
                    x + 5.0,
                    y + 5.0,
                    [FINDER_ROUND * 0.6; 4],
                )));
            }
        }
        for my in 0..self.width {
            for mx in 0..self.width {
                if !self.is_dark(mx as isize, my as isize)
                    || (self.styled_finders() && self.in_finder(mx, my))
                {
                    continue;
                }
                let (x, y) = (s + mx as f64, s + my as f64);
                // Alignment and timing patterns stay joined in the dot style
                // (drawn as rounded): readers locate the grid by them.
                let style = match self.style {
                    ModuleStyle::Dots if self.locates(mx, my) => ModuleStyle::Rounded,
                    other => other,
                };
                out.push(match style {
                    ModuleStyle::Square => {
                        Shape::Rect(RRect::new(x, y, x + 1.0, y + 1.0, [0.0; 4]))
                    }
                    ModuleStyle::Rounded => {
                        // A corner is rounded only where neither neighbour
                        // touching it is dark, so runs of modules join smoothly.
                        let (ix, iy) = (mx as isize, my as isize);
                        let light = |dx: isize, dy: isize| {
                            !self.is_dark(ix + dx, iy) && !self.is_dark(ix, iy + dy)
                        };
                        let r = |free: bool| if free { ROUND } else { 0.0 };
                        Shape::Rect(RRect::new(
                            x,
                            y,
                            x + 1.0,
                            y + 1.0,
                            [
                                r(light(-1, -1)),
                                r(light(1, -1)),
                                r(light(1, 1)),
                                r(light(-1, 1)),
                            ],
                        ))
                    }
                    ModuleStyle::Dots => Shape::Dot {
                        cx: x + 0.5,
                        cy: y + 0.5,
                        r: DOT,
                    },
                });
            }
        }
        out
    }

    /// The text's font pixel side and top-left corner, in units, given how
    /// many image pixels a unit is (`px_per_unit`, 0 for vector output):
    /// raster text snaps to whole pixels.
    fn text_placement(&self, px_per_unit: usize) -> Option<(f64, f64, f64)> {
        let f = self.frame.as_ref()?;
        if f.text.is_empty() {
            return None;
        }
        let edge = FRAME_PAD + FRAME_BORDER;
        // Some room either side of the longest line.
        let area_w = (self.total_w - 2 * edge) as f64 * 0.88;
        let area_top = (2 * self.sym + self.width - edge) as f64;
        let area_h = (self.total_h - FRAME_PAD - FRAME_BORDER) as f64 - area_top;
        let cols = qr_font::text_width(&f.text) as f64;
        let mut unit = (area_h * 0.62 / qr_font::GLYPH_H as f64).min(area_w / cols);
        if px_per_unit > 0 {
            let px = (unit * px_per_unit as f64).floor();
            if px < 1.0 {
                return None;
            }
            unit = px / px_per_unit as f64;
        }
        let x = (self.total_w as f64 - cols * unit) / 2.0;
        let y = area_top + (area_h - qr_font::GLYPH_H as f64 * unit) / 2.0;
        Some((unit, x, y))
    }
}

#[derive(Clone, Copy)]
struct RRect {
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
    /// Corner radii: top-left, top-right, bottom-right, bottom-left.
    r: [f64; 4],
}

impl RRect {
    fn new(x0: f64, y0: f64, x1: f64, y1: f64, r: [f64; 4]) -> Self {
        RRect { x0, y0, x1, y1, r }
    }

    /// Signed distance from (px, py) to the edge (negative inside).
    fn distance(&self, px: f64, py: f64) -> f64 {
        let (cx, cy) = ((self.x0 + self.x1) / 2.0, (self.y0 + self.y1) / 2.0);
        let (hx, hy) = ((self.x1 - self.x0) / 2.0, (self.y1 - self.y0) / 2.0);
        let (dx, dy) = (px - cx, py - cy);
        let r = match (dx < 0.0, dy < 0.0) {
            (true, true) => self.r[0],
            (false, true) => self.r[1],
            (false, false) => self.r[2],
            (true, false) => self.r[3],
        };
        let qx = dx.abs() - (hx - r);
        let qy = dy.abs() - (hy - r);
        qx.max(0.0).hypot(qy.max(0.0)) + qx.max(qy).min(0.0) - r
    }

    fn scaled(&self, s: f64, o: f64) -> RRect {
        RRect {
            x0: o + self.x0 * s,
            y0: o + self.y0 * s,
            x1: o + self.x1 * s,
            y1: o + self.y1 * s,
            r: self.r.map(|r| r * s),
        }
    }

    fn svg_path(&self, d: &mut String) {
        let [tl, tr, br, bl] = self.r;
        let (x0, y0, x1, y1) = (self.x0, self.y0, self.x1, self.y1);
        let _ = write!(d, "M{} {}H{}", n(x0 + tl), n(y0), n(x1 - tr));
        arc(d, tr, x1, y0 + tr);
        let _ = write!(d, "V{}", n(y1 - br));
        arc(d, br, x1 - br, y1);
        let _ = write!(d, "H{}", n(x0 + bl));
        arc(d, bl, x0, y1 - bl);
        let _ = write!(d, "V{}", n(y0 + tl));
        arc(d, tl, x0 + tl, y0);
        d.push('Z');
    }
}

fn arc(d: &mut String, r: f64, x: f64, y: f64) {
    if r > 0.0 {
        let _ = write!(d, "A{} {} 0 0 1 {} {}", n(r), n(r), n(x), n(y));
    }
}

/// A number for SVG: at most three decimals, no trailing zeros.
fn n(v: f64) -> String {
    let s = format!("{:.3}", v);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

enum Shape {
    Rect(RRect),
    /// `outer` minus `inner`.
    Ring {
        outer: RRect,
        inner: RRect,
    },
    Dot {
        cx: f64,
        cy: f64,
        r: f64,
    },
}

/// Renders a styled image, checked by the QR reader.
pub fn render(
    content: &str,
    options: &QrOptions,
    format: Format,
    brand: &Brand,
) -> Result<Vec<u8>, RenderError> {
    let geometry = Geometry::new(content, options, brand, true)?;
    match format {
        Format::Png => {
            let size = options.size as usize;
            let raster = raster(&geometry, options, brand.logo, size)?;
            if !reads(&raster, content) {
                return Err(RenderError::Unreadable(diagnose(content, options, brand)));
            }
            Ok(encode_png(&raster)?)
        }
        Format::Svg => {
            check(content, options, brand)?;
            Ok(svg(&geometry, options, brand.logo))
        }
        Format::Pdf => {
            check(content, options, brand)?;
            Ok(pdf(&geometry, options, brand.logo))
        }
    }
}

/// The plain look as a PDF (always readable: no self-check needed).
pub fn render_plain_pdf(content: &str, options: &QrOptions) -> Result<Vec<u8>, QrOptionError> {
    let geometry = Geometry::new(content, options, &Brand::default(), false)?;
    Ok(pdf(&geometry, options, None))
}

/// The self-check of a vector output (and of a code's style when it is
/// set): the geometry drawn at a moderate size with the logo's square
/// blank, read back.
pub fn check(content: &str, options: &QrOptions, brand: &Brand) -> Result<(), RenderError> {
    let geometry = Geometry::new(content, options, brand, true)?;
    let size = geometry.total_w * CHECK_PX_PER_UNIT;
    let raster = raster(&geometry, options, None, size)?;
    if reads(&raster, content) {
        Ok(())
    } else {
        Err(RenderError::Unreadable(diagnose(content, options, brand)))
    }
}

/// Why a style does not read: redraws without one choice at a time.
fn diagnose(content: &str, options: &QrOptions, brand: &Brand) -> String {
    let reads_with = |options: &QrOptions, with_logo: bool| {
        Geometry::new(content, options, brand, with_logo)
            .and_then(|g| raster(&g, options, None, g.total_w * CHECK_PX_PER_UNIT))
            .is_ok_and(|r| reads(&r, content))
    };
    if brand.logo.is_some() && reads_with(options, false) {
        return format!(
            "the QR code does not read with the logo: the logo covers too much of the code \
             (logo_size {}% of its width); use a smaller logo_size",
            options.logo_size
        );
    }
    if options.style != ModuleStyle::Square {
        let square = QrOptions {
            style: ModuleStyle::Square,
            ..*options
        };
        if reads_with(&square, true) {
            return format!(
                "the QR code does not read in the {} module style at this size; \
                 use a larger size or the square style",
                options.style.name()
            );
        }
    }
    if options.frame {
        let unframed = QrOptions {
            frame: false,
            ..*options
        };
        if reads_with(&unframed, true) {
            return "the QR code does not read inside the frame; use a larger margin".into();
        }
    }
    format!(
        "the QR code does not read at this size and style (fg {}, bg {}); use a larger size, \
         more contrast between fg and bg, or drop the logo",
        options.fg.hex(),
        options.bg.hex()
    )
}

/// An 8-bit RGB image.
struct Raster {
    w: usize,
    h: usize,
    rgb: Vec<u8>,
}

fn raster(
    g: &Geometry,
    options: &QrOptions,
    logo: Option<&Logo>,
    size: usize,
) -> Result<Raster, QrOptionError> {
    let scale = size / g.total_w;
    if scale == 0 {
        return Err(QrOptionError::new(
            "size",
            format!(
                "too small for this code and style: at least {} px needed",
                g.total_w
            ),
        ));
    }
    let leftover = size - g.total_w * scale;
    let off = (leftover / 2) as f64;
    let (w, h) = (size, g.total_h * scale + leftover);
    let s = scale as f64;
    // Coverage of fg per pixel, 0–255.
    let mut mask = vec![0u8; w * h];
    for shape in g.shapes() {
        match shape {
            Shape::Rect(r) if r.r == [0.0; 4] => {
                let r = r.scaled(s, off);
                for y in r.y0 as usize..r.y1 as usize {
                    mask[y * w + r.x0 as usize..y * w + r.x1 as usize].fill(255);
                }
            }
            Shape::Rect(r) => {
                let r = r.scaled(s, off);
                paint(&mut mask, w, h, [r.x0, r.y0, r.x1, r.y1], |x, y| {
                    cover(r.distance(x, y))
                });
            }
            Shape::Ring { outer, inner } => {
                let (o, i) = (outer.scaled(s, off), inner.scaled(s, off));
                paint(&mut mask, w, h, [o.x0, o.y0, o.x1, o.y1], |x, y| {
                    cover(o.distance(x, y)).min(1.0 - cover(i.distance(x, y)))
                });
            }
            Shape::Dot { cx, cy, r } => {
                let (cx, cy, r) = (off + cx * s, off + cy * s, r * s);
                paint(&mut mask, w, h, [cx - r, cy - r, cx + r, cy + r], |x, y| {
                    cover((x - cx).hypot(y - cy) - r)
                });
            }
        }
    }
    // The call to action, in bg on the frame's band, on whole pixels.
    if let Some((unit, tx, ty)) = g.text_placement(scale) {
        let frame = g.frame.as_ref().map_or("", |f| f.text.as_str());
        let px = (unit * s).round() as usize;
        let (x0, y0) = (
            (off + tx * s).round() as usize,
            (off + ty * s).round() as usize,
        );
        for (fx, fy, len) in qr_font::runs(frame) {
            for y in y0 + fy * px..y0 + (fy + 1) * px {
                let start = y * w + x0 + fx * px;
                mask[start..start + len * px].fill(0);
            }
        }
    } else if g.frame.as_ref().is_some_and(|f| !f.text.is_empty()) {
        return Err(QrOptionError::new(
            "size",
            "too small for the frame's text: use a larger size or a shorter text",
        ));
    }
    let (fg, bg) = (options.fg, options.bg);
    let mut rgb = Vec::with_capacity(w * h * 3);
    for &m in &mask {
        let m = u32::from(m);
        let mix = |f: u8, b: u8| ((u32::from(f) * m + u32::from(b) * (255 - m) + 127) / 255) as u8;
        rgb.extend_from_slice(&[mix(fg.0, bg.0), mix(fg.1, bg.1), mix(fg.2, bg.2)]);
    }
    if let (Some(logo), Some([lx, ly, lw, lh])) = (logo, g.logo_rect) {
        let (x0, y0) = (
            (off + lx * s).round() as usize,
            (off + ly * s).round() as usize,
        );
        let (pw, ph) = ((lw * s).round() as usize, (lh * s).round() as usize);
        let pixels = logo.rasterize(pw as u32, ph as u32);
        for y in 0..ph.min(h.saturating_sub(y0)) {
            for x in 0..pw.min(w.saturating_sub(x0)) {
                let src = &pixels[(y * pw + x) * 4..][..4];
                let a = u32::from(src[3]);
                let dst = &mut rgb[((y0 + y) * w + x0 + x) * 3..][..3];
                for c in 0..3 {
                    let v = u32::from(src[c]) + (u32::from(dst[c]) * (255 - a) + 127) / 255;
                    dst[c] = v.min(255) as u8;
                }
            }
        }
    }
    Ok(Raster { w, h, rgb })
}

/// Coverage of a pixel whose centre is `d` pixels outside an edge.
fn cover(d: f64) -> f64 {
    (0.5 - d).clamp(0.0, 1.0)
}

/// Adds `coverage` (0–1 per pixel centre) over the pixels of `bounds`.
fn paint(
    mask: &mut [u8],
    w: usize,
    h: usize,
    bounds: [f64; 4],
    coverage: impl Fn(f64, f64) -> f64,
) {
    let clampx = |v: f64| (v.max(0.0) as usize).min(w);
    let clampy = |v: f64| (v.max(0.0) as usize).min(h);
    let (x0, x1) = (clampx(bounds[0].floor()), clampx(bounds[2].ceil()));
    let (y0, y1) = (clampy(bounds[1].floor()), clampy(bounds[3].ceil()));
    for y in y0..y1 {
        for x in x0..x1 {
            let c = coverage(x as f64 + 0.5, y as f64 + 0.5);
            if c > 0.0 {
                let v = (c * 255.0).round() as u8;
                let m = &mut mask[y * w + x];
                *m = (*m).max(v);
            }
        }
    }
}

/// Whether the reader finds exactly one code reading `expected`.
fn reads(r: &Raster, expected: &str) -> bool {
    let luma = |i: usize| {
        let p = &r.rgb[i * 3..i * 3 + 3];
        ((299 * u32::from(p[0]) + 587 * u32::from(p[1]) + 114 * u32::from(p[2])) / 1000) as u8
    };
    reads_luma(r.w, r.h, luma, expected)
}

/// [`reads`] over any image given as luma per pixel index; shared with the
/// plain renderer's self-check of coloured codes.
pub fn reads_luma(w: usize, h: usize, luma: impl Fn(usize) -> u8, expected: &str) -> bool {
    let f = w.max(h).div_ceil(CHECK_MAX_SIDE).max(1);
    let (dw, dh) = (w / f, h / f);
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(dw, dh, |x, y| {
        let mut sum = 0u32;
        for yy in y * f..(y + 1) * f {
            for xx in x * f..(x + 1) * f {
                sum += u32::from(luma(yy * w + xx));
            }
        }
        (sum / (f * f) as u32) as u8
    });
    image
        .detect_grids()
        .iter()
        .any(|grid| grid.decode().is_ok_and(|(_, text)| text == expected))
}

fn encode_png(r: &Raster) -> Result<Vec<u8>, QrOptionError> {
    let png_error =
        |e: png::EncodingError| QrOptionError::new("format", format!("PNG encoding failed: {e}"));
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, r.w as u32, r.h as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Default);
    encoder.set_filter(png::FilterType::Sub);
    let mut writer = encoder.write_header().map_err(png_error)?;
    writer.write_image_data(&r.rgb).map_err(png_error)?;
    writer.finish().map_err(png_error)?;
    Ok(out)
}

fn svg(g: &Geometry, options: &QrOptions, logo: Option<&Logo>) -> Vec<u8> {
    let (tw, th) = (g.total_w, g.total_h);
    let height = (options.size as usize * th).div_ceil(tw);
    let mut out = String::with_capacity(4096 + g.dark.len() * 24);
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" viewBox="0 0 {tw} {th}" width="{size}" height="{height}"><rect width="{tw}" height="{th}" fill="#{bg}"/>"##,
        size = options.size,
        bg = options.bg.hex(),
    );
    let mut d = String::new();
    let mut squares = String::new();
    for shape in g.shapes() {
        match shape {
            // Square modules as runs of one path each, as the plain SVG does.
            Shape::Rect(r) if r.r == [0.0; 4] => {
                let _ = write!(squares, "M{} {}h1v1h-1z", n(r.x0), n(r.y0));
            }
            Shape::Rect(r) => r.svg_path(&mut d),
            Shape::Ring { outer, inner } => {
                outer.svg_path(&mut d);
                inner.svg_path(&mut d);
            }
            Shape::Dot { cx, cy, r } => {
                let _ = write!(
                    d,
                    "M{} {}a{r} {r} 0 1 0 {d2} 0a{r} {r} 0 1 0 -{d2} 0z",
                    n(cx - r),
                    n(cy),
                    r = n(r),
                    d2 = n(2.0 * r)
                );
            }
        }
    }
    let fg = options.fg.hex();
    if !d.is_empty() {
        let _ = write!(out, r##"<path fill="#{fg}" fill-rule="evenodd" d="{d}"/>"##);
    }
    if !squares.is_empty() {
        let _ = write!(
            out,
            r##"<path fill="#{fg}" shape-rendering="crispEdges" d="{squares}"/>"##
        );
    }
    if let Some((unit, tx, ty)) = g.text_placement(0) {
        let text = g.frame.as_ref().map_or("", |f| f.text.as_str());
        let mut t = String::new();
        for (fx, fy, len) in qr_font::runs(text) {
            let _ = write!(
                t,
                "M{} {}h{}v{}h-{}z",
                n(tx + fx as f64 * unit),
                n(ty + fy as f64 * unit),
                n(len as f64 * unit),
                n(unit),
                n(len as f64 * unit)
            );
        }
        let _ = write!(
            out,
            r##"<path fill="#{bg}" shape-rendering="crispEdges" d="{t}"/>"##,
            bg = options.bg.hex()
        );
    }
    if let (Some(logo), Some([x, y, w, h])) = (logo, g.logo_rect) {
        let _ = write!(
            out,
            r#"<image x="{}" y="{}" width="{}" height="{}" preserveAspectRatio="xMidYMid meet" xlink:href="{}"/>"#,
            n(x),
            n(y),
            n(w),
            n(h),
            logo.data_uri()
        );
    }
    out.push_str("</svg>");
    out.into_bytes()
}

/// Resolution the PDF's `size` is read at: `size` pixels at 300 dpi, so
/// `size=1181` is 10 cm wide. A logo is embedded as an image at this resolution.
pub const PDF_DPI: f64 = 300.0;

/// A one-page vector PDF of the geometry: every shape a path (Bézier arcs),
/// the text as rectangles, the logo an image XObject (RGB with an alpha
/// soft mask, both FlateDecode). No fonts, so nothing to substitute at print.
fn pdf(g: &Geometry, options: &QrOptions, logo: Option<&Logo>) -> Vec<u8> {
    let width_pt = f64::from(options.size) * 72.0 / PDF_DPI;
    let unit = width_pt / g.total_w as f64;
    let height_pt = unit * g.total_h as f64;
    let colour = |c: crate::qr_render::Rgb| {
        format!(
            "{} {} {}",
            n(f64::from(c.0) / 255.0),
            n(f64::from(c.1) / 255.0),
            n(f64::from(c.2) / 255.0)
        )
    };
    let mut ops = String::new();
    // Units, y down, from the top-left corner (as the SVG and PNG).
    let _ = writeln!(ops, "{} 0 0 {} 0 {} cm", n(unit), n(-unit), n(height_pt));
    let _ = writeln!(
        ops,
        "{} rg 0 0 {} {} re f",
        colour(options.bg),
        g.total_w,
        g.total_h
    );
    let _ = writeln!(ops, "{} rg", colour(options.fg));
    for shape in g.shapes() {
        match shape {
            Shape::Rect(r) if r.r == [0.0; 4] => {
                let _ = writeln!(ops, "{} {} 1 1 re", n(r.x0), n(r.y0));
            }
            Shape::Rect(r) => pdf_rrect(&mut ops, &r),
            Shape::Ring { outer, inner } => {
                pdf_rrect(&mut ops, &outer);
                pdf_rrect(&mut ops, &inner);
            }
            Shape::Dot { cx, cy, r } => pdf_rrect(
                &mut ops,
                &RRect::new(cx - r, cy - r, cx + r, cy + r, [r; 4]),
            ),
        }
    }
    ops.push_str("f*\n");
    if let Some((u, tx, ty)) = g.text_placement(0) {
        let text = g.frame.as_ref().map_or("", |f| f.text.as_str());
        let _ = writeln!(ops, "{} rg", colour(options.bg));
        for (fx, fy, len) in qr_font::runs(text) {
            let _ = writeln!(
                ops,
                "{} {} {} {} re",
                n(tx + fx as f64 * u),
                n(ty + fy as f64 * u),
                n(len as f64 * u),
                n(u)
            );
        }
        ops.push_str("f\n");
    }
    let mut image = None;
    if let (Some(logo), Some([x, y, w, h])) = (logo, g.logo_rect) {
        let px = |v: f64| ((v * unit / 72.0 * PDF_DPI).ceil() as u32).clamp(16, 1024);
        let (pw, ph) = (px(w), px(h));
        let rgba = logo.rasterize(pw, ph);
        let mut rgb = Vec::with_capacity((pw * ph * 3) as usize);
        let mut alpha = Vec::with_capacity((pw * ph) as usize);
        for p in rgba.chunks_exact(4) {
            let a = u32::from(p[3]);
            let straight = |c: u8| {
                (u32::from(c) * 255 + a / 2)
                    .checked_div(a)
                    .map_or(0, |v| v.min(255) as u8)
            };
            rgb.extend_from_slice(&[straight(p[0]), straight(p[1]), straight(p[2])]);
            alpha.push(p[3]);
        }
        // The image's own space has y up: flip it back inside its box.
        let _ = writeln!(
            ops,
            "q {} 0 0 {} {} {} cm /Logo Do Q",
            n(w),
            n(-h),
            n(x),
            n(y + h)
        );
        image = Some((pw, ph, rgb, alpha));
    }

    let mut out: Vec<u8> = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::new();
    let mut object = |out: &mut Vec<u8>, dict: String, stream: Option<&[u8]>| {
        offsets.push(out.len());
        let _ = write!(ByteWriter(out), "{} 0 obj\n{dict}", offsets.len());
        if let Some(data) = stream {
            out.extend_from_slice(b"\nstream\n");
            out.extend_from_slice(data);
            out.extend_from_slice(b"\nendstream");
        }
        out.extend_from_slice(b"\nendobj\n");
    };
    let xobjects = if image.is_some() {
        " /Resources << /XObject << /Logo 5 0 R >> >>"
    } else {
        " /Resources << >>"
    };
    object(&mut out, "<< /Type /Catalog /Pages 2 0 R >>".into(), None);
    object(
        &mut out,
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".into(),
        None,
    );
    object(
        &mut out,
        format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {} {}]{xobjects} /Contents 4 0 R >>",
            n(width_pt),
            n(height_pt)
        ),
        None,
    );
    let contents = deflate(ops.as_bytes());
    object(
        &mut out,
        format!("<< /Length {} /Filter /FlateDecode >>", contents.len()),
        Some(&contents),
    );
    if let Some((pw, ph, rgb, alpha)) = image {
        let (rgb, alpha) = (deflate(&rgb), deflate(&alpha));
        object(
            &mut out,
            format!(
                "<< /Type /XObject /Subtype /Image /Width {pw} /Height {ph} /ColorSpace /DeviceRGB \
                 /BitsPerComponent 8 /Filter /FlateDecode /SMask 6 0 R /Length {} >>",
                rgb.len()
            ),
            Some(&rgb),
        );
        object(
            &mut out,
            format!(
                "<< /Type /XObject /Subtype /Image /Width {pw} /Height {ph} /ColorSpace /DeviceGray \
                 /BitsPerComponent 8 /Filter /FlateDecode /Length {} >>",
                alpha.len()
            ),
            Some(&alpha),
        );
    }
    let xref = out.len();
    let _ = write!(
        ByteWriter(&mut out),
        "xref\n0 {}\n0000000000 65535 f \n",
        offsets.len() + 1
    );
    for offset in &offsets {
        let _ = writeln!(ByteWriter(&mut out), "{offset:010} 00000 n ");
    }
    let _ = write!(
        ByteWriter(&mut out),
        "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        offsets.len() + 1
    );
    out
}

/// `fmt::Write` into a byte buffer.
struct ByteWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for ByteWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

fn deflate(data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let _ = z.write_all(data);
    z.finish().unwrap_or_default()
}

/// A rounded rectangle as a closed PDF path (quarter circles as cubic Béziers).
fn pdf_rrect(ops: &mut String, r: &RRect) {
    const K: f64 = 0.552_284_75;
    let [tl, tr, br, bl] = r.r;
    let (x0, y0, x1, y1) = (r.x0, r.y0, r.x1, r.y1);
    let _ = write!(
        ops,
        "{} {} m {} {} l ",
        n(x0 + tl),
        n(y0),
        n(x1 - tr),
        n(y0)
    );
    if tr > 0.0 {
        let _ = write!(
            ops,
            "{} {} {} {} {} {} c ",
            n(x1 - tr + K * tr),
            n(y0),
            n(x1),
            n(y0 + tr - K * tr),
            n(x1),
            n(y0 + tr)
        );
    }
    let _ = write!(ops, "{} {} l ", n(x1), n(y1 - br));
    if br > 0.0 {
        let _ = write!(
            ops,
            "{} {} {} {} {} {} c ",
            n(x1),
            n(y1 - br + K * br),
            n(x1 - br + K * br),
            n(y1),
            n(x1 - br),
            n(y1)
        );
    }
    let _ = write!(ops, "{} {} l ", n(x0 + bl), n(y1));
    if bl > 0.0 {
        let _ = write!(
            ops,
            "{} {} {} {} {} {} c ",
            n(x0 + bl - K * bl),
            n(y1),
            n(x0),
            n(y1 - bl + K * bl),
            n(x0),
            n(y1 - bl)
        );
    }
    let _ = write!(ops, "{} {} l ", n(x0), n(y0 + tl));
    if tl > 0.0 {
        let _ = write!(
            ops,
            "{} {} {} {} {} {} c ",
            n(x0),
            n(y0 + tl - K * tl),
            n(x0 + tl - K * tl),
            n(y0),
            n(x0 + tl),
            n(y0)
        );
    }
    ops.push_str("h\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qr_logo::LogoKind;
    use bytes::Bytes;
    use codelink_testkit::qr::{decode_png, decode_qr};

    const URL: &str = "https://go.example.com/alice10/bio?qr=1";

    fn logo_svg() -> std::sync::Arc<Logo> {
        Logo::parse(
            LogoKind::Svg,
            Bytes::from_static(
                br##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100"><rect width="100" height="100" rx="20" fill="#e91e63"/><circle cx="50" cy="50" r="28" fill="#fff"/></svg>"##,
            ),
        )
        .unwrap()
    }

    fn options(style: ModuleStyle, frame: bool, size: u32) -> QrOptions {
        QrOptions {
            size,
            style,
            frame,
            ..QrOptions::default()
        }
    }

    #[test]
    fn every_style_reads_back_in_png() {
        let logo = logo_svg();
        for style in [ModuleStyle::Square, ModuleStyle::Rounded, ModuleStyle::Dots] {
            for frame in [false, true] {
                for with_logo in [false, true] {
                    let mut o = options(style, frame, 512);
                    if with_logo {
                        o.ecc = crate::qr_render::Ecc::H;
                    }
                    let brand = Brand {
                        logo: with_logo.then_some(&*logo),
                        frame_text: "Use code ALICE10",
                    };
                    let png = render(URL, &o, Format::Png, &brand)
                        .unwrap_or_else(|e| panic!("{style:?} {frame} {with_logo}: {e}"));
                    let (w, h, luma) = decode_png(&png);
                    assert_eq!(w, 512);
                    assert!(h >= 512);
                    assert_eq!(decode_qr(w, h, &luma), URL);
                }
            }
        }
    }

    #[test]
    fn frame_text_is_drawn() {
        let o = options(ModuleStyle::Square, true, 400);
        let with = render(
            URL,
            &o,
            Format::Png,
            &Brand {
                logo: None,
                frame_text: "HELLO",
            },
        )
        .unwrap();
        let without = render(
            URL,
            &o,
            Format::Png,
            &Brand {
                logo: None,
                frame_text: "",
            },
        )
        .unwrap();
        let (w, h, a) = decode_png(&with);
        let (_, _, b) = decode_png(&without);
        // The text is light pixels in the band under the code.
        let differ = a.iter().zip(&b).filter(|(x, y)| x != y).count();
        assert!(differ > 100, "{differ}");
        assert!(h > w);
    }

    #[test]
    fn huge_logo_is_unreadable_with_a_reason() {
        let logo = logo_svg();
        let o = QrOptions {
            ecc: crate::qr_render::Ecc::H,
            logo_size: 60,
            ..QrOptions::default()
        };
        let brand = Brand {
            logo: Some(&logo),
            frame_text: "",
        };
        let e = render(URL, &o, Format::Png, &brand).unwrap_err();
        assert!(matches!(e, RenderError::Unreadable(_)), "{e}");
        assert!(e.to_string().contains("logo covers too much"), "{e}");
        let e = render(URL, &o, Format::Svg, &brand).unwrap_err();
        assert!(e.to_string().contains("logo covers too much"), "{e}");
    }

    #[test]
    fn svg_has_paths_text_and_logo() {
        let logo = logo_svg();
        let o = QrOptions {
            ecc: crate::qr_render::Ecc::H,
            style: ModuleStyle::Dots,
            frame: true,
            ..QrOptions::default()
        };
        let brand = Brand {
            logo: Some(&logo),
            frame_text: "Use code ALICE10",
        };
        let svg = String::from_utf8(render(URL, &o, Format::Svg, &brand).unwrap()).unwrap();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("xlink:href=\"data:image/svg+xml;base64,"));
        assert!(svg.contains("fill-rule=\"evenodd\""));
        // The text is paths in bg, not a <text> needing a font.
        assert!(!svg.contains("<text"));
        assert!(svg.contains(r##"<path fill="#ffffff" shape-rendering="crispEdges" d="M"##));
    }

    /// Writes samples of every style to $QR_SAMPLES (a directory) for a
    /// person to look at (`cargo test -p gateway --lib dump_samples -- --ignored`).
    #[test]
    #[ignore]
    fn dump_samples() {
        let dir = std::env::var("QR_SAMPLES").unwrap();
        let logo = logo_svg();
        for style in [ModuleStyle::Square, ModuleStyle::Rounded, ModuleStyle::Dots] {
            for frame in [false, true] {
                for with_logo in [false, true] {
                    let mut o = options(style, frame, 512);
                    if with_logo {
                        o.ecc = crate::qr_render::Ecc::H;
                    }
                    let brand = Brand {
                        logo: with_logo.then_some(&*logo),
                        frame_text: "Use code ALICE10",
                    };
                    let g = Geometry::new(URL, &o, &brand, true).unwrap();
                    let r = raster(&g, &o, brand.logo, 512).unwrap();
                    let name = format!("{dir}/{}-{frame}-{with_logo}.png", style.name());
                    std::fs::write(&name, encode_png(&r).unwrap()).unwrap();
                    std::fs::write(
                        format!("{dir}/{}-{frame}-{with_logo}.svg", style.name()),
                        svg(&g, &o, brand.logo),
                    )
                    .unwrap();
                    assert!(reads(&r, URL), "{name}");
                }
            }
        }
    }

    #[test]
    fn pdf_is_well_formed() {
        let logo = logo_svg();
        let o = QrOptions {
            ecc: crate::qr_render::Ecc::H,
            style: ModuleStyle::Rounded,
            frame: true,
            size: 1181,
            ..QrOptions::default()
        };
        let brand = Brand {
            logo: Some(&logo),
            frame_text: "Use code ALICE10",
        };
        let pdf = render(URL, &o, Format::Pdf, &brand).unwrap();
        assert!(pdf.starts_with(b"%PDF-1.4\n"));
        assert!(pdf.ends_with(b"%%EOF\n"));
        let text = String::from_utf8_lossy(&pdf);
        // 1181 px at 300 dpi is 10 cm: 283.44 pt.
        assert!(text.contains("/MediaBox [0 0 283.44 "), "{}", &text[..400]);
        assert!(text.contains("/SMask 6 0 R"));
        // Every xref offset points at its object (offsets are in bytes).
        let rfind = |needle: &[u8]| {
            pdf.windows(needle.len())
                .rposition(|w| w == needle)
                .unwrap()
        };
        let xref = rfind(b"\nxref\n") + 1;
        let tail = std::str::from_utf8(&pdf[xref..]).unwrap();
        let start: usize = tail
            .split("startxref\n")
            .nth(1)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(start, xref);
        for (i, line) in tail.lines().skip(3).take(6).enumerate() {
            let offset: usize = line[..10].parse().unwrap();
            assert!(
                pdf[offset..].starts_with(format!("{} 0 obj", i + 1).as_bytes()),
                "object {}",
                i + 1
            );
        }
        // Without a logo: no image objects.
        let plain = render(URL, &QrOptions::default(), Format::Pdf, &Brand::default()).unwrap();
        assert!(!String::from_utf8_lossy(&plain).contains("/XObject"));
    }

    #[test]
    fn any_logo_size_is_safe() {
        let logo = logo_svg();
        for logo_size in [0u8, 1, 80, 200, 255] {
            let o = QrOptions {
                ecc: crate::qr_render::Ecc::H,
                logo_size,
                size: 200,
                ..QrOptions::default()
            };
            let brand = Brand {
                logo: Some(&logo),
                frame_text: "",
            };
            // Drawn or refused as unreadable, never a panic.
            match render(URL, &o, Format::Png, &brand) {
                Ok(png) => assert_eq!(decode_qr_png(&png), URL),
                Err(e) => assert!(matches!(e, RenderError::Unreadable(_)), "{e}"),
            }
        }
    }

    fn decode_qr_png(png: &[u8]) -> String {
        let (w, h, luma) = decode_png(png);
        decode_qr(w, h, &luma)
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(n(1.0), "1");
        assert_eq!(n(0.45), "0.45");
        assert_eq!(n(2.0 / 3.0), "0.667");
        assert_eq!(n(-0.0001), "0");
    }
}
