//! The delivery loop: a background task per instance (never on a request's
//! path). Each turn it claims the deliveries that are due (at most as many
//! as it has free attempt slots, `concurrency`), leasing them in Redis so
//! that another instance does not take them, and posts each one:
//! - 2xx: delivered, removed from the outbox;
//! - anything else, a timeout or a connection error: retried after
//!   [`backoff`] — the same event id, a fresh timestamp and signature — until
//!   the last step of [`RETRY_STEPS`] has failed (about three days), then
//!   given up (logged);
//! - 410 Gone disables the endpoint at once; an endpoint whose attempts have
//!   all failed for `disable_after` is disabled. A disabled endpoint gets no
//!   new events; its pending deliveries are kept (looked at again every
//!   minute) and go out once it is re-enabled, unless older than three days.
//!
//! At most once per lease: an instance that dies mid-attempt leaves its
//! deliveries leased; the lease (3 × the attempt timeout + 30 s) expires and
//! another instance (or the same, restarted) retries them with the same id.

use super::outbox::Delivery;
use super::{sign, target, Attempt, Disabled, Health, Hub};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// The retries' delays in units of the base delay (5 s by default): 5 s,
/// 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 8 h, 12 h, 24 h, 24 h — each
/// drawn at random between half and all of it, so retries of many
/// deliveries spread out and the whole schedule spans 38 to 76 hours.
pub const RETRY_STEPS: [u64; 12] = [
    1, 6, 24, 120, 360, 720, 1440, 2880, 5760, 8640, 17280, 17280,
];

/// A delivery of a disabled endpoint is looked at again this often (a
/// minute; less when the retry base is below 5 s, as in tests).
fn parked(base: Duration) -> Duration {
    (base * 12).min(Duration::from_secs(60))
}

/// The delay after `failed` failed attempts (1 for the first), `unit` in
/// [0, 1] choosing within the jitter; `None`: give up.
pub fn backoff(base: Duration, failed: u32, unit: f64) -> Option<Duration> {
    let step = *RETRY_STEPS.get((failed as usize).checked_sub(1)?)?;
    let full = (base.as_millis() as u64).saturating_mul(step);
    let half = full / 2;
    Some(Duration::from_millis(
        half + (unit.clamp(0.0, 1.0) * (full - half) as f64) as u64,
    ))
}

/// The running delivery loop; [`DeliveryTasks::stop`] ends it.
pub struct DeliveryTasks {
    stop: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
    milestones: tokio::task::JoinHandle<()>,
}

impl DeliveryTasks {
    pub(crate) fn start(
        hub: Arc<Hub>,
        live: crate::sink::LiveStore,
        written: tokio::sync::mpsc::Receiver<crate::batch::HumanScans>,
    ) -> Self {
        let (stop, rx) = watch::channel(false);
        let milestones = tokio::spawn(super::milestones::run(hub.clone(), live, written));
        let handle = tokio::spawn(run(hub, rx));
        Self {
            stop,
            handle,
            milestones,
        }
    }

    /// Takes no more deliveries and lets the attempts under way finish,
    /// within `deadline` (those cut short are retried once their lease ends).
    /// The milestone task goes on: it ends in [`Milestones::finish`], once
    /// the recorder has written its last batches.
    pub async fn stop(self, deadline: Duration) -> Milestones {
        let _ = self.stop.send(true);
        let mut handle = self.handle;
        if tokio::time::timeout(deadline, &mut handle).await.is_err() {
            handle.abort();
            let _ = handle.await;
            tracing::warn!("webhook attempts still under way at the shutdown deadline were cut short; they are retried later");
        }
        Milestones(self.milestones)
    }
}

/// The milestone task, still running after [`DeliveryTasks::stop`].
#[must_use = "call finish() once the recorder has stopped"]
pub struct Milestones(tokio::task::JoinHandle<()>);

impl Milestones {
    /// Waits, within `deadline`, for the milestone task to read the last
    /// batches the recorder wrote (it ends when the recorder's side of its
    /// channel is gone), so nothing holds the store once this returns.
    pub async fn finish(self, deadline: Duration) {
        let mut handle = self.0;
        if tokio::time::timeout(deadline, &mut handle).await.is_err() {
            handle.abort();
            let _ = handle.await;
            tracing::warn!(
                "webhook milestones of the last batches were cut short at the shutdown deadline"
            );
        }
    }
}

fn lease(hub: &Hub) -> Duration {
    hub.config.timeout * 3 + Duration::from_secs(30)
}

async fn run(hub: Arc<Hub>, mut stop: watch::Receiver<bool>) {
    let client = Arc::new(Client {
        timeout: hub.config.timeout,
        allow_private: hub.config.allow_private,
        tls: tokio_rustls::TlsConnector::from(hub.tls.clone()),
    });
    let slots = Arc::new(Semaphore::new(hub.config.concurrency.max(1)));
    let busy: Arc<Mutex<HashSet<String>>> = Arc::default();
    let poll = hub
        .config
        .retry_base
        .clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut running = JoinSet::new();
    let mut last_error = None::<Instant>;
    let mut turns = 0u64;
    loop {
        while running.try_join_next().is_some() {}
        let free = slots.available_permits();
        if free > 0 {
            let now = super::now_ms();
            let taken = busy.lock().map(|b| b.clone()).unwrap_or_default();
            let lease_until = now + lease(&hub).as_millis() as u64;
            match hub.outbox.claim(now, lease_until, free, taken).await {
                Ok(due) => {
                    for d in due {
                        let Ok(permit) = slots.clone().acquire_owned().await else {
                            break;
                        };
                        if let Ok(mut b) = busy.lock() {
                            b.insert(d.id.clone());
                        }
                        let (hub, client, busy) = (hub.clone(), client.clone(), busy.clone());
                        running.spawn(async move {
                            let id = d.id.clone();
                            if let Err(e) = attempt(&hub, &client, d).await {
                                tracing::warn!(delivery = %id, error = %e, "webhook outbox unavailable; the delivery is retried");
                            }
                            if let Ok(mut b) = busy.lock() {
                                b.remove(&id);
                            }
                            drop(permit);
                        });
                    }
                }
                Err(e) => {
                    // Once a minute at most: the store may be down for long.
                    if last_error.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                        tracing::warn!(error = %e, "webhook outbox unavailable; deliveries wait");
                        last_error = Some(Instant::now());
                    }
                }
            }
        }
        if turns.is_multiple_of(20) {
            if let Ok(depth) = hub.outbox.depth().await {
                hub.metrics
                    .depth
                    .store(depth, std::sync::atomic::Ordering::Relaxed);
            }
        }
        turns += 1;
        tokio::select! {
            _ = stop.changed() => break,
            _ = tokio::time::sleep(poll) => {}
            _ = hub.wake.notified() => {}
        }
    }
    while running.join_next().await.is_some() {}
}

/// One attempt of `d` (or, for a disabled or deleted endpoint, what to do
/// with it instead).
async fn attempt(
    hub: &Hub,
    client: &Client,
    mut d: Delivery,
) -> Result<(), crate::sink::SinkError> {
    use std::sync::atomic::Ordering::Relaxed;
    let outbox = &hub.outbox;
    let now = super::now_ms();
    let Some(endpoint) = outbox.endpoint(&d.endpoint_id).await? else {
        // Deleted: nothing to send it to.
        return outbox.finish(&d).await;
    };
    let health = outbox.health(&endpoint.id).await?;
    let give_up_ms = RETRY_STEPS.iter().sum::<u64>() * hub.config.retry_base.as_millis() as u64;
    if health.disabled.is_some() {
        if now.saturating_sub(d.created_ms) > give_up_ms {
            outbox.finish(&d).await?;
            let note = "dropped: the endpoint stayed disabled past the retry schedule".to_string();
            return outbox
                .push_log(
                    &endpoint.id,
                    &log_entry(&d, now, None, None, 0, None, Some(note)),
                )
                .await;
        }
        let old = d.due_ms;
        d.due_ms = now + parked(hub.config.retry_base).as_millis() as u64;
        return outbox.reschedule(&d, old).await;
    }
    let n = d.attempts + 1;
    let ts = now / 1000;
    let signature = sign::sign(&endpoint.secret, &d.event_id, ts, d.body.as_bytes());
    let started = Instant::now();
    let result = client
        .post(&endpoint.url, &d.event_id, ts, &signature, d.body.clone())
        .await;
    let took = started.elapsed().as_millis() as u64;
    let (status, error) = match &result {
        Ok(s) if (200..300).contains(s) => {
            outbox.finish(&d).await?;
            hub.metrics.delivered.fetch_add(1, Relaxed);
            if health.failing_since_ms.is_some() {
                outbox.set_health(&endpoint.id, &Health::default()).await?;
            }
            return outbox
                .push_log(
                    &endpoint.id,
                    &log_entry(&d, now, Some(*s), None, took, None, None).numbered(n),
                )
                .await;
        }
        Ok(s) => (Some(*s), Some(format!("answered {s}"))),
        Err(e) => (None, Some(e.clone())),
    };
    hub.metrics.failed.fetch_add(1, Relaxed);
    let failing_since = health.failing_since_ms.unwrap_or(now);
    let mut notes = Vec::new();
    let disabled = if status == Some(410) {
        Some("the endpoint answered 410 Gone".to_string())
    } else if now.saturating_sub(failing_since) >= hub.config.disable_after.as_millis() as u64 {
        Some(format!(
            "every attempt failed for {} s (since {})",
            (now - failing_since) / 1000,
            super::events::rfc3339(failing_since)
        ))
    } else {
        None
    };
    if let Some(reason) = &disabled {
        hub.metrics.disabled.fetch_add(1, Relaxed);
        tracing::warn!(endpoint = %endpoint.id, url = %endpoint.url, %reason, "webhook endpoint disabled");
        notes.push(format!("endpoint disabled: {reason}"));
    }
    let new_health = Health {
        failing_since_ms: Some(failing_since),
        disabled: disabled.map(|reason| Disabled { at_ms: now, reason }),
    };
    if new_health != health {
        outbox.set_health(&endpoint.id, &new_health).await?;
    }
    let unit: f64 = rand::random();
    let next = match backoff(hub.config.retry_base, n, unit) {
        Some(delay) => {
            let old = d.due_ms;
            d.attempts = n;
            d.due_ms = now + delay.as_millis() as u64;
            outbox.reschedule(&d, old).await?;
            Some(d.due_ms)
        }
        None => {
            outbox.finish(&d).await?;
            hub.metrics.gave_up.fetch_add(1, Relaxed);
            tracing::warn!(endpoint = %endpoint.id, event_id = %d.event_id, attempts = n, "webhook delivery given up");
            notes.push(format!("gave up after {n} attempts"));
            None
        }
    };
    let note = (!notes.is_empty()).then(|| notes.join("; "));
    outbox
        .push_log(
            &endpoint.id,
            &log_entry(&d, now, status, error, took, next, note).numbered(n),
        )
        .await
}

fn log_entry(
    d: &Delivery,
    at_ms: u64,
    status: Option<u16>,
    error: Option<String>,
    duration_ms: u64,
    next_retry_ms: Option<u64>,
    note: Option<String>,
) -> Attempt {
    Attempt {
        event_id: d.event_id.clone(),
        event_type: d.event_type.clone(),
        attempt: d.attempts,
        at_ms,
        status,
        error,
        duration_ms,
        next_retry_ms,
        note,
    }
}

impl Attempt {
    fn numbered(mut self, n: u32) -> Self {
        self.attempt = n;
        self
    }
}

/// Posts webhooks: HTTP/1.1, one connection per attempt.
struct Client {
    timeout: Duration,
    allow_private: bool,
    tls: tokio_rustls::TlsConnector,
}

/// TLS for https endpoints: Mozilla's roots (webpki-roots) and those of
/// `ca_file` (PEM), rustls with the ring provider, TLS 1.2 and 1.3.
pub(crate) fn tls_config(
    ca_file: Option<&std::path::Path>,
) -> Result<Arc<tokio_rustls::rustls::ClientConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let shown = path.display();
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("--webhook-ca-file {shown}: {e}"))?;
        let mut added = 0;
        for cert in certs {
            let cert = cert.map_err(|e| format!("--webhook-ca-file {shown}: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("--webhook-ca-file {shown}: {e}"))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!(
                "--webhook-ca-file {shown}: no PEM certificate in it"
            ));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

impl Client {
    /// The status the receiver answered, or what went wrong.
    async fn post(
        &self,
        url: &str,
        id: &str,
        ts: u64,
        signature: &str,
        body: String,
    ) -> Result<u16, String> {
        match tokio::time::timeout(self.timeout, self.exchange(url, id, ts, signature, body)).await
        {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {} ms", self.timeout.as_millis())),
        }
    }

    async fn exchange(
        &self,
        url: &str,
        id: &str,
        ts: u64,
        signature: &str,
        body: String,
    ) -> Result<u16, String> {
        let url = url::Url::parse(url).map_err(|e| format!("bad URL: {e}"))?;
        let port = url.port_or_known_default().unwrap_or(80);
        let addrs: Vec<SocketAddr> = match url.host() {
            Some(url::Host::Ipv4(a)) => vec![SocketAddr::from((a, port))],
            Some(url::Host::Ipv6(a)) => vec![SocketAddr::from((a, port))],
            Some(url::Host::Domain(d)) => tokio::net::lookup_host((d, port))
                .await
                .map_err(|e| format!("cannot resolve {d}: {e}"))?
                .collect(),
            None => return Err("no host".into()),
        };
        let allowed: Vec<SocketAddr> = addrs
            .iter()
            .copied()
            .filter(|a| self.allow_private || target::public(a.ip()))
            .collect();
        if allowed.is_empty() {
            return Err(
                "the host resolves only to loopback, private or link-local addresses: refused"
                    .into(),
            );
        }
        let stream = tokio::net::TcpStream::connect(&allowed[..])
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let host = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let request = http::Request::post(path)
            .header(http::header::HOST, host)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(
                http::header::USER_AGENT,
                concat!("codelink-webhooks/", env!("CARGO_PKG_VERSION")),
            )
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        match url.scheme() {
            "https" => {
                let name = url
                    .host_str()
                    .unwrap_or_default()
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string();
                let name = rustls_pki_types::ServerName::try_from(name)
                    .map_err(|e| format!("bad TLS server name: {e}"))?;
                let tls = self
                    .tls
                    .connect(name, stream)
                    .await
                    .map_err(|e| format!("TLS handshake failed: {e}"))?;
                send(TokioIo::new(tls), request).await
            }
            _ => send(TokioIo::new(stream), request).await,
        }
    }
}

async fn send<I>(io: I, request: http::Request<Full<Bytes>>) -> Result<u16, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let result = sender
        .send_request(request)
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| format!("request failed: {e}"));
    driver.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_spans_over_a_day_and_ends() {
        let base = Duration::from_secs(5);
        let (mut least, mut most) = (0u64, 0u64);
        for n in 1..=RETRY_STEPS.len() as u32 {
            let lo = backoff(base, n, 0.0).unwrap();
            let hi = backoff(base, n, 1.0).unwrap();
            assert!(lo <= hi && hi <= lo * 2 + Duration::from_millis(1), "{n}");
            least += lo.as_secs();
            most += hi.as_secs();
        }
        assert_eq!(backoff(base, 1, 1.0), Some(Duration::from_secs(5)));
        assert_eq!(backoff(base, 2, 1.0), Some(Duration::from_secs(30)));
        assert!(least >= 24 * 3600, "the shortest schedule spans {least} s");
        assert!(most <= 4 * 86_400, "the longest schedule spans {most} s");
        assert_eq!(backoff(base, RETRY_STEPS.len() as u32 + 1, 0.5), None);
        assert_eq!(backoff(base, 0, 0.5), None);
        // A test's base scales every step.
        assert_eq!(
            backoff(Duration::from_millis(100), 1, 1.0),
            Some(Duration::from_millis(100))
        );
    }
}
