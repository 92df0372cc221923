//! Codes in bulk: `POST /api/v1/codes/import` (CSV, JSON lines), `GET
//! /api/v1/codes/export`, and the `codelink import` / `export` commands,
//! against the real gateway (embedded and real Redis).

mod common;

use bytes::Bytes;
use codelink_testkit::http::{Client, Response};
use codelink_testkit::RedisServer;
use http::Method;
use serde_json::{json, Value};
use std::time::Duration;

async fn import(client: &Client, query: &str, content_type: &str, body: &str) -> Response {
    client
        .send(
            Method::POST,
            &format!("/api/v1/codes/import{query}"),
            &[("content-type", content_type)],
            Bytes::from(body.to_string()),
        )
        .await
}

async fn csv(client: &Client, query: &str, body: &str) -> Value {
    let r = import(client, query, "text/csv", body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn counts(v: &Value) -> [u64; 4] {
    ["created", "updated", "unchanged", "failed"].map(|k| v[k].as_u64().unwrap())
}

/// (line, row code, error code) of every failed row.
fn errors(v: &Value) -> Vec<(u64, Option<String>, String)> {
    v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["line"].as_u64().unwrap(),
                e["code"].as_str().map(str::to_string),
                e["error"]["code"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

const SHOP: &str = "code,destination,owner,enabled,commission_currency,commission_purchase_bps,channel:yt,channel:bio,routes
Alice10,https://shop.example/signup?ref=a,alice,true,EUR,1000,utm_source=youtube&utm_medium=video,?,
bob20,https://shop.example/b,bob,,,,,,\"[{\"\"destination\"\":\"\"https://shop.example/ios\"\",\"\"os\"\":[\"\"ios\"\"]}]\"
carol5,https://shop.example/c,carol,false,,,?utm_source=yt,,
";

#[tokio::test]
async fn csv_import_creates_serves_and_a_rerun_changes_nothing() {
    let gw = common::start().await;
    let v = csv(&gw.admin, "", SHOP).await;
    assert_eq!(counts(&v), [3, 0, 0, 0], "{v}");
    assert_eq!(v["applied"], true);
    assert_eq!(v["rows"], 3);

    let alice = gw.admin.get("/api/v1/codes/alice10").await.json();
    assert_eq!(alice["owner"], "alice");
    assert_eq!(alice["commission"]["purchase_bps"], 1000);
    assert_eq!(alice["channels"]["yt"]["utm_medium"], "video");
    assert_eq!(alice["channels"]["bio"], json!({}));
    let r = gw.anon.get("/alice10/yt").await;
    assert_eq!(r.status, 302);
    let location = r.header("location").unwrap();
    assert!(
        location.starts_with(
            "https://shop.example/signup?ref=a&utm_source=youtube&utm_medium=video&cl_scan="
        ),
        "{location}"
    );
    let bob = gw.admin.get("/api/v1/codes/bob20").await.json();
    assert_eq!(bob["routes"][0]["os"], json!(["ios"]));
    assert_eq!(bob["enabled"], true);
    assert_eq!(gw.anon.get("/carol5").await.status, 410);

    // The same file again: nothing changes, not even updated_at.
    let v = csv(&gw.admin, "", SHOP).await;
    assert_eq!(counts(&v), [0, 0, 3, 0], "{v}");
    let again = gw.admin.get("/api/v1/codes/alice10").await.json();
    assert_eq!(again["updated_at"], alice["updated_at"]);

    // One changed row: updated; create_only refuses it instead.
    let changed = SHOP.replace("https://shop.example/b,", "https://shop.example/b2,");
    let v = csv(&gw.admin, "?mode=create_only", &changed).await;
    assert_eq!(counts(&v), [0, 0, 2, 1], "{v}");
    assert_eq!(
        errors(&v),
        vec![(3, Some("bob20".into()), "code_taken".into())]
    );
    let v = csv(&gw.admin, "?mode=upsert", &changed).await;
    assert_eq!(counts(&v), [0, 1, 2, 0], "{v}");
    let bob = gw.admin.get("/api/v1/codes/bob20").await.json();
    assert_eq!(bob["destination"], "https://shop.example/b2");
    assert_eq!(
        bob["created_at"],
        gw.admin.get("/api/v1/codes/bob20").await.json()["created_at"]
    );
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn jsonl_import_and_a_dry_run_that_writes_nothing() {
    let gw = common::start().await;
    let mut alice = common::alice();
    alice["expires_at"] = json!("2099-01-01T00:00:00Z");
    let body = format!(
        "{}\n\n{}\n",
        alice,
        json!({"code": "dave1", "destination": "https://shop.example/d", "owner": "dave",
               "commission": {"currency": "USD", "signup_flat": 150}})
    );
    for content_type in ["application/x-ndjson", "application/jsonl"] {
        let r = import(&gw.admin, "?dry_run=true", content_type, &body).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        assert_eq!(counts(&v), [2, 0, 0, 0], "{v}");
        assert_eq!(
            (v["dry_run"].clone(), v["applied"].clone()),
            (json!(true), json!(false))
        );
    }
    assert_eq!(gw.admin.get("/api/v1/codes/alice10").await.status, 404);
    assert_eq!(gw.anon.get("/dave1").await.status, 404);
    let export = gw.admin.get("/api/v1/codes/export?format=jsonl").await;
    assert_eq!(export.text(), "");

    let v = import(&gw.admin, "", "application/x-ndjson", &body)
        .await
        .json();
    assert_eq!(counts(&v), [2, 0, 0, 0], "{v}");
    assert_eq!(gw.anon.get("/dave1").await.status, 302);
    let a = gw.admin.get("/api/v1/codes/alice10").await.json();
    assert_eq!(a["expires_at"], "2099-01-01T00:00:00Z");
    // A dry run of changes reports them and still writes nothing.
    let changed = body.replace("https://shop.example/d", "https://shop.example/d2");
    let v = import(&gw.admin, "?dry_run=1", "application/x-ndjson", &changed)
        .await
        .json();
    assert_eq!(counts(&v), [0, 1, 1, 0], "{v}");
    let d = gw.admin.get("/api/v1/codes/dave1").await.json();
    assert_eq!(d["destination"], "https://shop.example/d");
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn failed_rows_are_reported_by_line_and_the_others_imported() {
    let gw = common::start().await;
    let file = "code,destination,owner
good1,https://shop.example/1,alice
a!,https://shop.example/2,alice
badurl,ftp://shop.example/,alice
GOOD1,https://shop.example/again,alice
quote,\"https://shop.example/q\"x,alice
\"multi\",\"https://shop.example/m\",\"al
ice\"
good2,https://shop.example/3,alice
short,https://shop.example/4
past,https://shop.example/5,alice
";
    let v = csv(&gw.admin, "", file).await;
    assert_eq!(counts(&v), [3, 0, 0, 6], "{v}");
    assert_eq!(
        errors(&v),
        vec![
            (3, Some("a!".into()), "invalid_field".into()),
            (4, Some("badurl".into()), "invalid_field".into()),
            (5, Some("GOOD1".into()), "duplicate_code".into()),
            (6, None, "invalid_csv".into()),
            (7, Some("multi".into()), "invalid_field".into()),
            (10, None, "invalid_csv".into()),
        ],
        "{v}"
    );
    let messages: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["error"]["message"].as_str().unwrap())
        .collect();
    assert!(messages[1].starts_with("destination:"), "{}", messages[1]);
    assert!(messages[2].contains("line 2"), "{}", messages[2]);
    assert!(messages[3].contains("closing quote"), "{}", messages[3]);
    assert!(messages[4].starts_with("owner:"), "{}", messages[4]);
    assert_eq!(gw.anon.get("/good1").await.status, 302);
    assert_eq!(gw.anon.get("/good2").await.status, 302);
    assert_eq!(gw.anon.get("/badurl").await.status, 404);
    assert_eq!(gw.anon.get("/past").await.status, 302);

    // An expiry in the past, and an unterminated quote swallowing the rest.
    let v = csv(
        &gw.admin,
        "",
        "code,destination,owner,expires_at\nold1,https://shop.example/,al,2001-01-01T00:00:00Z\nnew1,\"https://shop.example/,al,\nnew2,https://shop.example/,al,\n",
    )
    .await;
    let e = errors(&v);
    assert_eq!(e[0], (2, Some("old1".into()), "invalid_field".into()));
    assert_eq!(e[1], (3, None, "invalid_csv".into()));
    assert_eq!(counts(&v), [0, 0, 0, 2]);

    // JSON lines: the line of each bad object.
    let body = "{\"code\":\"j1\",\"destination\":\"https://shop.example/\",\"owner\":\"al\"}\nnot json\n\n{\"code\":\"j2\",\"destination\":\"https://shop.example/\",\"owner\":\"al\",\"colour\":1}\n[1]\n{\"code\":\"jay3\",\"destination\":\"https://shop.example/\",\"owner\":\"al\"}\n";
    let v = import(&gw.admin, "", "application/x-ndjson", body)
        .await
        .json();
    assert_eq!(counts(&v), [1, 0, 0, 4], "{v}");
    assert_eq!(
        errors(&v),
        vec![
            // "j1" is too short a code (3 characters at least).
            (1, Some("j1".into()), "invalid_field".into()),
            (2, None, "invalid_json".into()),
            (4, Some("j2".into()), "invalid_field".into()),
            (5, None, "invalid_json".into()),
        ]
    );
    assert_eq!(gw.anon.get("/jay3").await.status, 302);

    // A cell that is not what its column takes: the row still names its code.
    let v = csv(
        &gw.admin,
        "",
        "code,destination,owner,enabled,routes\nbadbool,https://shop.example/,al,maybe,\nbadjson,https://shop.example/,al,,[{\n",
    )
    .await;
    assert_eq!(
        errors(&v),
        vec![
            (2, Some("badbool".into()), "invalid_field".into()),
            (3, Some("badjson".into()), "invalid_field".into()),
        ]
    );

    // atomic: one failed row, nothing written.
    let v = csv(
        &gw.admin,
        "?atomic=true",
        "code,destination,owner\nfine1,https://shop.example/,al\nbad!,https://shop.example/,al\n",
    )
    .await;
    assert_eq!(counts(&v), [1, 0, 0, 1]);
    assert_eq!(v["applied"], false);
    assert_eq!(gw.anon.get("/fine1").await.status, 404);
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn requests_refused_as_a_whole() {
    let (mut config, tmp) = common::config();
    config.max_import_bytes = 4096;
    config.max_import_rows = 5;
    let gw = common::start_with(config, Some(tmp)).await;
    let header_only = "code,destination,owner\n";
    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        (
            "",
            "text/csv",
            "code,destination,colour\n".into(),
            422,
            "invalid_csv",
        ),
        (
            "",
            "text/csv",
            "code,destination\n".into(),
            422,
            "invalid_csv",
        ),
        (
            "",
            "text/csv",
            "code,code,destination,owner\n".into(),
            422,
            "invalid_csv",
        ),
        ("", "text/csv", String::new(), 422, "invalid_csv"),
        (
            "",
            "application/json",
            header_only.into(),
            415,
            "unsupported_media_type",
        ),
        (
            "?mode=merge",
            "text/csv",
            header_only.into(),
            400,
            "invalid_query",
        ),
        (
            "?dry_run=maybe",
            "text/csv",
            header_only.into(),
            400,
            "invalid_query",
        ),
        (
            "?colour=1",
            "text/csv",
            header_only.into(),
            400,
            "invalid_query",
        ),
        (
            "",
            "text/csv",
            format!("{header_only}{}", "x".repeat(5000)),
            413,
            "body_too_large",
        ),
        (
            "",
            "text/csv",
            format!("{header_only}{}", "abc1,https://s.example/,al\n".repeat(6)),
            413,
            "too_many_rows",
        ),
    ];
    for (query, content_type, body, status, code) in cases {
        let r = import(&gw.admin, query, content_type, &body).await;
        assert_eq!(
            (r.status.as_u16(), r.error_code()),
            (status, code.to_string()),
            "{query} {body:.40}: {}",
            r.text()
        );
    }
    let r = gw
        .admin
        .send(
            Method::POST,
            "/api/v1/codes/import",
            &[("content-type", "text/csv")],
            Bytes::from_static(b"code,destination,owner\n\xff\n"),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.error_code()),
        (400, "invalid_encoding".to_string())
    );
    assert_eq!(gw.admin.get("/api/v1/codes/import").await.status, 405);
    assert_eq!(
        gw.admin.get("/api/v1/codes/export?format=xml").await.status,
        400
    );
    // The names of the bulk paths are not codes.
    let mut reserved = common::alice();
    reserved["code"] = json!("export");
    assert_eq!(gw.create(reserved).await.status, 422);
    gw.stop().await.unwrap();
}

/// Codes of every shape the create body takes.
fn assorted() -> Vec<Value> {
    vec![
        common::alice(),
        json!({"code": "bob20", "destination": "https://shop.example/b?x=1&y=a%20b#top", "owner": "bob",
               "enabled": false, "expires_at": "2099-06-30T12:00:00Z",
               "commission": {"currency": "EUR", "signup_flat": 200, "purchase_bps": 750, "cap": 5000},
               "attribution_window_days": 7, "fallback_url": "https://shop.example/gone",
               "in_app_escape": true, "visitor_token": true,
               "channels": {"bio": {}, "ig": {"utm_source": "insta, \"gram\"", "utm_content": "a&b=c"}},
               "app_links": {"ios": "https://shop.example/app"},
               "routes": [{"destination": "https://shop.example/de", "country": ["de"]},
                          {"name": "night", "destination": "https://shop.example/n", "hours": [22, 6]}]}),
        json!({"code": "carol-x", "destination": "https://shop.example/c", "owner": "carol",
               "qr": {"fg": "#102030", "bg": "#ffffff"}}),
    ]
}

#[tokio::test]
async fn an_export_imports_unchanged_and_rebuilds_the_same_codes_elsewhere() {
    let gw = common::start().await;
    for body in assorted() {
        let r = gw.create(body).await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let exported = gw.admin.get("/api/v1/codes/export?format=csv").await;
    assert_eq!(exported.status, 200);
    assert_eq!(
        exported.header("content-type"),
        Some("text/csv; charset=utf-8")
    );
    assert!(exported
        .header("content-disposition")
        .unwrap()
        .contains("codes.csv"));
    let csv_text = exported.text();
    assert!(
        csv_text.starts_with("code,destination,owner,"),
        "{csv_text}"
    );
    assert!(
        csv_text.contains(",channel:bio,channel:ig,channel:yt,channel:yt-video42\n"),
        "{csv_text}"
    );
    let jsonl_text = gw
        .admin
        .get("/api/v1/codes/export?format=jsonl")
        .await
        .text();
    assert_eq!(jsonl_text.lines().count(), 3);
    // Each line is a create body.
    let first: Value = serde_json::from_str(jsonl_text.lines().next().unwrap()).unwrap();
    assert_eq!(first["code"], "alice10");
    assert!(first.get("created_at").is_none() && first.get("links").is_none());

    let v = csv(&gw.admin, "", &csv_text).await;
    assert_eq!(counts(&v), [0, 0, 3, 0], "{v}");
    let v = import(&gw.admin, "", "application/x-ndjson", &jsonl_text)
        .await
        .json();
    assert_eq!(counts(&v), [0, 0, 3, 0], "{v}");

    // Into an empty gateway: the same codes, the same exports.
    for (text, content_type) in [
        (&csv_text, "text/csv"),
        (&jsonl_text, "application/x-ndjson"),
    ] {
        let other = common::start().await;
        let v = import(&other.admin, "", content_type, text).await.json();
        assert_eq!(counts(&v), [3, 0, 0, 0], "{v}");
        assert_eq!(
            other
                .admin
                .get("/api/v1/codes/export?format=csv")
                .await
                .text(),
            csv_text
        );
        assert_eq!(
            other
                .admin
                .get("/api/v1/codes/export?format=jsonl")
                .await
                .text(),
            jsonl_text
        );
        let bob = other.admin.get("/api/v1/codes/bob20").await.json();
        let original = gw.admin.get("/api/v1/codes/bob20").await.json();
        for field in [
            "destination",
            "channels",
            "commission",
            "routes",
            "app_links",
            "expires_at",
            "enabled",
        ] {
            assert_eq!(bob[field], original[field], "{field}");
        }
        other.stop().await.unwrap();
    }
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn creator_keys_export_their_own_codes_and_cannot_import() {
    let gw = common::start().await;
    for body in assorted() {
        assert_eq!(gw.create(body).await.status, 201);
    }
    let bob = Client::new(gw.addr)
        .with_bearer(&gw.key(json!({"kind": "creator", "creator": "bob"})).await);
    let text = bob.get("/api/v1/codes/export?format=jsonl").await.text();
    let codes: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["code"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(codes, vec!["bob20"]);
    let text = bob.get("/api/v1/codes/export?owner=alice").await.text();
    assert_eq!(text.lines().count(), 1, "header only: {text}");
    let r = import(
        &bob,
        "",
        "text/csv",
        "code,destination,owner\nbob99,https://shop.example/,bob\n",
    )
    .await;
    assert_eq!(r.status, 403);
    let ingest = Client::new(gw.addr).with_bearer(&gw.key(json!({"kind": "ingest"})).await);
    assert_eq!(ingest.get("/api/v1/codes/export").await.status, 403);
    assert_eq!(gw.anon.get("/api/v1/codes/export").await.status, 401);
    // The admin filters by owner.
    let text = gw
        .admin
        .get("/api/v1/codes/export?owner=carol&format=jsonl")
        .await
        .text();
    assert!(
        text.starts_with("{\"code\":\"carol-x\"") && text.lines().count() == 1,
        "{text}"
    );
    gw.stop().await.unwrap();
}

/// `n` codes as CSV, `bulkNNNNN`, owner by tens, two channels each.
fn generated(n: usize) -> String {
    let mut out = String::from("code,destination,owner,commission_currency,commission_purchase_bps,channel:yt,channel:ig\n");
    for i in 0..n {
        out.push_str(&format!(
            "bulk{i:05},https://shop.example/p/{i}?ref=bulk,creator{},EUR,{},utm_source=youtube&utm_campaign=c{i},utm_source=instagram\n",
            i / 10,
            i % 2000
        ));
    }
    out
}

#[tokio::test]
async fn redis_mode_imports_reach_the_other_instance() {
    let redis = RedisServer::start();
    let instance = |prefix: &'static str| {
        let url = redis.url();
        async move {
            let (mut config, tmp) = common::config();
            config.redis_url = Some(url);
            config.redis_prefix = prefix.to_string();
            common::start_with(config, Some(tmp)).await
        }
    };
    let a = instance("bulk1").await;
    let b = instance("bulk1").await;
    let file = generated(2500);
    let v = csv(&a.admin, "", &file).await;
    assert_eq!(counts(&v), [2500, 0, 0, 0], "{v}");
    assert_eq!(a.anon.get("/bulk02499/ig").await.status, 302);
    let synced = codelink_testkit::wait_until(Duration::from_secs(5), || async {
        b.anon.get("/bulk02499/yt").await.status == 302
            && b.anon.get("/bulk00000").await.status == 302
    })
    .await;
    assert!(synced, "B never served the imported codes");
    // B sees them in the store too: the same file through B changes nothing.
    let v = csv(&b.admin, "", &file).await;
    assert_eq!(counts(&v), [0, 0, 2500, 0], "{v}");
    let export_a = a.admin.get("/api/v1/codes/export").await.text();
    assert_eq!(export_a.lines().count(), 2501);
    assert_eq!(export_a, b.admin.get("/api/v1/codes/export").await.text());
    // An update through B reaches A.
    let changed = file.replace("https://shop.example/p/7?", "https://moved.example/p/7?");
    let v = csv(&b.admin, "", &changed).await;
    assert_eq!(counts(&v), [0, 1, 2499, 0], "{v}");
    let moved = codelink_testkit::wait_until(Duration::from_secs(5), || async {
        a.anon
            .get("/bulk00007")
            .await
            .header("location")
            .is_some_and(|l| l.starts_with("https://moved.example/"))
    })
    .await;
    assert!(moved);
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test]
async fn ten_thousand_rows_in_one_request() {
    let gw = common::start().await;
    let file = generated(10_000);
    let v = csv(&gw.admin, "", &file).await;
    assert_eq!(counts(&v), [10_000, 0, 0, 0]);
    let v = csv(&gw.admin, "", &file).await;
    assert_eq!(counts(&v), [0, 0, 10_000, 0]);
    assert_eq!(gw.anon.get("/bulk09999/yt").await.status, 302);
    gw.stop().await.unwrap();
}

/// `codelink serve` on a free port, its admin key written to `data_dir`.
struct Serve(std::process::Child, std::net::SocketAddr);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn serve(data_dir: &std::path::Path) -> Serve {
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", codelink_testkit::free_port())
        .parse()
        .unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_codelink"))
        .args(["serve", "--listen", &addr.to_string()])
        .arg("--data-dir")
        .arg(data_dir)
        .env("CODELINK_LOG", "warn")
        .env_remove("CODELINK_ADMIN_KEY")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        common::comes_up(addr, 15).await,
        "codelink serve did not come up"
    );
    Serve(child, addr)
}

/// Runs `codelink <args>` against `server`; exit success, stdout, stderr.
fn codelink(server: &Serve, data_dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_codelink"))
        .args(args)
        .args(["--url", &format!("http://{}", server.1)])
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("CODELINK_KEY")
        .env_remove("CODELINK_URL")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test]
async fn the_import_and_export_commands_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = serve(&data).await;
    // 2,500 codes; line 1502 has a bad destination, and a last line repeats
    // line 5's code: they go in different requests of 1,000 rows.
    let mut file = generated(2500).replace(
        "bulk01500,https://shop.example/p/1500?ref=bulk,",
        "bulk01500,javascript:alert(1),",
    );
    file.push_str("BULK00003,https://shop.example/other,creator0,,,,\n");
    let path = tmp.path().join("codes.csv");
    std::fs::write(&path, &file).unwrap();
    let path = path.to_str().unwrap();

    let (ok, stdout, stderr) = codelink(&server, &data, &["import", path, "--dry-run"]);
    assert!(!ok, "failed rows exit non-zero");
    assert!(
        stdout.contains(
            "2501 rows: 2499 created, 0 updated, 0 unchanged, 2 failed (dry run: nothing written)"
        ),
        "{stdout}"
    );
    assert_eq!(Client::new(server.1).get("/bulk00000").await.status, 404);

    let (ok, stdout, stderr_run) = codelink(&server, &data, &["import", path]);
    assert!(!ok);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].ends_with("2501 rows: 2499 created, 0 updated, 0 unchanged, 2 failed"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("line 1502 (bulk01500): invalid_field: destination"),
        "{stdout}"
    );
    assert!(
        lines[2].starts_with(
            "line 2502 (bulk00003): duplicate_code: code 'bulk00003' is also on line 5"
        ),
        "{stdout}"
    );
    assert_eq!(lines.len(), 3, "{stdout}");
    // Not a terminal: a plain line per request, no bar.
    for progress in [&stderr, &stderr_run] {
        assert!(progress.contains("1001/2501 rows"), "{progress}");
        assert!(progress.contains("2501/2501 rows"), "{progress}");
        assert!(!progress.contains('\r'), "{progress}");
    }
    assert!(stderr_run.contains("2 of 2501 rows failed"), "{stderr_run}");
    let anon = Client::new(server.1);
    assert_eq!(anon.get("/bulk02499/yt").await.status, 302);
    assert_eq!(anon.get("/bulk01500").await.status, 404);

    // The export, re-imported, is all unchanged; with another key, through CODELINK_KEY.
    let (ok, exported, stderr) = codelink(&server, &data, &["export", "--format", "jsonl"]);
    assert!(ok, "{stderr}");
    assert_eq!(exported.lines().count(), 2499);
    let export_path = tmp.path().join("codes.jsonl");
    std::fs::write(&export_path, &exported).unwrap();
    let (ok, stdout, stderr) = codelink(
        &server,
        &data,
        &[
            "import",
            export_path.to_str().unwrap(),
            "--chunk-rows",
            "700",
        ],
    );
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.ends_with("2499 rows: 0 created, 0 updated, 2499 unchanged, 0 failed\n"),
        "{stdout}"
    );
    assert!(stderr.contains("700/2499 rows imported"), "{stderr}");

    let (ok, _, stderr) = codelink(&server, &data, &["import", path, "--key", "wrong-key"]);
    assert!(!ok);
    assert!(stderr.contains("401"), "{stderr}");
}
