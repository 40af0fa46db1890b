//! The key-value state a fold reads and writes.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::FoldError;

/// What a fold may do with its state: read, write and delete single keys. Nothing else,
/// so the same fold runs against memory or sled and gives the same result.
pub trait State {
    fn get(&mut self, key: &[u8]) -> Option<Vec<u8>>;
    fn put(&mut self, key: &[u8], value: Vec<u8>);
    fn delete(&mut self, key: &[u8]);
}

/// Reads and decodes a value written by [`save`].
pub fn load<T: DeserializeOwned>(
    state: &mut dyn State,
    key: &[u8],
) -> Result<Option<T>, FoldError> {
    state
        .get(key)
        .map(|bytes| {
            postcard::from_bytes(&bytes).map_err(|e| FoldError::Corrupt {
                key: String::from_utf8_lossy(key).into_owned(),
                reason: e.to_string(),
            })
        })
        .transpose()
}

/// Encodes and writes a value (postcard: deterministic bytes for equal values).
pub fn save<T: Serialize>(state: &mut dyn State, key: &[u8], value: &T) {
    // Serialising plain structs to a Vec cannot fail.
    let bytes = postcard::to_stdvec(value).unwrap_or_default();
    state.put(key, bytes);
}

/// State in memory: for unit tests of folds and for reconstructing one entity as of a
/// past moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemState {
    pub entries: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl State for MemState {
    fn get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        self.entries.get(key).cloned()
    }
    fn put(&mut self, key: &[u8], value: Vec<u8>) {
        self.entries.insert(key.to_vec(), value);
    }
    fn delete(&mut self, key: &[u8]) {
        self.entries.remove(key);
    }
}

impl MemState {
    /// Applies one event with the runtime's rule: a rejected event leaves no change.
    pub fn apply<P: crate::Projection>(
        &mut self,
        projection: &P,
        event: &crate::Event<'_>,
    ) -> Result<(), FoldError> {
        self.apply_message(projection, std::slice::from_ref(event))
    }

    /// Applies the events of one stored message with the runtime's rule: the message
    /// applies whole, or (one event rejected) leaves no change at all.
    pub fn apply_message<P: crate::Projection>(
        &mut self,
        projection: &P,
        events: &[crate::Event<'_>],
    ) -> Result<(), FoldError> {
        let mut journal = Journal {
            state: self,
            undo: Vec::new(),
        };
        let result = events
            .iter()
            .try_for_each(|event| projection.apply(&mut journal, event));
        if result.is_err() {
            let Journal { state, undo } = journal;
            for (key, old) in undo.into_iter().rev() {
                match old {
                    Some(value) => state.entries.insert(key, value),
                    None => state.entries.remove(&key),
                };
            }
        }
        result
    }
}

/// Records the previous value of every key a fold touches, so a rejected event can be
/// undone.
struct Journal<'a> {
    state: &'a mut MemState,
    undo: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl State for Journal<'_> {
    fn get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        self.state.get(key)
    }
    fn put(&mut self, key: &[u8], value: Vec<u8>) {
        let old = self.state.entries.insert(key.to_vec(), value);
        self.undo.push((key.to_vec(), old));
    }
    fn delete(&mut self, key: &[u8]) {
        let old = self.state.entries.remove(key);
        self.undo.push((key.to_vec(), old));
    }
}
