//! `/ui/integrations`: what a brand plugs in, on one page: the webhooks card
//! ([`webhooks`]), the payment providers card (admin, [`providers`]) and the
//! tag and import card (admin; the `/t.js` snippet with this server's public URL;
//! `codelink import` / export). Forms answer with this page again (a
//! refused form keeps what was typed and says what is wrong; a new
//! webhook's secret is shown on it once) or redirect back with a flash.

use super::{html_response, providers, redirect, webhooks};
use crate::form::Form;
use crate::html::{self, esc};
use crate::{Console, Ctx, Response};
use http::StatusCode;
use std::fmt::Write;

/// The flash a redirect names (`?done=`): a fixed set, never echoed.
fn flash(done: &str) -> Option<&'static str> {
    Some(match done {
        "webhook-deleted" => "Webhook endpoint deleted: its pending deliveries are dropped.",
        "provider-added" => {
            "Provider endpoint added: paste its inbound URL in the provider's settings, then set the signing secret it shows."
        }
        "secret-set" => "Signing secret saved: the provider's events are verified with it from now on.",
        "provider-deleted" => "Provider endpoint deleted: events sent to it are refused from now on.",
        _ => return None,
    })
}

fn tag_card<C: Console>(ctx: &Ctx<'_, C>) -> String {
    let base = ctx.console.public_base();
    let snippet = format!(
        "<script src=\"{base}/t.js?v=1\" defer data-days=\"30\" data-attach=\"form.checkout\"></script>"
    );
    format!(
        "<section class=\"card\" id=\"tag\"><h2>Tag and import</h2>\
         <p>Put this on every page of your site: it keeps the follower's scan token (<code>cl_scan</code>) first-party \
         on your domain for 30 days and adds it to your <code>form.checkout</code> forms. It sends nothing anywhere.</p>\
         <div class=\"copy stack\"><textarea id=\"tag-snippet\" readonly rows=\"4\" aria-label=\"The tag snippet\">{}</textarea>\
         <button type=\"button\" data-copy=\"tag-snippet\">Copy</button></div>\
         <p class=\"hint\">Change <code>data-days</code> and <code>data-attach</code> to suit; <code>codelink.token()</code> gives \
         the token to pass at checkout (Stripe: <code>client_reference_id</code>). The README's “For brands” section has the details.</p>\
         <h3>Codes in bulk</h3>\
         <p>Import a CSV or JSON-lines file of codes (a dry run first; a re-run changes nothing), and export every code in the same shape:</p>\
         <pre class=\"cmd\"><code>codelink import codes.csv --dry-run --url {}\ncodelink import codes.csv --url {}\ncodelink export --url {} &gt; codes.csv</code></pre>\
         <p class=\"hint\">Or over HTTP with an API key: <code>POST {}/api/v1/codes/import</code> and \
         <code>GET {}/api/v1/codes/export?format=csv</code>.</p></section>",
        esc(&snippet),
        esc(base),
        esc(base),
        esc(base),
        esc(base),
        esc(base),
    )
}

/// The page with each card as `wh` and `pr` say.
async fn render<C: Console>(
    ctx: &Ctx<'_, C>,
    status: StatusCode,
    wh: webhooks::Shown,
    pr: providers::Shown,
) -> Response {
    let endpoints = match ctx
        .console
        .analytics()
        .webhook_endpoints_for(ctx.who())
        .await
    {
        Ok(e) => e,
        Err(e) => return super::analytics_error(ctx, e),
    };
    let integrations = if ctx.is_admin() {
        match ctx.console.integrations().await {
            Ok(i) => Some(i),
            Err(e) => return super::unavailable(&e),
        }
    } else {
        None
    };
    let mut body = format!(
        "<div class=\"head\"><div><h1>Integrations</h1>\
         <p class=\"sub\">{}</p></div></div>",
        if ctx.is_admin() {
            "Webhooks out, payment providers in, the tag for your site."
        } else {
            "Webhooks: your codes' conversions, commissions and milestones, sent to your own server."
        }
    );
    if let Some(text) = ctx.param("done").and_then(flash) {
        let _ = write!(
            body,
            "<section class=\"card issued\" role=\"status\"><p>{}</p></section>",
            esc(text)
        );
    }
    body.push_str(&webhooks::card(ctx, &endpoints, &wh));
    if let Some(all) = &integrations {
        body.push_str(&providers::card(ctx, all, &pr));
    }
    // The tag and the bulk import are the brand's (the admin's) business.
    if ctx.is_admin() {
        body.push_str(&tag_card(ctx));
    }
    html_response(
        status,
        html::page(&ctx.frame("Integrations", "integrations"), &body),
    )
}

/// `GET /ui/integrations`.
pub async fn show<C: Console>(ctx: &Ctx<'_, C>) -> Response {
    render(
        ctx,
        StatusCode::OK,
        webhooks::Shown::default(),
        providers::Shown::default(),
    )
    .await
}

fn back(done: &str) -> Response {
    redirect(&format!("/ui/integrations?done={}", html::qv(done)))
}

/// A webhook form's outcome.
pub async fn after_webhook<C: Console>(ctx: &Ctx<'_, C>, done: webhooks::Done) -> Response {
    match done {
        webhooks::Done::Redirect(d) => back(&d),
        webhooks::Done::Show(status, shown) => {
            render(ctx, status, shown, providers::Shown::default()).await
        }
        webhooks::Done::Page(resp) => resp,
    }
}

/// A provider form's outcome.
pub async fn after_provider<C: Console>(ctx: &Ctx<'_, C>, done: providers::Done) -> Response {
    match done {
        providers::Done::Redirect(d) => back(&d),
        providers::Done::Show(status, shown) => {
            render(ctx, status, webhooks::Shown::default(), shown).await
        }
        providers::Done::Page(resp) => resp,
    }
}

/// Every form posted under `/ui/integrations/…` (`rest`: the segments after
/// it).
pub async fn post<C: Console>(ctx: &Ctx<'_, C>, rest: &[&str], form: &Form) -> Response {
    match rest {
        ["webhooks"] => after_webhook(ctx, webhooks::create(ctx, form).await).await,
        ["webhooks", id, "delete"] => after_webhook(ctx, webhooks::delete(ctx, id).await).await,
        ["webhooks", id, "enable"] => webhooks::enable(ctx, id).await,
        ["providers"] => after_provider(ctx, providers::add(ctx, form).await).await,
        ["providers", id, "secret"] => {
            after_provider(ctx, providers::set_secret(ctx, id, form).await).await
        }
        ["providers", id, "delete"] => after_provider(ctx, providers::delete(ctx, id).await).await,
        _ => super::not_found(Some(ctx)),
    }
}
