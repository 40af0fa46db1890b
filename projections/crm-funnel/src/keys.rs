//! Keys of the funnel read model (inside the projection's tree).
//!
//! | prefix | key | value |
//! |---|---|---|
//! | `d` | opportunity id | [`crate::DealRecord`]: the deal's facts in business-time order |
//!
//! The funnel's figures are computed from every deal at query time (a prefix scan of
//! `d`), so nothing stored depends on a clock or on the order events arrived in.

pub const DEAL: u8 = b'd';

#[must_use]
pub fn deal_key(id: [u8; 16]) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(DEAL);
    k.extend_from_slice(&id);
    k
}
