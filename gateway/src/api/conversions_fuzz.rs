//! Fuzz target for conversion bodies (`POST /api/v1/conversions`): any bytes,
//! and event objects with every field present, absent, null, of the wrong
//! type or out of range, in single and batch form. A bounded run under
//! `cargo test` (proptest; `PROPTEST_CASES` overrides the count).
//!
//! Properties: no panic; a refused body is a 4xx that names a field, with a
//! short message; an accepted one holds only events that obey the API's rules,
//! and the same events sent again as the brand would (rendered back to JSON)
//! are accepted as the same events (same fingerprint: the idempotency key's
//! body).

use super::{parse_events, MAX_BATCH};
use codelink_analytics::event::ConversionKind;
use codelink_analytics::ledger::Reported;
use codelink_shared::currency::{is_currency, MAX_AMOUNT};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// 2027-01-15T12:00:00Z.
const NOW: u64 = 1_800_014_400_000;
const MAX_AGE_DAYS: u32 = 40;

/// The checks on one body, as bytes (the body reader's JSON parse first).
pub(crate) fn check_body(bytes: &[u8]) {
    let Ok(body) = serde_json::from_slice::<Value>(bytes) else {
        return;
    };
    check_value(body);
}

fn check_value(body: Value) {
    match parse_events(body, NOW, MAX_AGE_DAYS) {
        Ok((events, single)) => {
            assert!((1..=MAX_BATCH).contains(&events.len()));
            assert!(!single || events.len() == 1);
            for e in &events {
                check_event(e);
            }
            // Sent again as JSON: the same events.
            let again: Vec<Value> = events.iter().map(render).collect();
            let body = if single {
                again[0].clone()
            } else {
                Value::Array(again)
            };
            let (back, _) = parse_events(body.clone(), NOW, MAX_AGE_DAYS)
                .unwrap_or_else(|e| panic!("{body} refused: {}", e.message));
            assert_eq!(back.len(), events.len());
            for (a, b) in events.iter().zip(&back) {
                assert_eq!(a.fingerprint(), b.fingerprint(), "{body}");
                assert_eq!(a.event_id, b.event_id);
                assert_eq!(a.occurred_ms, b.occurred_ms);
            }
        }
        Err(e) => {
            assert!(e.status.is_client_error(), "{}", e.status);
            assert!(!e.message.is_empty());
            assert!(
                e.message.len() <= 1200,
                "a short message ({} bytes): {:.200}",
                e.message.len(),
                e.message
            );
        }
    }
}

fn check_event(e: &Reported) {
    let id_ok = |s: &str| (1..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic());
    assert!(id_ok(&e.event_id), "{e:?}");
    for id in [&e.customer_id, &e.visitor_id, &e.purchase_event_id]
        .into_iter()
        .flatten()
    {
        assert!(id_ok(id), "{e:?}");
    }
    assert!((0..=MAX_AMOUNT as i64).contains(&e.amount), "{e:?}");
    assert!(e.currency.is_empty() || is_currency(&e.currency), "{e:?}");
    match e.kind {
        ConversionKind::Signup => assert!(e.purchase_event_id.is_none()),
        ConversionKind::Purchase => {
            assert!(e.purchase_event_id.is_none());
            assert!(is_currency(&e.currency), "a purchase has a currency");
        }
        ConversionKind::Refund => assert!(
            e.purchase_event_id.is_some() || e.customer_id.is_some(),
            "a refund names its purchase: {e:?}"
        ),
    }
    assert!(e.amount == 0 || !e.currency.is_empty() || e.kind == ConversionKind::Refund);
    // Not from before the age limit (finding: a 1970 event confirmed at once),
    // not from the future beyond the skew.
    assert!(
        e.occurred_ms + u64::from(MAX_AGE_DAYS) * 86_400_000 >= NOW,
        "{e:?}"
    );
    assert!(e.occurred_ms <= NOW + 5 * 60_000, "{e:?}");
    assert_eq!(e.received_ms, NOW);
    if !e.occurred_given {
        assert_eq!(e.occurred_ms, NOW);
    }
    if let Some(code) = &e.code {
        assert_eq!(
            codelink_shared::CodeName::parse(code).map(|c| c.into_string()),
            Ok(code.clone()),
            "the code is canonical"
        );
    }
}

/// What a brand would send for `e`.
fn render(e: &Reported) -> Value {
    let mut o = Map::new();
    o.insert("event_id".into(), json!(e.event_id));
    o.insert("type".into(), json!(e.kind.as_str()));
    if e.occurred_given {
        let t = time::OffsetDateTime::from_unix_timestamp((e.occurred_ms / 1000) as i64).unwrap();
        let text = t
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        o.insert("occurred_at".into(), json!(text));
    }
    let mut put = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            o.insert(k.into(), json!(v));
        }
    };
    put("scan_id", &e.scan_token);
    put("code", &e.code);
    put("visitor_id", &e.visitor_id);
    put("customer_id", &e.customer_id);
    put("purchase_event_id", &e.purchase_event_id);
    if e.kind != ConversionKind::Signup || e.amount != 0 || !e.currency.is_empty() {
        o.insert("amount".into(), json!(e.amount));
    }
    if !e.currency.is_empty() {
        o.insert("currency".into(), json!(e.currency));
    }
    Value::Object(o)
}

// ---------------------------------------------------------------- inputs

fn id_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => "[a-z0-9_-]{1,12}".prop_map(Value::from),
        1 => "\\PC{0,140}".prop_map(Value::from),
        1 => Just(Value::from("")),
        1 => Just(Value::Null),
        1 => any::<i64>().prop_map(Value::from),
        1 => Just(json!(["x"])),
    ]
}

fn time_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        // Within the age limit and the skew, and around their edges.
        4 => (0u64..(MAX_AGE_DAYS as u64 + 2) * 86_400, any::<bool>()).prop_map(|(back, future)| {
            let secs = if future { NOW / 1000 + back % 900 } else { NOW / 1000 - back };
            let t = time::OffsetDateTime::from_unix_timestamp(secs as i64).unwrap();
            Value::from(t.format(&time::format_description::well_known::Rfc3339).unwrap())
        }),
        1 => Just(Value::from("1970-01-01T00:00:00Z")),
        1 => Just(Value::from("1969-12-31T23:59:59Z")),
        1 => Just(Value::from("9999-12-31T23:59:59+14:00")),
        1 => "\\PC{0,30}".prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
    ]
}

fn amount_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (0i64..1_000_000).prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => Just(json!(MAX_AMOUNT)),
        1 => Just(json!(MAX_AMOUNT + 1)),
        1 => Just(json!(u64::MAX)),
        1 => Just(json!(1.5)),
        1 => Just(json!("100")),
    ]
}

/// A valid value for each field.
fn good(name: &'static str) -> BoxedStrategy<Value> {
    match name {
        "occurred_at" => time_value().boxed(),
        "code" => "[A-Za-z0-9_-]{3,8}".prop_map(Value::from).boxed(),
        "amount" => (0i64..1_000_000).prop_map(Value::from).boxed(),
        "currency" => proptest::sample::select(vec!["EUR", "USD", "JPY"])
            .prop_map(Value::from)
            .boxed(),
        _ => "[a-z0-9_-]{1,12}".prop_map(Value::from).boxed(),
    }
}

/// Any value for a field: wrong types, out of range, empty, null.
fn bad() -> BoxedStrategy<Value> {
    prop_oneof![
        id_value(),
        amount_value(),
        time_value(),
        proptest::sample::select(vec!["chargeback", "Signup", "eur", "XXX", "API", ""])
            .prop_map(Value::from),
    ]
    .boxed()
}

/// Mostly well-formed events of each type (so that the accepting paths are
/// fuzzed too), with a few fields changed, dropped or added.
fn event() -> impl Strategy<Value = Value> {
    let kind = proptest::sample::select(vec!["signup", "purchase", "refund"]);
    let optional = |name: &'static str| proptest::option::weighted(0.5, good(name));
    (
        kind,
        (
            good("event_id"),
            optional("occurred_at"),
            optional("scan_id"),
            optional("code"),
        ),
        (
            optional("visitor_id"),
            optional("customer_id"),
            good("amount"),
            good("currency"),
        ),
        (optional("purchase_event_id"), any::<bool>()),
        proptest::collection::vec(
            (
                proptest::sample::select(
                    super::FIELDS
                        .iter()
                        .copied()
                        .chain(["unknown_field"])
                        .collect::<Vec<_>>(),
                ),
                proptest::option::of(bad()),
            ),
            0..3,
        ),
        proptest::bool::weighted(0.5),
    )
        .prop_map(
            |(
                kind,
                (event_id, occurred, scan, code),
                (visitor, customer, amount, currency),
                (purchase, by_purchase),
                faults,
                clean,
            )| {
                let mut o = Map::new();
                o.insert("event_id".into(), event_id);
                o.insert("type".into(), Value::from(kind));
                let mut put = |k: &str, v: Option<Value>| {
                    if let Some(v) = v {
                        o.insert(k.into(), v);
                    }
                };
                put("occurred_at", occurred);
                put("scan_id", scan);
                put("code", code);
                put("visitor_id", visitor);
                match kind {
                    "signup" => put("customer_id", customer),
                    "purchase" => {
                        put("customer_id", customer);
                        put("amount", Some(amount));
                        put("currency", Some(currency));
                    }
                    _ => {
                        put("amount", Some(amount));
                        if by_purchase {
                            put(
                                "purchase_event_id",
                                Some(purchase.unwrap_or(Value::from("p1"))),
                            );
                            put("customer_id", customer);
                        } else {
                            put("customer_id", Some(customer.unwrap_or(Value::from("c1"))));
                        }
                    }
                }
                if !clean {
                    for (k, v) in faults {
                        match v {
                            Some(v) => o.insert(k.into(), v),
                            None => o.remove(k),
                        };
                    }
                }
                Value::Object(o)
            },
        )
}

fn body() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => event(),
        2 => proptest::collection::vec(event(), 0..5).prop_map(Value::Array),
        1 => proptest::collection::vec(prop_oneof![event(), Just(json!(1)), Just(json!(null))], 0..3)
            .prop_map(Value::Array),
        1 => Just(json!(null)),
        1 => Just(Value::Array(vec![json!({}); MAX_BATCH + 1])),
    ]
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..64),
        3 => (body(), proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3))
            .prop_map(|(v, edits)| {
                let mut b = serde_json::to_vec(&v).unwrap();
                for (at, byte) in edits {
                    let i = at.index(b.len());
                    b[i] = byte;
                }
                b
            }),
    ]
}

fn cases(n: u32) -> ProptestConfig {
    match std::env::var("PROPTEST_CASES") {
        Ok(_) => ProptestConfig::default(),
        Err(_) => ProptestConfig::with_cases(n),
    }
}

proptest! {
    #![proptest_config(cases(10_000))]

    #[test]
    fn conversion_bodies(body in body()) {
        check_value(body);
    }

    #[test]
    fn conversion_bytes(bytes in bytes()) {
        check_body(&bytes);
    }
}

#[test]
fn an_accepted_event_round_trips() {
    let body = json!({
        "event_id": "e1", "type": "refund", "occurred_at": "2027-01-15T11:00:00Z",
        "customer_id": "c1", "amount": 500,
    });
    let (events, single) = parse_events(body.clone(), NOW, MAX_AGE_DAYS).unwrap();
    assert!(single);
    assert_eq!(render(&events[0]), body);
    check_value(body);
}

/// The generator reaches the accepting paths, single and batched, and most
/// refusals: a fuzz run that only exercised refusals would prove little.
#[test]
fn generated_bodies_are_often_accepted() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = body();
    let (mut single, mut batch, mut refused) = (0, 0, BTreeSetLike::default());
    for _ in 0..2_000 {
        let body = strategy.new_tree(&mut runner).unwrap().current();
        match parse_events(body, NOW, MAX_AGE_DAYS) {
            Ok((_, true)) => single += 1,
            Ok((_, false)) => batch += 1,
            Err(e) => refused.insert(e.message.split(':').next().unwrap_or("").to_string()),
        }
    }
    assert!(
        single >= 100 && batch >= 20,
        "{single} single, {batch} batches accepted"
    );
    assert!(refused.0.len() >= 10, "refusals: {:?}", refused.0);
}

#[derive(Default)]
struct BTreeSetLike(std::collections::BTreeSet<String>);

impl BTreeSetLike {
    fn insert(&mut self, s: String) {
        self.0.insert(s);
    }
}
