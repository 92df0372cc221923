//! The web console under `/ui/`: a creator portal (my codes, one code) and
//! analyst views (all codes, the funnel, CSV exports, code and key forms).
//!
//! Pages are HTML rendered here, on the server, from the analytics front door
//! and the [`Console`] the gateway implements; charts are inline SVG. Numbers
//! read without JavaScript; `assets/app.js` only enhances (live refresh, copy
//! buttons, the QR preview, the time zone default). Both assets are compiled
//! into the binary.
//!
//! Security: a key typed once becomes a signed session cookie
//! ([`session`]); every form that changes something carries a CSRF token and
//! is refused from another origin; sign-in attempts are rate-limited per
//! address; pages are `no-store` and framed by nobody, under a strict
//! Content-Security-Policy (no inline script or style).

mod chart;
mod console;
mod crypto;
mod form;
mod html;
mod pages;
mod range;
pub mod session;

pub use console::{Console, ConsoleError};
/// HMAC-SHA256 and a constant-time comparison, also used by the gateway to
/// verify payment providers' webhook signatures.
pub use crypto::{hmac, same};
/// HTML escaping for text and quoted attributes, also used by the gateway's
/// own pages (bio page, follower pages).
pub use html::esc;

use bytes::Bytes;
use codelink_shared::Principal;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::{header, HeaderValue, Method, StatusCode};
use http_body_util::Full;
use session::{Session, Sessions};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Instant;

pub type Response = http::Response<Full<Bytes>>;
/// A request whose body the server has already read (within its limits).
pub type Request = http::Request<Bytes>;

/// How the console is set up.
#[derive(Debug, Clone)]
pub struct UiConfig {
    /// The server secret; the session signing key is derived from it.
    pub secret: Vec<u8>,
    pub session_ttl_secs: u64,
    /// Mark cookies `Secure` (the public URL is https).
    pub secure_cookies: bool,
    /// Sign-in attempts per minute and address (a burst of as many).
    pub sign_ins_per_minute: u32,
    /// Pages (and live updates) per second and address, with a burst of
    /// four times as many: past it, 429.
    pub pages_per_second: u32,
}

pub struct Dashboards {
    sessions: Sessions,
    sign_ins: DefaultKeyedRateLimiter<IpAddr>,
    /// Pages per address: a console user cannot take every analytics query
    /// slot (which the API shares).
    pages: DefaultKeyedRateLimiter<IpAddr>,
}

/// What a handler of a signed-in page gets.
pub(crate) struct Ctx<'a, C> {
    pub console: &'a C,
    pub session: Session,
    pub csrf: String,
    pub query: Vec<(String, String)>,
    pub now_ms: u64,
    /// The zone the browser said it is in (`cl_tz`, set by app.js).
    pub tz: Option<String>,
}

impl<C: Console> Ctx<'_, C> {
    pub fn who(&self) -> &Principal {
        &self.session.who
    }

    pub fn is_admin(&self) -> bool {
        *self.who() == Principal::Admin
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn frame<'b>(&'b self, title: &'b str, nav: &'b str) -> html::Frame<'b> {
        html::Frame {
            title,
            who: Some(&self.session.who),
            csrf: &self.csrf,
            nav,
        }
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Dashboards {
    pub fn new(config: UiConfig) -> Self {
        let per_minute =
            NonZeroU32::new(config.sign_ins_per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        Self {
            sessions: Sessions::new(
                &config.secret,
                config.session_ttl_secs,
                config.secure_cookies,
            ),
            sign_ins: RateLimiter::keyed(Quota::per_minute(per_minute)),
            // A burst of four seconds' worth: a few tabs opened at once.
            pages: RateLimiter::keyed(
                Quota::per_second(
                    NonZeroU32::new(config.pages_per_second.max(1)).unwrap_or(NonZeroU32::MIN),
                )
                .allow_burst(
                    NonZeroU32::new(config.pages_per_second.max(1).saturating_mul(4))
                        .unwrap_or(NonZeroU32::MIN),
                ),
            ),
        }
    }

    /// Forgets the rate-limit state of addresses that went quiet (call it
    /// every minute or so).
    pub fn housekeeping(&self) {
        for limiter in [&self.sign_ins, &self.pages] {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// Answers one request under `/ui`. `client` is the caller's address (for
    /// the sign-in rate limit).
    pub async fn handle<C: Console>(&self, console: &C, req: Request, client: IpAddr) -> Response {
        let started = Instant::now();
        let mut resp = self.route(console, req, client).await;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                 connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        );
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
        if !h.contains_key(header::CACHE_CONTROL) {
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        if let Ok(v) = HeaderValue::try_from(format!("app;dur={ms:.2}")) {
            h.insert("server-timing", v);
        }
        resp
    }

    async fn route<C: Console>(&self, console: &C, req: Request, client: IpAddr) -> Response {
        let path = req.uri().path().trim_end_matches('/').to_string();
        let rest = path.strip_prefix("/ui").unwrap_or("");
        let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        let method = req.method().clone();
        let cookies = req
            .headers()
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join("; ");
        match (segments.as_slice(), &method) {
            (["assets", name], &Method::GET | &Method::HEAD) => return pages::assets::serve(name),
            (["sign-in"], &Method::GET) => {
                return pages::sign_in::form(self, console, &cookies, now_ms()).await
            }
            (["sign-in"], &Method::POST) => {
                return pages::sign_in::submit(self, console, &req, &cookies, client).await
            }
            (["sign-out"], m) if m != Method::POST => {
                let mut resp = pages::error_plain(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "Use the Sign out button",
                    "Signing out is a form (POST): use the button at the top of any page.",
                );
                resp.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("POST"));
                return resp;
            }
            _ => {}
        }
        if let Err(not_until) = self.pages.check_key(&client) {
            return pages::too_many(not_until);
        }
        let now = now_ms();
        let session = match self.sessions.read(&cookies, now / 1000) {
            Some(s) => s,
            None => return pages::redirect("/ui/sign-in"),
        };
        match console
            .session_valid(&session.who, &session.key_id, &session.nonce)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                let mut resp = pages::redirect("/ui/sign-in");
                pages::set_cookie(&mut resp, &self.sessions.clear());
                return resp;
            }
            Err(e) => return pages::unavailable(&e),
        }
        let query: Vec<(String, String)> =
            url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let ctx = Ctx {
            console,
            csrf: self.sessions.csrf(&session.nonce),
            session,
            query,
            now_ms: now,
            tz: session::cookie(&cookies, "cl_tz").and_then(|t| {
                let t = url::form_urlencoded::parse(format!("t={t}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())?;
                jiff::tz::TimeZone::get(&t).is_ok().then_some(t)
            }),
        };
        if method == Method::POST {
            let form = match form::Form::read(&req) {
                Ok(f) => f,
                Err(resp) => return *resp,
            };
            if !same_origin(&req, console.public_base()) {
                return pages::error(
                    Some(&ctx),
                    StatusCode::FORBIDDEN,
                    "Sent from another site",
                    "This form came from another address than this console's. If codelink runs behind \
                     a proxy, set --public-url to the address you open it at.",
                );
            }
            if !self.sessions.csrf_ok(&ctx.session.nonce, form.get("csrf")) {
                return pages::error(
                    Some(&ctx),
                    StatusCode::FORBIDDEN,
                    "Form expired",
                    "This form was not sent from this page or has expired. Go back, reload the page and try again.",
                );
            }
            return match segments.as_slice() {
                ["sign-out"] => {
                    // The cookie is cleared, and the session ends on the
                    // server too: a copy of the cookie no longer works.
                    if let Err(e) = console
                        .end_session(&ctx.session.nonce, ctx.session.expires)
                        .await
                    {
                        return pages::unavailable(&e);
                    }
                    let mut resp = pages::redirect("/ui/sign-in");
                    pages::set_cookie(&mut resp, &self.sessions.clear());
                    resp
                }
                ["codes"] => pages::edit::create(&ctx, &form).await,
                ["codes", code] => pages::edit::update(&ctx, code, &form).await,
                ["codes", code, "enabled"] => pages::edit::set_enabled(&ctx, code, &form).await,
                ["keys"] => pages::keys::issue(&ctx, &form).await,
                ["keys", id, "revoke"] => pages::keys::revoke(&ctx, id).await,
                ["reviews"] => pages::reviews::decide(&ctx, &form).await,
                ["integrations", rest @ ..] => pages::integrations::post(&ctx, rest, &form).await,
                _ => pages::not_found(Some(&ctx)),
            };
        }
        if method != Method::GET && method != Method::HEAD {
            return pages::error(
                Some(&ctx),
                StatusCode::METHOD_NOT_ALLOWED,
                "Not allowed",
                "This page only answers GET.",
            );
        }
        match segments.as_slice() {
            [] => pages::redirect("/ui/codes"),
            ["codes"] => pages::codes::list(&ctx).await,
            ["codes", "new"] => pages::edit::new_form(&ctx),
            ["codes", code] => pages::code::show(&ctx, code).await,
            ["codes", code, "live"] => pages::code::live(&ctx, code).await,
            ["codes", code, "edit"] => pages::edit::edit_form(&ctx, code),
            ["funnel"] => pages::funnel::show(&ctx).await,
            ["export"] => pages::export::csv(&ctx).await,
            ["keys"] => pages::keys::list(&ctx).await,
            ["reviews"] => pages::reviews::list(&ctx).await,
            ["integrations"] => pages::integrations::show(&ctx).await,
            ["integrations", "webhooks", id] => pages::webhooks::show(&ctx, id).await,
            _ => pages::not_found(Some(&ctx)),
        }
    }
}

/// A form post from this site: `Origin` (when the browser sends one) names
/// the host the request was sent to, or the public URL's origin (behind a
/// proxy that rewrites `Host`). `SameSite=Strict` and the CSRF token do the
/// rest.
fn same_origin(req: &Request, public_base: &str) -> bool {
    let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        return true;
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let public_origin = match public_base.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}", rest.split('/').next().unwrap_or("")),
        None => String::new(),
    };
    origin.eq_ignore_ascii_case(&public_origin)
        || origin
            .split_once("://")
            .is_some_and(|(_, rest)| !host.is_empty() && rest.eq_ignore_ascii_case(host))
}
