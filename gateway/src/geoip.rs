//! GeoIP (`--geoip-db`): the country of an address from a MaxMind or DB-IP
//! database (`.mmdb`, country or city edition), read once into memory at
//! start-up. A lookup is a walk of the database's bit tree and a borrowed
//! read of `country.iso_code`: no allocation, no I/O.

use maxminddb::{PathElement, Reader};
use std::net::IpAddr;
use std::path::Path;

pub struct GeoIp {
    reader: Reader<Vec<u8>>,
}

impl GeoIp {
    /// Reads and checks the database; a missing or malformed file is an error
    /// that names it.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let bytes = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("--geoip-db {}: {e}", path.display()))?;
        Self::from_bytes(bytes).map_err(|e| anyhow::anyhow!("--geoip-db {}: {e}", path.display()))
    }

    pub fn from_bytes(bytes: Vec<u8>) -> anyhow::Result<Self> {
        let reader = Reader::from_source(bytes)
            .map_err(|e| anyhow::anyhow!("not a MaxMind DB file ({e})"))?;
        Ok(Self { reader })
    }

    /// The ISO 3166-1 alpha-2 country of `ip` (uppercase), if the database
    /// has one.
    pub fn country(&self, ip: IpAddr) -> Option<[u8; 2]> {
        const PATH: [PathElement<'static>; 2] =
            [PathElement::Key("country"), PathElement::Key("iso_code")];
        let found = self.reader.lookup(ip).ok()?;
        let code: &str = found.decode_path(&PATH).ok()??;
        match code.as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()])
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codelink_testkit::mmdb::country_db;

    #[test]
    fn countries_of_v4_and_v6_networks() {
        let db = country_db(&[
            ("203.0.113.0".parse().unwrap(), 24, "DE"),
            ("198.51.100.128".parse().unwrap(), 25, "br"),
            ("2001:db8::".parse().unwrap(), 32, "JP"),
        ]);
        let geo = GeoIp::from_bytes(db).unwrap();
        let at = |ip: &str| geo.country(ip.parse().unwrap());
        assert_eq!(at("203.0.113.7"), Some(*b"DE"));
        assert_eq!(at("203.0.113.255"), Some(*b"DE"));
        assert_eq!(at("203.0.114.1"), None);
        assert_eq!(at("198.51.100.200"), Some(*b"BR"));
        assert_eq!(at("198.51.100.127"), None);
        assert_eq!(at("2001:db8:1::5"), Some(*b"JP"));
        assert_eq!(at("2001:db9::1"), None);
        assert_eq!(
            at("::ffff:203.0.113.7"),
            None,
            "mapped form is not in the ::/96 subtree"
        );
    }

    #[test]
    fn a_bad_file_is_a_clear_error() {
        let e = GeoIp::from_bytes(b"not a database".to_vec()).err().unwrap();
        assert!(e.to_string().starts_with("not a MaxMind DB file"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.mmdb");
        let e = GeoIp::open(&path).err().unwrap();
        assert!(e.to_string().contains("missing.mmdb"), "{e}");
    }
}
