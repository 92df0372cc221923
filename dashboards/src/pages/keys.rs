//! `/ui/keys` (admin): creator and ingest keys: issue (the secret is shown
//! once, on the page that answers the form) and revoke.

use super::{html_response, not_found, redirect};
use crate::console::ConsoleError;
use crate::form::Form;
use crate::html::{self, esc};
use crate::{Console, Ctx, Response};
use codelink_shared::{ApiKey, KeyKind};
use http::StatusCode;
use std::fmt::Write;

fn date(t: i64) -> String {
    jiff::Timestamp::from_second(t)
        .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

fn page<C: Console>(
    ctx: &Ctx<'_, C>,
    keys: &[ApiKey],
    issued: Option<(&ApiKey, &str)>,
    error: Option<&str>,
    creator: &str,
) -> String {
    let mut body = String::from("<div class=\"head\"><h1>Keys</h1></div>");
    if let Some((key, secret)) = issued {
        let _ = write!(
            body,
            "<section class=\"card issued\" role=\"status\"><h2>New {} key{}</h2>\
             <p><strong>Copy it now: it is shown only once.</strong> Only its hash is kept.</p>\
             <div class=\"copy\"><input id=\"new-key\" readonly value=\"{}\" aria-label=\"The new key\">\
             <button type=\"button\" data-copy=\"new-key\">Copy</button></div></section>",
            key.kind.as_str(),
            key.creator.as_deref().map(|c| format!(" for {}", esc(c))).unwrap_or_default(),
            esc(secret)
        );
    }
    let (invalid, message) = match error {
        Some(e) => (
            " aria-invalid=\"true\" aria-describedby=\"creator-error\"",
            format!(
                "<p class=\"field-error\" id=\"creator-error\">{}</p>",
                esc(e)
            ),
        ),
        None => (" aria-describedby=\"creator-hint\"", String::new()),
    };
    let _ = write!(
        body,
        "<section class=\"card\"><h2>Issue a key</h2><form method=\"post\" action=\"/ui/keys\" class=\"row start\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <div class=\"field\"><label for=\"kind\">Kind</label><select id=\"kind\" name=\"kind\">\
         <option value=\"creator\">Creator: sees the creator's own codes</option>\
         <option value=\"ingest\">Ingest: reports conversions only</option></select></div>\
         <div class=\"field\"><label for=\"creator\">Creator handle</label><input id=\"creator\" name=\"creator\" value=\"{}\" autocomplete=\"off\" spellcheck=\"false\"{invalid}>\
         <p class=\"hint\" id=\"creator-hint\">For creator keys.</p>{message}</div>\
         <button type=\"submit\" class=\"primary\">Issue key</button></form></section>",
        esc(&ctx.csrf),
        esc(creator)
    );
    body.push_str("<section class=\"card flush\"><h2 class=\"pad\">Issued keys</h2><div class=\"scroll\"><table class=\"data\"><thead><tr>\
         <th scope=\"col\">Id</th><th scope=\"col\">Kind</th><th scope=\"col\">Creator</th><th scope=\"col\">Issued</th><th scope=\"col\">Status</th><th scope=\"col\"><span class=\"visually-hidden\">Action</span></th></tr></thead><tbody>");
    for k in keys.iter().rev() {
        let action = if k.revoked {
            String::new()
        } else {
            format!(
                "<form method=\"post\" action=\"/ui/keys/{id}/revoke\" data-confirm=\"Revoke key {id}? Whoever uses it is signed out.\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\" class=\"danger\">Revoke</button></form>",
                esc(&ctx.csrf),
                id = esc(&k.id)
            )
        };
        let _ = write!(
            body,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td><span class=\"badge {}\">{}</span></td><td>{action}</td></tr>",
            esc(&k.id),
            k.kind.as_str(),
            esc(k.creator.as_deref().unwrap_or("–")),
            date(k.created_at),
            if k.revoked { "off" } else { "on" },
            if k.revoked { "Revoked" } else { "Active" }
        );
    }
    if keys.is_empty() {
        body.push_str("<tr><td colspan=\"6\">No keys issued yet.</td></tr>");
    }
    body.push_str("</tbody></table></div></section>");
    html::page(&ctx.frame("Keys", "keys"), &body)
}

pub async fn list<C: Console>(ctx: &Ctx<'_, C>) -> Response {
    if !ctx.is_admin() {
        return not_found(Some(ctx));
    }
    match ctx.console.keys().await {
        Ok(keys) => html_response(StatusCode::OK, page(ctx, &keys, None, None, "")),
        Err(e) => super::unavailable(&e),
    }
}

pub async fn issue<C: Console>(ctx: &Ctx<'_, C>, form: &Form) -> Response {
    if !ctx.is_admin() {
        return not_found(Some(ctx));
    }
    let kind = match form.get("kind") {
        "ingest" => KeyKind::Ingest,
        _ => KeyKind::Creator,
    };
    let creator = Some(form.get("creator").to_string()).filter(|c| !c.is_empty());
    let result = ctx.console.issue_key(kind, creator).await;
    let keys = match ctx.console.keys().await {
        Ok(k) => k,
        Err(e) => return super::unavailable(&e),
    };
    match result {
        Ok((key, secret)) => html_response(
            StatusCode::CREATED,
            page(ctx, &keys, Some((&key, &secret)), None, ""),
        ),
        Err(ConsoleError::Invalid(v)) => html_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            page(ctx, &keys, None, Some(&v.message), form.get("creator")),
        ),
        Err(e) => super::unavailable(&e),
    }
}

pub async fn revoke<C: Console>(ctx: &Ctx<'_, C>, id: &str) -> Response {
    if !ctx.is_admin() {
        return not_found(Some(ctx));
    }
    match ctx.console.revoke_key(id).await {
        Ok(Some(_)) => redirect("/ui/keys"),
        Ok(None) => not_found(Some(ctx)),
        Err(e) => super::unavailable(&e),
    }
}
