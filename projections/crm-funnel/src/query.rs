//! Reading the funnel's deals from its served build.

use crm_projection::{ProjectionError, ReadModel};

use crate::keys::DEAL;
use crate::record::{DealAt, DealRecord};

/// Every deal as of `as_of` (business time), from the served build; deals opened later
/// are left out.
///
/// # Errors
/// The build is not served yet, storage fails, or a stored deal does not decode (a
/// build of another code version: never served, see the runtime).
pub fn deals_at(model: &ReadModel, as_of: i64) -> Result<Vec<DealAt>, ProjectionError> {
    let mut out = Vec::new();
    for entry in model.scan(&[DEAL], None, false) {
        let (key, value) = entry?;
        let deal: DealRecord = postcard::from_bytes(&value).map_err(|e| {
            ProjectionError::Meta(format!("deal record {} does not decode: {e}", hex(&key)))
        })?;
        out.extend(deal.at(as_of));
    }
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
