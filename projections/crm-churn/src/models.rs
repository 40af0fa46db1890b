//! Stored, versioned fits and which one is served.
//!
//! The fits live in their own sled tree beside the read models (`churn-models`), not in
//! the projection's build: a rebuild of the projection (new version, blue/green) keeps
//! every fit and the served one.
//!
//! | key | value |
//! |---|---|
//! | `m` + model id (UTF-8) | [`FORMAT`] byte, then the postcard [`StoredModel`] |
//! | `served` | the served model's id |
//!
//! The stored shape is read by every later version of this code: new fields go at the
//! end under a new format byte, and every format ever written keeps decoding.

use crm_domain::Timestamp;
use serde::{Deserialize, Serialize};

use crate::fit::ChurnFit;

/// The stored model's format byte (1: this shape).
pub const FORMAT: u8 = 1;
/// The sled tree of the fits.
pub const TREE: &str = "churn-models";
const SERVED: &[u8] = b"served";

/// A fit as stored and served.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredModel {
    pub model_id: String,
    pub fit: ChurnFit,
    /// The churn read model's position when the fit read it.
    pub position: u64,
    /// The reporting currency of the spend figures.
    pub currency: String,
    /// Wall clock of the fit, microseconds, and who asked for it.
    pub fitted_at: i64,
    pub fitted_by: String,
}

/// The id of a fit: its calibration day, the position it read and its time unit, so the
/// same inputs always give the same id (and the same parameters, bit for bit).
#[must_use]
pub fn model_id(fit: &ChurnFit, position: u64) -> String {
    let day = fit.calibration_end.div_euclid(Timestamp::MICROS_PER_DAY);
    let date = civil_from_days(day);
    format!(
        "{:04}{:02}{:02}-{position}-{}",
        date.0,
        date.1,
        date.2,
        fit.time_unit.name()
    )
}

/// (year, month, day) of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Why a stored model cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("model storage failed: {0}")]
    Storage(#[from] sled::Error),
    #[error("stored model {id} does not decode: {reason}")]
    Corrupt { id: String, reason: String },
}

/// The fits of one read side.
#[derive(Clone, Debug)]
pub struct ModelStore {
    tree: sled::Tree,
}

fn key(id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(id.len() + 1);
    k.push(b'm');
    k.extend_from_slice(id.as_bytes());
    k
}

impl ModelStore {
    /// Opens (creating) the fits' tree in `db`.
    ///
    /// # Errors
    /// sled's.
    pub fn open(db: &sled::Db) -> Result<Self, StoreError> {
        Ok(Self {
            tree: db.open_tree(TREE)?,
        })
    }

    /// Stores a fit (a fit with the same id is the same model: it is replaced), and
    /// makes it the served one when `serve`; both in one sled batch, flushed.
    ///
    /// # Errors
    /// sled's.
    pub fn put(&self, model: &StoredModel, serve: bool) -> Result<(), StoreError> {
        let mut bytes = vec![FORMAT];
        bytes.extend(postcard::to_stdvec(model).unwrap_or_default());
        let mut batch = sled::Batch::default();
        batch.insert(key(&model.model_id), bytes);
        if serve {
            batch.insert(SERVED, model.model_id.as_bytes());
        }
        self.tree.apply_batch(batch)?;
        self.tree.flush()?;
        Ok(())
    }

    /// The model `id`.
    ///
    /// # Errors
    /// sled's, or a stored value that does not decode.
    pub fn get(&self, id: &str) -> Result<Option<StoredModel>, StoreError> {
        let Some(bytes) = self.tree.get(key(id))? else {
            return Ok(None);
        };
        let corrupt = |reason: String| StoreError::Corrupt {
            id: id.to_owned(),
            reason,
        };
        match bytes.split_first() {
            Some((&FORMAT, body)) => postcard::from_bytes(body)
                .map(Some)
                .map_err(|e| corrupt(e.to_string())),
            Some((format, _)) => Err(corrupt(format!("unknown format {format}"))),
            None => Err(corrupt("empty".into())),
        }
    }

    /// The served model's id.
    ///
    /// # Errors
    /// sled's.
    pub fn served_id(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .tree
            .get(SERVED)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// The served model.
    ///
    /// # Errors
    /// sled's, or a stored value that does not decode.
    pub fn served(&self) -> Result<Option<StoredModel>, StoreError> {
        match self.served_id()? {
            Some(id) => self.get(&id),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(10_134), (1997, 9, 30));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(20_513), (2026, 3, 1));
    }
}
