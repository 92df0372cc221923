//! Bot detection measured against public data, through the public
//! `classify`:
//!
//! - every example `instances` UA of the vendored `crawler-user-agents` list
//!   (`data/crawler-user-agents.json`) must be a bot, for at least
//!   [`MIN_RECALL`] of them (the misses are printed);
//! - every browser UA of `data/browsers.txt` (real traffic, from the npm
//!   package `user-agents`) and every hand-written in-app and mobile browser
//!   UA below must be human, with the right `in_app`.
//!
//! `cargo test -p codelink-analytics --test bot_corpus -- --nocapture`
//! prints the counts.

use codelink_analytics::classify::{classify, Client, MAX_FAMILY};
use std::path::Path;

/// Share of the corpus' example UAs that must be called bots.
const MIN_RECALL: f64 = 0.99;

fn data(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[derive(serde::Deserialize)]
struct Entry {
    pattern: String,
    #[serde(default)]
    instances: Vec<String>,
}

fn corpus() -> Vec<Entry> {
    serde_json::from_str(&data("crawler-user-agents.json")).unwrap()
}

fn browsers() -> Vec<String> {
    data("browsers.txt")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

fn check_bot_name(ua: &str, c: &Client) {
    let name = c.bot.as_deref().unwrap();
    assert!(
        !name.is_empty()
            && name.len() <= MAX_FAMILY
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
        "{ua:?} → bad bot name {name:?}"
    );
    assert_eq!(c.device, "bot", "{ua:?}");
    assert_eq!(c.in_app, "", "{ua:?}");
}

#[test]
fn corpus_instances_are_bots() {
    let entries = corpus();
    let mut n = 0usize;
    let mut misses = Vec::new();
    for e in &entries {
        for ua in &e.instances {
            n += 1;
            let c = classify(ua);
            if c.bot.is_some() {
                check_bot_name(ua, &c);
            } else {
                misses.push(format!(
                    "  {ua:?} (pattern {:?}, in_app {:?})",
                    e.pattern, c.in_app
                ));
            }
        }
    }
    let caught = n - misses.len();
    let recall = caught as f64 / n as f64;
    println!(
        "crawler-user-agents: {caught} / {n} instances called bots (recall {recall:.4}), {} missed:\n{}",
        misses.len(),
        misses.join("\n")
    );
    assert!(
        n > 2000,
        "only {n} instances: is the vendored list complete?"
    );
    assert!(recall >= MIN_RECALL, "recall {recall:.4} < {MIN_RECALL}");
}

#[test]
fn real_traffic_browsers_are_human() {
    let uas = browsers();
    assert!(uas.len() >= 900, "{}", uas.len());
    let bots: Vec<String> = uas
        .iter()
        .filter_map(|ua| {
            let c = classify(ua);
            c.bot.map(|b| format!("  {b}: {ua:?}"))
        })
        .collect();
    println!("browsers.txt: {} / {} called bots", bots.len(), uas.len());
    assert!(
        bots.is_empty(),
        "browsers called bots:\n{}",
        bots.join("\n")
    );
}

/// (user agent, the `in_app` it must get). In-app browsers and the apps' own
/// clients first, then browsers on every platform. Each must be human.
const HAND_WRITTEN: &[(&str, &str)] = &[
    // ---- Instagram, Threads ----
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 337.0.3.23.54 (iPhone14,7; iOS 17_5_1; en_GB; en; scale=3.00; 1170x2532; 614785563; IABMV/1)", "instagram"),
    ("Mozilla/5.0 (Linux; Android 14; SM-S921B Build/UP1A.231005.007; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/126.0.6478.134 Mobile Safari/537.36 Instagram 339.0.0.30.105 Android (34/14; 480dpi; 1080x2340; samsung; SM-S921B; e1s; s5e9945; en_GB; 621094371)", "instagram"),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP3A.240617.008; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/126.0.6478.134 Mobile Safari/537.36 Instagram 339.0.0.30.105 Android (34/14; 420dpi; 1080x2205; Google/google; Pixel 8; shiba; shiba; en_US; 621094371)", "instagram"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Barcelona 340.0.0.22.109 (iPhone15,3; iOS 17_5_1; en_US; en; scale=3.00; 1290x2796; 626117000)", "threads"),
    // ---- TikTok ----
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 musical_ly_35.5.0 JsSdk/2.0 NetType/WIFI Channel/App Store ByteLocale/en Region/GB isDarkMode/1 WKWebView/1 RevealType/Dialog BytedanceWebview/d8a21c6 FalconTag/4E1F2B7B-3B54-4D3B-9B2F-2F6B2C0B8F21", "tiktok"),
    ("Mozilla/5.0 (Linux; Android 13; SM-A546B Build/TP1A.220624.014; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/125.0.6422.165 Mobile Safari/537.36 musical_ly_2023508030 JsSdk/1.0 NetType/WIFI Channel/googleplay AppName/musical_ly app_version/35.8.3 ByteLocale/en ByteFullLocale/en Region/GB AppId/1233 Spark/1.5.8.4-bugfix AppVersion/35.8.3 BytedanceWebview/d8a21c6", "tiktok"),
    ("Mozilla/5.0 (Linux; Android 12; SM-A525F Build/SP1A.210812.016; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/119.0.6045.163 Mobile Safari/537.36 trill_320405 JsSdk/1.0 NetType/MOBILE Channel/googleplay AppName/trill app_version/32.4.5 ByteLocale/en Region/PH AppId/1180 BytedanceWebview/d8a21c6", "tiktok"),
    // ---- Facebook, Messenger ----
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/472.0.0.43.103;FBBV/617839581;FBDV/iPhone14,2;FBMD/iPhone;FBSN/iOS;FBSV/17.5.1;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5;FBRV/620221447;IABMV/1]", "facebook"),
    ("Mozilla/5.0 (Linux; Android 14; SM-G991B Build/UP1A.231005.007; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/126.0.6478.122 Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/472.0.0.45.86;IABMV/1;]", "facebook"),
    ("Mozilla/5.0 (Linux; Android 11; moto e(7i) power Build/RZBS31.Q2-143-27-13; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/126.0.6478.122 Mobile Safari/537.36 [FBAN/EMA;FBLC/en_US;FBAV/414.0.0.13.107;]", "facebook"),
    ("Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/471.0.0.39.108;FBBV/615262000;FBDV/iPad13,18;FBMD/iPad;FBSN/iPadOS;FBSV/17.5;FBSS/2;FBID/tablet;FBLC/en_US;FBOP/5;FBRV/0;IABMV/1]", "facebook"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/MessengerForiOS;FBAV/463.0.0.38.111;FBBV/597421360;FBDV/iPhone13,2;FBMD/iPhone;FBSN/iOS;FBSV/17.4.1;FBSS/3;FBCR/;FBID/phone;FBLC/en_GB;FBOP/5]", "messenger"),
    ("Mozilla/5.0 (Linux; Android 13; SM-A536B Build/TP1A.220624.014; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/125.0.6422.165 Mobile Safari/537.36 [FB_IAB/Orca-Android;FBAV/463.0.0.46.102;]", "messenger"),
    // ---- Snapchat ----
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Snapchat/13.0.0.43 (like Safari/8618.2.12.10.8, panda)", "snapchat"),
    ("Mozilla/5.0 (Linux; Android 13; SM-G998B Build/TP1A.220624.014; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/125.0.6422.165 Mobile Safari/537.36 Snapchat/13.1.0.38 (SM-G998B; Android 13#G998BXXU7EWK2#33; gzip; )", "snapchat"),
    // ---- LinkedIn ----
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [LinkedInApp]/9.30.1241", "linkedin"),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 7 Build/AP2A.240705.005; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/126.0.6478.134 Mobile Safari/537.36 [LinkedInApp]/4.1.962", "linkedin"),
    // ---- Pinterest ----
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [Pinterest/iOS]", "pinterest"),
    ("Mozilla/5.0 (Linux; Android 14; SM-S911B Build/UP1A.231005.007; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/126.0.6478.134 Mobile Safari/537.36 [Pinterest/Android]", "pinterest"),
    // ---- X / Twitter ----
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Twitter for iPhone/10.50", "twitter"),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8 Pro Build/AP2A.240705.005; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/126.0.6478.134 Mobile Safari/537.36 TwitterAndroid", "twitter"),
    ("TwitterAndroid/10.48.0-release.0 (310480000-r-0) (Android 14; Google Pixel 8; Build/AP2A.240705.005; wv)", "twitter"),
    // ---- YouTube (its own client; links open in Safari / Chrome tabs) ----
    ("com.google.ios.youtube/19.29.1 (iPhone16,2; U; CPU iOS 17_5_1 like Mac OS X; en_GB)", "youtube"),
    ("com.google.android.youtube/19.28.35 (Linux; U; Android 14; en_US; SM-S918B; Build/UP1A.231005.007; Cronet/126.0.6478.71)", "youtube"),
    // ---- Other apps with in-app browsers ----
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.49(0x18003137) NetType/WIFI Language/zh_CN", "wechat"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Safari Line/14.10.0", "line"),
    ("Mozilla/5.0 (Linux; Android 14; SM-S918B Build/UP1A.231005.007; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/126.0.6478.134 Mobile Safari/537.36 Telegram-Android/10.14.5 (Samsung SM-S918B; Android 14; SDK 34; HIGH)", "telegram"),
    ("Mozilla/5.0 (Linux; Android 14; SM-S911B Build/UP1A.231005.007; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/126.0.6478.134 Mobile Safari/537.36 Reddit/Version 2024.28.0/Build 1717851/Android 14", "reddit"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 KAKAOTALK 10.8.5", "kakaotalk"),
    ("Mozilla/5.0 (Linux; Android 13; SM-A536B Build/TP1A.220624.014; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/120.0.6099.144 Mobile Safari/537.36 Viber/21.8.0.1", "viber"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Viber/21.8.0", "viber"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) discord/1.0.9154 Chrome/124.0.6367.243 Electron/30.2.0 Safari/537.36", "discord"),
    // ---- Samsung Internet, Miui, Opera, Edge ----
    ("Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S928B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36", ""),
    ("Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-X910) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Safari/537.36", ""),
    ("Mozilla/5.0 (Linux; U; Android 13; en-us; 2201117TG Build/TKQ1.221114.001) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/112.0.5615.136 Mobile Safari/537.36 XiaoMi/MiuiBrowser/14.5.1-gn", ""),
    ("Mozilla/5.0 (Linux; U; Android 12; zh-cn; M2102J2SC Build/SKQ1.211006.001) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/100.0.4896.127 Mobile Safari/537.36 XiaoMi/MiuiBrowser/17.7.30 swan-mibrowser", ""),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 OPR/112.0.0.0", ""),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36 OPR/111.0.0.0 (Edition std-1)", ""),
    ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36 OPR/83.0.0.0", ""),
    ("Mozilla/5.0 (Linux; U; Android 12; SM-A125F Build/SP1A.210812.016; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/108.0.5359.128 Mobile Safari/537.36 OPR/72.5.2254.69496", ""),
    ("Opera/9.80 (Android; Opera Mini/36.2.2254/119.132; U; id) Presto/2.12.423 Version/12.16", ""),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1 OPT/5.0.0", ""),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0", ""),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0", ""),
    ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36 EdgA/126.0.0.0", ""),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 EdgiOS/126.2592.56 Mobile/15E148 Safari/605.1.15", ""),
    // ---- Firefox ----
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0", ""),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:128.0) Gecko/20100101 Firefox/128.0", ""),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", ""),
    ("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0", ""),
    ("Mozilla/5.0 (Android 14; Mobile; rv:128.0) Gecko/128.0 Firefox/128.0", ""),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/128.0 Mobile/15E148 Safari/605.1.15", ""),
    // ---- Safari ----
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15", ""),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", ""),
    ("Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", ""),
    // ---- Chrome on every platform ----
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36", ""),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36", ""),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36", ""),
    ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36", ""),
    ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.122 Mobile Safari/537.36", ""),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP3A.240617.008) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.122 Mobile Safari/537.36", ""),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/126.0.6478.153 Mobile/15E148 Safari/604.1", ""),
    ("Mozilla/5.0 (Linux; Android 14; SM-S918B Build/UP1A.231005.007; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/126.0.6478.134 Mobile Safari/537.36", ""),
    // ---- Other browsers and apps people tap links in ----
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) GSA/325.0.651508139 Mobile/15E148 Safari/604.1", ""),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 DuckDuckGo/7 Safari/605.1.15", ""),
    ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36 (Ecosia android@126.0.6478.122)", ""),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 YaBrowser/24.4.0.0 Safari/537.36", ""),
    ("Mozilla/5.0 (Linux; U; Android 11; en-US; RMX2185 Build/RP1A.201005.001) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/100.0.4896.58 UCBrowser/13.4.0.1306 Mobile Safari/537.36", ""),
    ("Mozilla/5.0 (Linux; Android 12; NOH-NX9 Build/HUAWEINOH-N29; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/99.0.4844.88 HuaweiBrowser/14.0.5.302 Mobile Safari/537.36", ""),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Vivaldi/6.8.3381.48", ""),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Whale/3.26.244.21 Safari/537.36", ""),
    ("Mozilla/5.0 (Linux; Android 9; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/126.3.4 like Chrome/126.0.6478.181 Safari/537.36", ""),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Slack/4.39.90 Chrome/126.0.6478.127 Electron/31.2.0 Safari/537.36 Sonic Slack_SSB/4.39.90", ""),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/121.0.0.0 Safari/537.36 Edg/121.0.0.0 Teams/24152.405.2925.6762/49", ""),
    ("Dalvik/2.1.0 (Linux; U; Android 14; SM-S918B Build/UP1A.231005.007)", ""),
];

#[test]
fn hand_written_in_app_and_mobile_browsers_are_human() {
    assert!(HAND_WRITTEN.len() >= 30);
    let mut wrong = Vec::new();
    for &(ua, in_app) in HAND_WRITTEN {
        let c = classify(ua);
        if c.bot.is_some() || c.in_app != in_app || c.automation {
            wrong.push(format!("  {ua:?}\n    want in_app {in_app:?}, got {c:?}"));
        }
    }
    println!(
        "hand-written: {} / {} wrong (bot or in_app)",
        wrong.len(),
        HAND_WRITTEN.len()
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Headless browsers and automation tools are bots with `automation` set.
#[test]
fn automation_is_flagged() {
    for (ua, name) in [
        ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/126.0.6478.126 Safari/537.36", "headless-chrome"),
        ("Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse", "lighthouse"),
        ("Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1", "phantomjs"),
        ("Mozilla/5.0 (X11; Linux x86_64; rv:38.0) Gecko/20100101 SlimerJS/0.10.3", "slimerjs"),
        ("Playwright/1.45.1 (x64; ubuntu 22.04) node/20.15", "playwright"),
        ("selenium/4.22.0 (python linux)", "selenium"),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Cypress/13.13.0 Chrome/118.0.5993.159 Electron/27.3.10 Safari/537.36", "cypress"),
        ("Mozilla/5.0 (linux) AppleWebKit/537.36 (KHTML, like Gecko) jsdom/24.1.0", "jsdom"),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 PTST/240711.161314", "webpagetest"),
    ] {
        let c = classify(ua);
        assert_eq!(
            (c.bot.as_deref(), c.automation, c.device),
            (Some(name), true, "bot"),
            "{ua:?}"
        );
    }
    // Named fetchers and crawlers are bots but not automation.
    let c = classify("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)");
    assert_eq!((c.bot.as_deref(), c.automation), (Some("googlebot"), false));
}

/// A UA list of your own, one per line, all browsers:
/// `CODELINK_BROWSER_UAS=/path/to/list cargo test -p codelink-analytics
/// --test bot_corpus -- --ignored --nocapture other_browser_list`
/// prints every one called a bot (a check against a held-out set).
#[test]
#[ignore]
fn other_browser_list() {
    let Ok(path) = std::env::var("CODELINK_BROWSER_UAS") else {
        println!("CODELINK_BROWSER_UAS not set");
        return;
    };
    let text = std::fs::read_to_string(path).unwrap();
    let uas: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut bots = 0;
    for ua in &uas {
        if let Some(b) = classify(ua).bot {
            bots += 1;
            println!("  {b}: {ua:?}");
        }
    }
    println!("{bots} / {} called bots", uas.len());
}

/// The same for a list of bots: prints the ones missed and the recall.
/// `CODELINK_BOT_UAS=/path/to/list cargo test -p codelink-analytics
/// --test bot_corpus -- --ignored --nocapture other_bot_list`
#[test]
#[ignore]
fn other_bot_list() {
    let Ok(path) = std::env::var("CODELINK_BOT_UAS") else {
        println!("CODELINK_BOT_UAS not set");
        return;
    };
    let text = std::fs::read_to_string(path).unwrap();
    let uas: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut missed = 0;
    for ua in &uas {
        let c = classify(ua);
        if c.bot.is_none() {
            missed += 1;
            println!("  missed ({}): {ua:?}", c.in_app);
        }
    }
    println!("{} / {} called bots", uas.len() - missed, uas.len());
}
