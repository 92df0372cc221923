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
    assert_eq!(gw.anon.get("/alice10/yt").await.status, 404);

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
