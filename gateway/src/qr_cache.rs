//! Rendered QR images, kept in memory bounded by total size (key and bytes).

use bytes::Bytes;

#[derive(Clone)]
struct ByteWeight;

impl quick_cache::Weighter<String, Bytes> for ByteWeight {
    fn weight(&self, key: &String, value: &Bytes) -> u64 {
        (key.len() + value.len()) as u64
    }
}

pub struct QrCache {
    images: quick_cache::sync::Cache<String, Bytes, ByteWeight>,
}

impl QrCache {
    pub fn new(max_bytes: u64) -> Self {
        // quick_cache sizes its shards by item count; an average image is a few KiB.
        let estimated_items = (max_bytes / 4096).max(16) as usize;
        Self {
            images: quick_cache::sync::Cache::with_weighter(
                estimated_items,
                max_bytes.max(1),
                ByteWeight,
            ),
        }
    }

    pub fn get(&self, key: &str) -> Option<Bytes> {
        self.images.get(key)
    }

    pub fn insert(&self, key: String, image: Bytes) {
        self.images.insert(key, image);
    }
}
