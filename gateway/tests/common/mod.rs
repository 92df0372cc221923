//! Starts the real gateway server in-process on 127.0.0.1:0 for a test.
#![allow(dead_code)]

use codelink_testkit::http::Client;
use gateway::Config;
use std::net::SocketAddr;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ADMIN_KEY: &str = "test-admin-key-0123456789abcdef";

pub struct TestGateway {
    pub addr: SocketAddr,
    /// Client that sends the admin key.
    pub admin: Client,
    /// Client without credentials (a follower).
    pub anon: Client,
    pub data_dir: std::path::PathBuf,
    _tmp: Option<tempfile::TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Whether a gateway at `addr` answers `/healthz` within `secs` seconds.
pub async fn comes_up(addr: SocketAddr, secs: u64) -> bool {
    let client = Client::new(addr);
    codelink_testkit::wait_until(std::time::Duration::from_secs(secs), || {
        let client = client.clone();
        async move {
            tokio::net::TcpStream::connect(client.addr).await.is_ok()
                && client.get("/healthz").await.status == 200
        }
    })
    .await
}

/// A config on a fresh temp data dir with a known admin key.
pub fn config() -> (Config, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = Config::for_data_dir(tmp.path());
    config.admin_key = Some(ADMIN_KEY.to_string());
    // Tests send one visitor's scans seconds apart and mean separate scans;
    // the repeat rule (on by default) is tested on its own in verdicts.rs.
    config.repeat_window_secs = 0;
    // Tests report conversions milliseconds after their scans: the
    // too-fast check is off here (tests/fraud.rs turns it on).
    config.fraud_signup_min_ms = 0;
    config.fraud_purchase_min_ms = 0;
    // Tests stop at once; the drain period is tested in tests/ops.rs.
    config.drain_secs = 0;
    (config, tmp)
}

pub async fn start() -> TestGateway {
    let (config, tmp) = config();
    start_with(config, Some(tmp)).await
}

pub async fn start_with(config: Config, tmp: Option<tempfile::TempDir>) -> TestGateway {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let data_dir = config.data_dir.clone();
    let handle = tokio::spawn(gateway::run(listener, config, async {
        let _ = rx.await;
    }));
    let anon = Client::new(addr);
    assert!(comes_up(addr, 10).await, "gateway did not come up");
    TestGateway {
        addr,
        admin: Client::new(addr).with_bearer(ADMIN_KEY),
        anon,
        data_dir,
        _tmp: tmp,
        shutdown: Some(tx),
        handle: Some(handle),
    }
}

impl TestGateway {
    /// Fires the shutdown signal (as SIGTERM does) without waiting; `stop`
    /// then waits for the gateway to finish.
    pub fn signal_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Graceful shutdown; returns what `gateway::run` returned.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.handle.take() {
            Some(h) => h.await.unwrap(),
            None => Ok(()),
        }
    }

    /// Keeps the temp dir alive beyond the gateway (for restart tests).
    pub fn take_tmp(&mut self) -> Option<tempfile::TempDir> {
        self._tmp.take()
    }

    pub async fn create(&self, body: serde_json::Value) -> codelink_testkit::http::Response {
        self.admin.post_json("/api/v1/codes", &body).await
    }

    /// Issues a key (`{"kind": "creator", "creator": "alice"}`, `{"kind":
    /// "ingest"}`) with the admin key; returns its secret.
    pub async fn key(&self, body: serde_json::Value) -> String {
        let r = self.admin.post_json("/api/v1/keys", &body).await;
        assert_eq!(r.status, 201, "{}", r.text());
        r.json()["key"].as_str().unwrap().to_string()
    }
}

/// A typical code with two channels.
pub fn alice() -> serde_json::Value {
    serde_json::json!({
        "code": "ALICE10",
        "destination": "https://shop.example/signup?ref=home#form",
        "owner": "alice",
        "channels": {
            "yt": {"utm_source": "youtube", "utm_medium": "video", "utm_campaign": "alice10"},
            "yt-video42": {"utm_source": "youtube", "utm_content": "video42"},
            "bio": {"utm_source": "instagram", "utm_medium": "bio"}
        },
        "commission": {"currency": "EUR", "signup_flat": 200, "purchase_bps": 1000, "cap": 5000}
    })
}

/// The web console over HTTP, as a browser without JavaScript uses it.
pub mod console {
    use super::TestGateway;
    use codelink_testkit::http::{Client, Response};
    use http::Method;

    /// The value of `name` among a response's `Set-Cookie` headers, with the
    /// whole header line.
    pub fn set_cookie(r: &Response, name: &str) -> Option<(String, String)> {
        r.headers.get_all("set-cookie").iter().find_map(|v| {
            let line = v.to_str().ok()?;
            let (k, rest) = line.split_once('=')?;
            (k == name).then(|| {
                (
                    rest.split(';').next().unwrap_or("").to_string(),
                    line.to_string(),
                )
            })
        })
    }

    pub fn csrf_of(html: &str) -> String {
        let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
        html[at..].split('"').next().unwrap().to_string()
    }

    pub async fn get(c: &Client, path: &str, cookie: &str) -> Response {
        c.send(Method::GET, path, &[("cookie", cookie)], Default::default())
            .await
    }

    pub async fn post(
        c: &Client,
        path: &str,
        cookie: &str,
        form: &[(&str, &str)],
        origin: Option<&str>,
    ) -> Response {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut headers = vec![
            ("cookie", cookie),
            ("content-type", "application/x-www-form-urlencoded"),
        ];
        if let Some(o) = origin {
            headers.push(("origin", o));
        }
        c.send(Method::POST, path, &headers, body.into()).await
    }

    /// Signs in with `key`; returns the session cookie (`cl_session=…`).
    pub async fn sign_in(gw: &TestGateway, key: &str) -> String {
        let page = gw.anon.get("/ui/sign-in").await;
        assert_eq!(page.status, 200);
        let pre = format!("cl_pre={}", set_cookie(&page, "cl_pre").unwrap().0);
        let r = post(
            &gw.anon,
            "/ui/sign-in",
            &pre,
            &[("csrf", &csrf_of(&page.text())), ("key", key)],
            None,
        )
        .await;
        assert_eq!(r.status, 303, "{}", r.text());
        assert_eq!(r.header("location"), Some("/ui/codes"));
        format!("cl_session={}", set_cookie(&r, "cl_session").unwrap().0)
    }
}
