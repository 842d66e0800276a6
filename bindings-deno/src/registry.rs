//! Handles: JS holds plain numbers, never Rust pointers.
//!
//! A number that is stale (freed by `close()` or by the JS finalizer, or simply wrong) finds
//! nothing here and yields a clean error instead of a use-after-free: JS code, including a
//! user's code poking at internals, cannot corrupt memory through a handle. Ids are never
//! reused and stay below 2^53, so they survive a trip through a JS number and JSON.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

pub struct Registry<T> {
    next: AtomicU64,
    entries: RwLock<HashMap<u64, Arc<T>>>,
}

impl<T> Default for Registry<T> {
    fn default() -> Self {
        Registry {
            next: AtomicU64::new(1),
            entries: RwLock::new(HashMap::new()),
        }
    }
}

// A poisoned lock only means a panic happened elsewhere while holding it; the map itself is
// always consistent (single insert/remove calls), so the guard is recovered, never unwrapped.
impl<T> Registry<T> {
    pub fn insert(&self, value: T) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.entries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, Arc::new(value));
        id
    }

    pub fn get(&self, id: u64) -> Option<Arc<T>> {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned()
    }

    /// Replaces a live entry (no-op when `id` is gone).
    pub fn replace(&self, id: u64, value: T) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = entries.get_mut(&id) {
            *slot = Arc::new(value);
        }
    }

    pub fn remove(&self, id: u64) -> Option<Arc<T>> {
        self.entries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_stale_ids_find_nothing() {
        let r = Registry::<&str>::default();
        let a = r.insert("a");
        let b = r.insert("b");
        assert_ne!(a, b);
        assert_eq!(r.get(a).as_deref(), Some(&"a"));
        r.replace(a, "a2");
        assert_eq!(r.get(a).as_deref(), Some(&"a2"));
        assert!(r.remove(a).is_some());
        assert!(r.get(a).is_none());
        r.replace(a, "ghost");
        assert!(r.get(a).is_none());
        assert_eq!(r.len(), 1);
    }
}
