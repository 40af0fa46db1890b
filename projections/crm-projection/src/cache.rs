//! The write-back cache a build's fold works on, kept across batches.
//!
//! Every key a fold reads or writes is held here with its value (or its absence). A value
//! is held as stored bytes, or as a decoded entity (see [`crate::Entity`]) that the fold
//! saved: the next event takes it back as it is (a clone, not a decode), and it is encoded
//! once, when written back. A changed key is *dirty* until [`Cache::take_dirty`] hands it
//! to the store, which writes every dirty key and the checkpoint in one sled batch; so a
//! value an event changes many times between two flushes is read from sled once and
//! written once. Clean keys are evicted, least recently used first, when the cache is over
//! its budget after a flush. A journal per message restores every key the message changed
//! when one of its events is rejected.
//!
//! What reaches storage depends only on the values, never on the budget, the eviction
//! order, whether a value was held decoded, or when flushes happen: the same events give
//! the same tree.

use std::collections::HashMap;

use crate::state::Entity;

/// Bytes a key costs beyond its key and value (map slot, allocations, bookkeeping).
const OVERHEAD: usize = 64;

/// What a decoded value is counted for, per byte of its encoding: strings, vectors and
/// map nodes each have their own allocation (an estimate: the budget is what it bounds).
pub(crate) const DECODED: usize = 4;

/// A value as the cache holds it.
#[derive(Debug)]
pub(crate) enum Value {
    Bytes(Vec<u8>),
    /// Decoded and changed since the last write-back (which stores it as bytes again);
    /// `size` estimates its memory ([`DECODED`] times its encoding when it was taken).
    Entity {
        entity: Box<dyn Entity>,
        size: usize,
    },
    /// Taken out by the fold, which stores it back before its event ends (see
    /// [`Cache::take`]).
    Taken {
        size: usize,
    },
}

impl Value {
    pub(crate) fn size(&self) -> usize {
        match self {
            Self::Bytes(b) => b.len(),
            Self::Entity { size, .. } | Self::Taken { size } => *size,
        }
    }

    /// The stored form (never asked of a taken value: the cache is `broken` then).
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        match self {
            Self::Bytes(b) => b.clone(),
            Self::Entity { entity, .. } => entity.encode(),
            Self::Taken { .. } => Vec::new(),
        }
    }
}

#[derive(Debug)]
struct Slot {
    /// `None`: the key is absent (never written, or deleted).
    value: Option<Value>,
    dirty: bool,
    /// When the key was last used (for eviction).
    tick: u64,
}

fn cost(key: &[u8], slot: &Slot) -> usize {
    key.len() + slot.value.as_ref().map_or(0, Value::size) + OVERHEAD
}

/// How to undo one change of the current message.
#[derive(Debug)]
enum Undo {
    /// Put this slot back (`None`: the key was not cached).
    Replace(Vec<u8>, Option<Slot>),
    /// An entity was taken without a copy: the message cannot be undone.
    Lost,
    /// Cut appended bytes off again (`len` `None`: the key was absent), and restore
    /// whether the key was dirty.
    Truncate {
        key: Vec<u8>,
        len: Option<usize>,
        dirty: bool,
    },
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
    /// How to undo every change the current message made.
    undo: Vec<Undo>,
    /// Keys the current message took entities from (each must be stored back).
    taken: Vec<Vec<u8>>,
    /// Take entities as copies, so that every message can be undone (after a message
    /// could not be, until the next write-back).
    pub(crate) careful: bool,
    /// A message changed the cache in a way it cannot undo, or read a value it had taken:
    /// the cache must be dropped and the build applied again from its checkpoint.
    broken: bool,
    pub(crate) hits: u64,
    pub(crate) misses: u64,
}

impl Cache {
    /// Whether the cache knows `key` (its value, or that it is absent); marks it used.
    /// When not, the caller reads storage and [`Self::fill`]s.
    pub(crate) fn lookup(&mut self, key: &[u8]) -> bool {
        self.tick += 1;
        let tick = self.tick;
        if let Some(slot) = self.slots.get_mut(key) {
            slot.tick = tick;
            self.hits += 1;
            true
        } else {
            self.misses += 1;
            false
        }
    }

    /// What the value under `key` is counted for once decoded (0: absent or not known).
    pub(crate) fn decoded_size(&self, key: &[u8]) -> usize {
        match self.slots.get(key).and_then(|s| s.value.as_ref()) {
            Some(Value::Bytes(b)) => b.len() * DECODED,
            Some(v) => v.size(),
            None => 0,
        }
    }

    /// The cached value of a known key (`None`: absent, or not known). A value the
    /// current message took is not there: reading it breaks the cache.
    pub(crate) fn value(&mut self, key: &[u8]) -> Option<&Value> {
        let value = self.slots.get(key).and_then(|s| s.value.as_ref());
        if matches!(value, Some(Value::Taken { .. })) {
            self.broken = true;
        }
        value
    }

    /// Records what storage holds for a key the cache did not know.
    pub(crate) fn fill(&mut self, key: &[u8], value: Option<Vec<u8>>) {
        let slot = Slot {
            value: value.map(Value::Bytes),
            dirty: false,
            tick: self.tick,
        };
        self.bytes += cost(key, &slot);
        self.slots.insert(key.to_vec(), slot);
    }

    /// Starts a message: changes from here on can be undone by [`Self::rollback`].
    pub(crate) fn begin(&mut self) {
        self.undo.clear();
        self.taken.clear();
    }

    /// Takes the entity under a known key for the fold to change and store back: moved
    /// out (or, `careful`, copied). `None` when the key holds bytes or nothing.
    pub(crate) fn take(&mut self, key: &[u8]) -> Option<Box<dyn Entity>> {
        let slot = self.slots.get_mut(key)?;
        match &mut slot.value {
            Some(Value::Entity { entity, .. }) if self.careful => Some(entity.clone_entity()),
            Some(Value::Entity { size, .. }) => {
                let size = *size;
                let Some(Value::Entity { entity, .. }) = slot.value.replace(Value::Taken { size })
                else {
                    return None;
                };
                self.undo.push(Undo::Lost);
                self.taken.push(key.to_vec());
                Some(entity)
            }
            Some(Value::Taken { .. }) => {
                self.broken = true;
                None
            }
            _ => None,
        }
    }

    /// Ends a message the fold applied: `false` if it left a value taken (a fold that did
    /// not store back what it took) or read one it had taken.
    pub(crate) fn end(&mut self) -> bool {
        let left = self.taken.iter().any(|k| {
            matches!(
                self.slots.get(k),
                Some(Slot {
                    value: Some(Value::Taken { .. }),
                    ..
                })
            )
        });
        self.broken |= left;
        !self.broken
    }

    /// Whether the cache must be dropped (see [`Self::end`], [`Self::rollback`]).
    pub(crate) fn broken(&self) -> bool {
        self.broken
    }

    /// Writes (`Some`) or deletes (`None`) a key; it is dirty until the next flush.
    pub(crate) fn set(&mut self, key: &[u8], value: Option<Value>) {
        self.tick += 1;
        let new = Slot {
            value,
            dirty: true,
            tick: self.tick,
        };
        let old = self.replace(key, Some(new));
        self.mark_dirty(key, old.as_ref().is_some_and(|o| o.dirty));
        self.undo.push(Undo::Replace(key.to_vec(), old));
    }

    /// Appends `bytes` to the stored bytes under `key` in place (the key must be cached:
    /// [`Self::get`] it first); an absent key starts empty. `false` if the key is not
    /// cached or holds an entity.
    pub(crate) fn append(&mut self, key: &[u8], bytes: &[u8]) -> bool {
        self.tick += 1;
        let tick = self.tick;
        let Some(slot) = self.slots.get_mut(key) else {
            return false;
        };
        let was_dirty = slot.dirty;
        let len = match &mut slot.value {
            Some(Value::Bytes(b)) => {
                let len = b.len();
                b.extend_from_slice(bytes);
                Some(len)
            }
            None => {
                slot.value = Some(Value::Bytes(bytes.to_vec()));
                None
            }
            Some(Value::Entity { .. } | Value::Taken { .. }) => return false,
        };
        slot.dirty = true;
        slot.tick = tick;
        self.bytes += bytes.len();
        self.dirty_bytes += bytes.len();
        if !was_dirty {
            self.dirty_bytes += key.len() + len.unwrap_or(0) + OVERHEAD;
        }
        self.mark_dirty(key, was_dirty);
        self.undo.push(Undo::Truncate {
            key: key.to_vec(),
            len,
            dirty: was_dirty,
        });
        true
    }

    fn mark_dirty(&mut self, key: &[u8], was_dirty: bool) {
        if !was_dirty {
            self.dirty.push(key.to_vec());
        }
    }

    /// Undoes every change since [`Self::begin`]; `false` (and the cache is broken) when
    /// the message took an entity without a copy.
    pub(crate) fn rollback(&mut self) -> bool {
        let undo = std::mem::take(&mut self.undo);
        if undo.iter().any(|u| matches!(u, Undo::Lost)) {
            self.broken = true;
            return false;
        }
        for step in undo.into_iter().rev() {
            match step {
                Undo::Lost => {}
                Undo::Replace(key, old) => {
                    self.replace(&key, old);
                }
                Undo::Truncate { key, len, dirty } => self.truncate(&key, len, dirty),
            }
        }
        true
    }

    fn truncate(&mut self, key: &[u8], len: Option<usize>, dirty: bool) {
        let Some(mut slot) = self.replace(key, None) else {
            return;
        };
        match (len, &mut slot.value) {
            (Some(len), Some(Value::Bytes(b))) => b.truncate(len),
            _ => slot.value = None,
        }
        slot.dirty = dirty;
        self.replace(key, Some(slot));
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

    /// Every dirty key with its stored form (`None`: delete), each once; they are clean
    /// after, and each entity's size is counted again from its encoding.
    pub(crate) fn take_dirty(&mut self) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let mut out = Vec::with_capacity(self.dirty.len());
        for key in std::mem::take(&mut self.dirty) {
            if let Some(slot) = self.slots.get_mut(&key)
                && slot.dirty
            {
                let before = cost(&key, slot);
                slot.dirty = false;
                // Appends grew it ahead (doubling its capacity); clean, it holds no more
                // than it is counted for.
                if let Some(Value::Bytes(b)) = &mut slot.value {
                    b.shrink_to_fit();
                }
                let bytes = slot.value.as_ref().map(Value::to_bytes);
                // Clean values are kept as bytes: a decoded value takes several times
                // its encoding in memory, and the budget must hold.
                if let (Some(Value::Entity { .. }), Some(b)) = (&slot.value, &bytes) {
                    slot.value = Some(Value::Bytes(b.clone()));
                }
                let after = cost(&key, slot);
                self.dirty_bytes -= before;
                self.bytes = self.bytes - before + after;
                out.push((key, bytes));
            }
        }
        self.undo.clear();
        // Everything before is written: a message that cannot be undone costs at most
        // applying again from here.
        self.careful = false;
        out
    }

    /// Puts back what [`Self::take_dirty`] returned when writing it failed.
    pub(crate) fn restore_dirty(&mut self, changes: Vec<(Vec<u8>, Option<Vec<u8>>)>) {
        for (key, value) in changes {
            let tick = self.tick;
            self.replace(
                &key,
                Some(Slot {
                    value: value.map(Value::Bytes),
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

    fn bytes(v: &[u8]) -> Option<Value> {
        Some(Value::Bytes(v.to_vec()))
    }

    /// What a key holds in stored form (`None`: not cached; `Some(None)`: absent).
    fn stored(c: &mut Cache, key: &[u8]) -> Option<Option<Vec<u8>>> {
        c.lookup(key).then(|| c.value(key).map(Value::to_bytes))
    }

    fn entity(n: u64) -> Option<Value> {
        Some(Value::Entity {
            entity: Box::new(n),
            size: 8,
        })
    }

    fn recount(c: &Cache) -> (usize, usize) {
        let all = c.slots.iter().map(|(k, s)| cost(k, s)).sum();
        let dirty = c
            .slots
            .iter()
            .filter(|(_, s)| s.dirty)
            .map(|(k, s)| cost(k, s))
            .sum();
        (all, dirty)
    }

    #[test]
    fn rollback_restores_values_dirtiness_and_counts() {
        let mut c = Cache::default();
        c.fill(b"a", Some(b"1".to_vec()));
        c.begin();
        c.set(b"a", bytes(b"2"));
        let before = (c.bytes(), c.dirty_bytes());
        c.begin();
        c.set(b"a", None);
        c.set(b"b", bytes(b"3"));
        assert!(c.rollback());
        assert_eq!((c.bytes(), c.dirty_bytes()), before);
        assert_eq!(stored(&mut c, b"a"), Some(Some(b"2".to_vec())));
        assert_eq!(stored(&mut c, b"b"), None);
        assert_eq!(c.take_dirty(), vec![(b"a".to_vec(), Some(b"2".to_vec()))]);
        assert_eq!(c.dirty_bytes(), 0);
        assert!(c.take_dirty().is_empty());
    }

    #[test]
    fn a_key_changed_many_times_is_written_once_with_its_last_value() {
        let mut c = Cache::default();
        for i in 0..10u8 {
            c.begin();
            c.set(b"k", bytes(&[i]));
        }
        c.set(b"gone", bytes(&[1]));
        c.set(b"gone", None);
        let mut dirty = c.take_dirty();
        dirty.sort();
        assert_eq!(
            dirty,
            vec![(b"gone".to_vec(), None), (b"k".to_vec(), Some(vec![9]))]
        );
    }

    #[test]
    fn appends_in_place_are_undone_and_counted() {
        let mut c = Cache::default();
        c.fill(b"t", Some(b"ab".to_vec()));
        c.fill(b"new", None);
        c.begin();
        assert!(c.append(b"t", b"cd"));
        assert!(c.append(b"new", b"x"));
        assert_eq!(recount(&c), (c.bytes(), c.dirty_bytes()));
        assert!(c.rollback());
        assert_eq!(stored(&mut c, b"t"), Some(Some(b"ab".to_vec())));
        assert_eq!(stored(&mut c, b"new"), Some(None));
        assert_eq!(recount(&c), (c.bytes(), c.dirty_bytes()));
        assert_eq!(c.dirty_bytes(), 0);
        c.begin();
        assert!(c.append(b"t", b"cd"));
        assert!(c.append(b"t", b"ef"));
        assert_eq!(
            c.take_dirty(),
            vec![(b"t".to_vec(), Some(b"abcdef".to_vec()))]
        );
        assert_eq!(recount(&c), (c.bytes(), c.dirty_bytes()));
    }

    #[test]
    fn an_entity_is_encoded_when_written_and_recounted() {
        let mut c = Cache::default();
        c.begin();
        c.set(b"e", entity(300));
        let written = c.take_dirty();
        assert_eq!(
            written,
            vec![(b"e".to_vec(), Some(postcard::to_stdvec(&300u64).unwrap()))]
        );
        // Kept as its bytes once clean.
        assert!(matches!(c.value(b"e"), Some(Value::Bytes(b)) if Some(b) == written[0].1.as_ref()));
        assert_eq!(recount(&c), (c.bytes(), c.dirty_bytes()));
    }

    #[test]
    fn a_taken_entity_stored_back_is_no_copy_and_a_rejection_breaks_the_cache() {
        let mut c = Cache::default();
        c.begin();
        c.set(b"e", entity(1));
        // Stored back: the message ends whole.
        c.begin();
        assert!(c.lookup(b"e"));
        let e = c.take(b"e").unwrap();
        assert_eq!(e.as_any().downcast_ref::<u64>(), Some(&1));
        c.set(b"e", Some(Value::Entity { entity: e, size: 8 }));
        assert!(c.end());
        // Taken and the message rejected: it cannot be undone in place.
        c.begin();
        let _ = c.take(b"e").unwrap();
        assert!(!c.rollback());
        assert!(c.broken());
    }

    #[test]
    fn a_fold_that_leaves_an_entity_taken_or_reads_it_breaks_the_cache() {
        let mut c = Cache::default();
        c.set(b"e", entity(1));
        c.begin();
        let _ = c.take(b"e");
        assert!(!c.end(), "not stored back");
        let mut c = Cache::default();
        c.set(b"e", entity(1));
        c.begin();
        let _ = c.take(b"e");
        let _ = c.value(b"e");
        assert!(c.broken(), "read while taken");
    }

    #[test]
    fn a_careful_cache_copies_what_it_hands_out_and_undoes_it() {
        let mut c = Cache {
            careful: true,
            ..Cache::default()
        };
        c.set(b"e", entity(1));
        c.begin();
        let e = c.take(b"e").unwrap();
        assert_eq!(e.as_any().downcast_ref::<u64>(), Some(&1));
        c.set(b"e", entity(2));
        assert!(c.rollback());
        assert!(!c.broken());
        assert_eq!(
            stored(&mut c, b"e"),
            Some(Some(postcard::to_stdvec(&1u64).unwrap()))
        );
        // A write-back ends the careful stretch.
        c.take_dirty();
        assert!(!c.careful);
    }

    #[test]
    fn eviction_drops_least_recently_used_clean_keys_and_keeps_dirty_ones() {
        let mut c = Cache::default();
        for i in 0..100u8 {
            c.fill(&[i], Some(vec![0; 100]));
            c.lookup(&[i]);
        }
        c.set(&[0], bytes(&[1; 100]));
        c.lookup(&[1]);
        let one = cost(&[0], &c.slots[&vec![0u8]]);
        c.evict_to(10 * one);
        assert!(c.bytes() <= 10 * one, "{} > {}", c.bytes(), 10 * one);
        // Dirty (0) and most recently used (1, 99) survive; the oldest clean ones went.
        assert_eq!(stored(&mut c, &[0]), Some(Some(vec![1; 100])));
        assert!(c.lookup(&[1]));
        assert!(c.lookup(&[99]));
        assert!(!c.lookup(&[2]));
        assert_eq!(recount(&c).0, c.bytes());
    }
}
