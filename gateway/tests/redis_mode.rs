//! Redis mode against a real `redis-server` started by the harness: two
//! gateway instances share codes, and redirects survive a Redis outage. The
//! code sync and the console sessions also run on a 3-master Redis Cluster
//! (`--redis-cluster`).

mod common;

use codelink_testkit::{RedisCluster, RedisServer};
use serde_json::json;
use std::time::{Duration, Instant};

/// The Redis the instances of a test share.
#[derive(Clone, Copy)]
enum Shared<'a> {
    Single(&'a RedisServer),
    Cluster(&'a RedisCluster),
}

impl Shared<'_> {
    fn configure(self, config: &mut gateway::config::Config) {
        match self {
            Shared::Single(r) => config.redis_url = Some(r.url()),
            Shared::Cluster(c) => config.redis_cluster = Some(c.seeds()),
        }
    }
}

async fn instance(redis: &RedisServer, prefix: &str) -> common::TestGateway {
    shared_instance(Shared::Single(redis), prefix).await
}

async fn shared_instance(redis: Shared<'_>, prefix: &str) -> common::TestGateway {
    let (mut config, tmp) = common::config();
    redis.configure(&mut config);
    config.redis_prefix = prefix.to_string();
    common::start_with(config, Some(tmp)).await
}

/// Polls `path` on `gw` until it answers `status`; returns how long that took.
async fn until_status(gw: &common::TestGateway, path: &str, status: u16) -> Duration {
    let started = Instant::now();
    let ok = codelink_testkit::wait_until(Duration::from_secs(3), || async {
        gw.anon.get(path).await.status == status
    })
    .await;
    assert!(ok, "{path} never answered {status}");
    started.elapsed()
}

#[tokio::test]
async fn change_through_one_instance_reaches_the_other_within_a_second() {
    let redis = RedisServer::start();
    change_reaches_the_other(Shared::Single(&redis)).await;
}

#[tokio::test]
async fn on_a_cluster_change_through_one_instance_reaches_the_other_within_a_second() {
    let cluster = RedisCluster::start();
    change_reaches_the_other(Shared::Cluster(&cluster)).await;
    // The codes, their version token and the console's keys share one slot
    // (one master); the version token is where the instances poll it.
    let slot = cluster.cli(&["CLUSTER", "KEYSLOT", "{t1}:codes:version"]);
    assert_eq!(slot, cluster.cli(&["CLUSTER", "KEYSLOT", "{t1}:codes"]));
    assert!(!cluster.cli(&["GET", "{t1}:codes:version"]).is_empty());
}

async fn change_reaches_the_other(redis: Shared<'_>) {
    let a = shared_instance(redis, "t1").await;
    let b = shared_instance(redis, "t1").await;
    assert_eq!(b.anon.get("/readyz").await.json()["store"], "redis");

    assert_eq!(a.create(common::alice()).await.status, 201);
    // A sees its own write at once.
    assert_eq!(a.anon.get("/alice10/yt").await.status, 302);
    let took = until_status(&b, "/alice10/yt", 302).await;
    assert!(took < Duration::from_secs(1), "took {took:?}");

    // A PATCH through B reaches A.
    let r = b
        .admin
        .patch_json(
            "/api/v1/codes/alice10",
            &json!({"destination": "https://moved.example/"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let started = Instant::now();
    let moved = codelink_testkit::wait_until(Duration::from_secs(3), || async {
        a.anon
            .get("/alice10")
            .await
            .header("location")
            .is_some_and(|l| l.starts_with("https://moved.example/"))
    })
    .await;
    assert!(moved && started.elapsed() < Duration::from_secs(1));

    // Disabling through A turns B's link off.
    assert_eq!(a.admin.delete("/api/v1/codes/alice10").await.status, 200);
    let took = until_status(&b, "/alice10", 410).await;
    assert!(took < Duration::from_secs(1), "took {took:?}");

    // Both instances refuse a name the other took.
    let mut dup = common::alice();
    dup["code"] = json!("Alice10");
    assert_eq!(b.create(dup).await.status, 409);
}

#[tokio::test]
async fn redirects_survive_a_redis_outage_and_resync_after() {
    let mut redis = RedisServer::start();
    let a = instance(&redis, "t2").await;
    let b = instance(&redis, "t2").await;
    // An instance with no code in memory (another prefix, nothing created).
    let empty = instance(&redis, "t2-empty").await;
    a.create(common::alice()).await;
    until_status(&b, "/alice10/bio", 302).await;

    redis.stop();
    for gw in [&a, &b] {
        for _ in 0..20 {
            assert_eq!(gw.anon.get("/alice10/bio").await.status, 302);
        }
        // Still ready for a balancer (every gateway sees the same outage, and
        // each serves from memory), degraded, with the reason.
        let r = gw.anon.get("/readyz").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["status"], "degraded", "{}", r.text());
        assert!(
            r.json()["reason"].as_str().unwrap().contains("redis"),
            "{}",
            r.text()
        );
        // Writes cannot be stored: a clear 503, not a 500.
        let r = gw
            .create(json!({"code": "during", "destination": "https://x.example/", "owner": "o"}))
            .await;
        assert_eq!(r.status, 503);
        assert_eq!(r.error_code(), "backend_unavailable");
    }

    // Redis comes back empty (no persistence in the harness): the instances
    // put back the codes they serve, and sharing resumes.
    // Nothing in memory to serve: not ready.
    let r = empty.anon.get("/readyz").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.error_code(), "not_ready");

    redis.restart();
    let ready = codelink_testkit::wait_until(Duration::from_secs(5), || async {
        a.anon.get("/readyz").await.json()["status"] == "ready"
    })
    .await;
    assert!(ready, "readyz did not recover");
    let r = a
        .create(json!({"code": "after", "destination": "https://x.example/", "owner": "o"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    until_status(&b, "/after", 302).await;
    for gw in [&a, &b] {
        assert_eq!(gw.anon.get("/alice10/bio").await.status, 302);
        let r = gw.admin.get("/api/v1/codes/alice10").await;
        assert_eq!(r.json()["owner"], "alice");
    }
}

#[tokio::test]
async fn restart_during_outage_serves_the_last_snapshot() {
    let mut redis = RedisServer::start();
    let (mut config, tmp) = common::config();
    config.redis_url = Some(redis.url());
    config.redis_prefix = "t3".into();
    let mut gw = common::start_with(config.clone(), Some(tmp)).await;
    gw.create(common::alice()).await;
    // Let the sync task write its snapshot after the change.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let tmp = gw.take_tmp();
    gw.stop().await.unwrap();

    redis.stop();
    let gw = common::start_with(config, tmp).await;
    assert_eq!(gw.anon.get("/alice10/yt").await.status, 302);
    // It serves the snapshot's codes: ready for a balancer, degraded.
    let r = gw.anon.get("/readyz").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "degraded");

    // When Redis returns (empty), the instance writes its codes back.
    redis.restart();
    let other = instance(&redis, "t3").await;
    until_status(&other, "/alice10/yt", 302).await;
}

#[tokio::test]
async fn console_sessions_hold_on_every_instance_until_signed_out() {
    let redis = RedisServer::start();
    sessions_hold_until_signed_out(Shared::Single(&redis)).await;
}

#[tokio::test]
async fn on_a_cluster_console_sessions_hold_until_signed_out() {
    let cluster = RedisCluster::start();
    sessions_hold_until_signed_out(Shared::Cluster(&cluster)).await;
}

async fn sessions_hold_until_signed_out(redis: Shared<'_>) {
    use common::console::{csrf_of, get, post, sign_in};
    // Instances share Redis and the server secret (as README says to run them).
    let start = || async {
        let (mut config, tmp) = common::config();
        redis.configure(&mut config);
        config.redis_prefix = "ui".into();
        config.secret = Some("shared-secret-0123456789abcdef".into());
        common::start_with(config, Some(tmp)).await
    };
    let a = start().await;
    let b = start().await;
    let cookie = sign_in(&a, common::ADMIN_KEY).await;
    let page = get(&b.anon, "/ui/codes", &cookie).await;
    assert_eq!(page.status, 200, "a session works on every instance");
    // Signed out through B: the cookie stops working on A as well.
    let r = post(
        &b.anon,
        "/ui/sign-out",
        &cookie,
        &[("csrf", &csrf_of(&page.text()))],
        None,
    )
    .await;
    assert_eq!(r.status, 303);
    for gw in [&a, &b] {
        let r = get(&gw.anon, "/ui/codes", &cookie).await;
        assert_eq!(
            (r.status.as_u16(), r.header("location")),
            (303, Some("/ui/sign-in"))
        );
    }
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

/// A code created on an instance is served by it at once, even while that
/// instance reloads the table from Redis (every write moves the version, so
/// with a 10 ms poll reloads race the next creations): a reload that read
/// Redis before a creation must not replace the table after it.
#[tokio::test]
async fn a_reload_never_drops_a_code_just_created() {
    let redis = RedisServer::start();
    let (mut config, tmp) = common::config();
    config.redis_url = Some(redis.url());
    config.redis_prefix = "race".into();
    config.redis_sync_ms = 10;
    config.api_rate_per_ip = 100_000;
    config.api_burst_per_ip = 100_000;
    let gw = common::start_with(config, Some(tmp)).await;
    let mut missing = Vec::new();
    for i in 0..300 {
        let code = format!("race{i}");
        let r = gw
            .create(json!({"code": code, "destination": "https://shop.example/", "owner": "r"}))
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        for _ in 0..3 {
            let status = gw.anon.get(&format!("/{code}")).await.status;
            if status != 302 {
                missing.push((code.clone(), status));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "codes not served right after creation: {missing:?}"
    );
}
