//! `gateway/openapi.json`, the OpenAPI 3.1 document of the whole HTTP API:
//! well-formed, served at `/api/v1/openapi.json`, and kept in step with the
//! router (both ways: every documented operation reaches a handler and answers
//! a documented status; every route of `src/api/mod.rs` is documented).
//!
//! `schemathesis_against_a_live_gateway` (ignored; run by `scripts/schemathesis`)
//! starts real Redis and ClickHouse servers and a gateway on them, and runs
//! schemathesis against the served document.

mod common;

use bytes::Bytes;
use http::Method;
use serde_json::{json, Value};
use std::collections::BTreeSet;

const DOC: &str = include_str!("../openapi.json");
const API_SOURCE: &str = include_str!("../src/api/mod.rs");
const ROUTER_SOURCE: &str = include_str!("../src/router.rs");
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn doc() -> Value {
    serde_json::from_str(DOC).expect("gateway/openapi.json is JSON")
}

/// Every (path, METHOD) of the document.
fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, _) in item.as_object().expect("path item") {
            if METHODS.contains(&method.as_str()) {
                ops.push((path.clone(), method.to_ascii_uppercase()));
            }
        }
    }
    ops
}

/// Resolves a local `$ref` (`#/components/...`).
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r.strip_prefix('#').expect("local $ref");
            doc.pointer(pointer)
                .unwrap_or_else(|| panic!("$ref {r} resolves"))
        }
        None => v,
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if k == "$ref" {
                    out.push(v.as_str().expect("$ref is a string").to_string());
                } else {
                    collect_refs(v, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[test]
fn document_is_openapi_3_1_with_the_shared_error_schema() {
    let d = doc();
    assert!(
        d["openapi"].as_str().is_some_and(|v| v.starts_with("3.1.")),
        "openapi: {}",
        d["openapi"]
    );
    assert!(d["info"]["title"].is_string() && d["info"]["version"].is_string());
    let error = &d["components"]["schemas"]["Error"];
    assert_eq!(error["required"], json!(["error"]));
    assert_eq!(
        error["properties"]["error"]["required"],
        json!(["code", "message"])
    );
    for scheme in ["adminKey", "creatorKey", "ingestKey"] {
        let s = &d["components"]["securitySchemes"][scheme];
        assert_eq!(s["type"], "http", "{scheme}");
        assert_eq!(s["scheme"], "bearer", "{scheme}");
    }
    // Every $ref resolves.
    let mut refs = Vec::new();
    collect_refs(&d, &mut refs);
    assert!(refs.len() > 50, "{} refs", refs.len());
    for r in &refs {
        let pointer = r.strip_prefix('#').expect("local $ref");
        assert!(d.pointer(pointer).is_some(), "dangling $ref {r}");
    }
    // Every API failure answers the shared error schema; each operation has an id.
    let mut ids = BTreeSet::new();
    for (path, method) in operations(&d) {
        let op = &d["paths"][&path][method.to_ascii_lowercase()];
        let id = op["operationId"].as_str().expect("operationId");
        assert!(ids.insert(id.to_string()), "operationId {id} twice");
        let responses = op["responses"].as_object().expect("responses");
        assert!(!responses.is_empty(), "{method} {path}");
        if path.starts_with("/api/") {
            for (status, r) in responses {
                let r = resolve(&d, r);
                if status.starts_with('4') || status.starts_with('5') {
                    let schema = &r["content"]["application/json"]["schema"];
                    assert_eq!(
                        schema["$ref"], "#/components/schemas/Error",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
}

/// A route of the API router: path segments after `/api/v1/` (`None`: a
/// variable) and a method.
type Route = (Vec<Option<String>>, String);

/// The routes of `gateway/src/api/mod.rs`, read from its match arms:
/// `(["codes", code, "stats"], &Method::GET) =>`, and `(["codes", code], m) =>`
/// followed by `Method::PATCH =>` arms. Arms with `_` as the method are the
/// 405 answers, not routes.
fn router_routes() -> Vec<Route> {
    let mut routes = Vec::new();
    let mut nested: Option<Vec<Option<String>>> = None;
    for line in API_SOURCE.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("([") {
            let (segments, after) = rest.split_once("],").expect("a route arm");
            let segments: Vec<Option<String>> = segments
                .split(',')
                .map(str::trim)
                .map(|s| {
                    s.strip_prefix('"')
                        .and_then(|s| s.strip_suffix('"'))
                        .map(str::to_string)
                })
                .collect();
            let method = after.trim().split(')').next().unwrap_or("").trim();
            nested = None;
            if let Some(m) = method.strip_prefix("&Method::") {
                routes.push((segments, m.to_string()));
            } else if method != "_" {
                nested = Some(segments);
            }
        } else if let (Some(segments), Some(rest)) = (&nested, t.strip_prefix("Method::")) {
            if let Some((m, _)) = rest.split_once(" =>") {
                routes.push((segments.clone(), m.to_string()));
            }
        }
    }
    routes
}

fn matches(route: &Route, path: &str, method: &str) -> bool {
    let Some(rest) = path.strip_prefix("/api/v1/") else {
        return false;
    };
    let doc_segments: Vec<&str> = rest.split('/').collect();
    route.1 == method
        && doc_segments.len() == route.0.len()
        && route.0.iter().zip(&doc_segments).all(|(r, d)| match r {
            Some(literal) => literal == d,
            // A variable of the router: a documented variable, or a literal
            // value of it (the analytics reports).
            None => true,
        })
}

#[test]
fn every_route_of_the_router_is_documented_and_nothing_else() {
    let routes = router_routes();
    // The parser must keep up with the source: these are known to be there.
    for known in [
        (vec![Some("codes")], "GET"),
        (vec![Some("codes")], "POST"),
        (vec![Some("codes"), None], "PATCH"),
        (vec![Some("codes"), None], "DELETE"),
        (vec![Some("analytics"), None], "GET"),
        (vec![Some("keys"), None], "DELETE"),
    ] {
        let known: Route = (
            known.0.into_iter().map(|s| s.map(str::to_string)).collect(),
            known.1.to_string(),
        );
        assert!(routes.contains(&known), "{known:?} in {routes:?}");
    }
    assert!(routes.len() >= 12, "{routes:?}");
    assert!(API_SOURCE.contains("\"/api/v1/openapi.json\""));

    let d = doc();
    let ops = operations(&d);
    for route in &routes {
        assert!(
            ops.iter().any(|(p, m)| matches(route, p, m)),
            "the router answers {} /api/v1/{} but openapi.json does not document it",
            route.1,
            route
                .0
                .iter()
                .map(|s| s.as_deref().unwrap_or("{var}"))
                .collect::<Vec<_>>()
                .join("/")
        );
    }
    for (path, method) in &ops {
        if path == "/api/v1/openapi.json" {
            assert_eq!(method, "GET");
        } else if path.starts_with("/api/") {
            assert!(
                routes.iter().any(|r| matches(r, path, method)),
                "openapi.json documents {method} {path}, which the API router does not have"
            );
        }
    }
    // The public routes of src/router.rs and its handlers.
    for first in [
        "\"api\"",
        "\"qr\"",
        "\"healthz\"",
        "\"readyz\"",
        "\"metrics\"",
        "'@'",
    ] {
        assert!(
            ROUTER_SOURCE.contains(first),
            "router.rs dispatches {first}"
        );
    }
    for (path, method) in [
        ("/{code}", "GET"),
        ("/{code}", "HEAD"),
        ("/{code}/{channel}", "GET"),
        ("/{code}/{channel}", "HEAD"),
        ("/@{owner}", "GET"),
        ("/@{owner}", "HEAD"),
        ("/t.js", "GET"),
        ("/t.js", "HEAD"),
        ("/qr/{code}.png", "GET"),
        ("/qr/{code}.png", "HEAD"),
        ("/qr/{code}.svg", "GET"),
        ("/qr/{code}.svg", "HEAD"),
        ("/qr/{code}.pdf", "GET"),
        ("/qr/{code}.pdf", "HEAD"),
        ("/healthz", "GET"),
        ("/healthz", "HEAD"),
        ("/readyz", "GET"),
        ("/readyz", "HEAD"),
        ("/metrics", "GET"),
        ("/metrics", "HEAD"),
        ("/api/v1/openapi.json", "GET"),
    ] {
        assert!(
            ops.iter().any(|(p, m)| p == path && m == method),
            "{method} {path} is not documented"
        );
    }
    let public = ops.iter().filter(|(p, _)| !p.starts_with("/api/")).count();
    assert_eq!(public, 20, "public operations: {ops:?}");
}

#[tokio::test]
async fn served_without_a_key_as_the_file() {
    let gw = common::start().await;
    let r = gw.anon.get("/api/v1/openapi.json").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r
        .header("cache-control")
        .is_some_and(|v| v.starts_with("public")));
    assert_eq!(&r.body[..], DOC.as_bytes());
    let r = gw
        .anon
        .send(Method::POST, "/api/v1/openapi.json", &[], Bytes::new())
        .await;
    assert_eq!(r.status, 405);
}

/// Found by schemathesis: a 405 had no `Allow` header (RFC 9110 requires one).
#[tokio::test]
async fn a_405_names_the_allowed_methods() {
    let gw = common::start().await;
    assert_eq!(gw.create(common::alice()).await.status, 201);
    for (method, path, allow) in [
        (Method::TRACE, "/healthz", "GET, HEAD"),
        (Method::POST, "/alice10", "GET, HEAD"),
        (Method::DELETE, "/qr/alice10.png", "GET, HEAD"),
        (Method::PUT, "/api/v1/codes", "GET, POST"),
        (Method::PUT, "/api/v1/codes/alice10", "GET, PATCH, DELETE"),
        (Method::GET, "/api/v1/conversions", "POST"),
        (Method::POST, "/api/v1/openapi.json", "GET"),
    ] {
        let r = gw.admin.send(method.clone(), path, &[], Bytes::new()).await;
        assert_eq!(r.status, 405, "{method} {path}");
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
        assert_eq!(r.error_code(), "method_not_allowed");
    }
}

/// Found by schemathesis: serde takes a struct's fields from a JSON array
/// too, so `PATCH [null, null]` was a 200 and `POST /api/v1/keys ["ingest"]`
/// issued a key. A body other than a conversion batch must be an object.
#[tokio::test]
async fn bodies_are_objects() {
    let gw = common::start().await;
    assert_eq!(gw.create(common::alice()).await.status, 201);
    for (method, path, body) in [
        (Method::PATCH, "/api/v1/codes/alice10", json!([null, null])),
        (
            Method::PATCH,
            "/api/v1/codes/alice10",
            json!(["https://evil.example/"]),
        ),
        (
            Method::POST,
            "/api/v1/codes",
            json!(["bob20", "https://shop.example/", "bob"]),
        ),
        (Method::POST, "/api/v1/keys", json!(["ingest"])),
        (Method::POST, "/api/v1/keys", json!("ingest")),
    ] {
        let r = gw.admin.send_json(method.clone(), path, &body).await;
        assert_eq!(r.status, 422, "{method} {path} {body}: {}", r.text());
        assert_eq!(r.error_code(), "invalid_field");
    }
    let code = gw.admin.get("/api/v1/codes/alice10").await.json();
    assert_eq!(
        code["destination"],
        "https://shop.example/signup?ref=home#form"
    );
    assert_eq!(gw.admin.get("/api/v1/codes/bob20").await.status, 404);
    assert_eq!(
        gw.admin.get("/api/v1/keys").await.json()["items"],
        json!([])
    );
    // A syntax error is still a 400, and a conversion batch still an array.
    let r = gw
        .admin
        .send(
            Method::PATCH,
            "/api/v1/codes/alice10",
            &[("content-type", "application/json")],
            Bytes::from_static(b"[nul"),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = gw
        .admin
        .post_json(
            "/api/v1/conversions",
            &json!([{"event_id": "e1", "type": "signup", "code": "alice10"}]),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
}

/// A request for each documented operation, with a path made of real values.
fn concrete(path: &str) -> String {
    path.replace("{code}/{channel}", "alice10/yt")
        .replace("{code}", "alice10")
        .replace("{id}", "nokey")
        .replace("{owner}", "alice")
}

#[tokio::test]
async fn every_documented_operation_reaches_its_handler_and_answers_a_documented_status() {
    let gw = common::start().await;
    assert_eq!(gw.create(common::alice()).await.status, 201);
    let d = doc();
    let ops = operations(&d);
    assert!(ops.len() >= 30, "{ops:?}");
    for (path, method) in &ops {
        let op = &d["paths"][path][method.to_ascii_lowercase()];
        let url = concrete(path);
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let r = if op.get("requestBody").is_some() {
            // A body the handler reads and refuses (422): it got that far.
            gw.admin.send_json(m, &url, &json!({})).await
        } else {
            gw.admin.send(m, &url, &[], Bytes::new()).await
        };
        let status = r.status.as_u16();
        assert_ne!(status, 405, "{method} {path}");
        if r.header("content-type") == Some("application/json") && status == 404 {
            let message = r.json()["error"]["message"]
                .as_str()
                .unwrap_or("")
                .to_string();
            assert!(
                !message.starts_with("no API endpoint") && !message.starts_with("no analytics"),
                "{method} {path}: {message}"
            );
        }
        let documented = op["responses"]
            .as_object()
            .unwrap()
            .contains_key(&status.to_string());
        assert!(
            documented,
            "{method} {url} answered {status}, not documented: {}",
            r.text()
        );
        // The admin key may call every API operation: it gets past auth.
        if path.starts_with("/api/") {
            assert!(status != 401 && status != 403, "{method} {path}: {status}");
        }
    }
    // Public operations need no key; keyed ones refuse none.
    for (path, method) in &ops {
        let op = &d["paths"][path][method.to_ascii_lowercase()];
        let public = op["security"].as_array().is_some_and(Vec::is_empty);
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let r = gw.anon.send(m, &concrete(path), &[], Bytes::new()).await;
        if public {
            assert_ne!(r.status, 401, "{method} {path} is public");
        } else {
            assert_eq!(r.status, 401, "{method} {path} needs a key");
        }
    }
}

/// Runs schemathesis (`SCHEMATHESIS`, default `schemathesis`) against a
/// gateway on real Redis and ClickHouse servers. Extra arguments for
/// `schemathesis run` come from `SCHEMATHESIS_ARGS` (whitespace-separated).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs schemathesis; run by scripts/schemathesis"]
async fn schemathesis_against_a_live_gateway() {
    use codelink_testkit::{ClickHouseServer, RedisServer};

    let redis = RedisServer::start();
    let ch = ClickHouseServer::start();
    let (mut config, tmp) = common::config();
    config.redis_url = Some(redis.url());
    config.clickhouse_url = Some(ch.url());
    config.flush_ms = 100;
    // Schemathesis is one client sending as fast as it can, and asks for
    // many new QR images: the limits are not what is tested here.
    config.api_rate_per_ip = 100_000;
    config.api_burst_per_ip = 100_000;
    config.qr_renders_per_ip = 100_000;
    config.qr_render_burst_per_ip = 100_000;
    config.qr_renders = 4;
    let gw = common::start_with(config, Some(tmp)).await;
    let ready = codelink_testkit::wait_until(std::time::Duration::from_secs(30), || async {
        gw.anon.get("/readyz").await.status == 200
    })
    .await;
    assert!(
        ready,
        "gateway not ready: {}",
        gw.anon.get("/readyz").await.text()
    );

    // Some data for the operations to find.
    assert_eq!(gw.create(common::alice()).await.status, 201);
    let bob = json!({"code": "bob20", "destination": "https://shop.example/", "owner": "bob",
        "qr": {"fg": "#1a237e", "bg": "#fff8e1", "ecc": "H", "margin": 2, "custom_colors": false}});
    assert_eq!(gw.create(bob).await.status, 201);
    let r = gw
        .admin
        .post_json(
            "/api/v1/keys",
            &json!({"kind": "creator", "creator": "alice"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    for path in ["/alice10", "/alice10/yt", "/bob20", "/alice10?qr=1"] {
        assert_eq!(gw.anon.get(path).await.status, 302, "{path}");
    }
    let r = gw
        .admin
        .post_json(
            "/api/v1/conversions",
            &json!({"event_id": "st-1", "type": "purchase", "code": "alice10",
                    "amount": 4999, "currency": "EUR", "customer_id": "c1"}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    // Flagged conversions (the customer was first credited to alice), one
    // of them approved: the review queue has something to list.
    for id in ["st-2", "st-3"] {
        let r = gw
            .admin
            .post_json(
                "/api/v1/conversions",
                &json!({"event_id": id, "type": "signup", "code": "bob20", "customer_id": "c1",
                        "ip": "203.0.113.9"}),
            )
            .await;
        assert_eq!(
            r.json()["review"]["flags"],
            json!(["multi_creator"]),
            "{}",
            r.text()
        );
    }
    let r = gw
        .admin
        .post_json(
            "/api/v1/reviews/st-3",
            &json!({"decision": "approve", "note": "ok"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());

    let program = std::env::var("SCHEMATHESIS").unwrap_or_else(|_| "schemathesis".into());
    let extra = std::env::var("SCHEMATHESIS_ARGS").unwrap_or_default();
    let base = format!("http://{}", gw.addr);
    // Schemathesis keeps a cache (`.schemathesis/`) in its working directory:
    // not in the source tree.
    let workdir = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(program);
    cmd.current_dir(workdir.path())
        .arg("run")
        .arg(format!("{base}/api/v1/openapi.json"))
        .args(["--url", &base])
        .args([
            "-H",
            &format!("Authorization: Bearer {}", common::ADMIN_KEY),
        ])
        .args(extra.split_whitespace());
    // A bound on the whole run, whatever the options say.
    let limit = std::time::Duration::from_secs(
        std::env::var("SCHEMATHESIS_TIMEOUT_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(300),
    );
    eprintln!("running {cmd:?} (at most {limit:?})");
    let status = tokio::task::spawn_blocking(move || {
        let mut child = cmd
            .spawn()
            .expect("schemathesis runs (pip install schemathesis)");
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait for schemathesis") {
                return Some(status);
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    })
    .await
    .unwrap();
    let status = status.unwrap_or_else(|| panic!("schemathesis took longer than {limit:?}"));
    assert!(
        status.success(),
        "schemathesis found failures ({status}); see its report above"
    );
    drop(gw);
}
