//! The creator bio page, `GET /@{owner}`: the creator's enabled codes, each
//! with the code in large type to copy, a button per link and a QR, titled
//! and ordered by the creator's profile ([`codelink_shared::OwnerProfile`]).
//!
//! **Invariant:** like the redirect, this never awaits a backend. The page is
//! built from the in-memory code table and profiles: an index of enabled codes
//! by owner is built once per table generation (the first request after a
//! write pays for it), and each owner's page is rendered once per generation
//! and kept until one of its codes expires.
//!
//! Every link on the page is the normal redirect with [`MARKER`] in its query,
//! so a tap is recorded as a scan with source `bio` (`scan.rs`). The page
//! loads nothing from elsewhere but the creator's avatar; its script (copy
//! buttons) and style are small files served here (`/@/bio.js`,
//! `/@/bio.css`), so a strict CSP holds, and the page works without the script.

use crate::codes::{CompiledCode, Snapshot};
use crate::profiles::ProfileSnapshot;
use crate::request::Request;
use crate::response::{self, Response};
use crate::state::AppState;
use bytes::Bytes;
use codelink_dashboards::esc;
use codelink_shared::OwnerProfile;
use http::{header, HeaderValue, Method, StatusCode};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, Weak};

/// The query parameter of the page's links that makes a scan's source `bio`.
pub const MARKER: &str = "src=bio";

const CSS: &str = include_str!("../assets/bio.css");
const JS: &str = include_str!("../assets/bio.js");
/// Versions in the assets' URLs (they are cached for a year).
const CSS_VERSION: u64 = fnv(CSS.as_bytes());
const JS_VERSION: u64 = fnv(JS.as_bytes());

const fn fnv(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < data.len() {
        h = (h ^ data[i] as u64).wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    h
}

/// One rendered page.
struct Page {
    body: Bytes,
    etag: HeaderValue,
    csp: HeaderValue,
    /// Unix seconds when one of its codes expires (the page is rendered again).
    valid_until: i64,
}

/// The enabled codes by owner of one code-table generation, and the pages
/// rendered from it.
struct Index {
    codes: Weak<Snapshot>,
    profiles: Weak<ProfileSnapshot>,
    by_owner: HashMap<String, Vec<Arc<CompiledCode>>>,
    /// Rendered pages of owners in `by_owner` (so at most one per owner).
    pages: Mutex<HashMap<String, Arc<Page>>>,
}

impl Index {
    fn build(codes: &Arc<Snapshot>, profiles: &Arc<ProfileSnapshot>) -> Self {
        let mut by_owner: HashMap<String, Vec<Arc<CompiledCode>>> = HashMap::new();
        for c in codes.values().filter(|c| c.record.enabled) {
            by_owner
                .entry(c.record.owner.clone())
                .or_default()
                .push(c.clone());
        }
        Self {
            // Weak references keep the snapshots' allocations (not their
            // contents), so their addresses are not reused while compared.
            codes: Arc::downgrade(codes),
            profiles: Arc::downgrade(profiles),
            by_owner,
            pages: Mutex::new(HashMap::new()),
        }
    }

    fn is_of(&self, codes: &Arc<Snapshot>, profiles: &Arc<ProfileSnapshot>) -> bool {
        self.codes.as_ptr() == Arc::as_ptr(codes) && self.profiles.as_ptr() == Arc::as_ptr(profiles)
    }
}

/// The bio pages' cache: the index of the current generation.
#[derive(Default)]
pub struct BioPages {
    current: Mutex<Option<Arc<Index>>>,
}

impl BioPages {
    /// The owner's page at `now`, or `None` when the owner has no code to show.
    fn page(&self, state: &AppState, owner: &str, now: i64) -> Option<Arc<Page>> {
        let codes = state.codes.snapshot();
        let profiles = state.profiles.snapshot();
        let index = {
            let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
            match &*current {
                Some(index) if index.is_of(&codes, &profiles) => index.clone(),
                _ => {
                    let index = Arc::new(Index::build(&codes, &profiles));
                    *current = Some(index.clone());
                    index
                }
            }
        };
        let listed = index.by_owner.get(owner)?;
        if let Some(page) = index
            .pages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(owner)
            .filter(|p| now < p.valid_until)
        {
            return Some(page.clone());
        }
        let page = Arc::new(render(
            owner,
            profiles.get(owner).map(|p| &**p),
            listed,
            now,
        )?);
        index
            .pages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(owner.to_string(), page.clone());
        Some(page)
    }
}

/// `GET`/`HEAD /@{owner}`, and the page's assets `/@/bio.css`, `/@/bio.js`.
pub fn handle(state: &AppState, req: &Request) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return crate::error::ApiError::method_not_allowed("GET, HEAD").into_response();
    }
    let path = req.uri().path();
    let rest = path.strip_prefix("/@").unwrap_or("");
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    match rest {
        "/bio.css" => return asset(req, "text/css; charset=utf-8", CSS),
        "/bio.js" => return asset(req, "text/javascript; charset=utf-8", JS),
        _ => {}
    }
    let owner = rest;
    let valid = codelink_shared::record::validate_owner(owner).is_ok();
    let page = valid
        .then(|| state.bio.page(state, owner, crate::admin::now()))
        .flatten();
    let Some(page) = page else {
        return not_found(req, valid.then_some(owner));
    };
    let mut resp = if crate::qr::if_none_match(req, page.etag.as_bytes()) {
        response::empty(StatusCode::NOT_MODIFIED)
    } else {
        let body = if req.method() == Method::HEAD {
            Bytes::new()
        } else {
            page.body.clone()
        };
        response::with_body(StatusCode::OK, "text/html; charset=utf-8", body)
    };
    let h = resp.headers_mut();
    h.insert(header::ETAG, page.etag.clone());
    // Revalidated on every view (a code changed or expired shows at once);
    // an unchanged page costs a 304.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    page_headers(&mut resp, page.csp.clone());
    resp
}

fn asset(req: &Request, content_type: &'static str, text: &'static str) -> Response {
    let body = if req.method() == Method::HEAD {
        Bytes::new()
    } else {
        Bytes::from_static(text.as_bytes())
    };
    let mut resp = response::with_body(StatusCode::OK, content_type, body);
    let h = resp.headers_mut();
    // The page names them with a version of their content.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

fn page_headers(resp: &mut Response, csp: HeaderValue) {
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, csp);
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // The redirect sees that the tap came from here; other sites see nothing.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

/// A friendly 404: no such creator, or none of their codes is active.
fn not_found(req: &Request, owner: Option<&str>) -> Response {
    let mut body = head("No codes here");
    body.push_str("<main class=\"empty\"><h1>No codes here right now</h1><p>");
    match owner {
        Some(owner) => {
            let _ = write!(
                body,
                "<b>@{}</b> has no active codes at the moment. Check the address, or come back later.",
                esc(owner)
            );
        }
        None => body.push_str("There is no creator page at this address."),
    }
    body.push_str("</p></main></body></html>");
    let body = if req.method() == Method::HEAD {
        String::new()
    } else {
        body
    };
    let mut resp = response::with_body(StatusCode::NOT_FOUND, "text/html; charset=utf-8", body);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    page_headers(&mut resp, HeaderValue::from_static(CSP));
    resp
}

/// The document up to and including `<body>`.
fn head(title: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"light dark\">\
         <title>{}</title><link rel=\"stylesheet\" href=\"/@/bio.css?v={CSS_VERSION:016x}\">\
         <script src=\"/@/bio.js?v={JS_VERSION:016x}\" defer></script></head><body>",
        esc(title)
    )
}

/// The codes to show, in the profile's order first, then by name; `None`
/// when none is active at `now`.
fn ordered<'a>(
    listed: &'a [Arc<CompiledCode>],
    profile: Option<&OwnerProfile>,
    now: i64,
) -> Vec<&'a CompiledCode> {
    let mut codes: Vec<&CompiledCode> = listed
        .iter()
        .map(|c| &**c)
        .filter(|c| c.gone(now).is_none())
        .collect();
    let order = profile.map_or(&[][..], |p| p.order.as_slice());
    let rank = |c: &CompiledCode| {
        order
            .iter()
            .position(|n| *n == c.record.code)
            .unwrap_or(usize::MAX)
    };
    codes.sort_by(|a, b| (rank(a), &a.record.code).cmp(&(rank(b), &b.record.code)));
    codes
}

fn render(
    owner: &str,
    profile: Option<&OwnerProfile>,
    listed: &[Arc<CompiledCode>],
    now: i64,
) -> Option<Page> {
    let codes = ordered(listed, profile, now);
    if codes.is_empty() {
        return None;
    }
    let valid_until = codes
        .iter()
        .filter_map(|c| c.record.expires_at)
        .min()
        .unwrap_or(i64::MAX);
    let title = profile
        .and_then(|p| p.title.as_deref())
        .unwrap_or(owner)
        .to_string();
    let avatar = profile
        .and_then(|p| p.avatar_url.as_deref())
        .and_then(|u| url::Url::parse(u).ok());
    let mut html = head(&title);
    html.push_str("<main><header>");
    if let Some(url) = &avatar {
        let _ = write!(
            html,
            "<img class=\"avatar\" src=\"{}\" alt=\"\" width=\"88\" height=\"88\" referrerpolicy=\"no-referrer\">",
            esc(url.as_str())
        );
    } else {
        // No avatar: the title's first letter in its place.
        let initial: String = title
            .chars()
            .next()
            .into_iter()
            .flat_map(char::to_uppercase)
            .collect();
        let _ = write!(
            html,
            "<div class=\"avatar initial\" aria-hidden=\"true\">{}</div>",
            esc(&initial)
        );
    }
    let _ = write!(
        html,
        "<h1>{}</h1><p class=\"handle\">@{}</p></header>",
        esc(&title),
        esc(owner)
    );
    html.push_str("<div class=\"cards\">");
    for c in &codes {
        let code = &c.record.code;
        let shown = code.to_ascii_uppercase();
        let host = url::Url::parse(&c.record.destination)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        let host = host.strip_prefix("www.").unwrap_or(&host);
        let _ = write!(
            html,
            "<section class=\"card\" id=\"{code}\">\
             <p class=\"label\">Use code</p>\
             <div class=\"code\"><span class=\"text\">{shown}</span>\
             <button type=\"button\" class=\"copy\" data-copy=\"{shown}\" aria-live=\"polite\" hidden>Copy</button></div>\
             <a class=\"go\" href=\"/{code}?{MARKER}\">Open {host}</a>",
            host = esc(host),
        );
        if !c.record.channels.is_empty() {
            html.push_str("<p class=\"label more\">More links</p><ul class=\"links\">");
            for channel in c.record.channels.keys() {
                let _ = write!(
                    html,
                    "<li><a href=\"/{code}/{channel}?{MARKER}\">{channel}</a></li>"
                );
            }
            html.push_str("</ul>");
        }
        let _ = write!(
            html,
            "<details class=\"qr\"><summary>QR code</summary>\
             <img src=\"/qr/{code}.svg\" alt=\"QR code of {shown}\" width=\"200\" height=\"200\" loading=\"lazy\">\
             </details></section>"
        );
    }
    html.push_str("</div></main></body></html>");
    let etag = HeaderValue::try_from(format!("\"{:016x}\"", fnv(html.as_bytes()))).ok()?;
    let csp = match &avatar {
        // The one other origin the page loads from: the creator's avatar.
        Some(url) => HeaderValue::try_from(CSP.replace(
            "img-src 'self'",
            &format!("img-src 'self' {}", url.origin().ascii_serialization()),
        ))
        .ok()?,
        None => HeaderValue::from_static(CSP),
    };
    Some(Page {
        body: Bytes::from(html),
        etag,
        csp,
        valid_until,
    })
}
