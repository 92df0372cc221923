//! Rendered QR images, kept in memory bounded by total size (key and bytes),
//! and beside them the answers to exact requests, so that a repeated request
//! is answered without parsing its options or building its image's key.

use crate::codes::CompiledCode;
use crate::qr_logo::Logo;
use bytes::Bytes;
use http::HeaderValue;
use std::sync::{Arc, Weak};

/// A cached answer: an image with its ETag, or (`etag` empty) the reason a
/// branded look does not read.
#[derive(Clone)]
pub struct Cached {
    pub bytes: Bytes,
    pub etag: HeaderValue,
}

/// The image one exact request (`/qr/{code}.{ext}?{query}`, as sent) was
/// answered with, and what it was drawn from: it answers that request again
/// only while the code is the same compiled entry (any change to the code
/// compiles a new one) and the logo drawn is the same.
pub struct Answer {
    /// The code's canonical name, to look its entry up without parsing.
    pub code: Box<str>,
    /// The entry the image was made from. Weak: it does not keep a replaced
    /// code's data alive, and while it is held the entry's address cannot be
    /// reused by another, so comparing addresses is sound.
    pub entry: Weak<CompiledCode>,
    /// The logo drawn, weak for the same reasons: an answer must not keep a
    /// replaced logo's pixels in memory.
    pub logo: Option<Weak<Logo>>,
    pub mime: &'static str,
    pub image: Cached,
}

impl Answer {
    /// Whether this answer still holds for `entry` (the code's current one)
    /// drawn with `logo`.
    pub fn holds_for(&self, entry: &Arc<CompiledCode>, logo: Option<&Arc<Logo>>) -> bool {
        std::ptr::eq(self.entry.as_ptr(), Arc::as_ptr(entry))
            && match (&self.logo, logo) {
                (None, None) => true,
                (Some(a), Some(b)) => std::ptr::eq(a.as_ptr(), Arc::as_ptr(b)),
                _ => false,
            }
    }
}

#[derive(Clone)]
struct ByteWeight;

impl quick_cache::Weighter<String, Cached> for ByteWeight {
    fn weight(&self, key: &String, value: &Cached) -> u64 {
        (key.len() + value.bytes.len() + value.etag.len()) as u64
    }
}

impl quick_cache::Weighter<String, Arc<Answer>> for ByteWeight {
    fn weight(&self, key: &String, value: &Arc<Answer>) -> u64 {
        // The image's bytes are shared with the image cache, but counted
        // here too: an answer may outlive the image's entry there. A weak
        // reference keeps the memory block of its target (not what the
        // target owns) until the answer goes: a replaced entry's, counted,
        // and a logo's (small: the decoded pixels are owned, not inline).
        let held = std::mem::size_of::<Answer>()
            + std::mem::size_of::<CompiledCode>()
            + std::mem::size_of::<Logo>()
            + 64;
        (key.len() + value.code.len() + value.image.bytes.len() + held) as u64
    }
}

pub struct QrCache {
    images: quick_cache::sync::Cache<String, Cached, ByteWeight>,
    /// By the request's path and query as sent (many spellings of one
    /// request each take an entry).
    answers: quick_cache::sync::Cache<String, Arc<Answer>, ByteWeight>,
}

impl QrCache {
    /// Three quarters of `max_bytes` for the images, a quarter for the
    /// answers.
    pub fn new(max_bytes: u64) -> Self {
        let answers_bytes = max_bytes / 4;
        let images_bytes = max_bytes - answers_bytes;
        // quick_cache sizes its shards by item count; an average image is a few KiB.
        let items = |bytes: u64| (bytes / 4096).max(16) as usize;
        Self {
            images: quick_cache::sync::Cache::with_weighter(
                items(images_bytes),
                images_bytes.max(1),
                ByteWeight,
            ),
            answers: quick_cache::sync::Cache::with_weighter(
                items(answers_bytes),
                answers_bytes.max(1),
                ByteWeight,
            ),
        }
    }

    pub fn get(&self, key: &str) -> Option<Cached> {
        self.images.get(key)
    }

    pub fn insert(&self, key: String, value: Cached) {
        self.images.insert(key, value);
    }

    /// The answer given to this exact path and query, if any.
    pub fn answer(&self, path_and_query: &str) -> Option<Arc<Answer>> {
        self.answers.get(path_and_query)
    }

    pub fn remember(&self, path_and_query: &str, answer: Answer) {
        self.answers
            .insert(path_and_query.to_string(), Arc::new(answer));
    }
}
