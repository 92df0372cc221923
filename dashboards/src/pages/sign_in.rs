//! Signing in with a key (typed once, kept as a session cookie) and out.

use super::{html_response, redirect, set_cookie};
use crate::form::Form;
use crate::html::{self, esc};
use crate::session::PRE_COOKIE;
use crate::{Console, Dashboards, Request, Response};
use codelink_shared::Principal;
use http::{header, HeaderValue, StatusCode};
use std::net::IpAddr;

fn page(csrf: &str, error: Option<&str>) -> String {
    let (invalid, message) = match error {
        Some(e) => (
            " aria-invalid=\"true\" aria-describedby=\"key-error\"",
            format!(
                "<p class=\"field-error\" id=\"key-error\" role=\"alert\">{}</p>",
                esc(e)
            ),
        ),
        None => ("", String::new()),
    };
    let body = format!(
        "<section class=\"card narrow signin\"><h1>Sign in</h1>\
         <p>Paste your creator key, or the admin key. It is exchanged for a session \
         cookie: the key itself is not kept in this browser.</p>\
         <form method=\"post\" action=\"/ui/sign-in\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <div class=\"field\"><label for=\"key\">Key</label>\
         <input id=\"key\" name=\"key\" type=\"password\" autocomplete=\"current-password\" \
         required autofocus spellcheck=\"false\"{invalid}>{message}</div>\
         <button type=\"submit\" class=\"primary\">Sign in</button></form>\
         <p class=\"hint\">No key? Ask the person who runs this codelink for a creator key.</p></section>",
        esc(csrf)
    );
    let frame = html::Frame {
        title: "Sign in",
        who: None,
        csrf: "",
        nav: "",
    };
    html::page(&frame, &body)
}

pub async fn form<C: Console>(
    ui: &Dashboards,
    _console: &C,
    cookies: &str,
    now_ms: u64,
) -> Response {
    if ui.sessions.read(cookies, now_ms / 1000).is_some() {
        return redirect("/ui/codes");
    }
    let (nonce, set) = ui.sessions.pre_session(cookies);
    let mut resp = html_response(StatusCode::OK, page(&ui.sessions.csrf(&nonce), None));
    if let Some(c) = set {
        set_cookie(&mut resp, &c);
    }
    resp
}

pub async fn submit<C: Console>(
    ui: &Dashboards,
    console: &C,
    req: &Request,
    cookies: &str,
    client: IpAddr,
) -> Response {
    if let Err(not_until) = ui.sign_ins.check_key(&client) {
        let now = governor::clock::Clock::now(&governor::clock::DefaultClock::default());
        let wait = not_until.wait_time_from(now).as_secs().max(1);
        let mut resp = super::error_plain(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many sign-in attempts",
            &format!("Wait {wait} seconds, then try again."),
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
        return resp;
    }
    let form = match Form::read(req) {
        Ok(f) => f,
        Err(resp) => return *resp,
    };
    let (nonce, set) = ui.sessions.pre_session(cookies);
    let csrf = ui.sessions.csrf(&nonce);
    let retry = |status: StatusCode, message: &str| {
        let mut resp = html_response(status, page(&csrf, Some(message)));
        if let Some(c) = &set {
            set_cookie(&mut resp, c);
        }
        resp
    };
    if set.is_some()
        || !super::super::same_origin(req, console.public_base())
        || !ui.sessions.csrf_ok(&nonce, form.get("csrf"))
    {
        return retry(
            StatusCode::FORBIDDEN,
            "This form expired. Paste your key again and sign in.",
        );
    }
    let key = form.get("key");
    if key.is_empty() {
        return retry(StatusCode::UNPROCESSABLE_ENTITY, "Paste your key here.");
    }
    match console.sign_in(key).await {
        Ok(Some((Principal::Ingest, _))) => retry(
            StatusCode::FORBIDDEN,
            "This is an ingest key: it only reports conversions. Sign in with a creator key or the admin key.",
        ),
        Ok(Some((who, key_id))) => {
            let (_, cookie) = ui.sessions.issue(who, key_id, crate::now_ms() / 1000);
            let mut resp = redirect("/ui/codes");
            set_cookie(&mut resp, &cookie);
            set_cookie(
                &mut resp,
                &format!("{PRE_COOKIE}=; Path=/ui; Max-Age=0; HttpOnly; SameSite=Strict"),
            );
            resp
        }
        Ok(None) => retry(
            StatusCode::UNAUTHORIZED,
            "That key is not valid, or it was revoked. Check it and try again.",
        ),
        Err(e) => super::unavailable(&e),
    }
}
