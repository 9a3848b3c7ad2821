//! The answers of listings already computed, filed under the book's version.

use crate::order::OrderKind;

/// Listings already answered, by query string, with the book version they were computed at: the same query
/// between two changes of the book gets the same bytes without walking the book again.
///
/// Bounded by bytes, not entries: a stranger chooses both the query strings and (through what he publishes) the
/// size of the pages, so only the bytes held say what the cache costs.
#[derive(Debug, Default)]
pub struct QueryCache {
    map: dashmap::DashMap<(OrderKind, String), (u64, bytes::Bytes)>,
    /// Bytes held: keys and bodies. Each insert adds its size before it is visible and each removal subtracts
    /// the size of what it removed, so the count never drifts from the map's content.
    bytes: std::sync::atomic::AtomicUsize,
}

impl QueryCache {
    /// Bytes held at most; past that the cache starts over (queries are cheap to recompute).
    pub const MAX_BYTES: usize = 64 << 20;
    /// Largest answer kept: bigger pages are streamed and never cached.
    pub const MAX_ENTRY: usize = 256 << 10;

    pub(super) fn get(&self, key: &(OrderKind, String), version: u64) -> Option<bytes::Bytes> {
        self.map.get(key).filter(|e| e.0 == version).map(|e| e.1.clone())
    }

    pub(super) fn put(&self, key: (OrderKind, String), version: u64, body: bytes::Bytes) {
        use std::sync::atomic::Ordering::Relaxed;
        let size = key.1.len() + body.len();
        if size > Self::MAX_ENTRY {
            return;
        }
        if self.bytes.load(Relaxed) + size > Self::MAX_BYTES {
            self.map.retain(|k, v| {
                self.bytes.fetch_sub(k.1.len() + v.1.len(), Relaxed);
                false
            });
        }
        self.bytes.fetch_add(size, Relaxed);
        if let Some((k, old)) = self.map.insert(key.clone(), (version, body)).map(|old| (key, old)) {
            self.bytes.fetch_sub(k.1.len() + old.1.len(), Relaxed);
        }
    }

    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        self.bytes.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_cache_is_bounded_by_bytes() {
        let cache = QueryCache::default();
        let body = bytes::Bytes::from(vec![b'x'; 100 << 10]);
        for i in 0..2_000 {
            cache.put((OrderKind::App, format!("q={i}")), 1, body.clone());
            assert!(cache.bytes() <= QueryCache::MAX_BYTES, "{} bytes after {i} puts", cache.bytes());
        }
        // The count is exact: what the map holds, keys included.
        let held: usize = cache.map.iter().map(|e| e.key().1.len() + e.value().1.len()).sum();
        assert_eq!(cache.bytes(), held);
        // Replacing an entry does not count it twice; an answer past the entry bound is not kept.
        cache.put((OrderKind::App, "q=1999".into()), 2, body.clone());
        assert_eq!(cache.bytes(), cache.map.iter().map(|e| e.key().1.len() + e.value().1.len()).sum::<usize>());
        cache.put((OrderKind::App, "big".into()), 1, bytes::Bytes::from(vec![0; QueryCache::MAX_ENTRY + 1]));
        assert!(cache.get(&(OrderKind::App, "big".into()), 1).is_none());
    }
}
