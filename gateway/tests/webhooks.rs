//! Webhooks out, end to end: a real gateway posts to a local receiver (a
//! hyper server in this test) that checks every signature with the
//! endpoint's secret, fails on purpose, goes away and comes back; gateways
//! restart in between; two gateways share one real Redis.

mod common;

use codelink_analytics::webhooks::sign;
use codelink_testkit::RedisServer;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Got {
    id: String,
    timestamp: u64,
    signature: String,
    body: String,
    answered: u16,
}

impl Got {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

#[derive(Default)]
struct Shared {
    got: Mutex<Vec<Got>>,
    /// Answer 500 to this many requests, then 2xx.
    fail: AtomicU32,
    /// Answer this status to every request instead (0: none).
    always: AtomicU32,
}

/// A webhook receiver on 127.0.0.1 that can stop listening and come back
/// on the same port.
struct Receiver {
    port: u16,
    shared: Arc<Shared>,
    task: Option<tokio::task::JoinHandle<()>>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Receiver {
    async fn start() -> Self {
        Self::start_with(None).await
    }

    async fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared::default());
        let task = Some(tokio::spawn(serve(listener, shared.clone(), tls.clone())));
        Self {
            port,
            shared,
            task,
            tls,
        }
    }

    fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}/hooks?x=1", self.port)
    }

    /// Stops listening: connections are refused.
    fn go_away(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    async fn come_back(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap();
        self.task = Some(tokio::spawn(serve(
            listener,
            self.shared.clone(),
            self.tls.clone(),
        )));
    }

    fn got(&self) -> Vec<Got> {
        self.shared.got.lock().unwrap().clone()
    }

    /// The requests answered 2xx, by event id.
    fn delivered(&self) -> BTreeMap<String, Vec<Got>> {
        let mut out: BTreeMap<String, Vec<Got>> = BTreeMap::new();
        for g in self.got() {
            if (200..300).contains(&g.answered) {
                out.entry(g.id.clone()).or_default().push(g);
            }
        }
        out
    }

    /// The delivered events of `kind`.
    fn of_type(&self, kind: &str) -> Vec<Value> {
        self.delivered()
            .values()
            .map(|g| g[0].json())
            .filter(|v| v["type"] == kind)
            .collect()
    }

    async fn wait_for(&self, what: &str, mut done: impl FnMut(&Self) -> bool) {
        let ok = codelink_testkit::wait_until(Duration::from_secs(20), || {
            let d = done(self);
            async move { d }
        })
        .await;
        assert!(ok, "timed out waiting for {what}; got {:#?}", self.got());
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.go_away();
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let shared = shared.clone();
        match tls.clone() {
            None => {
                tokio::spawn(answer(stream, shared));
            }
            Some(acceptor) => {
                tokio::spawn(async move {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        answer(stream, shared).await;
                    }
                });
            }
        }
    }
}

async fn answer<S>(stream: S, shared: Arc<Shared>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    {
        let service =
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let shared = shared.clone();
                async move {
                    let header = |n: &str| {
                        req.headers()
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string()
                    };
                    let (id, ts, sig) = (
                        header("webhook-id"),
                        header("webhook-timestamp"),
                        header("webhook-signature"),
                    );
                    assert_eq!(header("content-type"), "application/json");
                    assert!(header("user-agent").starts_with("codelink-webhooks/"));
                    assert_eq!(req.uri().path_and_query().unwrap().as_str(), "/hooks?x=1");
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    let always = shared.always.load(SeqCst) as u16;
                    let status = if always != 0 {
                        always
                    } else if shared
                        .fail
                        .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
                        .is_ok()
                    {
                        500
                    } else {
                        204
                    };
                    shared.got.lock().unwrap().push(Got {
                        id,
                        timestamp: ts.parse().unwrap_or(0),
                        signature: sig,
                        body: String::from_utf8(body.to_vec()).unwrap(),
                        answered: status,
                    });
                    Ok::<_, std::convert::Infallible>(
                        hyper::Response::builder()
                            .status(status)
                            .body(http_body_util::Full::new(bytes::Bytes::new()))
                            .unwrap(),
                    )
                }
            });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .await;
    }
}

/// Test settings: receivers on 127.0.0.1, retries from 50 ms.
fn config() -> (gateway::Config, tempfile::TempDir) {
    let (mut c, tmp) = common::config();
    c.webhook_allow_private = true;
    c.webhook_retry_base_ms = 50;
    c.webhook_timeout_ms = 2_000;
    // commission.confirmed is due at the end of the hour the conversion
    // occurred in; the tests report conversions of two hours ago.
    c.hold_days = 0;
    c.shutdown_timeout_secs = 3;
    (c, tmp)
}

fn two_hours_ago() -> String {
    let t = time::OffsetDateTime::now_utc() - time::Duration::hours(2);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Every request the receiver got carries a signature that verifies with
/// `secret` (and a body changed by one byte does not).
fn assert_signed(rx: &Receiver, secret: &str) {
    let got = rx.got();
    assert!(!got.is_empty());
    for g in &got {
        assert!(g.id.starts_with("evt_"), "{g:?}");
        assert!(
            sign::verify(secret, &g.id, g.timestamp, g.body.as_bytes(), &g.signature),
            "signature of {g:?}"
        );
        let tampered = g.body.replacen('"', "'", 1);
        assert!(!sign::verify(
            secret,
            &g.id,
            g.timestamp,
            tampered.as_bytes(),
            &g.signature
        ));
        assert!(!sign::verify(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            &g.id,
            g.timestamp,
            g.body.as_bytes(),
            &g.signature
        ));
        assert_eq!(g.json()["id"], g.id.as_str());
    }
}

async fn endpoint(gw: &common::TestGateway, body: Value) -> (String, String) {
    let r = gw.admin.post_json("/api/v1/webhooks", &body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    let secret = v["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"), "{secret}");
    (v["id"].as_str().unwrap().to_string(), secret)
}

const ALL_BUT_MILESTONES: [&str; 5] = [
    "conversion.created",
    "commission.confirmed",
    "conversion.refunded",
    "code.created",
    "code.disabled",
];

#[tokio::test]
async fn every_event_is_delivered_signed_through_failures_an_outage_and_a_restart() {
    let mut rx = Receiver::start().await;
    let (config, tmp) = config();
    let mut gw = common::start_with(config.clone(), Some(tmp)).await;
    let (id, secret) = endpoint(
        &gw,
        json!({"url": rx.url(), "events": ALL_BUT_MILESTONES, "description": "shop"}),
    )
    .await;
    // The secret is shown once.
    let one = gw.admin.get(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(one.status, 200);
    assert!(!one.text().contains(&secret));
    assert_eq!(one.json()["status"], "enabled");

    // code.created, after two 500s: three requests, one id.
    rx.shared.fail.store(2, SeqCst);
    assert_eq!(gw.create(common::alice()).await.status, 201);
    rx.wait_for("code.created", |rx| !rx.of_type("code.created").is_empty())
        .await;
    let created = rx.of_type("code.created");
    assert_eq!(created[0]["data"]["code"], "alice10");
    assert_eq!(created[0]["data"]["owner"], "alice");
    let tries: Vec<Got> = rx
        .got()
        .into_iter()
        .filter(|g| g.id == created[0]["id"])
        .collect();
    assert_eq!(
        tries.iter().map(|g| g.answered).collect::<Vec<_>>(),
        [500, 500, 204]
    );
    // A retry is a new attempt: same id and body, its own timestamp and signature.
    assert!(tries.iter().all(|g| g.body == tries[0].body));

    // The delivery log shows the failures (written just after the receiver answered).
    let logged = codelink_testkit::wait_until(Duration::from_secs(5), || async {
        let v = gw.admin.get(&format!("/api/v1/webhooks/{id}")).await.json();
        v["log"].as_array().is_some_and(|l| l.len() == 3)
    })
    .await;
    assert!(logged);
    let log = gw.admin.get(&format!("/api/v1/webhooks/{id}")).await.json();
    let log = log["log"].as_array().unwrap().clone();
    assert_eq!(log.len(), 3, "{log:#?}");
    assert_eq!(log[0]["status"], 204);
    assert_eq!(log[0]["attempt"], 3);
    assert_eq!(log[2]["status"], 500);
    assert_eq!(log[2]["attempt"], 1);
    assert!(log[2]["next_retry_at"].is_string());
    assert!(log[2]["error"].as_str().unwrap().contains("500"));

    // A purchase and its refund: conversion.created, commission.confirmed
    // (past its hold), conversion.refunded with the clawback.
    let report = json!([
        {"event_id": "order-1", "type": "purchase", "code": "ALICE10", "customer_id": "c1",
         "amount": 10000, "currency": "EUR", "occurred_at": two_hours_ago()},
        {"event_id": "refund-1", "type": "refund", "purchase_event_id": "order-1",
         "amount": 5000, "occurred_at": two_hours_ago()},
    ]);
    let r = gw.admin.post_json("/api/v1/conversions", &report).await;
    assert_eq!(r.status, 202, "{}", r.text());
    rx.wait_for("conversion events", |rx| {
        !rx.of_type("conversion.created").is_empty()
            && !rx.of_type("commission.confirmed").is_empty()
            && !rx.of_type("conversion.refunded").is_empty()
    })
    .await;
    let conv = &rx.of_type("conversion.created")[0]["data"];
    assert_eq!(conv["event_id"], "order-1");
    assert_eq!(conv["code"], "alice10");
    assert_eq!(conv["rule"], "code_only");
    assert_eq!(conv["earnings"], json!({"amount": 1000, "currency": "EUR"}));
    let confirmed = &rx.of_type("commission.confirmed")[0]["data"];
    assert_eq!(confirmed["earnings"]["amount"], 1000);
    let refund = &rx.of_type("conversion.refunded")[0]["data"];
    assert_eq!(refund["purchase_event_id"], "order-1");
    assert_eq!(
        refund["clawback"],
        json!({"amount": 500, "currency": "EUR"})
    );

    // The brand's retry makes no second event.
    let before = rx.delivered().len();
    let r = gw.admin.post_json("/api/v1/conversions", &report).await;
    assert_eq!(r.status, 202, "{}", r.text());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(rx.delivered().len(), before);

    // The receiver goes away; the code is disabled; the attempt fails; the
    // gateway restarts; the receiver comes back: delivered, from disk.
    rx.go_away();
    let r = gw
        .admin
        .patch_json("/api/v1/codes/alice10", &json!({"enabled": false}))
        .await;
    assert_eq!(r.status, 200);
    let failed = codelink_testkit::wait_until(Duration::from_secs(10), || async {
        let v = gw.admin.get(&format!("/api/v1/webhooks/{id}")).await.json();
        v["log"][0]["type"] == "code.disabled" && v["log"][0]["error"].is_string()
    })
    .await;
    assert!(failed, "the attempt with the receiver away was not logged");
    let failing = gw.admin.get(&format!("/api/v1/webhooks/{id}")).await.json();
    assert!(failing["failing_since"].is_string(), "{failing:#}");
    let tmp = gw.take_tmp();
    gw.stop().await.unwrap();
    rx.come_back().await;
    let gw = common::start_with(config, tmp).await;
    rx.wait_for("code.disabled", |rx| {
        !rx.of_type("code.disabled").is_empty()
    })
    .await;
    assert_eq!(rx.of_type("code.disabled")[0]["data"]["enabled"], false);
    let healthy = codelink_testkit::wait_until(Duration::from_secs(5), || async {
        gw.admin.get(&format!("/api/v1/webhooks/{id}")).await.json()["failing_since"].is_null()
    })
    .await;
    assert!(
        healthy,
        "{:#}",
        gw.admin.get(&format!("/api/v1/webhooks/{id}")).await.json()
    );

    // Every event once (a duplicate would carry the same id), every request signed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let delivered = rx.delivered();
    assert_eq!(delivered.len(), 5, "{:#?}", delivered.keys());
    for (id, gots) in &delivered {
        assert_eq!(gots.len(), 1, "{id} delivered {} times", gots.len());
    }
    assert_signed(&rx, &secret);

    // The outbox is empty (the gauge is refreshed about once a second).
    let empty = codelink_testkit::wait_until(Duration::from_secs(5), || async {
        gw.anon
            .get("/metrics")
            .await
            .text()
            .contains("codelink_webhook_outbox_depth 0\n")
    })
    .await;
    let metrics = gw.anon.get("/metrics").await.text();
    assert!(empty, "{metrics}");
    assert!(
        metrics.contains("codelink_webhook_deliveries_total 1\n"),
        "after the restart: {metrics}"
    );
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn an_endpoint_failing_for_long_is_disabled_and_its_deliveries_wait_for_re_enabling() {
    let rx = Receiver::start().await;
    rx.shared.always.store(503, SeqCst);
    let (mut config, tmp) = config();
    config.webhook_disable_after_secs = 1;
    let gw = common::start_with(config, Some(tmp)).await;
    let (id, secret) = endpoint(&gw, json!({"url": rx.url(), "events": ["code.created"]})).await;
    assert_eq!(gw.create(common::alice()).await.status, 201);
    let path = format!("/api/v1/webhooks/{id}");
    // The attempt's log entry (with its note) is written just after the
    // endpoint's status: wait for both.
    let noted = |v: &Value| {
        v["log"].as_array().unwrap().iter().any(|a| {
            a["note"]
                .as_str()
                .is_some_and(|n| n.starts_with("endpoint disabled"))
        })
    };
    let disabled = codelink_testkit::wait_until(Duration::from_secs(15), || async {
        let v = gw.admin.get(&path).await.json();
        v["status"] == "disabled" && noted(&v)
    })
    .await;
    let v = gw.admin.get(&path).await.json();
    assert!(disabled, "disabled, and the log says so: {v:#}");
    assert!(
        v["disabled"]["reason"]
            .as_str()
            .unwrap()
            .contains("failed for"),
        "{v:#}"
    );
    let list = gw.admin.get("/api/v1/webhooks").await.json();
    assert_eq!(list["items"][0]["status"], "disabled");

    // Disabled: no more attempts.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let attempts = rx.got().len();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(rx.got().len(), attempts);

    // Re-enabled, with the receiver fixed: the kept delivery goes out.
    rx.shared.always.store(0, SeqCst);
    let r = gw
        .admin
        .post_json(&format!("{path}/enable"), &json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "enabled");
    rx.wait_for("the kept delivery", |rx| {
        !rx.of_type("code.created").is_empty()
    })
    .await;
    assert_signed(&rx, &secret);

    // 410 Gone disables at once.
    rx.shared.always.store(410, SeqCst);
    let r = gw
        .create(json!({"code": "BOB5", "destination": "https://shop.example/", "owner": "bob"}))
        .await;
    assert_eq!(r.status, 201);
    let gone = codelink_testkit::wait_until(Duration::from_secs(10), || async {
        gw.admin.get(&path).await.json()["disabled"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("410"))
    })
    .await;
    assert!(gone, "{:#}", gw.admin.get(&path).await.json());
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn a_creators_endpoint_gets_only_its_codes_and_milestones() {
    let rx = Receiver::start().await;
    let everything = Receiver::start().await;
    let (config, tmp) = config();
    let gw = common::start_with(config, Some(tmp)).await;
    let alice_key = gw.key(json!({"kind": "creator", "creator": "alice"})).await;
    let bob_key = gw.key(json!({"kind": "creator", "creator": "bob"})).await;
    let alice = codelink_testkit::http::Client::new(gw.addr).with_bearer(&alice_key);
    let bob = codelink_testkit::http::Client::new(gw.addr).with_bearer(&bob_key);

    let r = alice
        .post_json(
            "/api/v1/webhooks",
            &json!({"url": rx.url(), "events": ["code.created", "scan.milestone"], "milestone_every": 3}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["owner"], "alice");
    let (id, secret) = (
        r.json()["id"].as_str().unwrap().to_string(),
        r.json()["secret"].as_str().unwrap().to_string(),
    );
    let r = alice
        .post_json(
            "/api/v1/webhooks",
            &json!({"url": rx.url(), "events": ["code.created"], "owner": "bob"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    let (_, all_secret) = endpoint(
        &gw,
        json!({"url": everything.url(), "events": ["code.created", "scan.milestone"], "milestone_every": 5}),
    )
    .await;

    // Another creator's endpoint is not there for bob; the admin sees both.
    assert_eq!(bob.get(&format!("/api/v1/webhooks/{id}")).await.status, 404);
    assert_eq!(
        bob.delete(&format!("/api/v1/webhooks/{id}")).await.status,
        404
    );
    assert_eq!(bob.get("/api/v1/webhooks").await.json()["items"], json!([]));
    assert_eq!(
        alice.get("/api/v1/webhooks").await.json()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        gw.admin.get("/api/v1/webhooks").await.json()["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    assert_eq!(gw.create(common::alice()).await.status, 201);
    let r = gw
        .create(json!({"code": "BOB5", "destination": "https://shop.example/", "owner": "bob"}))
        .await;
    assert_eq!(r.status, 201);
    // Seven human scans of alice10: milestones 3 and 6 for alice's endpoint,
    // 5 for the admin's; none for bob5's two.
    let ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
    for (code, n) in [("alice10", 7), ("bob5", 2)] {
        for _ in 0..n {
            let r = gw
                .anon
                .send(
                    http::Method::GET,
                    &format!("/{code}"),
                    &codelink_testkit::http::browser(ua, &[]),
                    Default::default(),
                )
                .await;
            assert_eq!(r.status, 302);
        }
    }
    rx.wait_for("alice's events", |rx| {
        rx.of_type("code.created").len() == 1 && rx.of_type("scan.milestone").len() == 2
    })
    .await;
    everything
        .wait_for("every event", |rx| {
            rx.of_type("code.created").len() == 2 && rx.of_type("scan.milestone").len() == 1
        })
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let created = rx.of_type("code.created");
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["data"]["code"], "alice10");
    let mut reached: Vec<u64> = rx
        .of_type("scan.milestone")
        .iter()
        .map(|e| {
            assert_eq!(e["data"]["code"], "alice10");
            e["data"]["human_scans"].as_u64().unwrap()
        })
        .collect();
    reached.sort();
    assert_eq!(reached, [3, 6]);
    assert_eq!(
        everything.of_type("scan.milestone")[0]["data"]["human_scans"],
        5
    );
    assert_signed(&rx, &secret);
    assert_signed(&everything, &all_secret);

    // Alice deletes hers.
    assert_eq!(
        alice.delete(&format!("/api/v1/webhooks/{id}")).await.status,
        204
    );
    assert_eq!(
        alice.get(&format!("/api/v1/webhooks/{id}")).await.status,
        404
    );
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn one_creator_cannot_take_every_endpoint_slot() {
    let gw = common::start().await;
    let key = gw
        .key(json!({"kind": "creator", "creator": "mallory"}))
        .await;
    let mallory = codelink_testkit::http::Client::new(gw.addr).with_bearer(&key);
    let body = json!({"url": "https://example.com/h", "events": ["code.created"]});
    for i in 0..codelink_analytics::webhooks::MAX_ENDPOINTS_PER_OWNER {
        let r = mallory.post_json("/api/v1/webhooks", &body).await;
        assert_eq!(r.status, 201, "{i}: {}", r.text());
    }
    let r = mallory.post_json("/api/v1/webhooks", &body).await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.error_code(), "invalid_field");
    // The admin (and other creators) still can.
    let r = gw.admin.post_json("/api/v1/webhooks", &body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn bad_endpoints_are_refused_with_what_to_fix() {
    // Private addresses are refused by default (SSRF).
    let gw = common::start().await;
    let refused = |url: &str| json!({"url": url, "events": ["code.created"]});
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://10.0.0.8/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://2130706433/hook",
        "http://[::127.0.0.1]/hook",
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
        "http://[2002:a00:1::1]/hook",
        "ftp://example.com/hook",
        "not a url",
    ] {
        let r = gw.admin.post_json("/api/v1/webhooks", &refused(url)).await;
        assert_eq!(r.status, 422, "{url}: {}", r.text());
        assert_eq!(r.error_code(), "invalid_field");
        assert!(r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("url:"));
    }
    let long = format!("https://example.com/{}", "a".repeat(2100));
    assert_eq!(
        gw.admin
            .post_json("/api/v1/webhooks", &refused(&long))
            .await
            .status,
        422
    );
    for body in [
        json!({"url": "https://example.com/h", "events": []}),
        json!({"url": "https://example.com/h", "events": ["code.deleted"]}),
        json!({"url": "https://example.com/h", "events": ["scan.milestone"]}),
    ] {
        let r = gw.admin.post_json("/api/v1/webhooks", &body).await;
        assert_eq!(r.status, 422, "{body}: {}", r.text());
    }
    let r = gw
        .admin
        .post_json("/api/v1/webhooks", &json!({"url": "https://example.com/h"}))
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    let r = gw
        .admin
        .post_json(
            "/api/v1/webhooks",
            &json!({"url": "https://example.com/h", "events": ["code.created"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(gw.admin.get("/api/v1/webhooks/we_nope").await.status, 404);
    assert_eq!(gw.admin.get("/api/v1/webhooks/x").await.status, 404);
    assert_eq!(
        gw.admin
            .send_json(http::Method::PUT, "/api/v1/webhooks", &json!({}))
            .await
            .status,
        405
    );

    // An ingest key may not touch webhooks.
    let ingest = gw.key(json!({"kind": "ingest"})).await;
    let ingest = codelink_testkit::http::Client::new(gw.addr).with_bearer(&ingest);
    assert_eq!(ingest.get("/api/v1/webhooks").await.status, 403);
    assert_eq!(
        ingest
            .post_json("/api/v1/webhooks", &refused("https://example.com/h"))
            .await
            .status,
        403
    );
    assert_eq!(gw.anon.get("/api/v1/webhooks").await.status, 401);
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn two_gateways_on_one_redis_deliver_each_event_once() {
    let redis = RedisServer::start();
    let url = redis.url();
    deliver_each_event_once(&move |c| c.redis_url = Some(url.clone())).await;
}

/// The same on a 3-master Redis Cluster: the outbox's keys are in one slot
/// (`{wh}:wh:…`), so its scripts (enqueue once, lease) run there.
#[tokio::test]
async fn two_gateways_on_a_redis_cluster_deliver_each_event_once() {
    let cluster = codelink_testkit::RedisCluster::start();
    let seeds = cluster.seeds();
    deliver_each_event_once(&move |c| c.redis_cluster = Some(seeds.clone())).await;
}

async fn deliver_each_event_once(use_redis: &dyn Fn(&mut gateway::Config)) {
    let mut rx = Receiver::start().await;
    let instance = |prefix: &str| {
        let (mut c, tmp) = config();
        use_redis(&mut c);
        c.redis_prefix = prefix.to_string();
        (c, tmp)
    };
    let (ca, ta) = instance("wh");
    let (cb, tb) = instance("wh");
    let mut a = common::start_with(ca.clone(), Some(ta)).await;
    let b = common::start_with(cb, Some(tb)).await;
    let (_, secret) = endpoint(&a, json!({"url": rx.url(), "events": ALL_BUT_MILESTONES})).await;

    // Twenty codes through both instances, and a conversion for each.
    for i in 0..20 {
        let gw = if i % 2 == 0 { &a } else { &b };
        let r = gw
            .create(json!({"code": format!("CODE{i}"), "destination": "https://shop.example/", "owner": "alice",
                           "commission": {"currency": "EUR", "signup_flat": 100}}))
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        // Each instance reads codes from Redis: wait until it knows this one.
        let ok = codelink_testkit::wait_until(Duration::from_secs(5), || async {
            b.admin.get(&format!("/api/v1/codes/code{i}")).await.status == 200
        })
        .await;
        assert!(ok);
        let r = gw
            .admin
            .post_json(
                "/api/v1/conversions",
                &json!([{"event_id": format!("s-{i}"), "type": "signup", "code": format!("CODE{i}"),
                         "occurred_at": two_hours_ago()}]),
            )
            .await;
        assert_eq!(r.status, 202, "{}", r.text());
    }
    // code.created, conversion.created and commission.confirmed for each.
    rx.wait_for("60 events", |rx| rx.delivered().len() == 60)
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let delivered = rx.delivered();
    assert_eq!(delivered.len(), 60);
    for (id, gots) in &delivered {
        assert_eq!(gots.len(), 1, "{id} delivered {} times", gots.len());
    }
    assert_eq!(
        rx.got().len(),
        60,
        "no attempt failed, so none was repeated"
    );

    // The receiver goes away, an event fails on one instance, that instance
    // stops; the receiver comes back: the other instance delivers it.
    rx.go_away();
    let r = a
        .admin
        .patch_json("/api/v1/codes/code0", &json!({"enabled": false}))
        .await;
    assert_eq!(r.status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _tmp = a.take_tmp();
    a.stop().await.unwrap();
    rx.come_back().await;
    rx.wait_for("code.disabled", |rx| rx.of_type("code.disabled").len() == 1)
        .await;

    // Again with every instance down between the failure and the delivery:
    // the delivery waits in Redis for a restarted instance.
    rx.go_away();
    let r = b
        .admin
        .patch_json("/api/v1/codes/code1", &json!({"enabled": false}))
        .await;
    assert_eq!(r.status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.stop().await.unwrap();
    rx.come_back().await;
    let (ca, ta) = instance("wh");
    let a = common::start_with(ca, Some(ta)).await;
    rx.wait_for("the second code.disabled", |rx| {
        rx.of_type("code.disabled").len() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (id, gots) in rx.delivered() {
        assert_eq!(gots.len(), 1, "{id} delivered {} times", gots.len());
    }
    assert_signed(&rx, &secret);
    a.stop().await.unwrap();
}

/// A test CA and a certificate for 127.0.0.1 signed by it, made with the
/// `openssl` CLI: (directory, CA file, TLS acceptor).
fn tls_receiver_parts() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    tokio_rustls::TlsAcceptor,
) {
    use rustls_pki_types::pem::PemObject;
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("the openssl CLI");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(
        dir.path().join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=codelink test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
    ]);
    let certs: Vec<_> =
        rustls_pki_types::CertificateDer::pem_file_iter(dir.path().join("leaf.pem"))
            .unwrap()
            .map(|c| c.unwrap())
            .collect();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(dir.path().join("leaf.key")).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let ca = dir.path().join("ca.pem");
    (dir, ca, tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

#[tokio::test]
async fn https_endpoints_are_delivered_to_when_their_ca_is_trusted() {
    let (_dir, ca, acceptor) = tls_receiver_parts();
    let rx = Receiver::start_with(Some(acceptor)).await;

    // Without the test CA the certificate is not trusted: the attempt fails.
    let (config, tmp) = config();
    let gw = common::start_with(config, Some(tmp)).await;
    let (id, _) = endpoint(&gw, json!({"url": rx.url(), "events": ["code.created"]})).await;
    assert_eq!(gw.create(common::alice()).await.status, 201);
    let path = format!("/api/v1/webhooks/{id}");
    let refused = codelink_testkit::wait_until(Duration::from_secs(10), || async {
        gw.admin.get(&path).await.json()["log"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("TLS"))
    })
    .await;
    assert!(refused, "{:#}", gw.admin.get(&path).await.json());
    assert!(rx.got().is_empty());
    gw.stop().await.unwrap();

    // With --webhook-ca-file it is.
    let (mut config, tmp) = self::config();
    config.webhook_ca_file = Some(ca);
    let gw = common::start_with(config, Some(tmp)).await;
    let (_, secret) = endpoint(&gw, json!({"url": rx.url(), "events": ["code.created"]})).await;
    assert_eq!(gw.create(common::alice()).await.status, 201);
    rx.wait_for("code.created over https", |rx| {
        rx.of_type("code.created").len() == 1
    })
    .await;
    assert_signed(&rx, &secret);
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn a_flagged_conversions_commission_is_confirmed_only_after_its_approval() {
    let rx = Receiver::start().await;
    let (mut config, tmp) = config();
    // The second signup of one visitor is flagged (velocity).
    config.fraud_visitor_signups = 1;
    let gw = common::start_with(config, Some(tmp)).await;
    endpoint(
        &gw,
        json!({"url": rx.url(), "events": ["conversion.created", "commission.confirmed"]}),
    )
    .await;
    assert_eq!(gw.create(common::alice()).await.status, 201);
    let signup = |id: &str| {
        json!([{"event_id": id, "type": "signup", "code": "ALICE10", "visitor_id": "v-1",
                "occurred_at": two_hours_ago()}])
    };
    for id in ["s-1", "s-2"] {
        let r = gw.admin.post_json("/api/v1/conversions", &signup(id)).await;
        assert_eq!(r.status, 202, "{}", r.text());
    }
    rx.wait_for("both conversions and the first confirmation", |rx| {
        rx.of_type("conversion.created").len() == 2
            && !rx.of_type("commission.confirmed").is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let created = rx.of_type("conversion.created");
    let flagged = created
        .iter()
        .find(|e| e["data"]["event_id"] == "s-2")
        .unwrap();
    assert_eq!(flagged["data"]["earnings"]["amount"], 0);
    assert_eq!(flagged["data"]["flagged"]["held"], 200);
    let confirmed = rx.of_type("commission.confirmed");
    assert_eq!(confirmed.len(), 1);
    assert_eq!(confirmed[0]["data"]["event_id"], "s-1");

    let r = gw
        .admin
        .post_json(
            "/api/v1/reviews/s-2",
            &json!({"decision": "approve", "note": "known customer"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    rx.wait_for("the approved one's confirmation", |rx| {
        rx.of_type("commission.confirmed").len() == 2
    })
    .await;
    let confirmed = rx.of_type("commission.confirmed");
    let approved = confirmed
        .iter()
        .find(|e| e["data"]["event_id"] == "s-2")
        .unwrap();
    assert_eq!(approved["data"]["earnings"]["amount"], 200);
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn a_bulk_import_sends_code_events_once() {
    let rx = Receiver::start().await;
    let (config, tmp) = config();
    let gw = common::start_with(config, Some(tmp)).await;
    let (_, secret) = endpoint(
        &gw,
        json!({"url": rx.url(), "events": ["code.created", "code.disabled"]}),
    )
    .await;
    let import = |csv: &'static str| {
        let admin = gw.admin.clone();
        async move {
            let r = admin
                .send(
                    http::Method::POST,
                    "/api/v1/codes/import",
                    &[("content-type", "text/csv")],
                    bytes::Bytes::from_static(csv.as_bytes()),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.text());
            r.json()
        }
    };
    let first = "code,destination,owner,enabled\n\
                 BULK1,https://shop.example/a,alice,true\n\
                 BULK2,https://shop.example/b,bob,true\n";
    assert_eq!(import(first).await["created"], 2);
    // The same file again changes nothing and sends nothing.
    assert_eq!(import(first).await["unchanged"], 2);
    // BULK2 disabled by a second file; BULK1 only changes its destination.
    let second = "code,destination,owner,enabled\n\
                  BULK1,https://shop.example/a2,alice,true\n\
                  BULK2,https://shop.example/b,bob,false\n";
    assert_eq!(import(second).await["updated"], 2);
    rx.wait_for("two created and one disabled", |rx| {
        rx.of_type("code.created").len() == 2 && rx.of_type("code.disabled").len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut created: Vec<String> = rx
        .of_type("code.created")
        .iter()
        .map(|e| e["data"]["code"].as_str().unwrap().to_string())
        .collect();
    created.sort();
    assert_eq!(created, ["bulk1", "bulk2"]);
    let disabled = rx.of_type("code.disabled");
    assert_eq!(disabled.len(), 1);
    assert_eq!(disabled[0]["data"]["code"], "bulk2");
    assert_eq!(disabled[0]["data"]["owner"], "bob");
    assert_eq!(rx.got().len(), 3, "{:#?}", rx.got());
    assert_signed(&rx, &secret);
    gw.stop().await.unwrap();
}
