//! The webhooks part of `/ui/integrations`: the endpoints the signed-in key
//! may see (admin: all; a creator: its own), one endpoint's delivery log
//! (`/ui/integrations/webhooks/{id}`), and the forms that add (the secret is
//! shown once, on the page that answers the form), delete and re-enable one.
//! Everything goes through the `Analytics` webhook methods with the same
//! rules as `/api/v1/webhooks` (URL and SSRF checks in `create_webhook`,
//! owner and visibility in `owner_for` / `visible_to`).

use super::{html_response, not_found};
use crate::form::Form;
use crate::html::{self, esc};
use crate::{Console, Ctx, Response};
use codelink_analytics::webhooks::{
    owner_for, Attempt, Endpoint, EndpointError, EndpointState, NewEndpoint, EVENT_TYPES,
};
use http::StatusCode;
use std::fmt::Write;

/// What the webhooks card shows besides the list: the endpoint just created
/// (with its secret), or the add form as typed with what is wrong in it.
#[derive(Default)]
pub struct Shown {
    pub created: Option<Endpoint>,
    /// `(field, message)` of a refused add.
    pub error: Option<(String, String)>,
    pub url: String,
    pub events: Vec<String>,
    pub milestone_every: String,
    pub description: String,
    pub owner: String,
}

/// What a webhook form leads to.
pub enum Done {
    /// Back to the integrations page with this flash message key.
    Redirect(String),
    /// The integrations page again, with this card state.
    Show(StatusCode, Shown),
    /// A page of its own (not found, unavailable).
    Page(Response),
}

fn utc(ms: u64) -> String {
    html::datetime(ms, &jiff::tz::TimeZone::UTC)
}

/// The status badge and, when disabled or failing, why and since when.
fn status(s: &EndpointState) -> String {
    if let Some(d) = &s.health.disabled {
        format!(
            "<span class=\"badge off\">Disabled</span> <span class=\"hint\">{} UTC: {}</span>",
            utc(d.at_ms),
            esc(&d.reason)
        )
    } else if let Some(since) = s.health.failing_since_ms {
        format!(
            "<span class=\"badge wait\">Failing</span> <span class=\"hint\">since {} UTC</span>",
            utc(since)
        )
    } else {
        "<span class=\"badge on\">Enabled</span>".into()
    }
}

/// `2026-11-28 14:05:09` UTC: attempts come seconds apart.
fn seconds(ms: u64) -> String {
    jiff::Timestamp::from_millisecond(ms as i64)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

fn result(a: &Attempt) -> String {
    match (a.status, &a.error) {
        (Some(code), _) if (200..300).contains(&code) => {
            format!("<span class=\"badge on\">{code}</span>")
        }
        (Some(code), err) => format!(
            "<span class=\"badge off\">{code}</span>{}",
            err.as_deref()
                .map(|e| format!(" <span class=\"hint\">{}</span>", esc(e)))
                .unwrap_or_default()
        ),
        (None, Some(e)) => format!("<span class=\"badge off\">Error</span> {}", esc(e)),
        (None, None) => "–".into(),
    }
}

/// The webhooks card of the integrations page.
pub fn card<C: Console>(ctx: &Ctx<'_, C>, endpoints: &[EndpointState], shown: &Shown) -> String {
    let mut out = String::new();
    if let Some(e) = &shown.created {
        let _ = write!(
            out,
            "<section class=\"card issued\" role=\"status\"><h2>Webhook endpoint added</h2>\
             <p>Events now go to <code>{}</code>. <strong>Copy its signing secret now: it is shown only once.</strong> \
             Your receiver verifies each delivery's <code>webhook-signature</code> with it (see the README, For brands → Webhooks).</p>\
             <div class=\"copy\"><input id=\"new-secret\" readonly value=\"{}\" aria-label=\"The endpoint's signing secret\">\
             <button type=\"button\" data-copy=\"new-secret\">Copy</button></div></section>",
            esc(&e.url),
            esc(&e.secret)
        );
    }
    out.push_str(
        "<section class=\"card flush\" id=\"webhooks\"><h2 class=\"pad\">Webhooks</h2>\
         <p class=\"pad hint\">Signed events sent to your endpoints, retried with backoff for about three days; \
         an endpoint failing for days is disabled until you re-enable it.</p>\
         <ul class=\"providers\">",
    );
    for s in endpoints {
        let e = &s.endpoint;
        let last = s
            .log
            .first()
            .map(|a| {
                format!(
                    "{} UTC: <code>{}</code> {}",
                    seconds(a.at_ms),
                    esc(&a.event_type),
                    result(a)
                )
            })
            .unwrap_or_else(|| "none yet".into());
        let scope = match (&e.owner, ctx.is_admin()) {
            (Some(o), true) => format!(" · {}'s codes", esc(o)),
            (None, true) => " · every code".into(),
            _ => String::new(),
        };
        let _ = write!(
            out,
            "<li class=\"provider\"><h3 class=\"dest\">{}</h3><p>{}</p>\
             <p class=\"events\">{}</p>\
             <p class=\"hint\">{}{scope} · last attempt {last}</p>\
             <p><a href=\"/ui/integrations/webhooks/{}\">Details and delivery log</a></p></li>",
            esc(&e.url),
            status(s),
            e.events
                .iter()
                .map(|t| format!("<code>{}</code>", esc(t)))
                .collect::<Vec<_>>()
                .join(" "),
            if e.description.is_empty() {
                "Added ".to_string() + &utc(e.created_ms) + " UTC"
            } else {
                esc(&e.description)
            },
            esc(&e.id),
        );
    }
    if endpoints.is_empty() {
        out.push_str("<li class=\"provider\">No endpoints yet: add one below.</li>");
    }
    out.push_str("</ul>");
    add_form(ctx, shown, &mut out);
    out.push_str("</section>");
    out
}

fn field_error(shown: &Shown, field: &str) -> (String, String) {
    match &shown.error {
        Some((f, m)) if f == field => (
            format!(" aria-invalid=\"true\" aria-describedby=\"wh-{field}-error\""),
            format!(
                "<p class=\"field-error\" id=\"wh-{field}-error\">{}</p>",
                esc(m)
            ),
        ),
        _ => (String::new(), String::new()),
    }
}

fn add_form<C: Console>(ctx: &Ctx<'_, C>, shown: &Shown, out: &mut String) {
    let (url_invalid, url_error) = field_error(shown, "url");
    let (_, events_error) = field_error(shown, "events");
    let (every_invalid, every_error) = field_error(shown, "milestone_every");
    let (desc_invalid, desc_error) = field_error(shown, "description");
    let _ = write!(
        out,
        "<form method=\"post\" action=\"/ui/integrations/webhooks\" class=\"pad form\">\
         <h3>Add an endpoint</h3>\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <div class=\"field\"><label for=\"wh-url\">URL</label>\
         <input id=\"wh-url\" name=\"url\" type=\"url\" inputmode=\"url\" placeholder=\"https://shop.example/hooks/codelink\" \
         value=\"{}\" autocomplete=\"off\" spellcheck=\"false\" required{url_invalid}>{url_error}</div>\
         <fieldset class=\"field\"><legend>Events</legend><div class=\"checks\">",
        esc(&ctx.csrf),
        esc(&shown.url)
    );
    for t in EVENT_TYPES {
        let checked = if shown.events.iter().any(|e| e == t) {
            " checked"
        } else {
            ""
        };
        let _ = write!(
            out,
            "<label class=\"field check\"><input type=\"checkbox\" name=\"events\" value=\"{t}\"{checked}> <code>{t}</code></label>"
        );
    }
    let _ = write!(
        out,
        "</div>{events_error}</fieldset>\
         <div class=\"pair\"><div class=\"field\"><label for=\"wh-every\">Milestone every (scans)</label>\
         <input id=\"wh-every\" name=\"milestone_every\" inputmode=\"numeric\" placeholder=\"1000\" value=\"{}\" aria-describedby=\"wh-every-hint\"{every_invalid}>\
         <p class=\"hint\" id=\"wh-every-hint\">For <code>scan.milestone</code>: every this many human scans of a code.</p>{every_error}</div>\
         <div class=\"field\"><label for=\"wh-desc\">Description (optional)</label>\
         <input id=\"wh-desc\" name=\"description\" value=\"{}\" maxlength=\"500\"{desc_invalid}>{desc_error}</div></div>",
        esc(&shown.milestone_every),
        esc(&shown.description)
    );
    if ctx.is_admin() {
        let (owner_invalid, owner_error) = field_error(shown, "owner");
        let _ = write!(
            out,
            "<div class=\"field\"><label for=\"wh-owner\">Only the codes of (optional)</label>\
             <input id=\"wh-owner\" name=\"owner\" value=\"{}\" autocomplete=\"off\" spellcheck=\"false\" aria-describedby=\"wh-owner-hint\"{owner_invalid}>\
             <p class=\"hint\" id=\"wh-owner-hint\">A creator handle; empty: events of every code.</p>{owner_error}</div>",
            esc(&shown.owner)
        );
    }
    out.push_str("<p><button type=\"submit\" class=\"primary\">Add endpoint</button></p></form>");
}

/// `POST /ui/integrations/webhooks`.
pub async fn create<C: Console>(ctx: &Ctx<'_, C>, form: &Form) -> Done {
    let mut shown = Shown {
        url: form.get("url").to_string(),
        events: form.all("events"),
        milestone_every: form.get("milestone_every").to_string(),
        description: form.get("description").to_string(),
        owner: form.get("owner").to_string(),
        ..Shown::default()
    };
    let refuse = |mut shown: Shown, field: &str, message: String| {
        shown.error = Some((field.to_string(), message));
        Done::Show(StatusCode::UNPROCESSABLE_ENTITY, shown)
    };
    let milestone_every = match shown.milestone_every.as_str() {
        "" => 0,
        raw => match raw.replace([',', '_', ' '], "").parse::<u64>() {
            Ok(n) if n > 0 => n,
            _ => {
                return refuse(
                    shown,
                    "milestone_every",
                    "a whole number of scans above 0 (e.g. 1000), or leave it empty".into(),
                )
            }
        },
    };
    let asked = Some(shown.owner.clone()).filter(|o| !o.is_empty() && ctx.is_admin());
    let owner = match owner_for(ctx.who(), asked) {
        None => return Done::Page(not_found(Some(ctx))),
        Some(Err(EndpointError::Invalid { field, message })) => {
            return refuse(shown, field, message)
        }
        Some(Err(EndpointError::Analytics(e))) => {
            return Done::Page(super::analytics_error(ctx, e))
        }
        Some(Ok(o)) => o,
    };
    let new = NewEndpoint {
        url: shown.url.clone(),
        events: shown.events.clone(),
        description: shown.description.clone(),
        owner,
        milestone_every,
    };
    match ctx.console.analytics().create_webhook(new).await {
        Ok(endpoint) => {
            shown = Shown {
                created: Some(endpoint),
                ..Shown::default()
            };
            Done::Show(StatusCode::CREATED, shown)
        }
        Err(EndpointError::Invalid { field, message }) => refuse(shown, field, message),
        Err(EndpointError::Analytics(e)) => Done::Page(super::analytics_error(ctx, e)),
    }
}

/// `POST /ui/integrations/webhooks/{id}/delete`.
pub async fn delete<C: Console>(ctx: &Ctx<'_, C>, id: &str) -> Done {
    let analytics = ctx.console.analytics();
    match analytics.webhook_endpoint_for(ctx.who(), id).await {
        Ok(Some(_)) => {}
        Ok(None) => return Done::Page(not_found(Some(ctx))),
        Err(e) => return Done::Page(super::analytics_error(ctx, e)),
    }
    match analytics.delete_webhook(id).await {
        Ok(_) => Done::Redirect("webhook-deleted".into()),
        Err(e) => Done::Page(super::analytics_error(ctx, e)),
    }
}

/// `POST /ui/integrations/webhooks/{id}/enable`: back to its details.
pub async fn enable<C: Console>(ctx: &Ctx<'_, C>, id: &str) -> Response {
    let analytics = ctx.console.analytics();
    match analytics.webhook_endpoint_for(ctx.who(), id).await {
        Ok(Some(_)) => {}
        Ok(None) => return not_found(Some(ctx)),
        Err(e) => return super::analytics_error(ctx, e),
    }
    match analytics.enable_webhook(id).await {
        Ok(_) => super::redirect(&format!(
            "/ui/integrations/webhooks/{}?done=enabled",
            html::qv(id)
        )),
        Err(e) => super::analytics_error(ctx, e),
    }
}

/// `GET /ui/integrations/webhooks/{id}`: one endpoint and its delivery log.
pub async fn show<C: Console>(ctx: &Ctx<'_, C>, id: &str) -> Response {
    let found = match ctx
        .console
        .analytics()
        .webhook_endpoint_for(ctx.who(), id)
        .await
    {
        Ok(Some(s)) => s,
        Ok(None) => return not_found(Some(ctx)),
        Err(e) => return super::analytics_error(ctx, e),
    };
    let e = &found.endpoint;
    let mut body = format!(
        "<p class=\"small\"><a href=\"/ui/integrations\">← Integrations</a></p>\
         <div class=\"head\"><div><h1>Webhook endpoint</h1><p class=\"sub dest\">{}</p></div></div>",
        esc(&e.url)
    );
    if ctx.param("done") == Some("enabled") {
        body.push_str(
            "<section class=\"card issued\" role=\"status\"><p>Re-enabled: deliveries kept meanwhile go out within a minute.</p></section>",
        );
    }
    let owner = match &e.owner {
        Some(o) => format!("{}'s codes", esc(o)),
        None => "every code".into(),
    };
    let _ = write!(
        body,
        "<section class=\"card\"><dl class=\"stats\">\
         <div><dt>Status</dt><dd>{}</dd></div>\
         <div><dt>Id</dt><dd><code>{}</code></dd></div>\
         <div class=\"wide\"><dt>Events</dt><dd class=\"events\">{}</dd></div>\
         <div><dt>Scope</dt><dd>{owner}</dd></div>\
         <div><dt>Milestone every</dt><dd>{}</dd></div>\
         <div><dt>Added</dt><dd>{} UTC</dd></div>\
         <div><dt>Description</dt><dd>{}</dd></div></dl><div class=\"buttons actions\">",
        status(&found),
        esc(&e.id),
        e.events
            .iter()
            .map(|t| format!("<code>{}</code>", esc(t)))
            .collect::<Vec<_>>()
            .join(" "),
        if e.milestone_every > 0 {
            format!("{} scans", html::num(e.milestone_every))
        } else {
            "–".into()
        },
        utc(e.created_ms),
        if e.description.is_empty() {
            "–".to_string()
        } else {
            esc(&e.description)
        },
    );
    if found.health.disabled.is_some() {
        let _ = write!(
            body,
            "<form method=\"post\" action=\"/ui/integrations/webhooks/{}/enable\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button type=\"submit\" class=\"primary\">Re-enable</button></form>",
            esc(&e.id),
            esc(&ctx.csrf)
        );
    }
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/ui/integrations/webhooks/{id}/delete\" \
         data-confirm=\"Delete this endpoint? Its pending deliveries are dropped.\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <button type=\"submit\" class=\"danger\">Delete endpoint</button></form></div></section>",
        esc(&ctx.csrf),
        id = esc(&e.id)
    );
    body.push_str(
        "<section class=\"card flush\"><h2 class=\"pad\">Delivery log</h2>\
         <p class=\"pad hint\">The last attempts, newest first. A delivery is retried until answered 2xx; \
         receivers deduplicate by event id.</p>\
         <div class=\"scroll\"><table class=\"data log\"><thead><tr>\
         <th scope=\"col\">Time (UTC)</th><th scope=\"col\">Event</th><th scope=\"col\">Event id</th>\
         <th scope=\"col\" class=\"n\">Attempt</th><th scope=\"col\">Result</th>\
         <th scope=\"col\">Next retry (UTC)</th></tr></thead><tbody>",
    );
    for a in &found.log {
        let mut next = a.next_retry_ms.map(seconds).unwrap_or_default();
        if let Some(note) = &a.note {
            let _ = write!(next, " <span class=\"hint\">{}</span>", esc(note));
        }
        if next.is_empty() {
            next = "–".into();
        }
        let _ = write!(
            body,
            "<tr><td>{}</td><td data-label=\"Event\"><code>{}</code></td>\
             <td data-label=\"Id\"><code>{}</code></td><td class=\"n\" data-label=\"Attempt\">{}</td>\
             <td data-label=\"Result\">{} <span class=\"hint\">{} ms</span></td>\
             <td data-label=\"Next retry\">{next}</td></tr>",
            seconds(a.at_ms),
            esc(&a.event_type),
            esc(&a.event_id),
            a.attempt,
            result(a),
            a.duration_ms,
        );
    }
    if found.log.is_empty() {
        body.push_str("<tr><td colspan=\"6\">No deliveries yet.</td></tr>");
    }
    body.push_str("</tbody></table></div></section>");
    html_response(
        StatusCode::OK,
        html::page(&ctx.frame("Webhook endpoint", "integrations"), &body),
    )
}
