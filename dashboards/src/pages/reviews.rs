//! `/ui/reviews` (admin): conversions flagged by the fraud checks, newest
//! first, with their reasons and held earnings; approve (releases the held
//! earnings) or reject each, through `Analytics::decide_review` like the API.

use super::{html_response, not_found, redirect};
use crate::form::Form;
use crate::html::{self, esc};
use crate::{Console, Ctx, Response};
use codelink_analytics::query::Money;
use codelink_analytics::review::{Review, ReviewError, ReviewStatus};
use http::StatusCode;
use std::fmt::Write;

const PAGE: usize = 50;

fn row<C: Console>(ctx: &Ctx<'_, C>, r: &Review, out: &mut String) {
    let c = &r.conversion;
    let utc = jiff::tz::TimeZone::UTC;
    let flags: String = c
        .flagged
        .as_ref()
        .map(|f| {
            f.flags
                .iter()
                .map(|f| format!("<span class=\"badge wait\">{}</span>", esc(f)))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let held = Money {
        currency: c.earnings_currency.clone(),
        amount: i128::from(r.held()),
    };
    let actions = if r.status == ReviewStatus::Pending {
        let form = |decision: &str, label: &str, class: &str| {
            format!(
                "<form method=\"post\" action=\"/ui/reviews\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                 <input type=\"hidden\" name=\"event_id\" value=\"{}\">\
                 <input type=\"hidden\" name=\"decision\" value=\"{decision}\">\
                 <button type=\"submit\" class=\"{class}\">{label}</button></form>",
                esc(&ctx.csrf),
                esc(&c.event_id)
            )
        };
        format!(
            "<div class=\"buttons\">{}{}</div>",
            form("approve", "Approve", "primary"),
            form("reject", "Reject", "danger")
        )
    } else {
        r.decisions
            .last()
            .map(|d| {
                format!(
                    "{} by <code>{}</code>, {} UTC{}",
                    esc(&d.decision),
                    esc(&d.by),
                    html::datetime(d.at_ms, &utc),
                    if d.note.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", esc(&d.note))
                    }
                )
            })
            .unwrap_or_default()
    };
    let _ = write!(
        out,
        "<tr><td><code>{}</code></td><td>{flags}</td><td class=\"num\">{}</td>\
         <td>{actions}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        esc(&c.event_id),
        if c.earnings_currency.is_empty() {
            "–".to_string()
        } else {
            html::money(&held)
        },
        c.kind.as_str(),
        if c.code.is_empty() {
            "–".to_string()
        } else {
            format!(
                "<a href=\"/ui/codes/{0}\">{0}</a> <span class=\"hint\">{1}</span>",
                esc(&c.code),
                esc(&c.owner)
            )
        },
        html::datetime(c.received_ms, &utc),
        esc(if c.customer_id.is_empty() {
            "–"
        } else {
            &c.customer_id
        }),
        esc(c.rule.as_str()),
    );
}

fn page<C: Console>(
    ctx: &Ctx<'_, C>,
    status: ReviewStatus,
    reviews: &[Review],
    next: Option<&str>,
    notice: Option<&str>,
) -> String {
    let mut body = String::from("<div class=\"head\"><h1>Reviews</h1></div>");
    if let Some(n) = notice {
        let _ = write!(
            body,
            "<section class=\"card\" role=\"alert\"><p>{}</p></section>",
            esc(n)
        );
    }
    body.push_str("<nav class=\"tabs\" aria-label=\"Status\">");
    for s in [
        ReviewStatus::Pending,
        ReviewStatus::Approved,
        ReviewStatus::Rejected,
    ] {
        let current = if s == status {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(
            body,
            "<a class=\"button\" href=\"/ui/reviews?status={0}\"{current}>{0}</a>",
            s.as_str()
        );
    }
    body.push_str("</nav>");
    body.push_str(
        "<section class=\"card flush\"><h2 class=\"pad\">Flagged conversions</h2>\
         <p class=\"pad hint\">A flagged conversion earns nothing until approved; \
         approving releases what it holds.</p><div class=\"scroll\"><table class=\"data reviews\"><thead><tr>\
         <th scope=\"col\">Event</th><th scope=\"col\">Reasons</th>\
         <th scope=\"col\" class=\"num\">Held</th><th scope=\"col\">Decision</th>\
         <th scope=\"col\">Type</th><th scope=\"col\">Code</th>\
         <th scope=\"col\">Received (UTC)</th><th scope=\"col\">Customer</th>\
         <th scope=\"col\">Rule</th></tr></thead><tbody>",
    );
    for r in reviews {
        row(ctx, r, &mut body);
    }
    if reviews.is_empty() {
        body.push_str("<tr><td colspan=\"9\">Nothing here.</td></tr>");
    }
    body.push_str("</tbody></table></div></section>");
    if let Some(next) = next {
        let _ = write!(
            body,
            "<p><a class=\"button\" href=\"/ui/reviews?status={}&amp;cursor={}\">Older</a></p>",
            status.as_str(),
            html::qv(next)
        );
    }
    html::page(&ctx.frame("Reviews", "reviews"), &body)
}

async fn render<C: Console>(ctx: &Ctx<'_, C>, code: StatusCode, notice: Option<&str>) -> Response {
    let status = ctx
        .param("status")
        .and_then(ReviewStatus::parse)
        .unwrap_or(ReviewStatus::Pending);
    let cursor = ctx.param("cursor").filter(|c| !c.is_empty());
    match ctx
        .console
        .analytics()
        .reviews(status, None, cursor, PAGE)
        .await
    {
        Ok(p) => html_response(
            code,
            page(ctx, status, &p.reviews, p.next.as_deref(), notice),
        ),
        Err(e) => super::analytics_error(ctx, e),
    }
}

pub async fn list<C: Console>(ctx: &Ctx<'_, C>) -> Response {
    if !ctx.is_admin() {
        return not_found(Some(ctx));
    }
    render(ctx, StatusCode::OK, None).await
}

pub async fn decide<C: Console>(ctx: &Ctx<'_, C>, form: &Form) -> Response {
    if !ctx.is_admin() {
        return not_found(Some(ctx));
    }
    let approve = match form.get("decision") {
        "approve" => true,
        "reject" => false,
        _ => {
            return render(
                ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some("Choose approve or reject."),
            )
            .await
        }
    };
    let by = format!("admin:{}", ctx.session.key_id);
    match ctx
        .console
        .analytics()
        .decide_review(form.get("event_id"), approve, "", &by, crate::now_ms())
        .await
    {
        Ok(_) => redirect("/ui/reviews"),
        Err(e @ ReviewError::NotFound(_)) | Err(e @ ReviewError::AlreadyDecided { .. }) => {
            let code = if matches!(e, ReviewError::NotFound(_)) {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::CONFLICT
            };
            render(ctx, code, Some(&e.to_string())).await
        }
        Err(ReviewError::Analytics(e)) => super::analytics_error(ctx, e),
    }
}
