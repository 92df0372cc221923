//! Webhooks out: endpoints that brands and creators register, the events
//! codelink sends them, and the durable outbox that delivers each event at
//! least once, signed in the Standard Webhooks format.
//!
//! - `events.rs` what is sent: each event's type, id (derived from its cause,
//!   so one cause never makes two events) and payload;
//! - `sign.rs` endpoint secrets (`whsec_` + base64 of 24 random bytes) and
//!   the `webhook-signature` header (HMAC-SHA256 over `{id}.{timestamp}.{body}`);
//! - `target.rs` which URLs may be endpoints (http/https, ≤ 2048 bytes, no
//!   loopback, private or link-local address unless allowed: SSRF);
//! - `outbox.rs` endpoints, deliveries (one per event and subscribed
//!   endpoint, fanned out when the event is enqueued) in a due-time index,
//!   endpoint health and each endpoint's log of its last 50 attempts: in the
//!   live store (redb tables in `scans.redb`, or Redis keys under the prefix);
//! - `deliver.rs` the delivery loop (a background task, never on a request's
//!   path): claims due deliveries under a lease, posts them (HTTP/1, 10 s),
//!   retries with backoff and jitter over about three days, disables an
//!   endpoint failing for days.

mod deliver;
pub mod events;
mod milestones;
mod outbox;
pub mod sign;
pub mod target;

pub use deliver::{backoff, DeliveryTasks, RETRY_STEPS};
pub use events::{CodeFacts, Event};

use crate::error::Error;
use crate::service::Analytics;
use codelink_shared::Principal;
use outbox::Outbox;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// Every event type an endpoint may subscribe to.
pub const EVENT_TYPES: [&str; 6] = [
    "conversion.created",
    "commission.confirmed",
    "conversion.refunded",
    "code.created",
    "code.disabled",
    "scan.milestone",
];

/// Most endpoints kept (over every owner).
pub const MAX_ENDPOINTS: usize = 100;
/// Most endpoints scoped to one owner (one creator key cannot take every
/// slot of [`MAX_ENDPOINTS`]).
pub const MAX_ENDPOINTS_PER_OWNER: usize = 10;
/// Attempts kept in an endpoint's delivery log.
pub const LOG_LEN: usize = 50;

/// How webhooks are delivered (`--webhook-*`).
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Endpoints may be loopback, private or link-local addresses (tests,
    /// receivers on the same network). Off by default: SSRF.
    pub allow_private: bool,
    /// The first retry's delay; later ones are multiples of it (see
    /// [`RETRY_STEPS`]). Default 5 s.
    pub retry_base: Duration,
    /// An endpoint whose attempts have all failed for this long is disabled.
    pub disable_after: Duration,
    /// One attempt may take this long (connect, send, status line).
    pub timeout: Duration,
    /// Attempts running at once (per instance).
    pub concurrency: usize,
    /// Extra PEM CA certificates trusted for https endpoints.
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            allow_private: false,
            retry_base: Duration::from_secs(5),
            disable_after: Duration::from_secs(5 * 86_400),
            timeout: Duration::from_secs(10),
            concurrency: 16,
            ca_file: None,
        }
    }
}

/// A registered endpoint, as stored (with its secret).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    /// Subscribed types, from [`EVENT_TYPES`].
    pub events: Vec<String>,
    #[serde(default)]
    pub description: String,
    /// Only events of this owner's codes; `None`: every event (admin).
    pub owner: Option<String>,
    /// `whsec_…`: shown once, when created.
    pub secret: String,
    /// `scan.milestone` every this many human scans of a code (0: none).
    #[serde(default)]
    pub milestone_every: u64,
    pub created_ms: u64,
}

/// Without the secret: an endpoint printed in a log or a panic does not leak it.
impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("description", &self.description)
            .field("owner", &self.owner)
            .field("milestone_every", &self.milestone_every)
            .field("created_ms", &self.created_ms)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    fn wants(&self, event: &Event) -> bool {
        self.events.iter().any(|t| t == event.kind)
            && self.owner.as_deref().is_none_or(|o| o == event.owner)
            && (event.kind != "scan.milestone"
                || (self.milestone_every > 0
                    && event
                        .milestone
                        .is_some_and(|n| n % self.milestone_every == 0)))
    }
}

impl Endpoint {
    /// Whether `who` may see, delete or re-enable this endpoint: the admin
    /// any; a creator the endpoints scoped to its own codes.
    pub fn visible_to(&self, who: &Principal) -> bool {
        match who {
            Principal::Admin => true,
            Principal::Creator(c) => self.owner.as_deref() == Some(c.as_str()),
            Principal::Ingest => false,
        }
    }
}

/// The owner a new endpoint gets when `who` asks for `asked` (the API's
/// `owner` field; the console's admin form): the admin any owner or none
/// (every event), a creator only itself. `None` for who may not make
/// endpoints at all (an ingest key).
pub fn owner_for(
    who: &Principal,
    asked: Option<String>,
) -> Option<Result<Option<String>, EndpointError>> {
    let invalid = |message: &str| EndpointError::Invalid {
        field: "owner",
        message: message.into(),
    };
    let owner = match who {
        Principal::Admin => asked,
        Principal::Creator(c) => {
            if asked.as_deref().is_some_and(|o| o != c) {
                return Some(Err(invalid(
                    "a creator key makes endpoints for its own codes only; leave owner out",
                )));
            }
            Some(c.clone())
        }
        Principal::Ingest => return None,
    };
    if owner
        .as_deref()
        .is_some_and(|o| o.is_empty() || o.len() > 64)
    {
        return Some(Err(invalid(
            "1 to 64 characters, or leave it out for every event",
        )));
    }
    Some(Ok(owner))
}

/// Why an endpoint gets nothing any more, until re-enabled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disabled {
    pub at_ms: u64,
    pub reason: String,
}

/// An endpoint's health: when its attempts started failing (every attempt
/// since then failed), and whether it is disabled.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub failing_since_ms: Option<u64>,
    pub disabled: Option<Disabled>,
}

/// One delivery attempt (or a decision about one), in an endpoint's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub event_id: String,
    pub event_type: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub at_ms: u64,
    /// The receiver's status code, if it answered.
    pub status: Option<u16>,
    /// What went wrong (connection refused, timeout, non-2xx…).
    pub error: Option<String>,
    pub duration_ms: u64,
    /// When it is tried again; `None`: delivered, given up or dropped.
    pub next_retry_ms: Option<u64>,
    /// What was decided besides (`endpoint disabled: …`, `gave up …`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What [`Analytics::webhook_endpoints`] returns for each endpoint.
#[derive(Debug, Clone)]
pub struct EndpointState {
    pub endpoint: Endpoint,
    pub health: Health,
    /// The last attempts, newest first.
    pub log: Vec<Attempt>,
}

/// Why an endpoint cannot be created.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// A field is wrong: the message says how.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Analytics(#[from] Error),
}

/// What a new endpoint is.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    pub url: String,
    pub events: Vec<String>,
    pub description: String,
    pub owner: Option<String>,
    pub milestone_every: u64,
}

/// Per-process counters for `/metrics`.
#[derive(Default)]
pub(crate) struct Metrics {
    delivered: AtomicU64,
    failed: AtomicU64,
    disabled: AtomicU64,
    gave_up: AtomicU64,
    depth: AtomicU64,
}

/// The webhook part of the analytics handle: the outbox and the delivery
/// settings (shared with the delivery loop).
pub(crate) struct Hub {
    outbox: Outbox,
    config: WebhookConfig,
    metrics: Metrics,
    /// Wakes the delivery loop when something was enqueued.
    wake: tokio::sync::Notify,
    /// The owner of a code, as the caller knows it (milestones name it).
    owners: std::sync::RwLock<Option<CodeOwners>>,
    tls: Arc<tokio_rustls::rustls::ClientConfig>,
}

/// Looks up the owner of a code (see [`Analytics::set_code_owners`]).
pub type CodeOwners = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

impl Hub {
    pub(crate) fn open(
        config: &crate::Config,
        embedded: &crate::sink::EmbeddedSink,
    ) -> Result<Arc<Self>, Error> {
        let outbox = match &config.redis {
            Some(r) => Outbox::redis(&r.target, &r.prefix)?,
            None => Outbox::embedded(embedded.database())?,
        };
        let tls = deliver::tls_config(config.webhooks.ca_file.as_deref()).map_err(Error::Open)?;
        Ok(Arc::new(Self {
            tls,
            outbox,
            config: config.webhooks.clone(),
            metrics: Metrics::default(),
            wake: tokio::sync::Notify::new(),
            owners: std::sync::RwLock::new(None),
        }))
    }

    fn owner_of(&self, code: &str) -> String {
        self.owners
            .read()
            .ok()
            .and_then(|o| o.as_ref().and_then(|f| f(code)))
            .unwrap_or_default()
    }

    /// Fans `events` out to the endpoints subscribed now and stores the
    /// deliveries, each event only if its id was never enqueued before.
    pub(crate) async fn enqueue(&self, events: &[Event]) -> Result<(), Error> {
        if events.is_empty() {
            return Ok(());
        }
        self.outbox.enqueue(events).await?;
        self.wake.notify_one();
        Ok(())
    }

    pub(crate) fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let m = &self.metrics;
        let _ = writeln!(out, "# HELP codelink_webhook_deliveries_total Webhook deliveries answered 2xx.\n# TYPE codelink_webhook_deliveries_total counter\ncodelink_webhook_deliveries_total {}", m.delivered.load(Relaxed));
        let _ = writeln!(out, "# HELP codelink_webhook_failed_attempts_total Webhook attempts that failed (non-2xx, timeout, connection error).\n# TYPE codelink_webhook_failed_attempts_total counter\ncodelink_webhook_failed_attempts_total {}", m.failed.load(Relaxed));
        let _ = writeln!(out, "# HELP codelink_webhook_given_up_total Webhook deliveries given up after the last retry.\n# TYPE codelink_webhook_given_up_total counter\ncodelink_webhook_given_up_total {}", m.gave_up.load(Relaxed));
        let _ = writeln!(out, "# HELP codelink_webhook_endpoints_disabled_total Webhook endpoints disabled by this instance.\n# TYPE codelink_webhook_endpoints_disabled_total counter\ncodelink_webhook_endpoints_disabled_total {}", m.disabled.load(Relaxed));
        let _ = writeln!(out, "# HELP codelink_webhook_outbox_depth Webhook deliveries pending (as last seen by the delivery loop).\n# TYPE codelink_webhook_outbox_depth gauge\ncodelink_webhook_outbox_depth {}", m.depth.load(Relaxed));
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Analytics {
    /// Registers an endpoint; the returned one carries its secret (the only
    /// time it is shown).
    pub async fn create_webhook(&self, new: NewEndpoint) -> Result<Endpoint, EndpointError> {
        let invalid =
            |field: &'static str, message: String| EndpointError::Invalid { field, message };
        let hub = self.webhooks();
        let url =
            target::check_url(&new.url, hub.config.allow_private).map_err(|m| invalid("url", m))?;
        if new.events.is_empty() {
            return Err(invalid(
                "events",
                format!("name at least one of: {}", EVENT_TYPES.join(", ")),
            ));
        }
        let mut events = Vec::new();
        for e in &new.events {
            if !EVENT_TYPES.contains(&e.as_str()) {
                return Err(invalid(
                    "events",
                    format!(
                        "'{e}' is not an event type; known: {}",
                        EVENT_TYPES.join(", ")
                    ),
                ));
            }
            if !events.contains(e) {
                events.push(e.clone());
            }
        }
        if events.iter().any(|e| e == "scan.milestone") && new.milestone_every == 0 {
            return Err(invalid(
                "milestone_every",
                "scan.milestone needs milestone_every (e.g. 1000: every 1000th human scan of a code)".into(),
            ));
        }
        if new.description.chars().count() > 500 {
            return Err(invalid("description", "at most 500 characters".into()));
        }
        let existing = hub.outbox.endpoints().await.map_err(Error::from)?;
        if existing.len() >= MAX_ENDPOINTS {
            return Err(invalid(
                "url",
                format!("at most {MAX_ENDPOINTS} endpoints; delete one first"),
            ));
        }
        if let Some(owner) = new.owner.as_deref() {
            if existing
                .iter()
                .filter(|e| e.owner.as_deref() == Some(owner))
                .count()
                >= MAX_ENDPOINTS_PER_OWNER
            {
                return Err(invalid(
                    "url",
                    format!(
                        "at most {MAX_ENDPOINTS_PER_OWNER} endpoints for one owner; delete one first"
                    ),
                ));
            }
        }
        let endpoint = Endpoint {
            id: format!("we_{}", random_hex(12)),
            url,
            events,
            description: new.description,
            owner: new.owner,
            secret: sign::new_secret(),
            milestone_every: new.milestone_every,
            created_ms: now_ms(),
        };
        hub.outbox
            .put_endpoint(&endpoint)
            .await
            .map_err(Error::from)?;
        Ok(endpoint)
    }

    /// Every endpoint with its health and log, by creation time.
    pub async fn webhook_endpoints(&self) -> Result<Vec<EndpointState>, Error> {
        let hub = self.webhooks();
        let mut out = Vec::new();
        let mut endpoints = hub.outbox.endpoints().await?;
        endpoints.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        for endpoint in endpoints {
            let health = hub.outbox.health(&endpoint.id).await?;
            let log = hub.outbox.log(&endpoint.id, 5).await?;
            out.push(EndpointState {
                endpoint,
                health,
                log,
            });
        }
        Ok(out)
    }

    /// One endpoint with its health and its whole log.
    pub async fn webhook_endpoint(&self, id: &str) -> Result<Option<EndpointState>, Error> {
        let hub = self.webhooks();
        let Some(endpoint) = hub.outbox.endpoint(id).await? else {
            return Ok(None);
        };
        Ok(Some(EndpointState {
            health: hub.outbox.health(id).await?,
            log: hub.outbox.log(id, LOG_LEN).await?,
            endpoint,
        }))
    }

    /// One endpoint with its health and whole log if `who` may see it
    /// ([`Endpoint::visible_to`]); `None` for another's, an unknown id or
    /// one that cannot be an endpoint id.
    pub async fn webhook_endpoint_for(
        &self,
        who: &Principal,
        id: &str,
    ) -> Result<Option<EndpointState>, Error> {
        if id.len() > 64 || !id.starts_with("we_") {
            return Ok(None);
        }
        Ok(self
            .webhook_endpoint(id)
            .await?
            .filter(|s| s.endpoint.visible_to(who)))
    }

    /// The endpoints `who` may see (see [`Endpoint::visible_to`]), by
    /// creation time, each with its last 5 attempts.
    pub async fn webhook_endpoints_for(
        &self,
        who: &Principal,
    ) -> Result<Vec<EndpointState>, Error> {
        let mut all = self.webhook_endpoints().await?;
        all.retain(|s| s.endpoint.visible_to(who));
        Ok(all)
    }

    /// Deletes an endpoint (its pending deliveries are dropped when due).
    pub async fn delete_webhook(&self, id: &str) -> Result<bool, Error> {
        Ok(self.webhooks().outbox.delete_endpoint(id).await?)
    }

    /// Re-enables a disabled endpoint (its failing time starts afresh); its
    /// deliveries kept meanwhile go out within a minute.
    pub async fn enable_webhook(&self, id: &str) -> Result<bool, Error> {
        let hub = self.webhooks();
        if hub.outbox.endpoint(id).await?.is_none() {
            return Ok(false);
        }
        hub.outbox.set_health(id, &Health::default()).await?;
        Ok(true)
    }

    /// How `scan.milestone` events learn the owner of a code (so that a
    /// creator's endpoint gets its own codes' milestones): the caller's code
    /// table. Without it milestones go to unscoped endpoints only.
    pub fn set_code_owners(&self, owners: CodeOwners) {
        if let Ok(mut o) = self.webhooks().owners.write() {
            *o = Some(owners);
        }
    }

    /// `code.created`: call once a new code is stored (the API, the console,
    /// bulk import). A failure is logged, not returned: the code is stored.
    pub async fn code_created(&self, code: &CodeFacts) {
        self.enqueue_logged(Event::code_created(code)).await;
    }

    /// `code.disabled`: call once a code that was enabled is stored disabled.
    pub async fn code_disabled(&self, code: &CodeFacts) {
        self.enqueue_logged(Event::code_disabled(code)).await;
    }

    /// `code.created` and `code.disabled` of many codes at once (a bulk
    /// import): one outbox write. A failure is logged, as above.
    pub async fn codes_changed(&self, created: &[CodeFacts], disabled: &[CodeFacts]) {
        let events: Vec<Event> = created
            .iter()
            .map(Event::code_created)
            .chain(disabled.iter().map(Event::code_disabled))
            .collect();
        if events.is_empty() {
            return;
        }
        if let Err(e) = self.webhooks().enqueue(&events).await {
            tracing::error!(events = events.len(), error = %e, "webhook events of an import could not be enqueued; they are not sent");
        }
    }

    async fn enqueue_logged(&self, event: Event) {
        if let Err(e) = self.webhooks().enqueue(std::slice::from_ref(&event)).await {
            tracing::error!(event_id = %event.id, event_type = event.kind, error = %e, "webhook event could not be enqueued; it is not sent");
        }
    }

    pub(crate) async fn enqueue_webhooks(&self, events: &[Event]) -> Result<(), Error> {
        self.webhooks().enqueue(events).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(owner: Option<&str>) -> Endpoint {
        Endpoint {
            id: "we_1".into(),
            url: "https://shop.example/hook".into(),
            events: vec!["code.created".into()],
            description: String::new(),
            owner: owner.map(Into::into),
            secret: "whsec_x".into(),
            milestone_every: 0,
            created_ms: 0,
        }
    }

    #[test]
    fn who_sees_and_makes_which_endpoint() {
        let alice = Principal::Creator("alice".into());
        assert!(endpoint(None).visible_to(&Principal::Admin));
        assert!(endpoint(Some("bob")).visible_to(&Principal::Admin));
        assert!(endpoint(Some("alice")).visible_to(&alice));
        assert!(!endpoint(Some("bob")).visible_to(&alice));
        assert!(!endpoint(None).visible_to(&alice));
        assert!(!endpoint(None).visible_to(&Principal::Ingest));

        let ok = |r: Option<Result<Option<String>, EndpointError>>| r.unwrap().unwrap();
        assert_eq!(ok(owner_for(&Principal::Admin, None)), None);
        assert_eq!(
            ok(owner_for(&Principal::Admin, Some("bob".into()))),
            Some("bob".into())
        );
        assert_eq!(ok(owner_for(&alice, None)), Some("alice".into()));
        assert_eq!(
            ok(owner_for(&alice, Some("alice".into()))),
            Some("alice".into())
        );
        let refused = owner_for(&alice, Some("bob".into())).unwrap().unwrap_err();
        assert!(matches!(
            refused,
            EndpointError::Invalid { field: "owner", .. }
        ));
        let long = owner_for(&Principal::Admin, Some("x".repeat(65))).unwrap();
        assert!(long.is_err());
        assert!(owner_for(&Principal::Ingest, None).is_none());
    }
}
