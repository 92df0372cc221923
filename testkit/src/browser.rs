//! A real headless browser for end-to-end tests: Debian's `chromium`, driven by
//! `chromedriver` over the W3C WebDriver protocol (plain HTTP on 127.0.0.1).
//!
//! Every method panics with a readable message (chromedriver's error included)
//! on failure, and every WebDriver call has a 30 s timeout, so a hung browser
//! fails the test instead of hanging CI.
//!
//! Notes on this chromedriver/chromium pair (Debian bookworm, 156):
//! - `--headless=new` refuses windows narrower than 500 px, so the requested
//!   size is applied as a CDP device-metrics override: the *viewport* is exactly
//!   `width` x `height` CSS px (`innerWidth`, media queries, screenshots).
//! - Console logs come from `POST /session/{id}/se/log {"type":"browser"}`,
//!   which returns and clears the buffer (`GET /session/{id}/log` is an unknown
//!   command). Failed sub-resource loads (e.g. a 404 favicon) are SEVERE too.

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Timeout of one WebDriver HTTP call.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`Browser::find`] waits for a match.
const FIND_TIMEOUT: Duration = Duration::from_secs(5);
/// The W3C key of an element reference in JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// Chromium's minimum window width in `--headless=new`.
const MIN_WINDOW_WIDTH: u32 = 500;

const MISSING: &str = "install the Debian packages `chromium` and `chromium-driver` \
                       (scripts/test does: apt-get install chromium chromium-driver)";

/// One WebDriver session on one chromedriver.
#[derive(Debug)]
struct Session {
    addr: SocketAddr,
    id: String,
}

impl Session {
    /// A call that may fail: `Err` carries a readable description.
    async fn try_call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let path = if path.is_empty() {
            format!("/session/{}", self.id)
        } else {
            format!("/session/{}/{path}", self.id)
        };
        request(self.addr, method, &path, body, CALL_TIMEOUT).await
    }

    /// A call that must succeed.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let what = format!("{method} {path}");
        self.try_call(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("webdriver {what}: {e}"))
    }

    async fn get(&self, path: &str) -> Value {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(Method::POST, path, Some(body)).await
    }

    /// A Chrome DevTools Protocol command through chromedriver's passthrough.
    async fn try_cdp(&self, cmd: &str, params: Value) -> Result<Value, String> {
        self.try_call(
            Method::POST,
            "goog/cdp/execute",
            Some(json!({ "cmd": cmd, "params": params })),
        )
        .await
    }

    async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.try_cdp(cmd, params)
            .await
            .unwrap_or_else(|e| panic!("CDP {cmd}: {e}"))
    }

    async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.try_execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("execute script {script:?}: {e}"))
    }

    async fn try_execute(&self, script: &str, args: Vec<Value>) -> Result<Value, String> {
        self.try_call(
            Method::POST,
            "execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }
}

/// One HTTP request to chromedriver on a fresh connection; returns the
/// response's `value`, or an error naming chromedriver's `error`/`message`.
async fn request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    body: Option<Value>,
    timeout: Duration,
) -> Result<Value, String> {
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect to chromedriver at {addr}: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(conn);
        let bytes = match &body {
            Some(v) => Bytes::from(serde_json::to_vec(v).expect("serialise")),
            None => Bytes::new(),
        };
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", addr.to_string());
        if body.is_some() {
            req = req.header("content-type", "application/json; charset=utf-8");
        }
        let req = req.body(Full::new(bytes)).expect("request");
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("send: {e}"))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("read body: {e}"))?
            .to_bytes();
        Ok::<_, String>((status, body))
    };
    let (status, body) = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("no answer from chromedriver within {timeout:?}"))??;
    let json: Value = serde_json::from_slice(&body).map_err(|e| {
        format!(
            "HTTP {status}, body is not JSON ({e}): {}",
            String::from_utf8_lossy(&body)
        )
    })?;
    let value = json.get("value").cloned().unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(value);
    }
    // chromedriver's error JSON without its (symbol-less, useless) stacktrace.
    Err(match value.get("error") {
        Some(err) => format!(
            "HTTP {status}: {}",
            json!({ "error": err, "message": value.get("message").unwrap_or(&Value::Null) })
        ),
        None => format!("HTTP {status}: {json}"),
    })
}

/// `name` on `PATH`, else `fallback` if it exists.
fn find_binary(name: &str, fallback: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .chain(std::iter::once(PathBuf::from(fallback)))
        .find(|p| p.is_file())
}

/// Blocking, best-effort `DELETE /session/{id}` for `Drop` (no runtime needed).
fn delete_session_blocking(session: &Session) -> bool {
    let Ok(mut stream) =
        std::net::TcpStream::connect_timeout(&session.addr, Duration::from_secs(2))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let req = format!(
        "DELETE /session/{} HTTP/1.1\r\nhost: {}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        session.id, session.addr
    );
    if stream.write_all(req.as_bytes()).is_err() {
        return false;
    }
    // The status line is enough (chromedriver answers once chromium is gone).
    let mut resp = Vec::new();
    let mut chunk = [0u8; 1024];
    while !resp.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => resp.extend_from_slice(&chunk[..n]),
        }
    }
    resp.starts_with(b"HTTP/1.1 200")
}

/// A headless chromium with one WebDriver session; chromedriver (and with it
/// chromium) is stopped on [`quit`](Self::quit) or, best-effort, on drop.
pub struct Browser {
    session: Arc<Session>,
    driver: Option<Child>,
    /// The chromium browser process, to kill if chromedriver cannot close it.
    browser_pid: Option<u64>,
    downloads: tempfile::TempDir,
    _profile: tempfile::TempDir,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("chromedriver", &self.session.addr)
            .field("session", &self.session.id)
            .field("downloads", &self.downloads.path())
            .finish()
    }
}

/// An element found in the page (a W3C element reference in the session).
#[derive(Debug, Clone)]
pub struct Element {
    session: Arc<Session>,
    id: String,
    css: String,
}

impl Browser {
    /// Starts chromedriver on a free 127.0.0.1 port, waits until it answers
    /// `/status`, and opens a headless chromium session whose viewport is
    /// `width` x `height` CSS px. Panics naming the Debian packages when
    /// chromium or chromedriver is missing.
    pub async fn start(width: u32, height: u32) -> Browser {
        Self::start_with_args(width, height, &[]).await
    }

    /// [`Browser::start`] with more chromium command-line arguments (say,
    /// `--user-agent=…`).
    pub async fn start_with_args(width: u32, height: u32, extra: &[String]) -> Browser {
        let chromium = find_binary("chromium", "/usr/bin/chromium").unwrap_or_else(|| {
            panic!("chromium not found on PATH or at /usr/bin/chromium: {MISSING}")
        });
        let chromedriver =
            find_binary("chromedriver", "/usr/bin/chromedriver").unwrap_or_else(|| {
                panic!("chromedriver not found on PATH or at /usr/bin/chromedriver: {MISSING}")
            });
        let profile = tempfile::tempdir().expect("temp dir for the chromium profile");
        let downloads = tempfile::tempdir().expect("temp dir for downloads");

        // A port that was free may be taken by the time chromedriver binds it: retry.
        let mut last_err = String::new();
        for _ in 0..3 {
            let port = crate::free_port();
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let mut child = Command::new(&chromedriver)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}; {MISSING}", chromedriver.display()));
            match wait_ready(addr, &mut child).await {
                Ok(()) => {
                    let mut browser = Browser {
                        session: Arc::new(Session {
                            addr,
                            id: String::new(),
                        }),
                        driver: Some(child),
                        browser_pid: None,
                        downloads,
                        _profile: profile,
                    };
                    browser.open_session(&chromium, width, height, extra).await;
                    return browser;
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_err = e;
                }
            }
        }
        panic!(
            "chromedriver ({}) did not start: {last_err}",
            chromedriver.display()
        );
    }

    async fn open_session(&mut self, chromium: &Path, width: u32, height: u32, extra: &[String]) {
        let download_dir = self
            .downloads
            .path()
            .to_str()
            .expect("utf-8 temp path")
            .to_string();
        let mut caps = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "pageLoadStrategy": "normal",
                "goog:loggingPrefs": { "browser": "ALL" },
                "goog:chromeOptions": {
                    "binary": chromium,
                    "args": [
                        "--headless=new",
                        "--no-sandbox",
                        "--disable-gpu",
                        "--disable-dev-shm-usage",
                        format!("--window-size={},{}", width.max(MIN_WINDOW_WIDTH), height),
                        format!("--user-data-dir={}", self._profile.path().display()),
                        "--no-first-run",
                        "--no-default-browser-check",
                        "--force-device-scale-factor=1",
                        // Overlay-like scrollbars (as on phones): the layout
                        // width is the full viewport width.
                        "--hide-scrollbars",
                        "--disable-search-engine-choice-screen",
                    ],
                    "prefs": {
                        "download.default_directory": download_dir,
                        "download.prompt_for_download": false,
                        "download.directory_upgrade": true,
                        "safebrowsing.enabled": false,
                    },
                },
            }}
        });
        if let Some(args) =
            caps["capabilities"]["alwaysMatch"]["goog:chromeOptions"]["args"].as_array_mut()
        {
            args.extend(extra.iter().map(|a| Value::String(a.clone())));
        }
        let value = request(
            self.session.addr,
            Method::POST,
            "/session",
            Some(caps),
            CALL_TIMEOUT,
        )
        .await
        .unwrap_or_else(|e| {
            panic!(
                "chromedriver could not start chromium ({}): {e}; {MISSING}",
                chromium.display()
            )
        });
        let id = value["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no sessionId in new-session answer {value}"))
            .to_string();
        self.browser_pid = value["capabilities"]["goog:processID"].as_u64();
        self.session = Arc::new(Session {
            addr: self.session.addr,
            id,
        });
        // The prefs suffice for chromium 156 in --headless=new; older headless
        // modes ignored them, and this CDP call works in all of them.
        self.session
            .cdp(
                "Browser.setDownloadBehavior",
                json!({ "behavior": "allow", "downloadPath": download_dir }),
            )
            .await;
        self.emulate_viewport(width, height).await;
    }

    /// The directory downloads land in.
    pub fn download_dir(&self) -> &Path {
        self.downloads.path()
    }

    async fn emulate_viewport(&self, width: u32, height: u32) {
        self.session
            .cdp(
                "Emulation.setDeviceMetricsOverride",
                json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
            )
            .await;
    }

    /// Resizes the viewport to `width` x `height` CSS px (the window too, as
    /// far as chromium allows).
    pub async fn set_window_size(&self, width: u32, height: u32) {
        self.session
            .post(
                "window/rect",
                json!({ "width": width.max(MIN_WINDOW_WIDTH), "height": height }),
            )
            .await;
        self.emulate_viewport(width, height).await;
    }

    /// Navigates and waits for the page load.
    pub async fn goto(&self, url: &str) {
        self.session.post("url", json!({ "url": url })).await;
    }

    pub async fn current_url(&self) -> String {
        as_string(self.session.get("url").await)
    }

    pub async fn title(&self) -> String {
        as_string(self.session.get("title").await)
    }

    pub async fn page_source(&self) -> String {
        as_string(self.session.get("source").await)
    }

    /// Waits up to 5 s for the first element matching `css`; panics with the
    /// selector and the current URL if none appears.
    pub async fn find(&self, css: &str) -> Element {
        let deadline = Instant::now() + FIND_TIMEOUT;
        loop {
            if let Some(el) = self.find_all(css).await.into_iter().next() {
                return el;
            }
            if Instant::now() >= deadline {
                let url = self.current_url().await;
                panic!("no element matches {css:?} after {FIND_TIMEOUT:?} on {url}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// All matches now (no waiting), possibly empty.
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let found = self
            .session
            .post("elements", json!({ "using": "css selector", "value": css }))
            .await;
        found
            .as_array()
            .unwrap_or_else(|| panic!("find elements {css:?}: not an array: {found}"))
            .iter()
            .map(|r| Element {
                session: self.session.clone(),
                id: element_id(r),
                css: css.to_string(),
            })
            .collect()
    }

    /// Waits until `css` matches an element whose visible text contains
    /// `needle`; false after `timeout`.
    pub async fn wait_for_text(&self, css: &str, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            for el in self.find_all(css).await {
                // The element may go stale between finding and reading: skip it.
                if let Ok(text) = el
                    .session
                    .try_call(Method::GET, &el.path("text"), None)
                    .await
                {
                    if text.as_str().is_some_and(|t| t.contains(needle)) {
                        return true;
                    }
                }
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs synchronous JS (`return ...;`) with JSON `args` (`arguments[i]`);
    /// returns its JSON result.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.session.execute(script, args).await
    }

    /// Writes a full-page PNG to `path` (parent dirs created): CDP
    /// `Page.captureScreenshot` beyond the viewport, clipped to the document's
    /// scroll size; the W3C viewport screenshot if CDP fails.
    pub async fn screenshot(&self, path: &Path) {
        let size = self
            .session
            .execute(
                "const d = document.documentElement, b = document.body || d; \
                 return [Math.max(d.scrollWidth, b.scrollWidth, innerWidth), \
                         Math.max(d.scrollHeight, b.scrollHeight, innerHeight)];",
                vec![],
            )
            .await;
        let (w, h) = (
            size[0].as_f64().unwrap_or(1.0),
            size[1].as_f64().unwrap_or(1.0),
        );
        let full = self
            .session
            .try_cdp(
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": { "x": 0, "y": 0, "width": w, "height": h, "scale": 1 },
                }),
            )
            .await
            .ok()
            .and_then(|v| v["data"].as_str().map(str::to_string));
        let b64 = match full {
            Some(data) => data,
            None => as_string(self.session.get("screenshot").await),
        };
        let png = base64_decode(&b64).unwrap_or_else(|e| panic!("screenshot: {e}"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// Browser console entries at level SEVERE since the last call, each as
    /// `"SEVERE <message>"` (the log buffer is drained by every call).
    pub async fn console_errors(&self) -> Vec<String> {
        let entries = self
            .session
            .post("se/log", json!({ "type": "browser" }))
            .await;
        entries
            .as_array()
            .unwrap_or_else(|| panic!("browser log: not an array: {entries}"))
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| format!("SEVERE {}", e["message"].as_str().unwrap_or_default()))
            .collect()
    }

    /// The session's cookies as W3C JSON objects (`name`, `value`,
    /// `httpOnly`, `secure`, `sameSite`, ...).
    pub async fn cookies(&self) -> Vec<Value> {
        match self.session.get("cookie").await {
            Value::Array(cookies) => cookies,
            other => panic!("cookies: not an array: {other}"),
        }
    }

    pub async fn delete_all_cookies(&self) {
        self.session.call(Method::DELETE, "cookie", None).await;
    }

    /// Waits up to `timeout` for a completed download named `name` (no
    /// `.crdownload` left in the download dir) and returns its bytes.
    pub async fn wait_for_download(&self, name: &str, timeout: Duration) -> Vec<u8> {
        let dir = self.downloads.path();
        let file = dir.join(name);
        let deadline = Instant::now() + timeout;
        loop {
            if file.is_file() && !has_partial_download(dir) {
                return std::fs::read(&file)
                    .unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
            }
            if Instant::now() >= deadline {
                let present: Vec<String> = std::fs::read_dir(dir)
                    .map(|rd| {
                        rd.flatten()
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                panic!("no completed download {name:?} after {timeout:?}; download dir holds {present:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Presses and releases `key` (e.g. `"\u{E004}"` Tab, `"\u{E007}"` Enter;
    /// several characters are pressed one after the other) in the focused
    /// element, via W3C actions.
    pub async fn press_key(&self, key: &str) {
        let actions: Vec<Value> = key
            .chars()
            .flat_map(|c| {
                let c = c.to_string();
                [
                    json!({ "type": "keyDown", "value": c }),
                    json!({ "type": "keyUp", "value": c }),
                ]
            })
            .collect();
        self.session
            .post(
                "actions",
                json!({ "actions": [{ "type": "key", "id": "keyboard", "actions": actions }] }),
            )
            .await;
    }

    /// Ends the session (closing chromium) and stops chromedriver.
    pub async fn quit(mut self) {
        if self
            .session
            .try_call(Method::DELETE, "", None)
            .await
            .is_ok()
        {
            self.browser_pid = None;
        }
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(pid) = self.browser_pid.take() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        if let Some(mut child) = self.driver.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if self.driver.is_none() {
            return;
        }
        if !self.session.id.is_empty() && delete_session_blocking(&self.session) {
            self.browser_pid = None;
        }
        self.stop();
    }
}

/// Polls chromedriver's `/status` until it says ready (10 s at most).
async fn wait_ready(addr: SocketAddr, child: &mut Child) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("chromedriver exited with {status}"));
        }
        if let Ok(v) = request(addr, Method::GET, "/status", None, Duration::from_secs(2)).await {
            if v["ready"] == true {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            return Err(format!("no ready /status on {addr} within 10 s"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl Element {
    fn path(&self, tail: &str) -> String {
        format!("element/{}/{tail}", self.id)
    }

    fn as_arg(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }

    async fn post(&self, tail: &str, body: Value) -> Value {
        let path = self.path(tail);
        self.session
            .try_call(Method::POST, &path, Some(body))
            .await
            .unwrap_or_else(|e| panic!("{tail} on {:?}: {e}", self.css))
    }

    async fn get(&self, tail: &str) -> Value {
        let path = self.path(tail);
        self.session
            .try_call(Method::GET, &path, None)
            .await
            .unwrap_or_else(|e| panic!("{tail} of {:?}: {e}", self.css))
    }

    pub async fn click(&self) {
        self.post("click", json!({})).await;
    }

    /// Types `text` into the element (W3C `Element Send Keys`). For a
    /// `<select>` use [`select_by_value`](Self::select_by_value).
    pub async fn send_keys(&self, text: &str) {
        self.post("value", json!({ "text": text })).await;
    }

    pub async fn clear(&self) {
        self.post("clear", json!({})).await;
    }

    /// The visible (rendered) text.
    pub async fn text(&self) -> String {
        as_string(self.get("text").await)
    }

    /// The attribute `name`, `None` when absent.
    pub async fn attr(&self, name: &str) -> Option<String> {
        self.get(&format!("attribute/{name}"))
            .await
            .as_str()
            .map(str::to_string)
    }

    /// The DOM property `name` (e.g. `value`, `checked`) as JSON.
    pub async fn prop(&self, name: &str) -> Value {
        self.get(&format!("property/{name}")).await
    }

    /// Sets a `<select>`'s value to the option with this value and fires
    /// `input` and `change`; panics if no such option exists.
    pub async fn select_by_value(&self, value: &str) {
        let ok = self
            .session
            .execute(
                "const s = arguments[0], v = arguments[1]; \
                 if (!s.options || ![...s.options].some(o => o.value === v)) return false; \
                 s.value = v; \
                 s.dispatchEvent(new Event('input', { bubbles: true })); \
                 s.dispatchEvent(new Event('change', { bubbles: true })); \
                 return true;",
                vec![self.as_arg(), json!(value)],
            )
            .await;
        assert!(
            ok == true,
            "{:?} is not a <select> with an option of value {value:?}",
            self.css
        );
    }

    /// Whether this element is `document.activeElement`.
    pub async fn is_focused(&self) -> bool {
        self.session
            .execute(
                "return document.activeElement === arguments[0];",
                vec![self.as_arg()],
            )
            .await
            == true
    }
}

fn element_id(reference: &Value) -> String {
    reference[ELEMENT_KEY]
        .as_str()
        .unwrap_or_else(|| panic!("not an element reference: {reference}"))
        .to_string()
}

fn as_string(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => panic!("expected a string from chromedriver, got {other}"),
    }
}

fn has_partial_download(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|rd| {
        rd.flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".crdownload"))
    })
}

/// Standard base64 (RFC 4648, `+/`, optional `=` padding, whitespace ignored).
fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for (i, c) in s.bytes().enumerate() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            b' ' | b'\n' | b'\r' | b'\t' => continue,
            _ => return Err(format!("invalid base64 byte {c:#04x} at {i}")),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::base64_decode;

    #[test]
    fn base64_round_trips_known_vectors() {
        for (enc, dec) in [
            ("", ""),
            ("Zg==", "f"),
            ("Zm8=", "fo"),
            ("Zm9v", "foo"),
            ("Zm9vYg==", "foob"),
            ("Zm9vYmE=", "fooba"),
            ("Zm9v\nYmFy", "foobar"),
        ] {
            assert_eq!(base64_decode(enc).unwrap(), dec.as_bytes(), "{enc}");
        }
        assert_eq!(base64_decode("//+A").unwrap(), [0xff, 0xff, 0x80]);
        assert!(base64_decode("Zm9v*").is_err());
    }
}
