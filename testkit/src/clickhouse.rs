use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's `clickhouse-server` package puts the binary (`/usr/sbin` is not
/// on every user's `PATH`); a bare name falls back to a `PATH` lookup.
const BINARY_CANDIDATES: [&str; 2] = ["/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"];
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const START_ATTEMPTS: u32 = 3;
const DISPLAY_NAME_HEADER: &str = "x-clickhouse-server-display-name";

/// A private `clickhouse-server` (Debian's 18.16) on 127.0.0.1, with its config,
/// data and logs in a temp dir, killed on drop.
///
/// Config, data and logs live in the temp dir: `config.xml`, `data/`, `log/`
/// (`server.log`, `server.err.log` at level `warning`, and `stdout.log`).
pub struct ClickHouseServer {
    /// The loopback address it listens on (127.0.0.1, or another of
    /// 127.0.0.0/8 for a node of a [`crate::ClickHouseCluster`]).
    host: Ipv4Addr,
    /// XML put inside `<yandex>` (a cluster's `<remote_servers>`, macros, …).
    extra_config: String,
    http_port: u16,
    tcp_port: u16,
    /// Unique per server; sent back by ClickHouse as `X-ClickHouse-Server-Display-Name`,
    /// so readiness can tell our server from another one on the same port.
    display_name: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

pub(crate) enum StartError {
    /// The child exited during start-up (typically: a port was taken). Worth retrying on new ports.
    Exited(String),
    /// Still not ready after [`READY_TIMEOUT`].
    Timeout(String),
}

impl ClickHouseServer {
    /// Starts a server on free ports and waits until it answers. Panics with a clear
    /// message when `clickhouse-server` is not installed (`scripts/test` installs it).
    ///
    /// Many tests start servers concurrently, so a port picked as free may be taken
    /// before the server binds it: if the server exits during start-up, it is started
    /// again on new ports (up to 3 tries).
    pub fn start() -> Self {
        let mut server = Self::unstarted(Ipv4Addr::LOCALHOST, String::new());
        for attempt in 1..=START_ATTEMPTS {
            server.http_port = crate::free_port();
            server.tcp_port = crate::free_port();
            while server.tcp_port == server.http_port {
                server.tcp_port = crate::free_port();
            }
            match server.spawn_and_wait() {
                Ok(()) => return server,
                Err(StartError::Exited(log)) if attempt < START_ATTEMPTS => {
                    eprintln!(
                        "clickhouse-server (http {}, tcp {}) exited during start-up, \
                         retrying on new ports; its log:\n{log}",
                        server.http_port, server.tcp_port
                    );
                }
                Err(StartError::Exited(log)) => panic!(
                    "clickhouse-server exited during start-up {START_ATTEMPTS} times; last log:\n{log}"
                ),
                Err(StartError::Timeout(log)) => panic!("{log}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// A server not started yet, listening on `host` with `extra_config`
    /// once started.
    pub(crate) fn unstarted(host: Ipv4Addr, extra_config: String) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("codelink-clickhouse-")
            .tempdir()
            .expect("temp dir");
        let display_name = format!(
            "codelink-test-{}",
            dir.path()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
        Self {
            host,
            extra_config,
            http_port: 0,
            tcp_port: 0,
            display_name,
            dir,
            child: None,
        }
    }

    /// Starts it on these ports (a cluster's nodes share them).
    pub(crate) fn start_on(&mut self, http_port: u16, tcp_port: u16) -> Result<(), StartError> {
        self.http_port = http_port;
        self.tcp_port = tcp_port;
        self.spawn_and_wait()
    }

    /// The address it listens on.
    pub fn host(&self) -> Ipv4Addr {
        self.host
    }

    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// The native-protocol port (for `clickhouse-client --port`).
    pub fn tcp_port(&self) -> u16 {
        self.tcp_port
    }

    /// `http://{host}:{http_port}` (host 127.0.0.1 unless a cluster's node):
    /// the URL for an HTTP client such as the `clickhouse` crate.
    pub fn url(&self) -> String {
        format!("http://{}:{}", self.host, self.http_port)
    }

    /// The temp dir holding `config.xml`, `data/` and `log/`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the server with SIGKILL (an outage). The data dir is kept:
    /// [`restart`](Self::restart) brings it back with its data.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections are accepted by the kernel but
    /// nothing answers, like a server stuck in GC or I/O. [`thaw`](Self::thaw) resumes it.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Resumes a [`freeze`](Self::freeze)d server (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        if let Some(child) = &self.child {
            let ok = Command::new("kill")
                .args([sig, &child.id().to_string()])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "kill {sig} clickhouse-server failed");
        }
    }

    /// (Re)starts the server on the same ports and the same data dir (data survives)
    /// and waits until it answers. Panics with the server's log if it does not come up.
    pub fn restart(&mut self) {
        match self.spawn_and_wait() {
            Ok(()) => {}
            Err(StartError::Exited(log)) => panic!(
                "clickhouse-server (http {}, tcp {}) exited on restart:\n{log}",
                self.http_port, self.tcp_port
            ),
            Err(StartError::Timeout(log)) => panic!("{log}"),
        }
    }

    /// Runs one SQL statement over HTTP (`POST /`, the SQL as body) and returns the
    /// response body (TabSeparated unless the SQL says `FORMAT ...`). Data for an
    /// `INSERT ... FORMAT JSONEachRow` follows the statement in the same string.
    /// Panics with the server's error text on a non-200 answer.
    pub fn query(&self, sql: &str) -> String {
        self.query_at("/", sql)
    }

    /// [`query`](Self::query) with `database` as the default database, for SQL
    /// that names its tables without one.
    pub fn query_in(&self, database: &str, sql: &str) -> String {
        self.query_at(&format!("/?database={database}"), sql)
    }

    /// [`query`](Self::query) with settings (18.16 has no `INSERT … SETTINGS`).
    pub fn query_with(&self, settings: &[(&str, &str)], sql: &str) -> String {
        let query: String = settings.iter().map(|(k, v)| format!("&{k}={v}")).collect();
        self.query_at(&format!("/?{}", query.trim_start_matches('&')), sql)
    }

    fn query_at(&self, path: &str, sql: &str) -> String {
        let response = self
            .http("POST", path, sql.as_bytes(), Duration::from_secs(120))
            .unwrap_or_else(|e| {
                panic!(
                    "clickhouse-server at {} unreachable ({e}) for query: {sql}",
                    self.url()
                )
            });
        if response.status != 200 {
            panic!(
                "clickhouse-server answered {} to query: {sql}\n{}",
                response.status,
                response.body.trim_end()
            );
        }
        response.body
    }

    fn log_dir(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    /// Writes the config for the current ports, spawns the server and waits until
    /// it is ready: `GET /ping` answers `Ok.`, a query is answered by *this* server
    /// (its display name), and the child is still running.
    fn spawn_and_wait(&mut self) -> Result<(), StartError> {
        self.stop();
        let log_dir = self.log_dir();
        std::fs::create_dir_all(&log_dir).expect("create clickhouse log dir");
        let config = self.dir.path().join("config.xml");
        std::fs::write(&config, self.config_xml()).expect("write clickhouse config.xml");
        let stdout = std::fs::File::create(log_dir.join("stdout.log")).expect("create stdout.log");
        let stderr = stdout.try_clone().expect("clone stdout.log handle");
        let child = Command::new(binary())
            .arg(format!("--config-file={}", config.display()))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "clickhouse-server not found ({e}; looked in {}): \
                     run scripts/test, which installs it",
                    BINARY_CANDIDATES.join(", ")
                )
            });
        self.child = Some(child);

        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.exited() {
                self.child = None;
                return Err(StartError::Exited(format!("{status}\n{}", self.logs())));
            }
            if self.ping() && self.is_ours() {
                // A server whose port is taken exits shortly after start; make sure
                // the one that answered is (still) ours.
                if let Some(status) = self.exited() {
                    self.child = None;
                    return Err(StartError::Exited(format!("{status}\n{}", self.logs())));
                }
                return Ok(());
            }
            if Instant::now() >= deadline {
                let logs = self.logs();
                self.stop();
                return Err(StartError::Timeout(format!(
                    "clickhouse-server (http {}, tcp {}) not ready after {:?}:\n{logs}",
                    self.http_port, self.tcp_port, READY_TIMEOUT
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `Some(status)` once the child has exited (or there is no child).
    fn exited(&mut self) -> Option<String> {
        match self.child.as_mut().map(|c| c.try_wait()) {
            None => Some("not running".to_string()),
            Some(Ok(Some(status))) => Some(status.to_string()),
            Some(Ok(None)) => None,
            Some(Err(e)) => Some(format!("wait failed: {e}")),
        }
    }

    fn ping(&self) -> bool {
        self.http("GET", "/ping", b"", Duration::from_secs(1))
            .is_ok_and(|r| r.status == 200 && r.body == "Ok.\n")
    }

    /// Whether the server on `http_port` is this one (it echoes our display name).
    fn is_ours(&self) -> bool {
        self.http("POST", "/", b"SELECT 1", Duration::from_secs(5))
            .is_ok_and(|r| r.status == 200 && r.display_name.as_deref() == Some(&self.display_name))
    }

    /// The server's error log and stdout/stderr, for panic messages.
    fn logs(&self) -> String {
        let dir = self.log_dir();
        ["server.err.log", "stdout.log"]
            .iter()
            .map(|name| {
                let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
                format!("--- {} ---\n{}", dir.join(name).display(), text.trim_end())
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Minimal config 18.16 accepts: it refuses to start without `<logger>`,
    /// `<mark_cache_size>` and a `default` profile, user and quota (users may live in
    /// the main config). No `<interserver_http_port>`: without it nothing listens there.
    fn config_xml(&self) -> String {
        let dir = xml_escape(&self.dir.path().display().to_string());
        format!(
            r#"<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <log>{dir}/log/server.log</log>
    <errorlog>{dir}/log/server.err.log</errorlog>
    <size>10M</size>
    <count>2</count>
  </logger>
  <display_name>{name}</display_name>
  <listen_host>{host}</listen_host>
  <http_port>{http}</http_port>
  <tcp_port>{tcp}</tcp_port>
  <path>{dir}/data/</path>
  <tmp_path>{dir}/data/tmp/</tmp_path>
  <user_files_path>{dir}/data/user_files/</user_files_path>
  <format_schema_path>{dir}/data/format_schemas/</format_schema_path>
  <mark_cache_size>268435456</mark_cache_size>
  <max_concurrent_queries>200</max_concurrent_queries>
  <profiles><default/></profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.0/8</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas><default/></quotas>
{extra}
</yandex>
"#,
            host = self.host,
            extra = self.extra_config,
            name = xml_escape(&self.display_name),
            http = self.http_port,
            tcp = self.tcp_port,
        )
    }

    /// One HTTP/1.0 request on a fresh connection; the server closes it after the
    /// response (no chunked encoding), so the body is everything after the head.
    fn http(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        timeout: Duration,
    ) -> std::io::Result<HttpResponse> {
        let addr = std::net::SocketAddr::from((self.host, self.http_port));
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        let head = format!(
            "{method} {path} HTTP/1.0\r\nHost: {}:{}\r\nContent-Length: {}\r\n\r\n",
            self.host,
            self.http_port,
            body.len()
        );
        s.write_all(head.as_bytes())?;
        s.write_all(body)?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        HttpResponse::parse(&raw)
    }
}

impl Drop for ClickHouseServer {
    fn drop(&mut self) {
        self.stop();
    }
}

struct HttpResponse {
    status: u16,
    display_name: Option<String>,
    body: String,
}

impl HttpResponse {
    fn parse(raw: &[u8]) -> std::io::Result<Self> {
        let bad =
            |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| bad("no end of HTTP head"))?;
        let head = String::from_utf8_lossy(&raw[..split]);
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| bad("bad HTTP status line"))?;
        let display_name = lines.find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case(DISPLAY_NAME_HEADER)
                .then(|| value.trim().to_string())
        });
        Ok(Self {
            status,
            display_name,
            body: String::from_utf8_lossy(&raw[split + 4..]).into_owned(),
        })
    }
}

fn binary() -> &'static str {
    BINARY_CANDIDATES
        .iter()
        .copied()
        .find(|p| Path::new(p).exists())
        .unwrap_or("clickhouse-server")
}

pub(crate) fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
