//! The write-back cache a build's fold works on, kept across batches.
//!
//! Every key a fold reads or writes is held here with its value (or its absence). A
//! changed key is *dirty* until [`Cache::take_dirty`] hands it to the store, which writes
//! every dirty key and the checkpoint in one sled batch; so a value an event changes many
//! times between two flushes is read from sled once and written once. Clean keys are
//! evicted, least recently used first, when the cache is over its budget after a flush.
//! A journal per message restores every key the message changed when one of its events is
//! rejected.
//!
//! What reaches storage depends only on the values, never on the budget, the eviction
//! order or when flushes happen: the same events give the same tree.

use std::collections::HashMap;

/// Bytes a key costs beyond its key and value (map slot, allocations, bookkeeping).
const OVERHEAD: usize = 64;

#[derive(Clone, Debug)]
struct Slot {
    /// `None`: the key is absent (never written, or deleted).
    value: Option<Vec<u8>>,
    dirty: bool,
    /// When the key was last used (for eviction).
    tick: u64,
}

fn cost(key: &[u8], slot: &Slot) -> usize {
    key.len() + slot.value.as_ref().map_or(0, Vec::len) + OVERHEAD
}

/// Keys and values of one build, with what changed since the last flush.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    // Iteration order of this map never reaches storage: dirty keys are written from
    // `dirty` and eviction only drops clean copies of what sled holds.
    slots: HashMap<Vec<u8>, Slot>,
    /// Keys that turned dirty since the last flush (may repeat or be clean again after a
    /// rollback: `take_dirty` checks each).
    dirty: Vec<Vec<u8>>,
    bytes: usize,
    dirty_bytes: usize,
    tick: u64,
    /// Previous slot of every key the current message changed (`None`: not cached).
    undo: Vec<(Vec<u8>, Option<Slot>)>,
    pub(crate) hits: u64,
    pub(crate) misses: u64,
}

impl Cache {
    /// The cached value of `key`: `Some(None)` when the key is known to be absent, `None`
    /// when the cache does not know (the caller reads storage and [`Self::fill`]s).
    pub(crate) fn get(&mut self, key: &[u8]) -> Option<Option<Vec<u8>>> {
        self.tick += 1;
        let tick = self.tick;
        if let Some(slot) = self.slots.get_mut(key) {
            slot.tick = tick;
            self.hits += 1;
            Some(slot.value.clone())
        } else {
            self.misses += 1;
            None
        }
    }

    /// Records what storage holds for a key the cache did not know.
    pub(crate) fn fill(&mut self, key: &[u8], value: Option<Vec<u8>>) {
        let slot = Slot {
            value,
            dirty: false,
            tick: self.tick,
        };
        self.bytes += cost(key, &slot);
        self.slots.insert(key.to_vec(), slot);
    }

    /// Starts a message: changes from here on can be undone by [`Self::rollback`].
    pub(crate) fn begin(&mut self) {
        self.undo.clear();
    }

    /// Writes (`Some`) or deletes (`None`) a key; it is dirty until the next flush.
    pub(crate) fn set(&mut self, key: &[u8], value: Option<Vec<u8>>) {
        self.tick += 1;
        let new = Slot {
            value,
            dirty: true,
            tick: self.tick,
        };
        let old = self.replace(key, Some(new));
        if old.as_ref().is_none_or(|o| !o.dirty) {
            self.dirty.push(key.to_vec());
        }
        self.undo.push((key.to_vec(), old));
    }

    /// Undoes every change since [`Self::begin`].
    pub(crate) fn rollback(&mut self) {
        let undo = std::mem::take(&mut self.undo);
        for (key, old) in undo.into_iter().rev() {
            self.replace(&key, old);
        }
    }

    /// Puts `slot` (or nothing) under `key`, keeping the byte counts; returns what was there.
    fn replace(&mut self, key: &[u8], slot: Option<Slot>) -> Option<Slot> {
        if let Some(s) = &slot {
            self.bytes += cost(key, s);
            if s.dirty {
                self.dirty_bytes += cost(key, s);
            }
        }
        let old = match slot {
            Some(s) => self.slots.insert(key.to_vec(), s),
            None => self.slots.remove(key),
        };
        if let Some(o) = &old {
            self.bytes -= cost(key, o);
            if o.dirty {
                self.dirty_bytes -= cost(key, o);
            }
        }
        old
    }

    /// Every dirty key with its value (`None`: delete), each once; they are clean after.
    pub(crate) fn take_dirty(&mut self) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let mut out = Vec::with_capacity(self.dirty.len());
        for key in std::mem::take(&mut self.dirty) {
            if let Some(slot) = self.slots.get_mut(&key)
                && slot.dirty
            {
                slot.dirty = false;
                self.dirty_bytes -= cost(&key, slot);
                out.push((key, slot.value.clone()));
            }
        }
        self.undo.clear();
        out
    }

    /// Puts back what [`Self::take_dirty`] returned when writing it failed.
    pub(crate) fn restore_dirty(&mut self, changes: Vec<(Vec<u8>, Option<Vec<u8>>)>) {
        for (key, value) in changes {
            let tick = self.tick;
            self.replace(
                &key,
                Some(Slot {
                    value,
                    dirty: true,
                    tick,
                }),
            );
            self.dirty.push(key);
        }
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn dirty_bytes(&self) -> usize {
        self.dirty_bytes
    }

    /// Drops clean keys, least recently used first, until the cache holds at most
    /// `target` bytes (dirty keys stay: they are written by the next flush).
    pub(crate) fn evict_to(&mut self, target: usize) {
        if self.bytes <= target {
            return;
        }
        let mut clean: Vec<(u64, usize)> = self
            .slots
            .iter()
            .filter(|(_, s)| !s.dirty)
            .map(|(k, s)| (s.tick, cost(k, s)))
            .collect();
        clean.sort_unstable_by_key(|(tick, _)| *tick);
        let mut excess = self.bytes - target;
        let mut cutoff = 0;
        for (tick, bytes) in clean {
            if excess == 0 {
                break;
            }
            excess = excess.saturating_sub(bytes);
            cutoff = tick;
        }
        let mut freed = 0;
        self.slots.retain(|k, s| {
            let keep = s.dirty || s.tick > cutoff;
            if !keep {
                freed += cost(k, s);
            }
            keep
        });
        self.bytes -= freed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_restores_values_dirtiness_and_counts() {
        let mut c = Cache::default();
        c.fill(b"a", Some(b"1".to_vec()));
        c.begin();
        c.set(b"a", Some(b"2".to_vec()));
        let before = (c.bytes(), c.dirty_bytes());
        c.begin();
        c.set(b"a", None);
        c.set(b"b", Some(b"3".to_vec()));
        c.rollback();
        assert_eq!((c.bytes(), c.dirty_bytes()), before);
        assert_eq!(c.get(b"a"), Some(Some(b"2".to_vec())));
        assert_eq!(c.get(b"b"), None);
        assert_eq!(c.take_dirty(), vec![(b"a".to_vec(), Some(b"2".to_vec()))]);
        assert_eq!(c.dirty_bytes(), 0);
        assert!(c.take_dirty().is_empty());
    }

    #[test]
    fn a_key_changed_many_times_is_written_once_with_its_last_value() {
        let mut c = Cache::default();
        for i in 0..10u8 {
            c.begin();
            c.set(b"k", Some(vec![i]));
        }
        c.set(b"gone", Some(vec![1]));
        c.set(b"gone", None);
        let mut dirty = c.take_dirty();
        dirty.sort();
        assert_eq!(
            dirty,
            vec![(b"gone".to_vec(), None), (b"k".to_vec(), Some(vec![9]))]
        );
    }

    #[test]
    fn eviction_drops_least_recently_used_clean_keys_and_keeps_dirty_ones() {
        let mut c = Cache::default();
        for i in 0..100u8 {
            c.fill(&[i], Some(vec![0; 100]));
            c.get(&[i]);
        }
        c.set(&[0], Some(vec![1; 100]));
        c.get(&[1]);
        let one = cost(&[0], &c.slots[&vec![0u8]]);
        c.evict_to(10 * one);
        assert!(c.bytes() <= 10 * one, "{} > {}", c.bytes(), 10 * one);
        // Dirty (0) and most recently used (1, 99) survive; the oldest clean ones went.
        assert_eq!(c.get(&[0]), Some(Some(vec![1; 100])));
        assert!(c.get(&[1]).is_some());
        assert!(c.get(&[99]).is_some());
        assert!(c.get(&[2]).is_none());
        let recount: usize = c.slots.iter().map(|(k, s)| cost(k, s)).sum();
        assert_eq!(recount, c.bytes());
    }
}
