//! Where the query functions read the funnel's records from: the served build of the
//! read model, or (in tests) a fold's state in memory. Both give the same answers.

use crm_projection::{MemState, ProjectionError, ReadModel};
use serde::de::DeserializeOwned;

/// What [`Source::each`] calls per record: `Ok(false)` stops the scan.
pub type Visit<'a> = dyn FnMut(&[u8], &[u8]) -> Result<bool, ProjectionError> + 'a;

/// Read access to a funnel build's records.
pub trait Source {
    /// Calls `f` with every record whose key starts with `prefix` and sorts after `after`
    /// (when given), in key order, until `f` answers `Ok(false)`.
    ///
    /// # Errors
    /// Storage fails, or `f` fails.
    fn each(
        &self,
        prefix: u8,
        after: Option<&[u8]>,
        f: &mut Visit<'_>,
    ) -> Result<(), ProjectionError>;

    /// The record under `key`.
    ///
    /// # Errors
    /// Storage fails.
    fn value(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ProjectionError>;
}

impl Source for ReadModel {
    fn each(
        &self,
        prefix: u8,
        after: Option<&[u8]>,
        f: &mut Visit<'_>,
    ) -> Result<(), ProjectionError> {
        for entry in self.scan(&[prefix], after, false) {
            let (key, value) = entry?;
            if !f(&key, &value)? {
                break;
            }
        }
        Ok(())
    }

    fn value(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ProjectionError> {
        Ok(self.get(key)?.map(|v| v.to_vec()))
    }
}

impl Source for MemState {
    fn each(
        &self,
        prefix: u8,
        after: Option<&[u8]>,
        f: &mut Visit<'_>,
    ) -> Result<(), ProjectionError> {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let start = match after {
            Some(a) => Excluded(a.to_vec()),
            None => Included(vec![prefix]),
        };
        for (key, value) in self.entries.range((start, Unbounded)) {
            if key.first() != Some(&prefix) || !f(key, value)? {
                break;
            }
        }
        Ok(())
    }

    fn value(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ProjectionError> {
        Ok(self.entries.get(key).cloned())
    }
}

/// Decodes a stored record; a record that does not decode is a build of another code
/// version (never served, see the runtime) or damage, reported with its key.
pub(crate) fn decode<T: DeserializeOwned>(key: &[u8], value: &[u8]) -> Result<T, ProjectionError> {
    postcard::from_bytes(value).map_err(|e| {
        ProjectionError::Meta(format!("funnel record {} does not decode: {e}", hex(key)))
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
