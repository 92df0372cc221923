//! A small MaxMind DB writer, so GeoIP tests need no downloaded database.
//!
//! The format (MaxMind DB 2.0, <https://maxmind.github.io/MaxMind-DB/>):
//! a binary search tree over the address bits (here IPv6, 128 bits, with
//! IPv4 networks at `::a.b.c.d/(96 + prefix)`, where readers look for them),
//! each node two 24-bit records (a node number; `node_count` for "no data";
//! `node_count + 16 + offset` for data), then 16 zero bytes, the data
//! section, and the metadata map after the marker `\xAB\xCD\xEFMaxMind.com`.
//! Each network's data is `{"country": {"iso_code": …}}`, the shape of
//! GeoLite2-Country and DB-IP's country databases.

use std::net::IpAddr;

#[derive(Clone, Copy)]
enum Rec {
    Empty,
    Node(usize),
    Data(usize),
}

/// An `.mmdb` (MaxMind DB 2.0, IPv6 tree, 24-bit records) mapping each
/// network (address, prefix length) to the country `iso_code`. Later
/// networks inside earlier ones are not supported: give disjoint networks.
pub fn country_db(networks: &[(IpAddr, u8, &str)]) -> Vec<u8> {
    let mut nodes: Vec<[Rec; 2]> = vec![[Rec::Empty, Rec::Empty]];
    let mut data = Vec::new();
    for (addr, prefix, iso) in networks {
        let (bits, len) = match addr {
            IpAddr::V4(v4) => (
                u128::from(u32::from(*v4)),
                96 + usize::from(*prefix).min(32),
            ),
            IpAddr::V6(v6) => (u128::from(*v6), usize::from(*prefix).min(128)),
        };
        assert!(len > 0, "a network of prefix 0 is not supported");
        let offset = data.len();
        map(&mut data, 1);
        string(&mut data, "country");
        map(&mut data, 1);
        string(&mut data, "iso_code");
        string(&mut data, iso);
        let mut node = 0;
        for i in 0..len {
            let bit = ((bits >> (127 - i)) & 1) as usize;
            if i + 1 == len {
                nodes[node][bit] = Rec::Data(offset);
                break;
            }
            node = match nodes[node][bit] {
                Rec::Node(n) => n,
                _ => {
                    nodes.push([Rec::Empty, Rec::Empty]);
                    let n = nodes.len() - 1;
                    nodes[node][bit] = Rec::Node(n);
                    n
                }
            };
        }
    }
    let count = nodes.len();
    let mut out = Vec::with_capacity(count * 6 + 16 + data.len() + 256);
    for pair in &nodes {
        for rec in pair {
            let v = match *rec {
                Rec::Empty => count,
                Rec::Node(n) => n,
                Rec::Data(off) => count + 16 + off,
            } as u32;
            assert!(v < 1 << 24, "database too large for 24-bit records");
            out.extend_from_slice(&v.to_be_bytes()[1..]);
        }
    }
    out.extend_from_slice(&[0; 16]);
    out.extend_from_slice(&data);
    out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
    let mut meta = Vec::new();
    map(&mut meta, 9);
    string(&mut meta, "binary_format_major_version");
    uint(&mut meta, 5, 2);
    string(&mut meta, "binary_format_minor_version");
    uint(&mut meta, 5, 0);
    string(&mut meta, "build_epoch");
    uint(&mut meta, 9, 1_700_000_000);
    string(&mut meta, "database_type");
    string(&mut meta, "codelink-test-country");
    string(&mut meta, "description");
    map(&mut meta, 1);
    string(&mut meta, "en");
    string(&mut meta, "codelink test database");
    string(&mut meta, "ip_version");
    uint(&mut meta, 5, 6);
    string(&mut meta, "languages");
    control(&mut meta, 11, 1);
    string(&mut meta, "en");
    string(&mut meta, "node_count");
    uint(&mut meta, 6, count as u64);
    string(&mut meta, "record_size");
    uint(&mut meta, 5, 24);
    out.extend_from_slice(&meta);
    out
}

/// A control byte (and extended type byte) for `kind` and `size` (< 285).
fn control(out: &mut Vec<u8>, kind: u8, size: usize) {
    let (low, extra) = if size < 29 {
        (size as u8, None)
    } else {
        assert!(size < 285);
        (29, Some((size - 29) as u8))
    };
    if kind <= 7 {
        out.push(kind << 5 | low);
    } else {
        out.push(low);
        out.push(kind - 7);
    }
    out.extend(extra);
}

fn map(out: &mut Vec<u8>, pairs: usize) {
    control(out, 7, pairs);
}

fn string(out: &mut Vec<u8>, s: &str) {
    control(out, 2, s.len());
    out.extend_from_slice(s.as_bytes());
}

/// An unsigned integer of type `kind` (5 uint16, 6 uint32, 9 uint64) in as
/// few big-endian bytes as it needs.
fn uint(out: &mut Vec<u8>, kind: u8, v: u64) {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    control(out, kind, 8 - skip);
    out.extend_from_slice(&bytes[skip..]);
}
