//! Redirects over real HTTP: `GET`/`HEAD /{code}` and `/{code}/{channel}`.

mod common;

use codelink_analytics::ScanId;
use http::Method;
use std::collections::HashSet;

fn scan_id_of(location: &str) -> ScanId {
    let url = url::Url::parse(location).unwrap();
    let (_, v) = url
        .query_pairs()
        .find(|(k, _)| k == "cl_scan")
        .unwrap_or_else(|| panic!("no cl_scan in {location}"));
    // The token starts with the scan id: `{id}.{code}.{channel}.{signature}`.
    let id = v.split('.').next().unwrap();
    ScanId::parse(id).unwrap_or_else(|| panic!("bad scan id {v}"))
}

#[tokio::test]
async fn code_redirects_with_scan_id_and_keeps_query_and_fragment() {
    let gw = common::start().await;
    assert_eq!(gw.create(common::alice()).await.status, 201);

    let r = gw.anon.get("/alice10").await;
    assert_eq!(r.status, 302);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let loc = r.header("location").unwrap();
    assert!(
        loc.starts_with("https://shop.example/signup?ref=home&cl_scan="),
        "{loc}"
    );
    assert!(loc.ends_with("#form"), "{loc}");
    scan_id_of(loc);
}

#[tokio::test]
async fn channel_appends_its_utm_parameters() {
    let gw = common::start().await;
    gw.create(common::alice()).await;

    let r = gw.anon.get("/alice10/yt").await;
    assert_eq!(r.status, 302);
    let url = url::Url::parse(r.header("location").unwrap()).unwrap();
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        ["ref", "utm_source", "utm_medium", "utm_campaign", "cl_scan"]
    );
    assert_eq!(pairs[1].1, "youtube");
    assert_eq!(pairs[2].1, "video");
    assert_eq!(pairs[3].1, "alice10");
    assert_eq!(url.fragment(), Some("form"));

    // Placement channel, mixed case in the path.
    let r = gw.anon.get("/Alice10/YT-Video42").await;
    assert_eq!(r.status, 302);
    let loc = r.header("location").unwrap();
    assert!(loc.contains("utm_content=video42"), "{loc}");
}

#[tokio::test]
async fn scan_ids_are_unique_and_time_ordered() {
    let gw = common::start().await;
    gw.create(common::alice()).await;
    let mut seen = HashSet::new();
    let mut last: Option<ScanId> = None;
    for _ in 0..200 {
        let r = gw.anon.get("/alice10/bio").await;
        let id = scan_id_of(r.header("location").unwrap());
        assert!(seen.insert(id), "duplicate scan id");
        if let Some(prev) = last {
            assert!(id > prev, "scan ids not increasing");
            assert!(id.to_string() > prev.to_string());
        }
        last = Some(id);
    }
}

#[tokio::test]
async fn head_redirects_without_body() {
    let gw = common::start().await;
    gw.create(common::alice()).await;
    let r = gw
        .anon
        .send(Method::HEAD, "/alice10/yt", &[], Default::default())
        .await;
    assert_eq!(r.status, 302);
    assert!(r.header("location").is_some());
    assert!(r.body.is_empty());
}

#[tokio::test]
async fn unknown_code_is_404_html() {
    let gw = common::start().await;
    gw.create(common::alice()).await;
    for path in ["/nobody", "/al", "/alice10/yt/extra", "/", "/a%20b"] {
        let r = gw.anon.get(path).await;
        assert_eq!(r.status, 404, "{path}");
        assert!(
            r.header("content-type").unwrap().starts_with("text/html"),
            "{path}"
        );
        assert!(r.text().contains("not found"), "{path}");
    }
}

/// A channel the code does not have (a typo in a bio, an old link) goes to
/// the code's own destination, is recorded as a scan of the bare code, and
/// the name asked for shows in the code's live stats.
#[tokio::test]
async fn an_unknown_channel_reaches_the_code_and_is_counted() {
    let gw = common::start().await;
    gw.create(common::alice()).await;
    let bare = gw.anon.get("/alice10").await;
    let r = gw.anon.get("/alice10/TikTok").await;
    assert_eq!(r.status, 302);
    let location = r.header("location").unwrap();
    let without_scan = |l: &str| l.split("cl_scan=").next().unwrap().to_string();
    assert_eq!(
        without_scan(location),
        without_scan(bare.header("location").unwrap()),
        "the code's own destination"
    );
    // The scan token names the bare code (no channel).
    let token = location.split("cl_scan=").nth(1).unwrap();
    let token = token.split(['&', '#']).next().unwrap();
    assert!(token.contains(".alice10.."), "{token}");
    // More typos; a name that is no slug at all.
    for path in [
        "/alice10/tiktok",
        "/alice10/yt-vdeo42",
        "/alice10/%F0%9F%98%80",
    ] {
        assert_eq!(gw.anon.get(path).await.status, 302, "{path}");
    }
    let ok = codelink_testkit::wait_until(std::time::Duration::from_secs(10), || async {
        gw.admin.get("/api/v1/codes/alice10/stats").await.json()["total"] == 5
    })
    .await;
    let stats = gw.admin.get("/api/v1/codes/alice10/stats").await.json();
    assert!(ok, "{stats}");
    assert_eq!(
        stats["unknown_channels"],
        serde_json::json!({"tiktok": 2, "yt-vdeo42": 1, "f09f9880": 1}),
        "{stats}"
    );
    // Recorded with an empty channel.
    assert_eq!(stats["channels"]["-"]["total"], 5, "{stats}");
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn disabled_and_expired_codes_are_410() {
    let gw = common::start().await;
    gw.create(common::alice()).await;
    assert_eq!(gw.admin.delete("/api/v1/codes/alice10").await.status, 200);
    let r = gw.anon.get("/alice10/yt").await;
    assert_eq!(r.status, 410);
    assert!(r.header("location").is_none());

    // Re-enabled by PATCH.
    let r = gw
        .admin
        .patch_json(
            "/api/v1/codes/alice10",
            &serde_json::json!({"enabled": true}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(gw.anon.get("/alice10").await.status, 302);

    // Expiry two seconds ahead, then wait for it to pass.
    let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let soon = soon
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let r = gw
        .create(serde_json::json!({
            "code": "brief", "destination": "https://shop.example/", "owner": "bob",
            "expires_at": soon
        }))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(gw.anon.get("/brief").await.status, 302);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(gw.anon.get("/brief").await.status, 410);
}

#[tokio::test]
async fn other_methods_are_405() {
    let gw = common::start().await;
    gw.create(common::alice()).await;
    let r = gw
        .anon
        .send(Method::POST, "/alice10", &[], Default::default())
        .await;
    assert_eq!(r.status, 405);
    assert_eq!(r.error_code(), "method_not_allowed");
}

#[tokio::test]
async fn scan_param_name_is_configurable() {
    let (mut config, tmp) = common::config();
    config.scan_param = "ref_scan".into();
    let gw = common::start_with(config, Some(tmp)).await;
    gw.create(common::alice()).await;
    let loc = gw
        .anon
        .get("/alice10")
        .await
        .header("location")
        .unwrap()
        .to_string();
    assert!(loc.contains("&ref_scan="), "{loc}");
    assert!(!loc.contains("cl_scan"), "{loc}");
}

/// A channel keeps the destination's query bytes as given (a signed URL stays
/// valid: no `%20`→`+`, no `flag`→`flag=`) and only appends its UTM and the scan id.
#[tokio::test]
async fn channel_keeps_the_destination_query_verbatim_and_appends() {
    let gw = common::start().await;
    let r = gw
        .create(serde_json::json!({
            "code": "signed1",
            "destination": "https://shop.example/p?sig=a%20b&flag&x=1#f",
            "owner": "alice",
            "channels": {"yt": {"utm_source": "youtube", "utm_medium": "video & more"}}
        }))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        r.json()["destination"],
        "https://shop.example/p?sig=a%20b&flag&x=1#f"
    );

    let loc = gw
        .anon
        .get("/signed1/yt")
        .await
        .header("location")
        .unwrap()
        .to_string();
    let prefix = "https://shop.example/p?sig=a%20b&flag&x=1\
                  &utm_source=youtube&utm_medium=video+%26+more&cl_scan=";
    assert!(loc.starts_with(prefix), "{loc}");
    assert!(loc.ends_with("#f"), "{loc}");
    let scan = &loc[prefix.len()..loc.len() - 2];
    assert!(!scan.contains(['&', '#', '?']), "{loc}");
    scan_id_of(&loc);

    let loc = gw
        .anon
        .get("/signed1")
        .await
        .header("location")
        .unwrap()
        .to_string();
    assert!(
        loc.starts_with("https://shop.example/p?sig=a%20b&flag&x=1&cl_scan="),
        "{loc}"
    );
    assert!(loc.ends_with("#f"), "{loc}");
}

/// A channel's UTM value still replaces the destination's same-named parameter,
/// and a stale scan parameter is dropped; every other segment is kept as given.
#[tokio::test]
async fn channel_replaces_only_its_own_parameters() {
    let gw = common::start().await;
    let r = gw
        .create(serde_json::json!({
            "code": "replace1",
            "destination": "https://shop.example/p?utm_source=old&a=%2B+&cl_scan=stale&b",
            "owner": "alice",
            "channels": {"yt": {"utm_source": "youtube"}}
        }))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let loc = gw
        .anon
        .get("/replace1/yt")
        .await
        .header("location")
        .unwrap()
        .to_string();
    assert!(
        loc.starts_with("https://shop.example/p?a=%2B+&b&utm_source=youtube&cl_scan="),
        "{loc}"
    );
    assert_eq!(loc.matches("cl_scan=").count(), 1, "{loc}");
    let loc = gw
        .anon
        .get("/replace1")
        .await
        .header("location")
        .unwrap()
        .to_string();
    assert!(
        loc.starts_with("https://shop.example/p?utm_source=old&a=%2B+&b&cl_scan="),
        "{loc}"
    );
}
