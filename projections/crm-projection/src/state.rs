//! The key-value state a fold reads and writes.

use std::any::Any;
use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::FoldError;

/// What a fold may do with its state: read, write and delete single keys. Nothing else,
/// so the same fold runs against memory or sled and gives the same result.
///
/// A state may hold values decoded between events ([`State::held`],
/// [`State::put_entity`]; the build's write-back cache does): a fold then takes an
/// entity back without decoding it, and it is encoded once, when written. The stored
/// bytes are the same either way.
pub trait State {
    fn get(&mut self, key: &[u8]) -> Option<Vec<u8>>;
    fn put(&mut self, key: &[u8], value: Vec<u8>);
    fn delete(&mut self, key: &[u8]);

    /// The value under `key` as the state holds it.
    fn held(&mut self, key: &[u8]) -> Held<'_> {
        Held::Bytes(self.get(key).map(Cow::Owned))
    }

    /// Writes a value the state may keep decoded (and encode when it writes it).
    fn put_entity(&mut self, key: &[u8], value: Box<dyn Entity>) {
        self.put(key, value.encode());
    }

    /// Takes the value under `key` out for the fold to change: it must store it back
    /// (or delete the key) before the event ends (see [`take`]).
    fn take(&mut self, key: &[u8]) -> Taken {
        self.get(key).map_or(Taken::Absent, Taken::Bytes)
    }

    /// Appends `bytes` to the value under `key` (an absent key starts empty).
    fn append(&mut self, key: &[u8], bytes: &[u8]) {
        let mut value = self.get(key).unwrap_or_default();
        value.extend_from_slice(bytes);
        self.put(key, value);
    }
}

/// A value as a [`State`] holds it.
#[derive(Debug)]
pub enum Held<'a> {
    /// Stored bytes (`None`: absent).
    Bytes(Option<Cow<'a, [u8]>>),
    /// A value kept decoded since a fold saved it.
    Entity(&'a dyn Entity),
}

/// A value taken out of a [`State`].
#[derive(Debug)]
pub enum Taken {
    Absent,
    Bytes(Vec<u8>),
    Entity(Box<dyn Entity>),
}

/// A value a fold saves: encoded with postcard (deterministic bytes for equal values)
/// when it is written.
pub trait Entity: Any + Send + Sync + std::fmt::Debug {
    fn encode(&self) -> Vec<u8>;
    fn as_any(&self) -> &dyn Any;
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
    fn clone_entity(&self) -> Box<dyn Entity>;
    /// Bytes it takes at least (until it is encoded and counted).
    fn size_hint(&self) -> usize;
}

impl<T: Serialize + Clone + Any + Send + Sync + std::fmt::Debug> Entity for T {
    fn encode(&self) -> Vec<u8> {
        // Serialising plain structs to a Vec cannot fail.
        postcard::to_stdvec(self).unwrap_or_default()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
    fn clone_entity(&self) -> Box<dyn Entity> {
        Box::new(self.clone())
    }
    fn size_hint(&self) -> usize {
        size_of::<T>()
    }
}

fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, FoldError> {
    postcard::from_bytes(bytes).map_err(|e| FoldError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}

/// Reads a value written by [`save`] or [`store`]: a copy of the decoded value when the
/// state holds it decoded, else decoded from its bytes.
pub fn load<T: DeserializeOwned + Clone + 'static>(
    state: &mut dyn State,
    key: &[u8],
) -> Result<Option<T>, FoldError> {
    match state.held(key) {
        Held::Entity(entity) => match entity.as_any().downcast_ref::<T>() {
            Some(value) => Ok(Some(value.clone())),
            // Saved as another type: read as stored.
            None => decode(key, &entity.encode()).map(Some),
        },
        Held::Bytes(bytes) => bytes.map(|b| decode(key, &b)).transpose(),
    }
}

/// Takes a value out to change it, without a copy when the state holds it decoded. The
/// fold must [`store`] it back (or delete the key) before the event ends, also when it
/// leaves it unchanged; when the event is rejected the runtime restores it (with the
/// write-back cache, by applying the stream again from the build's checkpoint).
pub fn take<T: DeserializeOwned + Entity>(
    state: &mut dyn State,
    key: &[u8],
) -> Result<Option<T>, FoldError> {
    match state.take(key) {
        Taken::Absent => Ok(None),
        Taken::Bytes(bytes) => decode(key, &bytes).map(Some),
        Taken::Entity(entity) if entity.as_any().is::<T>() => {
            Ok(entity.into_any().downcast::<T>().ok().map(|b| *b))
        }
        // Saved as another type: read as stored.
        Taken::Entity(entity) => decode(key, &entity.encode()).map(Some),
    }
}

/// Writes a copy of a value (see [`store`]).
pub fn save<T: Entity + Clone>(state: &mut dyn State, key: &[u8], value: &T) {
    store(state, key, value.clone());
}

/// Writes a value; a state with a write-back cache keeps it decoded for the next
/// [`load`] and encodes it when written back.
pub fn store<T: Entity>(state: &mut dyn State, key: &[u8], value: T) {
    state.put_entity(key, Box::new(value));
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
