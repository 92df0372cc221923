//! Fuzz targets for everything the analytics crate reads that it did not just
//! compute: user agents, scan tokens, the embedded store's chunks, rollup
//! blocks, sketches and histograms, and the spool's files. Under `cargo test`
//! each runs a bounded number of random inputs (proptest; `PROPTEST_CASES`
//! overrides the count); the same checks run coverage-guided from `fuzz/`.
//!
//! The properties, beyond "no panic": a decoder given any bytes either errors
//! or returns a value that encodes to what it read (byte for byte where the
//! format has one encoding per value, else to a fixpoint); a token that
//! verifies names the fields it was signed over; the spool reader never
//! returns a batch that was not written whole.

use codelink_analytics::batch::Batch;
use codelink_analytics::classify::{classify, Client, DEVICE_CLASSES, IN_APPS};
use codelink_analytics::event::{Conversion, ConversionKind, Rule, Scan};
use codelink_analytics::histogram::DelayHistogram;
use codelink_analytics::rollup::block::{
    ConversionBlock, ConversionCell, ConversionCellKey, ScanBlock, Totals,
};
use codelink_analytics::rollup::{Dim, ScanDelta};
use codelink_analytics::sink::chunk;
use codelink_analytics::sketch::VisitorSketch;
use codelink_analytics::spool::{Spool, SpoolError};
use codelink_analytics::token::Signer;
use codelink_analytics::ScanId;
use proptest::prelude::*;

/// `n` cases, or `PROPTEST_CASES` when set.
fn cases(n: u32) -> ProptestConfig {
    match std::env::var("PROPTEST_CASES") {
        Ok(_) => ProptestConfig::default(),
        Err(_) => ProptestConfig::with_cases(n),
    }
}

// ---------------------------------------------------------------- checks
// Public so that the coverage-guided harness in `fuzz/` runs the same ones.

pub fn check_classify(ua: &str) {
    let c: Client = classify(ua);
    assert!(DEVICE_CLASSES.contains(&c.device), "{ua:?}: {c:?}");
    assert!(c.in_app.is_empty() || IN_APPS.contains(&c.in_app), "{c:?}");
    if let Some(bot) = &c.bot {
        assert!(!bot.is_empty(), "{ua:?}");
        assert!(
            bot.bytes()
                .all(|b| b.is_ascii_graphic() && !b.is_ascii_uppercase()),
            "{ua:?}: bot name {bot:?} is lowercase ASCII without spaces"
        );
        assert_eq!(
            (c.device, c.os.as_str(), c.browser.as_str(), c.in_app),
            ("bot", "", "", ""),
            "{ua:?}"
        );
    }
    assert_eq!(c.is_human(), c.bot.is_none());
    assert_eq!(classify(ua), c, "deterministic");
    // What is stored reads back as the same client.
    let json = serde_json::to_string(&c).unwrap();
    let back: Client = serde_json::from_str(&json).unwrap();
    assert_eq!(back, c);
}

pub fn check_token(signer: &Signer, token: &str) {
    if let Some(t) = signer.verify(token) {
        // A token that verifies names exactly what was signed: signing its
        // fields again gives the same token (the signature's case aside).
        let again = signer.token(t.scan_id, &t.code, &t.channel);
        assert_eq!(signer.verify(&again).as_ref(), Some(&t));
        let (a_signed, a_sig) = again.rsplit_once('.').unwrap();
        let (signed, sig) = token.rsplit_once('.').unwrap();
        assert!(a_sig.eq_ignore_ascii_case(sig), "{token:?}");
        // The scan id may be written in another case or Crockford alias.
        let a_rest = &a_signed[26..];
        assert_eq!(a_rest, &signed[signed.len() - a_rest.len()..]);
        assert_eq!(
            ScanId::parse(&signed[..signed.len() - a_rest.len()]),
            Some(t.scan_id)
        );
    }
}

pub fn check_scan_id(text: &str) {
    if let Some(id) = ScanId::parse(text) {
        let canonical = id.to_string();
        assert_eq!(ScanId::parse(&canonical), Some(id));
        assert_eq!(canonical.len(), 26);
        assert!(
            canonical.eq_ignore_ascii_case(text) || text.bytes().any(|b| b"oOiIlL".contains(&b))
        );
    }
}

/// `decode` then `encode` gives what reads the same: the scans, with a
/// stored flag byte other than 0 read as true. A chunk of an older version
/// (1 or 2) is written back as the current version (3); a version-3 chunk
/// read back from bytes the encoder did not write (its compressed stream
/// or dictionary ordered otherwise) may differ in bytes, never in scans.
pub fn check_chunk(bytes: &[u8]) {
    let Ok(scans) = chunk::decode(bytes) else {
        return;
    };
    let mut again = Vec::new();
    chunk::encode(&scans, &mut again).expect("what was read fits a chunk");
    assert_eq!(again[0], 3, "written in the current version");
    assert_eq!(chunk::decode(&again).unwrap(), scans);
    let mut third = Vec::new();
    chunk::encode(&scans, &mut third).unwrap();
    assert_eq!(third, again, "encoding is deterministic");
}

pub fn check_scan_block(bytes: &[u8]) {
    if let Ok(block) = ScanBlock::decode(bytes) {
        let canonical = block.encode();
        assert_eq!(ScanBlock::decode(&canonical).as_ref(), Ok(&block));
        assert_eq!(ScanBlock::decode(&canonical).unwrap().encode(), canonical);
    }
}

pub fn check_conversion_block(bytes: &[u8]) {
    if let Ok(block) = ConversionBlock::decode(bytes) {
        let canonical = block.encode();
        assert_eq!(ConversionBlock::decode(&canonical).as_ref(), Ok(&block));
    }
    // The borrowed reader agrees with the owned one, dimension by dimension.
    if let Ok(all) = ConversionBlock::decode(bytes) {
        for dim in Dim::ALL {
            let one: Vec<_> =
                codelink_analytics::rollup::block::conversion_cells_of(bytes, Some(dim))
                    .unwrap()
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap();
            let n = all.cells.keys().filter(|k| k.dim == dim).count();
            assert!(one.len() >= n, "every cell of {dim:?} is read");
        }
    }
}

pub fn check_totals(bytes: &[u8]) {
    if let Ok(t) = Totals::decode(bytes) {
        let canonical = t.encode();
        assert_eq!(Totals::decode(&canonical).as_ref(), Ok(&t));
    }
}

pub fn check_sketch(bytes: &[u8]) {
    if let Ok(s) = VisitorSketch::decode(bytes) {
        let mut out = Vec::new();
        s.encode(&mut out);
        let back = VisitorSketch::decode(&out).unwrap();
        assert_eq!(back.estimate().count, s.estimate().count);
        let mut again = Vec::new();
        back.encode(&mut again);
        assert_eq!(again, out, "the canonical form is a fixpoint");
    }
}

pub fn check_histogram(bytes: &[u8]) {
    if let Ok(h) = DelayHistogram::decode(bytes) {
        let mut out = Vec::new();
        h.encode(&mut out);
        assert_eq!(DelayHistogram::decode(&out).as_ref(), Ok(&h));
        assert!(
            out.len() <= bytes.len(),
            "the canonical form is the shortest"
        );
    }
}

// ---------------------------------------------------------------- inputs

/// `base` with a few bytes flipped, inserted, removed or cut off.
fn mutated(base: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (
        base,
        proptest::collection::vec(
            (any::<u8>(), any::<prop::sample::Index>(), any::<u8>()),
            0..4,
        ),
    )
        .prop_map(|(mut bytes, edits)| {
            for (op, at, byte) in edits {
                let i = if bytes.is_empty() {
                    0
                } else {
                    at.index(bytes.len())
                };
                match op % 5 {
                    0 if !bytes.is_empty() => bytes[i] = byte,
                    1 if !bytes.is_empty() => bytes[i] ^= 1 << (byte % 8),
                    2 => bytes.insert(i, byte),
                    3 if !bytes.is_empty() => {
                        bytes.remove(i);
                    }
                    4 => bytes.truncate(i),
                    _ => {}
                }
            }
            bytes
        })
}

fn short_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z]{0,3}",
        1 => "\\PC{0,6}",
    ]
}

fn scan() -> impl Strategy<Value = Scan> {
    (
        (0u64..1 << 45, any::<bool>(), 0u64..1000),
        proptest::collection::vec(short_text(), 13),
    )
        .prop_map(|((ts_ms, is_unique, n), t)| Scan {
            scan_id: ScanId::from_parts(ts_ms, 1, n).to_string().into(),
            unknown_channel: Default::default(),
            step: Default::default(),
            route: Default::default(),
            ts_ms,
            is_unique,
            code: t[0].as_str().into(),
            channel: t[1].as_str().into(),
            visitor_id: t[2].as_str().into(),
            ip_prefix: t[3].as_str().into(),
            user_agent: t[4].as_str().into(),
            device: t[5].as_str().into(),
            os: t[6].as_str().into(),
            browser: t[7].as_str().into(),
            in_app: t[8].as_str().into(),
            referrer_host: t[9].as_str().into(),
            country: t[10].as_str().into(),
            source: t[11].as_str().into(),
            bot_reason: t[12].as_str().into(),
        })
}

fn kind() -> impl Strategy<Value = ConversionKind> {
    prop_oneof![
        Just(ConversionKind::Signup),
        Just(ConversionKind::Purchase),
        Just(ConversionKind::Refund)
    ]
}

fn histogram() -> impl Strategy<Value = DelayHistogram> {
    proptest::collection::vec(any::<u64>(), 0..6).prop_map(|delays| {
        let mut h = DelayHistogram::default();
        for d in delays {
            h.add_secs(d % 10_000_000);
        }
        h
    })
}

fn scan_block() -> impl Strategy<Value = ScanBlock> {
    proptest::collection::vec(
        (
            0..Dim::ALL.len(),
            short_text(),
            (0u64..5, 0u64..5, 0u64..5, 0u64..5),
            proptest::collection::vec(any::<u64>(), 0..4),
        ),
        0..6,
    )
    .prop_map(|cells| {
        let mut block = ScanBlock::default();
        for (dim, value, (human, bot, qr, link), visitors) in cells {
            let d = ScanDelta {
                human,
                bot,
                suspect: bot / 2,
                qr,
                link,
                visitors,
            };
            block.add(Dim::ALL[dim], &value, &d);
        }
        block
    })
}

fn conversion_block() -> impl Strategy<Value = ConversionBlock> {
    proptest::collection::vec(
        (
            0..Dim::ALL.len(),
            (short_text(), short_text(), kind(), short_text()),
            (0u64..5, any::<i64>(), any::<i64>(), histogram()),
            (any::<i64>(), any::<i64>()),
        ),
        0..5,
    )
    .prop_map(|cells| {
        let mut block = ConversionBlock::default();
        for (dim, (value, owner, kind, currency), (n, amount, earnings, delays), (flagged, held)) in
            cells
        {
            block.cells.insert(
                ConversionCellKey {
                    dim: Dim::ALL[dim],
                    value,
                    owner,
                    kind,
                    earnings_currency: currency.clone(),
                    currency,
                },
                ConversionCell {
                    n,
                    amount: i128::from(amount),
                    earnings: i128::from(earnings),
                    delays,
                    flagged,
                    held: i128::from(held),
                },
            );
        }
        block
    })
}

fn totals() -> impl Strategy<Value = Totals> {
    (
        any::<u64>(),
        proptest::collection::btree_map(
            (short_text(), kind(), short_text()),
            (any::<u64>(), any::<i64>().prop_map(i128::from)),
            0..5,
        ),
    )
        .prop_map(|(human, conversions)| Totals { human, conversions })
}

fn sketch() -> impl Strategy<Value = VisitorSketch> {
    prop_oneof![
        proptest::collection::vec(any::<u64>(), 0..20),
        proptest::collection::vec(any::<u64>(), 90..400),
    ]
    .prop_map(|hashes| {
        let mut s = VisitorSketch::new();
        for h in hashes {
            s.insert_hash(h);
        }
        s
    })
}

fn encoded_chunk() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(scan(), 0..4).prop_map(|scans| {
        let mut out = Vec::new();
        chunk::encode(&scans, &mut out).unwrap();
        out
    })
}

/// Bytes for a decoder: arbitrary, or a valid encoding slightly damaged.
fn bytes_for(valid: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..64),
        3 => mutated(valid),
    ]
}

const SECRET: &[u8] = b"fuzz-secret-0123456789";

fn token_text() -> impl Strategy<Value = String> {
    let signer = Signer::new(SECRET);
    let valid = (
        0u64..1 << 47,
        0u64..1 << 20,
        "[a-z0-9_-]{0,8}",
        "[a-z0-9_-]{0,8}",
    )
        .prop_map(move |(ms, n, code, channel)| {
            signer.token(ScanId::from_parts(ms, 2, n), &code, &channel)
        });
    prop_oneof![
        any::<String>(),
        "[0-9A-Za-z.]{0,60}",
        mutated(valid.prop_map(String::into_bytes))
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        // Case changes keep a token valid: the id and the signature are
        // case-insensitive.
        (0u64..1 << 47, "[a-z0-9_-]{0,8}", "[a-z0-9_-]{0,8}").prop_map(|(ms, code, channel)| {
            Signer::new(SECRET)
                .token(ScanId::from_parts(ms, 2, 7), &code, &channel)
                .to_ascii_lowercase()
        }),
    ]
}

fn user_agent() -> impl Strategy<Value = String> {
    let piece = proptest::sample::select(vec![
        "Mozilla/5.0 ",
        "(iPhone; CPU iPhone OS 17_0 like Mac OS X) ",
        "(Linux; Android 14; Pixel 8) ",
        "(Windows NT 10.0; Win64; x64) ",
        "(Macintosh; Intel Mac OS X 10_15_7) ",
        "(X11; CrOS x86_64) ",
        "AppleWebKit/605.1.15 ",
        "(KHTML, like Gecko) ",
        "Version/17.0 ",
        "Mobile/15E148 ",
        "Safari/604.1",
        "Chrome/120.0.0.0 ",
        "Firefox/121.0",
        "Edg/120.0",
        "SamsungBrowser/23.0 ",
        "Instagram 300.0.0 ",
        "FBAN/FBIOS;",
        "[FBAN/FB4A;",
        "musical_ly_",
        "BytedanceWebview/",
        "wv) ",
        "Googlebot/2.1; ",
        "+http://www.google.com/bot.html)",
        "facebookexternalhit/1.1",
        "bot",
        "Bot",
        "spider",
        "crawl",
        "curl/8.0",
        "python-requests/2.31",
        "HeadlessChrome/120 ",
        "(",
        ")",
        ";",
        " ",
        "/",
        "\u{0}",
        "é",
        "\u{202e}",
    ]);
    prop_oneof![
        3 => proptest::collection::vec(piece, 0..10).prop_map(|p| p.concat()),
        1 => any::<String>(),
    ]
}

proptest! {
    #![proptest_config(cases(8_000))]

    #[test]
    fn user_agents(ua in user_agent()) {
        check_classify(&ua);
    }

    #[test]
    fn scan_tokens(token in token_text()) {
        check_token(&Signer::new(SECRET), &token);
        check_scan_id(token.get(..26).unwrap_or(&token));
    }

    /// Signing then verifying gives back the fields; a token changed in any
    /// byte other than a letter's case does not verify.
    #[test]
    fn tokens_round_trip_and_changes_fail(
        ms in 0u64..1 << 47, n in 0u64..1 << 20,
        code in "[a-z0-9_-]{0,12}", channel in "[a-z0-9_-]{0,12}",
        at in any::<prop::sample::Index>(), byte in any::<u8>(),
    ) {
        let signer = Signer::new(SECRET);
        let id = ScanId::from_parts(ms, 3, n);
        let token = signer.token(id, &code, &channel);
        let t = signer.verify(&token).unwrap();
        prop_assert_eq!((t.scan_id, t.code.as_str(), t.channel.as_str()), (id, code.as_str(), channel.as_str()));
        let mut bytes = token.clone().into_bytes();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        if let Ok(changed) = String::from_utf8(bytes) {
            if let Some(got) = signer.verify(&changed) {
                prop_assert!(changed.eq_ignore_ascii_case(&token) || got == t, "{} verified as {:?}", changed, got);
                prop_assert_eq!(got.code, code);
                prop_assert_eq!(got.channel, channel);
            }
        }
        prop_assert!(Signer::new(b"another secret").verify(&token).is_none());
    }

    #[test]
    fn chunks_decode_or_refuse(bytes in bytes_for(encoded_chunk())) {
        check_chunk(&bytes);
    }

    #[test]
    fn chunks_round_trip(scans in proptest::collection::vec(scan(), 0..6)) {
        let mut out = Vec::new();
        chunk::encode(&scans, &mut out).unwrap();
        prop_assert_eq!(chunk::decode(&out).unwrap(), scans);
        check_chunk(&out);
    }

    #[test]
    fn scan_blocks_decode_or_refuse(bytes in bytes_for(scan_block().prop_map(|b| b.encode()))) {
        check_scan_block(&bytes);
    }

    #[test]
    fn scan_blocks_round_trip(block in scan_block()) {
        let bytes = block.encode();
        prop_assert_eq!(ScanBlock::decode(&bytes).unwrap(), block);
        for cut in 0..bytes.len() {
            prop_assert!(ScanBlock::decode(&bytes[..cut]).is_err(), "cut at {}", cut);
        }
    }

    #[test]
    fn conversion_blocks_decode_or_refuse(
        bytes in bytes_for(conversion_block().prop_map(|b| b.encode())),
    ) {
        check_conversion_block(&bytes);
    }

    #[test]
    fn conversion_blocks_round_trip(block in conversion_block()) {
        let bytes = block.encode();
        prop_assert_eq!(ConversionBlock::decode(&bytes).unwrap(), block);
    }

    #[test]
    fn totals_decode_or_refuse(bytes in bytes_for(totals().prop_map(|t| t.encode()))) {
        check_totals(&bytes);
    }

    #[test]
    fn sketches_decode_or_refuse(bytes in bytes_for(sketch().prop_map(|s| {
        let mut out = Vec::new();
        s.encode(&mut out);
        out
    }))) {
        check_sketch(&bytes);
    }

    #[test]
    fn histograms_decode_or_refuse(bytes in bytes_for(histogram().prop_map(|h| {
        let mut out = Vec::new();
        h.encode(&mut out);
        out
    }))) {
        check_histogram(&bytes);
    }
}

// ---------------------------------------------------------------- spool

fn conversion(event_id: String, amount: i64) -> Conversion {
    Conversion {
        event_id,
        kind: ConversionKind::Purchase,
        occurred_ms: 1_700_000_000_000,
        received_ms: 1_700_000_000_500,
        code: "spring".into(),
        owner: "alice".into(),
        channel: String::new(),
        scan_id: String::new(),
        scan_ms: 0,
        visitor_id: String::new(),
        customer_id: "c1".into(),
        amount,
        currency: "EUR".into(),
        rule: Rule::CodeOnly,
        earnings: amount / 10,
        earnings_currency: "EUR".into(),
        repeat: false,
        flagged: None,
    }
}

/// What happens to a spooled file before the spool is opened again.
#[derive(Debug, Clone)]
pub enum Damage {
    /// Cut at a fraction (per mille) of its length: a torn write.
    Truncate(u16),
    /// Garbage after the JSON.
    Append(Vec<u8>),
    /// Whitespace after the JSON (still the batch as written).
    AppendSpace,
    /// One byte changed anywhere: may still be valid JSON of another batch.
    Flip(prop::sample::Index, u8),
    /// Replaced by arbitrary bytes.
    Replace(Vec<u8>),
}

fn damage() -> impl Strategy<Value = Option<Damage>> {
    proptest::option::of(prop_oneof![
        (0u16..1000).prop_map(Damage::Truncate),
        proptest::collection::vec(any::<u8>(), 1..8).prop_map(Damage::Append),
        Just(Damage::AppendSpace),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Damage::Flip(i, b)),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Damage::Replace),
    ])
}

/// Pushes the batches, damages their files as a crash or a bad disk would,
/// leaves a torn temporary file behind, then reads the spool back as the
/// recorder does: every batch it returns is one that was written, whole and
/// in order, except from a file whose bytes were changed in place; a bad
/// file is an error (quarantined), never a panic; the spool ends empty.
pub fn check_spool(batches: &[(Batch, Option<Damage>)], torn_tmp: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool");
    let mut spool = Spool::open(path.clone(), 1 << 30).unwrap();
    for (b, _) in batches {
        spool.push(b).unwrap();
    }
    let mut files: Vec<_> = std::fs::read_dir(&path)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), batches.len());
    for (file, (_, damage)) in files.iter().zip(batches) {
        let mut bytes = std::fs::read(file).unwrap();
        match damage {
            None => {}
            Some(Damage::Truncate(per_mille)) => {
                bytes.truncate(bytes.len() * usize::from(*per_mille) / 1000)
            }
            Some(Damage::Append(extra)) => bytes.extend_from_slice(extra),
            Some(Damage::AppendSpace) => bytes.extend_from_slice(b" \n"),
            Some(Damage::Flip(i, b)) => {
                let i = i.index(bytes.len());
                bytes[i] = *b;
            }
            Some(Damage::Replace(other)) => bytes = other.clone(),
        }
        std::fs::write(file, bytes).unwrap();
    }
    // A push that crashed before its rename.
    std::fs::write(path.join(format!("{:020}.tmp", batches.len())), torn_tmp).unwrap();

    let mut spool = Spool::open(path.clone(), 1 << 30).unwrap();
    let mut next = 0; // index in `batches` of the next file
    for _ in 0..=batches.len() {
        match spool.oldest() {
            Ok(None) => break,
            Ok(Some((file, got))) => {
                let i = next + files[next..].iter().position(|f| *f == file).unwrap();
                let (written, damage) = &batches[i];
                match damage {
                    Some(Damage::Flip(..) | Damage::Replace(_)) => {}
                    _ => assert_eq!(&got, written, "file {i} ({damage:?})"),
                }
                spool.remove(&file).unwrap();
                next = i + 1;
            }
            Err(SpoolError::Corrupt(file, _)) => {
                let i = next + files[next..].iter().position(|f| *f == file).unwrap();
                let damage = &batches[i].1;
                assert!(
                    !matches!(damage, None | Some(Damage::AppendSpace)),
                    "file {i} was written whole, yet is refused"
                );
                spool.quarantine(&file).unwrap();
                next = i + 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(spool.is_empty(), "every file read or quarantined");
    assert_eq!(spool.bytes(), 0);
    assert!(
        spool.oldest().unwrap().is_none(),
        "the torn .tmp is never replayed"
    );
}

/// Any bytes as a spool file: read as a batch or refused as corrupt (then
/// quarantined), never a panic or another error; a batch read is one that
/// serialises back to a file that reads as the same batch.
pub fn check_spool_file(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool");
    std::fs::create_dir_all(&path).unwrap();
    std::fs::write(path.join(format!("{:020}.json", 7)), bytes).unwrap();
    let mut spool = Spool::open(path.clone(), 1 << 30).unwrap();
    assert!(!spool.is_empty());
    match spool.oldest() {
        Ok(Some((file, batch))) => {
            spool.remove(&file).unwrap();
            spool.push(&batch).unwrap();
            let (_, again) = spool.oldest().unwrap().unwrap();
            assert_eq!(again, batch);
        }
        Err(SpoolError::Corrupt(file, _)) => {
            spool.quarantine(&file).unwrap();
            assert!(spool.oldest().unwrap().is_none());
        }
        other => panic!("{:?}", other.map(|o| o.map(|(p, _)| p))),
    }
}

fn batch() -> impl Strategy<Value = Batch> {
    (
        proptest::collection::vec(scan(), 0..3),
        proptest::collection::vec(("\\PC{1,6}", any::<i64>()), 0..2),
    )
        .prop_map(|(scans, convs)| {
            let convs = convs.into_iter().map(|(id, a)| conversion(id, a)).collect();
            Batch::new(scans, convs)
        })
}

proptest! {
    #![proptest_config(cases(200))]

    #[test]
    fn spool_files_read_or_refused(bytes in bytes_for(batch().prop_map(|b| serde_json::to_vec(&b).unwrap()))) {
        check_spool_file(&bytes);
    }

    #[test]
    fn spool_reader_survives_damage(
        batches in proptest::collection::vec((batch(), damage()), 0..5),
        torn_tmp in proptest::collection::vec(any::<u8>(), 0..30),
    ) {
        check_spool(&batches, &torn_tmp);
    }
}
