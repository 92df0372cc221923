use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The jar Debian's `zookeeper` package installs (its manifest names the
/// libraries it needs).
const JAR: &str = "/usr/share/java/zookeeper.jar";
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A private standalone ZooKeeper (Debian's `zookeeper` 3.8 jars, run with
/// `java`, not the system service) on a free port of 127.0.0.1, its data in
/// a temp dir; killed on drop. For replicated ClickHouse tables.
pub struct ZooKeeper {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl ZooKeeper {
    /// Starts it and waits until it serves (a few seconds: the JVM). Panics with its log when it does not.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("codelink-zookeeper-")
            .tempdir()
            .expect("temp dir");
        let mut zk = Self {
            port: 0,
            dir,
            child: None,
        };
        for attempt in 1..=3 {
            zk.port = crate::free_port();
            match zk.spawn_and_wait() {
                Ok(()) => return zk,
                Err(log) if attempt < 3 => {
                    eprintln!(
                        "zookeeper on port {} did not start, retrying:\n{log}",
                        zk.port
                    )
                }
                Err(log) => panic!("zookeeper did not start 3 times; last log:\n{log}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `<zookeeper>` for a ClickHouse config.
    pub fn clickhouse_xml(&self) -> String {
        format!(
            "<zookeeper><node><host>127.0.0.1</host><port>{}</port></node>\
             <session_timeout_ms>10000</session_timeout_ms></zookeeper>",
            self.port
        )
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let path = self.dir.path();
        let config = path.join("zoo.cfg");
        std::fs::write(
            &config,
            format!(
                "tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir={}/data\nclientPort={}\n\
                 clientPortAddress=127.0.0.1\nadmin.enableServer=false\n\
                 4lw.commands.whitelist=ruok,srvr\nmaxClientCnxns=0\n",
                path.display(),
                self.port
            ),
        )
        .expect("write zoo.cfg");
        let log = std::fs::File::create(path.join("zookeeper.log")).expect("create zookeeper.log");
        let child = Command::new("java")
            .args([
                "-Xmx256m",
                "-cp",
                JAR,
                "org.apache.zookeeper.server.ZooKeeperServerMain",
            ])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("java not found ({e}): run scripts/test, which installs zookeeper")
            });
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return Err(format!("exited: {status}\n{}", self.log()));
            }
            if self.serving() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("not ready after {READY_TIMEOUT:?}\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether it serves sessions: `srvr` tells its mode (`ruok` answers
    /// `imok` earlier, while sessions are still refused, and ClickHouse
    /// 18.16's DDL worker crashes on a refused session at start-up).
    fn serving(&self) -> bool {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let mut answer = String::new();
        s.write_all(b"srvr").is_ok()
            && s.read_to_string(&mut answer).is_ok()
            && answer.contains("Mode: standalone")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("zookeeper.log")).unwrap_or_default()
    }
}

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
