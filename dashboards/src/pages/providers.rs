//! The payment-provider part of `/ui/integrations` (admin): Stripe and
//! Shopify endpoints with the inbound URL to paste in the provider's
//! dashboard and whether a signing secret is set; forms that add one, set or
//! roll its secret and delete it. The checks are the API's
//! (`/api/v1/integrations`), done by the gateway behind [`Console`].

use super::not_found;
use crate::console::ConsoleError;
use crate::form::Form;
use crate::html::{self, esc};
use crate::{Console, Ctx, Response};
use codelink_shared::{Integration, Provider};
use http::StatusCode;
use std::fmt::Write;

/// The add form as typed and what is wrong, or which row's secret was
/// refused and why.
#[derive(Default)]
pub struct Shown {
    pub error: Option<String>,
    /// The endpoint whose secret form the error is about.
    pub secret_of: Option<String>,
    pub provider: String,
    pub name: String,
    pub code: String,
}

/// What a provider form leads to (see `webhooks::Done`).
pub enum Done {
    Redirect(String),
    Show(StatusCode, Shown),
    Page(Response),
}

/// The payment providers card.
pub fn card<C: Console>(ctx: &Ctx<'_, C>, all: &[Integration], shown: &Shown) -> String {
    let base = ctx.console.public_base();
    let mut out = String::from(
        "<section class=\"card flush\" id=\"providers\"><h2 class=\"pad\">Payment providers</h2>\
         <p class=\"pad hint\">Stripe and Shopify send their order and refund events here; each becomes a conversion. \
         Add an endpoint, paste its URL in the provider's webhook settings, then set the signing secret the provider shows. \
         Without a secret an endpoint takes nothing.</p>",
    );
    if let (Some(e), None) = (&shown.error, &shown.secret_of) {
        let _ = write!(
            out,
            "<div class=\"pad\"><p class=\"field-error\" role=\"alert\">{}</p></div>",
            esc(e)
        );
    }
    out.push_str("<ul class=\"providers\">");
    for (n, i) in all.iter().enumerate() {
        let url = format!("{base}{}", i.path());
        let secret = if i.has_secret() {
            "<span class=\"badge on\">Secret set</span>"
        } else {
            "<span class=\"badge wait\">No secret yet</span>"
        };
        let name = i.name.as_deref().unwrap_or("");
        let code = i
            .code
            .as_deref()
            .map(|c| format!(" · default code <a href=\"/ui/codes/{0}\">{0}</a>", esc(c)))
            .unwrap_or_default();
        let error = match (&shown.error, &shown.secret_of) {
            (Some(e), Some(id)) if *id == i.id => (
                " aria-invalid=\"true\"",
                format!("<p class=\"field-error\" role=\"alert\">{}</p>", esc(e)),
            ),
            _ => ("", String::new()),
        };
        let _ = write!(
            out,
            "<li class=\"provider\"><div class=\"row spread\"><h3>{} <span class=\"hint\">{}</span></h3>{secret}</div>\
             <p class=\"hint\">Added {}{code}</p>\
             <label for=\"in-{n}\">Inbound URL: paste it in {}</label>\
             <div class=\"copy\"><input id=\"in-{n}\" readonly value=\"{}\"><button type=\"button\" data-copy=\"in-{n}\">Copy</button></div>\
             <div class=\"row start\"><form method=\"post\" action=\"/ui/integrations/providers/{id}/secret\" class=\"copy grow\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <label class=\"visually-hidden\" for=\"sec-{n}\">Signing secret</label>\
             <input id=\"sec-{n}\" name=\"secret\" type=\"password\" autocomplete=\"off\" placeholder=\"{}\"{}>\
             <button type=\"submit\">{}</button></form>\
             <form method=\"post\" action=\"/ui/integrations/providers/{id}/delete\" data-confirm=\"Delete this endpoint? The provider's events to it are refused from now on.\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><button type=\"submit\" class=\"danger\">Delete</button></form></div>{}</li>",
            match i.provider {
                Provider::Stripe => "Stripe",
                Provider::Shopify => "Shopify",
            },
            esc(name),
            html::datetime(u64::try_from(i.created_at).unwrap_or(0) * 1000, &jiff::tz::TimeZone::UTC) + " UTC",
            match i.provider {
                Provider::Stripe => "Stripe: Developers → Webhooks → Add endpoint",
                Provider::Shopify => "Shopify admin: Settings → Notifications → Webhooks",
            },
            esc(&url),
            match i.provider {
                Provider::Stripe => "whsec_…",
                Provider::Shopify => "The app's client secret",
            },
            error.0,
            if i.has_secret() { "Roll secret" } else { "Set secret" },
            error.1,
            id = esc(&i.id),
            csrf = esc(&ctx.csrf),
        );
    }
    if all.is_empty() {
        out.push_str("<li class=\"provider\">No payment-provider endpoints yet.</li>");
    }
    out.push_str("</ul>");
    let selected = |p: &str| {
        if shown.provider == p {
            " selected"
        } else {
            ""
        }
    };
    let _ = write!(
        out,
        "<form method=\"post\" action=\"/ui/integrations/providers\" class=\"pad form\"><h3>Add a provider endpoint</h3>\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <div class=\"pair three\"><div class=\"field\"><label for=\"pr-provider\">Provider</label>\
         <select id=\"pr-provider\" name=\"provider\"><option value=\"stripe\"{}>Stripe</option><option value=\"shopify\"{}>Shopify</option></select></div>\
         <div class=\"field\"><label for=\"pr-name\">Name (optional)</label><input id=\"pr-name\" name=\"name\" value=\"{}\" placeholder=\"Main shop\"></div>\
         <div class=\"field\"><label for=\"pr-code\">Default code (optional)</label><input id=\"pr-code\" name=\"code\" value=\"{}\" autocomplete=\"off\" spellcheck=\"false\" aria-describedby=\"pr-code-hint\">\
         <p class=\"hint\" id=\"pr-code-hint\">Credited when an order names neither a scan nor a code.</p></div></div>\
         <p><button type=\"submit\" class=\"primary\">Add endpoint</button></p></form></section>",
        esc(&ctx.csrf),
        selected("stripe"),
        selected("shopify"),
        esc(&shown.name),
        esc(&shown.code),
    );
    out
}

fn refused(shown: Shown, e: ConsoleError) -> Result<Done, ConsoleError> {
    let message = match e {
        ConsoleError::Invalid(v) => format!("{}: {}", v.field, v.message),
        ConsoleError::Conflict(m) => m,
        other => return Err(other),
    };
    Ok(Done::Show(
        StatusCode::UNPROCESSABLE_ENTITY,
        Shown {
            error: Some(message),
            ..shown
        },
    ))
}

fn settle<C: Console>(ctx: &Ctx<'_, C>, r: Result<Done, ConsoleError>) -> Done {
    match r {
        Ok(d) => d,
        Err(ConsoleError::NotFound(_)) => Done::Page(not_found(Some(ctx))),
        Err(e) => Done::Page(super::unavailable(&e)),
    }
}

/// `POST /ui/integrations/providers`.
pub async fn add<C: Console>(ctx: &Ctx<'_, C>, form: &Form) -> Done {
    if !ctx.is_admin() {
        return Done::Page(not_found(Some(ctx)));
    }
    let shown = Shown {
        provider: form.get("provider").to_string(),
        name: form.get("name").to_string(),
        code: form.get("code").to_string(),
        ..Shown::default()
    };
    let Some(provider) = Provider::parse(&shown.provider) else {
        return Done::Show(
            StatusCode::UNPROCESSABLE_ENTITY,
            Shown {
                error: Some("provider: choose Stripe or Shopify".into()),
                ..shown
            },
        );
    };
    let name = Some(shown.name.clone()).filter(|n| !n.is_empty());
    let code = Some(shown.code.clone()).filter(|c| !c.is_empty());
    let r = match ctx.console.add_integration(provider, name, code).await {
        Ok(_) => Ok(Done::Redirect("provider-added".into())),
        Err(e) => refused(shown, e),
    };
    settle(ctx, r)
}

/// `POST /ui/integrations/providers/{id}/secret`.
pub async fn set_secret<C: Console>(ctx: &Ctx<'_, C>, id: &str, form: &Form) -> Done {
    if !ctx.is_admin() {
        return Done::Page(not_found(Some(ctx)));
    }
    let shown = Shown {
        secret_of: Some(id.to_string()),
        ..Shown::default()
    };
    let r = match ctx
        .console
        .set_integration_secret(id, form.get("secret").to_string())
        .await
    {
        Ok(Some(_)) => Ok(Done::Redirect("secret-set".into())),
        Ok(None) => Err(ConsoleError::NotFound(id.into())),
        Err(e) => refused(shown, e),
    };
    settle(ctx, r)
}

/// `POST /ui/integrations/providers/{id}/delete`.
pub async fn delete<C: Console>(ctx: &Ctx<'_, C>, id: &str) -> Done {
    if !ctx.is_admin() {
        return Done::Page(not_found(Some(ctx)));
    }
    let r = match ctx.console.delete_integration(id).await {
        Ok(Some(_)) => Ok(Done::Redirect("provider-deleted".into())),
        Ok(None) => Err(ConsoleError::NotFound(id.into())),
        Err(e) => Err(e),
    };
    settle(ctx, r)
}
