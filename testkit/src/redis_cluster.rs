use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A private Redis Cluster on 127.0.0.1: 3 masters, optionally each with one
/// replica, persistence off, every node killed on drop.
///
/// What it runs (so a shell script can do the same), per node in its own
/// directory:
///
/// ```text
/// redis-server --port P --bind 127.0.0.1 --save "" --appendonly no \
///   --cluster-enabled yes --cluster-config-file nodes.conf \
///   --cluster-node-timeout 1000 --dir DIR/P
/// ```
///
/// then `redis-cli --cluster create 127.0.0.1:P1 … 127.0.0.1:P6
/// --cluster-replicas 1 --cluster-yes` (`--cluster-replicas 0` with three
/// nodes), and waits until `CLUSTER INFO` says `cluster_state:ok` on every
/// node (and every replica's `master_link_status:up`). Ports are ≤ 55535:
/// each node also listens on its bus port, port + 10000.
pub struct RedisCluster {
    dir: tempfile::TempDir,
    nodes: Vec<(u16, Option<Child>)>,
}

/// Held while a cluster picks its ports and its nodes bind them. Two
/// clusters started at once in one test process could otherwise pick the
/// same free port; one `redis-cli --cluster create` would then take in a
/// node of the other cluster, and neither would reach `cluster_state:ok`.
static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// How long a node is unreachable before the others call it failed and its
/// replica takes over.
pub const NODE_TIMEOUT_MS: u64 = 1000;

impl RedisCluster {
    /// Three masters, no replicas.
    pub fn start() -> Self {
        Self::start_with(0)
    }

    /// Three masters, each with one replica (six nodes): a master killed
    /// with [`kill`](Self::kill) fails over to its replica.
    pub fn start_with_replicas() -> Self {
        Self::start_with(1)
    }

    fn start_with(replicas: usize) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cluster = Self {
            dir,
            nodes: Vec::new(),
        };
        let n = 3 * (1 + replicas);
        let starting = STARTING.lock().unwrap_or_else(|p| p.into_inner());
        for port in cluster_ports(n) {
            let child = cluster.spawn(port);
            cluster.nodes.push((port, Some(child)));
        }
        for (port, _) in &cluster.nodes {
            // The node that answers must be this cluster's (its own dir):
            // another process may have taken the port after it was picked.
            let dir = cluster.dir.path().join(port.to_string());
            // As the node's getcwd() gives it (no symlinks).
            let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
            let ours = || {
                cli(*port, &["PING"]) == "PONG"
                    && cli(*port, &["CONFIG", "GET", "dir"]).contains(&*dir.to_string_lossy())
            };
            wait_for(Duration::from_secs(10), ours).unwrap_or_else(|| {
                panic!(
                    "redis-server on port {port} did not answer PING from {}",
                    dir.display()
                )
            });
        }
        drop(starting);
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for (port, _) in &cluster.nodes {
            create.arg(format!("127.0.0.1:{port}"));
        }
        let out = create
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli not found: run scripts/test, which installs redis-tools");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        cluster.wait_ok(Duration::from_secs(60));
        if replicas > 0 {
            let ports: Vec<u16> = cluster.ports();
            wait_for(Duration::from_secs(30), || {
                ports
                    .iter()
                    .filter(|p| info_field(**p, "replication", "role").as_deref() == Some("slave"))
                    .all(|p| {
                        info_field(*p, "replication", "master_link_status").as_deref() == Some("up")
                    })
                    && cluster.masters().len() == 3
            })
            .expect("replicas did not sync with their masters");
        }
        cluster
    }

    fn spawn(&self, port: u16) -> Child {
        let dir = self.dir.path().join(port.to_string());
        std::fs::create_dir_all(&dir).expect("node dir");
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--cluster-enabled", "yes"])
            .args(["--cluster-config-file", "nodes.conf"])
            .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server not found: run scripts/test, which installs it")
    }

    /// Every node's port (masters and replicas, alive or not).
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|(p, _)| *p).collect()
    }

    /// The seed list for `--redis-cluster`: `redis://127.0.0.1:P1,…`.
    pub fn seeds(&self) -> String {
        self.nodes
            .iter()
            .map(|(p, _)| format!("redis://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The ports of the masters that are alive and own slots, as the live
    /// nodes see them (`CLUSTER NODES`).
    pub fn masters(&self) -> Vec<u16> {
        let mut masters = Vec::new();
        for (port, child) in &self.nodes {
            if child.is_none() {
                continue;
            }
            for line in cli(*port, &["CLUSTER", "NODES"]).lines() {
                // id addr flags master ping pong epoch state slots…
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.len() > 8 && f[2].contains("master") && !f[2].contains("fail") {
                    let addr = f[1].split('@').next().unwrap_or("");
                    if let Some(p) = addr.rsplit(':').next().and_then(|p| p.parse().ok()) {
                        if !masters.contains(&p) && self.alive(p) {
                            masters.push(p);
                        }
                    }
                }
            }
            break;
        }
        masters.sort_unstable();
        masters
    }

    fn alive(&self, port: u16) -> bool {
        self.nodes.iter().any(|(p, c)| *p == port && c.is_some())
    }

    /// `DBSIZE` of the node on `port`.
    pub fn dbsize(&self, port: u16) -> u64 {
        cli(port, &["DBSIZE"]).parse().unwrap_or(0)
    }

    /// Runs one command with `redis-cli -c` (following redirections) and
    /// returns its raw output, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        let port = self.masters().first().copied().expect("a live master");
        let mut all = vec!["-c"];
        all.extend_from_slice(args);
        cli(port, &all)
    }

    /// SIGKILLs the node on `port` (a crash).
    pub fn kill(&mut self, port: u16) {
        for (p, child) in &mut self.nodes {
            if *p == port {
                if let Some(mut c) = child.take() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
            }
        }
    }

    /// Waits until every live node says `cluster_state:ok` and agrees on
    /// three masters that are alive.
    pub fn wait_ok(&self, timeout: Duration) {
        let live: Vec<u16> = self
            .nodes
            .iter()
            .filter(|(_, c)| c.is_some())
            .map(|(p, _)| *p)
            .collect();
        wait_for(timeout, || {
            live.iter().all(|p| {
                info_field_of(&cli(*p, &["CLUSTER", "INFO"]), "cluster_state").as_deref()
                    == Some("ok")
            }) && self.masters().len() == 3
        })
        .unwrap_or_else(|| panic!("the cluster on {live:?} did not reach cluster_state:ok"));
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.nodes {
            if let Some(mut c) = child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// `n` ports ≤ 55535 whose bus ports (+10000) were free a moment ago.
fn cluster_ports(n: usize) -> Vec<u16> {
    let mut ports = Vec::new();
    while ports.len() < n {
        let p = crate::free_port();
        if p > 55535 || ports.contains(&p) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", p + 10000)).is_ok() {
            ports.push(p);
        }
    }
    ports
}

fn cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn info_field(port: u16, section: &str, field: &str) -> Option<String> {
    info_field_of(&cli(port, &["INFO", section]), field)
}

fn info_field_of(text: &str, field: &str) -> Option<String> {
    text.lines().find_map(|l| {
        l.trim()
            .strip_prefix(field)
            .and_then(|r| r.strip_prefix(':'))
            .map(|v| v.trim().to_string())
    })
}

fn wait_for(timeout: Duration, mut check: impl FnMut() -> bool) -> Option<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return Some(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}
