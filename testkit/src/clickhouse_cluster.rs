use crate::clickhouse::{xml_escape, StartError};
use crate::{ClickHouseServer, ZooKeeper};
use std::net::{Ipv4Addr, TcpListener};

const START_ATTEMPTS: u32 = 3;

/// A ClickHouse cluster of private `clickhouse-server`s (Debian's 18.16):
/// `shards[i]` replicas of shard `i + 1`, every node on its own loopback
/// address (127.0.0.1, 127.0.0.2, … in shard and replica order) with the
/// same HTTP port, as real clusters run (one port, many hosts), which is
/// what the gateway assumes. The native TCP ports differ per node: ClickHouse
/// takes an address of the cluster for itself when the address is one of the
/// machine's and the port is its own, and every 127.0.0.x is this machine's,
/// so with one TCP port every node would take every entry for itself (`ON
/// CLUSTER` DDL then runs on one host only). 18.16 also takes an address for
/// its own only when it is one of a network interface's, and `lo` lists
/// 127.0.0.1 alone: [`Self::start`] adds the other addresses to `lo`
/// ([`crate::ensure_loopback_aliases`]) when it can (root, `ip`), which `ON
/// CLUSTER` DDL (a cluster with ZooKeeper) needs: without them such a
/// cluster panics with the reason, rather than let the DDL time out.
/// Every node's config names the cluster [`Self::NAME`] in
/// `<remote_servers>` (each shard weight 1) and its `<macros>` (`shard` =
/// the shard number, `replica` = its address); with a [`ZooKeeper`] also
/// `<zookeeper>`, `<distributed_ddl>` and an interserver HTTP port (the
/// replicas fetch parts from each other), and `internal_replication` true.
///
/// The XML each node gets is [`Self::config_xml`]'s, put inside `<yandex>`
/// of [`ClickHouseServer`]'s minimal config.
pub struct ClickHouseCluster {
    /// Shard by shard, replica by replica.
    pub shards: Vec<Vec<ClickHouseServer>>,
}

impl ClickHouseCluster {
    /// The `<remote_servers>` entry every node declares.
    pub const NAME: &'static str = "codelink_test";

    /// Starts `replicas[i]` replicas of shard `i + 1` (more than one needs
    /// `zookeeper`) and waits until every node answers. Ports are picked free
    /// on every node's address; when a node exits during start-up (a port
    /// taken meanwhile), the whole cluster starts again on new ports.
    pub fn start(replicas: &[usize], zookeeper: Option<&ZooKeeper>) -> Self {
        Self::start_with(replicas, zookeeper, true)
    }

    /// [`Self::start`], with `<distributed_ddl>` in the nodes' config only
    /// when `ddl_queue` (and a `zookeeper`): without it 18.16 refuses `ON
    /// CLUSTER` DDL.
    pub fn start_with(replicas: &[usize], zookeeper: Option<&ZooKeeper>, ddl_queue: bool) -> Self {
        let hosts: Vec<Vec<Ipv4Addr>> = {
            let mut next = 1u8;
            replicas
                .iter()
                .map(|n| {
                    (0..*n)
                        .map(|_| {
                            next += 1;
                            Ipv4Addr::new(127, 0, 0, next - 1)
                        })
                        .collect()
                })
                .collect()
        };
        let all: Vec<Ipv4Addr> = hosts.iter().flatten().copied().collect();
        match crate::ensure_loopback_aliases(&all) {
            Ok(()) => {}
            Err(why) if zookeeper.is_some() => panic!(
                "a ClickHouse cluster with ZooKeeper runs ON CLUSTER DDL, and each node must \
                 find its address ({}) among lo's: {why}",
                all.iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            // Without ZooKeeper the DDL runs node by node: no need.
            Err(why) => {
                eprintln!("loopback aliases not added ({why}); not needed without ZooKeeper")
            }
        }
        for attempt in 1..=START_ATTEMPTS {
            let [http, interserver] = [(); 2].map(|_| free_everywhere(&all));
            let nodes: Vec<Vec<(Ipv4Addr, u16)>> = hosts
                .iter()
                .map(|shard| {
                    shard
                        .iter()
                        .map(|h| {
                            let mut tcp = free_everywhere(&all);
                            while tcp == http || tcp == interserver {
                                tcp = free_everywhere(&all);
                            }
                            (*h, tcp)
                        })
                        .collect()
                })
                .collect();
            let mut shards: Vec<Vec<ClickHouseServer>> = Vec::new();
            let mut failed = None;
            'start: for (s, shard) in nodes.iter().enumerate() {
                shards.push(Vec::new());
                for (host, tcp) in shard {
                    let xml =
                        Self::config_xml(&nodes, s + 1, *host, zookeeper, interserver, ddl_queue);
                    let mut node = ClickHouseServer::unstarted(*host, xml);
                    match node.start_on(http, *tcp) {
                        Ok(()) => shards[s].push(node),
                        Err(StartError::Exited(log)) | Err(StartError::Timeout(log)) => {
                            failed = Some(log);
                            break 'start;
                        }
                    }
                }
            }
            match failed {
                None => return Self { shards },
                Some(log) if attempt < START_ATTEMPTS => eprintln!(
                    "a clickhouse cluster node did not start (http {http}), \
                     retrying on new ports:\n{log}"
                ),
                Some(log) => panic!("a clickhouse cluster node did not start 3 times:\n{log}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// What a node of this layout adds to its config: the cluster, its
    /// macros and, with ZooKeeper, replication (and the DDL queue when
    /// `ddl_queue`). `nodes[s]` the addresses and TCP ports of shard `s + 1`'s
    /// replicas.
    pub fn config_xml(
        nodes: &[Vec<(Ipv4Addr, u16)>],
        shard: usize,
        host: Ipv4Addr,
        zookeeper: Option<&ZooKeeper>,
        interserver_port: u16,
        ddl_queue: bool,
    ) -> String {
        let mut shards = String::new();
        for replicas in nodes {
            shards.push_str("<shard><weight>1</weight>");
            shards.push_str(&format!(
                "<internal_replication>{}</internal_replication>",
                zookeeper.is_some()
            ));
            for (h, tcp_port) in replicas {
                shards.push_str(&format!(
                    "<replica><host>{h}</host><port>{tcp_port}</port></replica>"
                ));
            }
            shards.push_str("</shard>");
        }
        let mut xml = format!(
            "<remote_servers><{name}>{shards}</{name}></remote_servers>\n\
             <macros><shard>{shard}</shard><replica>{host}</replica></macros>\n",
            name = xml_escape(Self::NAME),
        );
        if let Some(zk) = zookeeper {
            xml.push_str(&zk.clickhouse_xml());
            if ddl_queue {
                xml.push_str(
                    "\n<distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>",
                );
            }
            xml.push_str(&format!(
                "\n<interserver_http_port>{interserver_port}</interserver_http_port>\n\
                 <interserver_http_host>{host}</interserver_http_host>\n"
            ));
        }
        xml
    }

    /// The seed: the first node (127.0.0.1).
    pub fn seed(&self) -> &ClickHouseServer {
        &self.shards[0][0]
    }

    /// Every node, shard by shard.
    pub fn nodes(&self) -> impl Iterator<Item = &ClickHouseServer> {
        self.shards.iter().flatten()
    }
}

/// A port free on every one of `hosts` a moment ago.
fn free_everywhere(hosts: &[Ipv4Addr]) -> u16 {
    loop {
        let port = crate::free_port();
        if hosts.iter().all(|h| TcpListener::bind((*h, port)).is_ok()) {
            return port;
        }
    }
}
