//! Small binary encoding helpers for what the embedded store keeps: LEB128
//! varints, length-prefixed strings, and a reader that fails instead of
//! panicking on truncated or malformed input.

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed stored value ({0})")]
pub struct Malformed(pub &'static str);

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A signed 128-bit value, zigzag-encoded as two varints (low and high 64 bits).
pub fn put_i128(out: &mut Vec<u8>, v: i128) {
    let z = ((v << 1) ^ (v >> 127)) as u128;
    put_varint(out, z as u64);
    put_varint(out, (z >> 64) as u64);
}

pub fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Reads what the `put_*` functions wrote.
pub struct Reader<'a>(pub &'a [u8]);

impl<'a> Reader<'a> {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn u8(&mut self) -> Result<u8, Malformed> {
        let (&b, rest) = self.0.split_first().ok_or(Malformed("truncated"))?;
        self.0 = rest;
        Ok(b)
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.0.len() < n {
            return Err(Malformed("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    pub fn varint(&mut self) -> Result<u64, Malformed> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(Malformed("varint overflow"));
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Malformed("varint overflow"))
    }

    pub fn i128(&mut self) -> Result<i128, Malformed> {
        let z = u128::from(self.varint()?) | (u128::from(self.varint()?) << 64);
        Ok(((z >> 1) as i128) ^ -((z & 1) as i128))
    }

    pub fn len(&mut self) -> Result<usize, Malformed> {
        let n = self.varint()?;
        if n > self.0.len() as u64 {
            return Err(Malformed("length beyond the end"));
        }
        Ok(n as usize)
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], Malformed> {
        let n = self.len()?;
        self.take(n)
    }

    pub fn str(&mut self) -> Result<&'a str, Malformed> {
        std::str::from_utf8(self.bytes()?).map_err(|_| Malformed("not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_truncation() {
        let mut out = Vec::new();
        put_varint(&mut out, 0);
        put_varint(&mut out, 300);
        put_varint(&mut out, u64::MAX);
        for v in [0i128, -1, 1, i128::MAX, i128::MIN, -123_456_789_012_345] {
            put_i128(&mut out, v);
        }
        put_str(&mut out, "héllo");
        let mut r = Reader(&out);
        assert_eq!(r.varint(), Ok(0));
        assert_eq!(r.varint(), Ok(300));
        assert_eq!(r.varint(), Ok(u64::MAX));
        for v in [0i128, -1, 1, i128::MAX, i128::MIN, -123_456_789_012_345] {
            assert_eq!(r.i128(), Ok(v));
        }
        assert_eq!(r.str(), Ok("héllo"));
        assert!(r.is_empty());
        for cut in 0..out.len() {
            let mut r = Reader(&out[..cut]);
            let all = (|| -> Result<(), Malformed> {
                r.varint()?;
                r.varint()?;
                r.varint()?;
                for _ in 0..6 {
                    r.i128()?;
                }
                r.str()?;
                Ok(())
            })();
            assert!(all.is_err(), "cut at {cut}");
        }
        assert!(Reader(&[0xff; 11]).varint().is_err());
    }
}
