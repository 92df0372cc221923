//! A change to a stored code (the API's PATCH, the console's edit form):
//! absent fields stay as they are.

use crate::{AppLinks, CodeRecord, CommissionPlan, QrStyle, RouteRule, Utm};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CodeChange {
    pub destination: Option<String>,
    pub owner: Option<String>,
    /// `Some(None)` clears the expiry. Unix seconds.
    pub expires_at: Option<Option<i64>>,
    pub enabled: Option<bool>,
    pub channels: Option<BTreeMap<String, Utm>>,
    /// `Some(None)` removes the commission plan.
    pub commission: Option<Option<CommissionPlan>>,
    pub attribution_window_days: Option<u32>,
    /// `Some(None)` removes the QR preset.
    pub qr: Option<Option<QrStyle>>,
    /// `Some(None)` removes the fallback URL.
    pub fallback_url: Option<Option<String>>,
    /// `Some(None)` removes the app links.
    pub app_links: Option<Option<AppLinks>>,
    pub in_app_escape: Option<bool>,
    pub visitor_token: Option<bool>,
    /// Replaces the routing rules (an empty list removes them).
    pub routes: Option<Vec<RouteRule>>,
}

impl CodeChange {
    /// Applies the change (validation is the caller's, on the result).
    pub fn apply(self, r: &mut CodeRecord, now: i64) {
        if let Some(d) = self.destination {
            r.destination = d;
        }
        if let Some(o) = self.owner {
            r.owner = o;
        }
        if let Some(e) = self.expires_at {
            r.expires_at = e;
        }
        if let Some(e) = self.enabled {
            r.enabled = e;
        }
        if let Some(c) = self.channels {
            r.channels = c;
        }
        if let Some(c) = self.commission {
            r.commission = c;
        }
        if let Some(w) = self.attribution_window_days {
            r.attribution_window_days = w;
        }
        if let Some(q) = self.qr {
            r.qr = q;
        }
        if let Some(f) = self.fallback_url {
            r.fallback_url = f;
        }
        if let Some(a) = self.app_links {
            r.app_links = a;
        }
        if let Some(e) = self.in_app_escape {
            r.in_app_escape = e;
        }
        if let Some(v) = self.visitor_token {
            r.visitor_token = v;
        }
        if let Some(routes) = self.routes {
            r.routes = routes;
        }
        r.updated_at = now;
    }
}
