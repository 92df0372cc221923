//! The brand's tag, `/t.js`: served small and cacheable, and in a real
//! browser (Debian's chromium through chromedriver) on a shop served from
//! another origin: a follower's redirect lands on the shop with `cl_scan`,
//! the tag keeps it across navigation and a reload, puts it in the checkout
//! form, and the shop's backend reports the purchase with it.

mod common;

use bytes::Bytes;
use codelink_testkit::browser::Browser;
use common::{alice, TestGateway};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[tokio::test]
async fn served_small_cacheable_and_gzipped() {
    let gw = common::start().await;
    let plain = gw.anon.get("/t.js").await;
    assert_eq!(plain.status, 200);
    assert_eq!(
        plain.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(plain.header("content-encoding"), None);
    assert!(plain.text().contains("codelink"));
    assert_eq!(plain.header("access-control-allow-origin"), Some("*"));
    assert_eq!(plain.header("x-content-type-options"), Some("nosniff"));
    let cache = plain.header("cache-control").unwrap();
    assert!(cache.contains("max-age=3600"), "{cache}");
    let etag = plain.header("etag").unwrap().to_string();

    let gz = gw
        .anon
        .send(
            http::Method::GET,
            "/t.js?v=1",
            &[("accept-encoding", "br, gzip;q=0.8")],
            Default::default(),
        )
        .await;
    assert_eq!(gz.status, 200);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(gz.header("vary"), Some("Accept-Encoding"));
    assert!(gz.body.len() < 3 * 1024, "{} bytes gzipped", gz.body.len());
    assert!(gz.body.len() < plain.body.len());
    let mut unzipped = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(&gz.body[..]),
        &mut unzipped,
    )
    .unwrap();
    assert_eq!(unzipped.as_bytes(), &plain.body[..]);
    // The pinned version is immutable.
    assert!(gz.header("cache-control").unwrap().contains("immutable"));
    // gzip;q=0 is a refusal.
    let refused = gw
        .anon
        .send(
            http::Method::GET,
            "/t.js",
            &[("accept-encoding", "gzip;q=0")],
            Default::default(),
        )
        .await;
    assert_eq!(refused.header("content-encoding"), None);

    let again = gw
        .anon
        .send(
            http::Method::GET,
            "/t.js",
            &[("if-none-match", etag.as_str())],
            Default::default(),
        )
        .await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    let post = gw
        .anon
        .send(http::Method::POST, "/t.js", &[], Default::default())
        .await;
    assert_eq!(post.status, 405);
    assert_eq!(post.error_code(), "method_not_allowed");
    gw.stop().await.unwrap();
}

/// What the shop's backend received from its checkout form.
#[derive(Default)]
struct Shop {
    orders: Mutex<Vec<String>>,
}

fn page(gateway: SocketAddr, title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=utf-8><title>{title}</title>\
         <script src=\"http://{gateway}/t.js\" data-days=\"30\" data-attach=\"form.checkout\" \
         defer></script></head><body>{body}</body></html>"
    )
}

/// The brand's site: a landing page, a checkout page with a form, and the
/// backend the form posts to. Served on `localhost` (the gateway is on
/// 127.0.0.1: another origin, another site).
async fn serve_shop(gateway: SocketAddr, shop: Arc<Shop>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let shop = shop.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let shop = shop.clone();
                    async move {
                        let path = req.uri().path().to_string();
                        let html = match path.as_str() {
                            "/landing" => page(
                                gateway,
                                "Shop",
                                "<h1>Shop</h1><a id=next href=\"/checkout\">Checkout</a>",
                            ),
                            "/checkout" => page(
                                gateway,
                                "Checkout",
                                "<form class=checkout method=post action=\"/order\">\
                                 <input name=email value=\"f@example.com\">\
                                 <button id=buy>Buy</button></form>\
                                 <a id=pay href=\"https://buy.stripe.com/test_1?x=1\">Pay</a>",
                            ),
                            "/order" => {
                                let body = req.into_body().collect().await.unwrap().to_bytes();
                                shop.orders
                                    .lock()
                                    .unwrap()
                                    .push(String::from_utf8_lossy(&body).into_owned());
                                "<!doctype html><title>Thanks</title><p id=done>Thanks".into()
                            }
                            _ => "<!doctype html><title>Not found</title>".into(),
                        };
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder()
                                .header("content-type", "text/html; charset=utf-8")
                                .body(Full::new(Bytes::from(html)))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

async fn token_in_page(b: &Browser) -> Value {
    // The tag is deferred: wait for it.
    for _ in 0..50 {
        let v = b
            .execute(
                "return window.codelink ? codelink.token() : 'not loaded';",
                vec![],
            )
            .await;
        if v != json!("not loaded") {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the tag did not load");
}

async fn report(gw: &TestGateway, event_id: &str, token: &str) -> Value {
    let r = gw
        .admin
        .post_json(
            "/api/v1/conversions",
            &json!({"event_id": event_id, "type": "purchase", "scan_id": token,
                    "amount": 5000, "currency": "EUR"}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    r.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carries_the_scan_from_landing_to_checkout_in_a_browser() {
    let gw = common::start().await;
    let shop = Arc::new(Shop::default());
    let shop_addr = serve_shop(gw.addr, shop.clone()).await;
    let origin = format!("http://localhost:{}", shop_addr.port());
    let mut code = alice();
    code["destination"] = json!(format!("{origin}/landing"));
    assert_eq!(gw.create(code).await.status, 201);

    let b = Browser::start(390, 844).await;
    // The follower taps the creator's link.
    b.goto(&format!("http://{}/alice10/yt", gw.addr)).await;
    let landed = b.current_url().await;
    assert!(
        landed.starts_with(&format!("{origin}/landing?")),
        "{landed}"
    );
    let url = url::Url::parse(&landed).unwrap();
    let token = url
        .query_pairs()
        .find(|(k, _)| k == "cl_scan")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    assert_eq!(token_in_page(&b).await, json!(token));
    assert_eq!(
        b.execute("return codelink.code();", vec![]).await,
        json!("alice10")
    );

    // Kept first-party on the shop's site: a cookie for 30 days and
    // localStorage.
    let cookies = b.cookies().await;
    let cookie = cookies
        .iter()
        .find(|c| c["name"] == "cl_scan")
        .unwrap_or_else(|| panic!("no cl_scan cookie in {cookies:?}"));
    assert_eq!(cookie["value"], json!(token));
    assert_eq!(cookie["domain"], json!("localhost"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let expiry = cookie["expiry"].as_i64().unwrap();
    assert!(
        (expiry - now - 30 * 86_400).abs() < 120,
        "cookie expires in {} s",
        expiry - now
    );
    let stored = b
        .execute("return localStorage.getItem('cl_scan');", vec![])
        .await;
    let stored: Value = serde_json::from_str(stored.as_str().unwrap()).unwrap();
    assert_eq!(stored["t"], json!(token));

    // Navigation to a page without the parameter, then a reload.
    b.find("#next").await.click().await;
    assert!(
        b.wait_for_text("button", "Buy", Duration::from_secs(5))
            .await
    );
    assert!(b.current_url().await.ends_with("/checkout"));
    assert_eq!(token_in_page(&b).await, json!(token));
    b.execute("location.reload(); return 1;", vec![]).await;
    assert!(
        b.wait_for_text("button", "Buy", Duration::from_secs(5))
            .await
    );
    assert_eq!(token_in_page(&b).await, json!(token));
    // data-attach put it in the checkout form.
    let hidden = b.find("form.checkout input[name=cl_scan]").await;
    assert_eq!(hidden.attr("type").await.as_deref(), Some("hidden"));
    assert_eq!(hidden.prop("value").await, json!(token));

    // A Stripe Payment Link gets the compact form client_reference_id takes.
    let compact = b
        .execute(
            "return codelink.decorate('#pay', 'client_reference_id');",
            vec![],
        )
        .await;
    let compact = compact.as_str().unwrap().to_string();
    assert!(
        compact
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'),
        "{compact}"
    );
    let href = b.find("#pay").await.attr("href").await.unwrap();
    assert_eq!(
        href,
        format!("https://buy.stripe.com/test_1?x=1&client_reference_id={compact}")
    );

    // Nothing was sent to the gateway: the only resource the shop's pages
    // loaded from it is the tag itself.
    let from_gateway = b
        .execute(
            "return performance.getEntriesByType('resource').map(e => e.name)\
             .filter(n => n.indexOf(arguments[0]) === 0);",
            vec![json!(format!("http://{}/", gw.addr))],
        )
        .await;
    assert_eq!(
        from_gateway,
        json!([format!("http://{}/t.js", gw.addr)]),
        "{from_gateway}"
    );
    assert!(b.console_errors().await.is_empty());

    // The follower buys: the shop's backend receives the token.
    b.find("#buy").await.click().await;
    assert!(
        b.wait_for_text("#done", "Thanks", Duration::from_secs(5))
            .await
    );
    let orders = shop.orders.lock().unwrap().clone();
    assert_eq!(orders.len(), 1);
    let form: Vec<(String, String)> = url::form_urlencoded::parse(orders[0].as_bytes())
        .into_owned()
        .collect();
    let sent = form
        .iter()
        .find(|(k, _)| k == "cl_scan")
        .map(|(_, v)| v.clone());
    assert_eq!(sent.as_deref(), Some(token.as_str()), "{form:?}");

    // ...and reports the purchase with it: attributed to the follower's scan.
    let r = report(&gw, "shop-order-1", &token).await;
    assert_eq!(r["attribution"]["rule"], "scan_id", "{r}");
    assert_eq!(r["attribution"]["code"], "alice10");
    assert_eq!(r["attribution"]["channel"], "yt");
    assert_eq!(
        r["attribution"]["scan_id"],
        token.split('.').next().unwrap()
    );
    // The compact form, as Stripe would hand it back, names the same scan.
    let r = report(&gw, "shop-order-2", &compact).await;
    assert_eq!(r["attribution"]["rule"], "scan_id", "{r}");
    assert_eq!(
        r["attribution"]["scan_id"],
        token.split('.').next().unwrap()
    );

    // A kept token past its window is not used, and clear() forgets it.
    b.execute(
        "localStorage.setItem('cl_scan', JSON.stringify({t: arguments[0], e: Date.now() - 1}));\
         document.cookie = 'cl_scan=; Path=/; Max-Age=0'; return 1;",
        vec![json!(token)],
    )
    .await;
    b.goto(&format!("{origin}/checkout")).await;
    assert_eq!(token_in_page(&b).await, Value::Null);
    assert_eq!(
        b.execute("return codelink.attach('form.checkout');", vec![])
            .await,
        Value::Null
    );
    b.goto(&format!("{origin}/landing?cl_scan={token}")).await;
    assert_eq!(token_in_page(&b).await, json!(token));
    b.execute("codelink.clear(); return 1;", vec![]).await;
    b.goto(&format!("{origin}/checkout")).await;
    assert_eq!(token_in_page(&b).await, Value::Null);
    // A malformed value on the URL is ignored.
    b.goto(&format!("{origin}/landing?cl_scan=not-a-token"))
        .await;
    assert_eq!(token_in_page(&b).await, Value::Null);

    b.quit().await;
    gw.stop().await.unwrap();
}
