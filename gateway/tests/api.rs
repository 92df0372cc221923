//! The admin API over real HTTP: every endpoint and the bad inputs around it.

mod common;

use bytes::Bytes;
use http::Method;
use serde_json::json;

#[tokio::test]
async fn create_get_and_links() {
    let gw = common::start().await;
    let r = gw.create(common::alice()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("location"), Some("/api/v1/codes/alice10"));
    let body = r.json();
    assert_eq!(body["code"], "alice10");
    assert_eq!(body["owner"], "alice");
    assert_eq!(body["enabled"], true);
    assert_eq!(body["expires_at"], serde_json::Value::Null);
    assert_eq!(body["channels"]["yt"]["utm_source"], "youtube");
    assert_eq!(body["commission"]["purchase_bps"], 1000);
    let base = format!("http://{}", gw.addr);
    assert_eq!(body["links"]["short"], format!("{base}/alice10"));
    assert_eq!(
        body["links"]["channels"]["yt"],
        format!("{base}/alice10/yt")
    );
    assert_eq!(body["links"]["qr_png"], format!("{base}/qr/alice10.png"));

    let got = gw.admin.get("/api/v1/codes/ALICE10").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json(), body);
}

#[tokio::test]
async fn taken_code_is_409_in_any_case() {
    let gw = common::start().await;
    assert_eq!(gw.create(common::alice()).await.status, 201);
    let mut again = common::alice();
    again["code"] = json!("alice10");
    let r = gw.create(again).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.error_code(), "code_taken");
}

#[tokio::test]
async fn list_is_paginated_in_code_order() {
    let gw = common::start().await;
    for i in 0..7 {
        let owner = if i % 2 == 0 { "even" } else { "odd" };
        let r = gw
            .create(json!({"code": format!("code{i}"), "destination": "https://x.example/", "owner": owner}))
            .await;
        assert_eq!(r.status, 201);
    }
    let mut cursor = String::new();
    let mut seen = Vec::new();
    loop {
        let r = gw
            .admin
            .get(&format!("/api/v1/codes?limit=3&cursor={cursor}"))
            .await;
        assert_eq!(r.status, 200);
        let body = r.json();
        let items = body["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(
            items
                .iter()
                .map(|i| i["code"].as_str().unwrap().to_string()),
        );
        match body["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    let expected: Vec<String> = (0..7).map(|i| format!("code{i}")).collect();
    assert_eq!(seen, expected);

    let r = gw.admin.get("/api/v1/codes?owner=odd").await;
    let owners: Vec<String> = r.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["owner"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(owners, ["odd", "odd", "odd"]);

    for bad in ["limit=0", "limit=501", "limit=x", "colour=red"] {
        let r = gw.admin.get(&format!("/api/v1/codes?{bad}")).await;
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.error_code(), "invalid_query");
    }
}

#[tokio::test]
async fn patch_changes_fields_and_redirects_follow() {
    let gw = common::start().await;
    gw.create(common::alice()).await;
    let r = gw
        .admin
        .patch_json(
            "/api/v1/codes/alice10",
            &json!({"destination": "https://other.example/landing", "channels": {"tt": {"utm_source": "tiktok"}}, "commission": null}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["destination"], "https://other.example/landing");
    assert_eq!(body["commission"], serde_json::Value::Null);
    assert!(body["channels"].get("yt").is_none());
    let loc = gw
        .anon
        .get("/alice10/tt")
        .await
        .header("location")
        .unwrap()
        .to_string();
    assert!(
        loc.starts_with("https://other.example/landing?utm_source=tiktok&cl_scan="),
        "{loc}"
    );
    // A channel removed from the code: its old links reach the code's own
    // destination, without the channel's UTM parameters.
    let old = gw.anon.get("/alice10/yt").await;
    assert_eq!(old.status, 302);
    let loc = old.header("location").unwrap();
    assert!(
        loc.starts_with("https://other.example/landing?cl_scan="),
        "{loc}"
    );

    let r = gw
        .admin
        .patch_json(
            "/api/v1/codes/alice10",
            &json!({"destination": "javascript:alert(1)"}),
        )
        .await;
    assert_eq!(r.status, 422);
    // The failed patch changed nothing.
    let now = gw.admin.get("/api/v1/codes/alice10").await.json();
    assert_eq!(now["destination"], "https://other.example/landing");

    let r = gw
        .admin
        .patch_json("/api/v1/codes/nobody", &json!({"enabled": false}))
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "not_found");
}

#[tokio::test]
async fn delete_disables_and_keeps_the_record() {
    let gw = common::start().await;
    gw.create(common::alice()).await;
    let r = gw.admin.delete("/api/v1/codes/alice10").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["enabled"], false);
    let r = gw.admin.get("/api/v1/codes/alice10").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["enabled"], false);
    assert_eq!(r.json()["owner"], "alice");
    assert_eq!(gw.admin.delete("/api/v1/codes/nobody").await.status, 404);
}

#[tokio::test]
async fn missing_or_wrong_key_is_401() {
    let gw = common::start().await;
    let r = gw.anon.get("/api/v1/codes").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.error_code(), "unauthorized");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let wrong = gw
        .anon
        .clone()
        .with_bearer("test-admin-key-0123456789abcdeX");
    assert_eq!(wrong.get("/api/v1/codes").await.status, 401);
    let r = wrong.post_json("/api/v1/codes", &common::alice()).await;
    assert_eq!(r.status, 401);
    // Nothing was created.
    assert_eq!(gw.anon.get("/alice10").await.status, 404);
}

#[tokio::test]
async fn bad_slugs_and_destinations_are_422() {
    let gw = common::start().await;
    let cases = [
        json!({"code": "ab", "destination": "https://x.example/", "owner": "a"}),
        json!({"code": "has space", "destination": "https://x.example/", "owner": "a"}),
        json!({"code": "a".repeat(33), "destination": "https://x.example/", "owner": "a"}),
        json!({"code": "API", "destination": "https://x.example/", "owner": "a"}),
        json!({"code": "healthz", "destination": "https://x.example/", "owner": "a"}),
        json!({"code": "okcode", "destination": "javascript:alert(document.cookie)", "owner": "a"}),
        json!({"code": "okcode", "destination": "https://x.example/\r\nSet-Cookie: a=b", "owner": "a"}),
        json!({"code": "okcode", "destination": "https://u:p@x.example/", "owner": "a"}),
        json!({"code": "okcode", "destination": "/relative", "owner": "a"}),
        json!({"code": "okcode", "destination": format!("https://x.example/{}", "a".repeat(2100)), "owner": "a"}),
        json!({"code": "okcode", "destination": "https://x.example/", "owner": "bad owner"}),
        json!({"code": "okcode", "destination": "https://x.example/", "owner": "a", "channels": {"bad channel": {}}}),
        json!({"code": "okcode", "destination": "https://x.example/", "owner": "a", "channels": {"yt": {"utm_source": "a\nb"}}}),
        json!({"code": "okcode", "destination": "https://x.example/", "owner": "a", "expires_at": "tomorrow"}),
        json!({"code": "okcode", "destination": "https://x.example/", "owner": "a", "expires_at": "2001-01-01T00:00:00Z"}),
        json!({"code": "okcode", "destination": "https://x.example/", "owner": "a", "commission": {"currency": "euro"}}),
        json!({"code": "okcode", "destination": "https://x.example/", "owner": "a", "unknown": 1}),
        json!({"code": 12345, "destination": "https://x.example/", "owner": "a"}),
        json!({"destination": "https://x.example/", "owner": "a"}),
    ];
    for case in cases {
        let r = gw.create(case.clone()).await;
        assert_eq!(r.status, 422, "{case} -> {}", r.text());
        let body = r.json();
        assert!(
            body["error"]["message"].as_str().unwrap().len() > 5,
            "{body}"
        );
    }
    // None of them created anything.
    let list = gw.admin.get("/api/v1/codes").await.json();
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn malformed_json_is_400_and_wrong_type_is_415() {
    let gw = common::start().await;
    let json_ct = [("content-type", "application/json")];
    for body in ["{", "not json", "", "{\"code\": \"x\",}"] {
        let r = gw
            .admin
            .send(Method::POST, "/api/v1/codes", &json_ct, Bytes::from(body))
            .await;
        assert_eq!(r.status, 400, "{body:?}");
        assert_eq!(r.error_code(), "invalid_json");
    }
    let r = gw
        .admin
        .send(
            Method::POST,
            "/api/v1/codes",
            &[("content-type", "text/plain")],
            Bytes::from(common::alice().to_string()),
        )
        .await;
    assert_eq!(r.status, 415);
    assert_eq!(r.error_code(), "unsupported_media_type");
    let r = gw
        .admin
        .send(
            Method::POST,
            "/api/v1/codes",
            &[],
            Bytes::from(common::alice().to_string()),
        )
        .await;
    assert_eq!(r.status, 415);
}

#[tokio::test]
async fn huge_bodies_are_413() {
    let gw = common::start().await;
    let huge = json!({"code": "bigone", "destination": "https://x.example/", "owner": "a", "pad": "x".repeat(200_000)});
    let r = gw.create(huge).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.error_code(), "body_too_large");
    // Also when the size is not announced up front (chunked body).
    let r = gw
        .admin
        .send(
            Method::POST,
            "/api/v1/codes",
            &[
                ("content-type", "application/json"),
                ("transfer-encoding", "chunked"),
            ],
            Bytes::from(vec![b' '; 100_000]),
        )
        .await;
    assert_eq!(r.status, 413);
}

#[tokio::test]
async fn unknown_api_paths_and_methods() {
    let gw = common::start().await;
    let r = gw.admin.get("/api/v1/nothing").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "not_found");
    let r = gw
        .admin
        .send(Method::PUT, "/api/v1/codes", &[], Bytes::new())
        .await;
    assert_eq!(r.status, 405);
    let r = gw.admin.get("/api/v1/codes/no%20such").await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let gw = common::start().await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let auth = format!("{scheme} {}", common::ADMIN_KEY);
        let r = gw
            .anon
            .send(
                http::Method::GET,
                "/api/v1/codes",
                &[("authorization", auth.as_str())],
                Default::default(),
            )
            .await;
        assert_eq!(r.status, 200, "{scheme}");
    }
    for bad in [
        format!("Basic {}", common::ADMIN_KEY),
        common::ADMIN_KEY.to_string(),
    ] {
        let r = gw
            .anon
            .send(
                http::Method::GET,
                "/api/v1/codes",
                &[("authorization", bad.as_str())],
                Default::default(),
            )
            .await;
        assert_eq!(r.status, 401, "{bad}");
    }
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn error_messages_quote_at_most_a_little_of_the_input() {
    let gw = common::start().await;
    let long = "x".repeat(10_000);
    let r = gw
        .create(json!({"code": "ALICE10", "destination": format!("https://shop.example/{long} z"), "owner": "alice"}))
        .await;
    assert_eq!(r.status, 422);
    let r = gw
        .admin
        .get(&format!("/api/v1/analytics/summary?{long}=1"))
        .await;
    assert_eq!(r.status, 400);
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.len() < 600, "{} bytes", message.len());
    assert!(message.contains("bytes in all"), "{message}");
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn an_oversized_request_head_is_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gw = common::start().await;
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let big = "a".repeat(100 * 1024);
    let head =
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: {big}\r\n\r\n");
    let _ = s.write_all(head.as_bytes()).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    let answer = String::from_utf8_lossy(&buf);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    // A head of ordinary size is fine.
    let ok = gw
        .anon
        .send(
            http::Method::GET,
            "/healthz",
            &[("x-big", &"a".repeat(8 * 1024))],
            Default::default(),
        )
        .await;
    assert_eq!(ok.status, 200);
    gw.stop().await.unwrap();
}

/// The destination shown is the one followed: stored normalised (the `url`
/// crate's serialisation), and the forms a person would read as another URL
/// than the one followed are refused, on create and on change.
#[tokio::test]
async fn destination_stored_as_followed_and_ambiguous_forms_are_422() {
    let gw = common::start().await;
    for bad in [
        r"https://evil.example\@shop.example/",
        r"http:/\evil.example",
        r"http:\\evil.example/",
        "https:evil.example",
        "https:/evil.example/",
        "https:///evil.example/",
        "https://@shop.example/",
        "https://",
    ] {
        let r = gw
            .create(json!({"code": "amb1", "destination": bad, "owner": "a"}))
            .await;
        assert_eq!(r.status, 422, "{bad} -> {}", r.text());
        assert_eq!(r.error_code(), "invalid_field");
        let message = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(message.starts_with("destination: "), "{bad} -> {message}");
    }
    let r = gw
        .create(json!({"code": "amb1", "destination": r"https://evil.example\@shop.example/", "owner": "a"}))
        .await;
    assert!(r.text().contains("backslash"), "{}", r.text());
    assert_eq!(gw.anon.get("/amb1").await.status, 404);

    let r = gw
        .create(json!({"code": "norm1", "destination": "HTTPS://Shop.Example:443/a/../signup?b=%20x&flag#top", "owner": "a"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let shown = "https://shop.example/signup?b=%20x&flag#top";
    assert_eq!(r.json()["destination"], shown);
    assert_eq!(
        gw.admin.get("/api/v1/codes/norm1").await.json()["destination"],
        shown
    );
    let loc = gw
        .anon
        .get("/norm1")
        .await
        .header("location")
        .unwrap()
        .to_string();
    assert!(
        loc.starts_with("https://shop.example/signup?b=%20x&flag&cl_scan="),
        "{loc}"
    );

    for bad in [r"http:/\evil.example", "https:evil.example"] {
        let r = gw
            .admin
            .patch_json("/api/v1/codes/norm1", &json!({"destination": bad}))
            .await;
        assert_eq!(r.status, 422, "{bad} -> {}", r.text());
    }
    let r = gw
        .admin
        .patch_json(
            "/api/v1/codes/norm1",
            &json!({"destination": "https://Other.Example"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["destination"], "https://other.example/");
}

/// A record stored before ambiguous forms were refused still loads and
/// redirects; it is shown as it is followed, and a change that keeps its
/// destination succeeds (a new ambiguous destination does not).
#[tokio::test]
async fn stored_ambiguous_destination_still_served_and_changeable() {
    let (config, tmp) = common::config();
    {
        let record = codelink_shared::CodeRecord {
            code: "legacy1".into(),
            destination: r"https://evil.example\@shop.example/".into(),
            owner: "alice".into(),
            expires_at: None,
            enabled: true,
            channels: std::collections::BTreeMap::from([(
                "yt".to_string(),
                codelink_shared::Utm {
                    utm_source: Some("youtube".into()),
                    ..Default::default()
                },
            )]),
            commission: None,
            attribution_window_days: 30,
            qr: None,
            qr_logo: None,
            routes: Vec::new(),
            created_at: 1,
            updated_at: 1,
            ..Default::default()
        };
        let db = redb::Database::create(tmp.path().join("codelink.redb")).unwrap();
        let table: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("codes");
        let tx = db.begin_write().unwrap();
        {
            let mut t = tx.open_table(table).unwrap();
            let json = serde_json::to_vec(&record).unwrap();
            t.insert("legacy1", json.as_slice()).unwrap();
        }
        tx.commit().unwrap();
    }
    let gw = common::start_with(config, Some(tmp)).await;
    let followed = "https://evil.example/@shop.example/";

    let loc = gw
        .anon
        .get("/legacy1")
        .await
        .header("location")
        .unwrap()
        .to_string();
    assert!(loc.starts_with(&format!("{followed}?cl_scan=")), "{loc}");
    let loc = gw
        .anon
        .get("/legacy1/yt")
        .await
        .header("location")
        .unwrap()
        .to_string();
    assert!(
        loc.starts_with(&format!("{followed}?utm_source=youtube&cl_scan=")),
        "{loc}"
    );
    assert_eq!(
        gw.admin.get("/api/v1/codes/legacy1").await.json()["destination"],
        followed
    );
    let list = gw.admin.get("/api/v1/codes").await.json();
    assert_eq!(list["items"][0]["destination"], followed);

    // A change of another field succeeds; the record is then stored as followed.
    let r = gw
        .admin
        .patch_json("/api/v1/codes/legacy1", &json!({"owner": "bob"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["destination"], followed);
    assert_eq!(gw.admin.delete("/api/v1/codes/legacy1").await.status, 200);
    let r = gw
        .admin
        .patch_json("/api/v1/codes/legacy1", &json!({"enabled": true}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Setting the ambiguous form anew is refused.
    let r = gw
        .admin
        .patch_json(
            "/api/v1/codes/legacy1",
            &json!({"destination": r"https://evil.example\@shop.example/"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    let loc = gw
        .anon
        .get("/legacy1")
        .await
        .header("location")
        .unwrap()
        .to_string();
    assert!(loc.starts_with(&format!("{followed}?cl_scan=")), "{loc}");
}
