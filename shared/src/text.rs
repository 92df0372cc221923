//! Text written on hot paths without the formatting machinery (`format!`
//! and `write!` cost more than the bytes they write, once per request), and
//! [`Text`], text shared by reference count.

use arcstr::ArcStr;

/// Appends `n` in decimal.
pub fn push_decimal(out: &mut String, n: u32) {
    let mut digits = [0u8; 10];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend(digits[at..].iter().map(|&d| char::from(d)));
}

/// Text shared by reference count: a clone copies a pointer, not the bytes,
/// and the empty text allocates nothing. A scan carries many values that
/// repeat across a batch (its user agent, device, browser, code, channel):
/// the recorder gives the scans with one value the same allocation.
///
/// One pointer wide (8 bytes): the length sits in the allocation, beside
/// the count, not in the pointer as in `Arc<str>`. A scan holds 17 texts,
/// and the recorder holds a batch or two of scans at full speed, so the
/// width is most of a scan's size in memory (see
/// `load-tests/results/footprint-issue15-thin.md`).
#[derive(Clone, Default)]
pub struct Text(Option<ArcStr>);

impl Text {
    pub fn as_str(&self) -> &str {
        self.0.as_deref().unwrap_or("")
    }

    pub fn is_empty(&self) -> bool {
        self.as_str().is_empty()
    }

    /// Whether `self` and `other` hold the same allocation (or are both empty).
    pub fn shares(&self, other: &Text) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => ArcStr::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl std::ops::Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl std::borrow::Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Self((!s.is_empty()).then(|| ArcStr::from(s)))
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Self::from(s.as_str())
    }
}

impl From<&String> for Text {
    fn from(s: &String) -> Self {
        Self::from(s.as_str())
    }
}

impl From<Text> for String {
    fn from(t: Text) -> Self {
        t.as_str().to_owned()
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Text {}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialEq<Text> for str {
    fn eq(&self, other: &Text) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Text> for &str {
    fn eq(&self, other: &Text) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<Text> for String {
    fn eq(&self, other: &Text) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialOrd for Text {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Text {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl std::hash::Hash for Text {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Text {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = Text;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text::from(v))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Text, E> {
                Ok(Text::from(v))
            }
        }
        d.deserialize_str(Visit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_its_str() {
        use std::collections::HashSet;
        let ua = Text::from("Mozilla/5.0 (iPhone)");
        let same = ua.clone();
        assert!(same.shares(&ua), "a clone copied the bytes");
        let again = Text::from(String::from("Mozilla/5.0 (iPhone)"));
        assert!(!again.shares(&ua));
        assert_eq!(again, ua);
        assert_eq!(ua, "Mozilla/5.0 (iPhone)");
        assert_eq!(ua.len(), 20);
        assert!(ua.starts_with("Mozilla"));
        // Found in a set by its str: hashed as the str is.
        let set: HashSet<Text> = [ua.clone(), Text::from("b")].into_iter().collect();
        assert!(set
            .get("Mozilla/5.0 (iPhone)")
            .is_some_and(|t| t.shares(&ua)));
        assert!(!set.contains("Mozilla"));
        // The empty text holds nothing, however it was made.
        for empty in [Text::default(), Text::from(""), Text::from(String::new())] {
            assert!(empty.is_empty() && empty.shares(&Text::default()));
            assert_eq!(empty, "");
        }
        let (a, b) = (Text::from("a"), Text::from("b"));
        assert!(a < b && b.cmp(&a).is_gt());
        assert_eq!(
            format!("{ua} {ua:?}"),
            "Mozilla/5.0 (iPhone) \"Mozilla/5.0 (iPhone)\""
        );
        assert_eq!(String::from(ua.clone()), "Mozilla/5.0 (iPhone)");
    }

    #[test]
    fn text_is_one_pointer_wide() {
        assert_eq!(std::mem::size_of::<Text>(), std::mem::size_of::<usize>());
    }

    #[test]
    fn text_serialises_as_a_string() {
        let t = Text::from("é \"quoted\"");
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, serde_json::to_string("é \"quoted\"").unwrap());
        assert_eq!(serde_json::from_str::<Text>(&json).unwrap(), t);
        assert!(serde_json::from_str::<Text>("\"\"").unwrap().is_empty());
        assert!(serde_json::from_str::<Text>("12").is_err());
    }

    #[test]
    fn writes_what_display_writes() {
        for n in [0, 7, 10, 99, 100, 255, 4096, 65_535, 1_000_000, u32::MAX] {
            let mut out = String::from("x");
            push_decimal(&mut out, n);
            assert_eq!(out, format!("x{n}"));
        }
    }
}
