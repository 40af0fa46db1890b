//! Keys of the funnel read model (inside the projection's tree).
//!
//! | prefix | key | value |
//! |---|---|---|
//! | `c` | campaign id | [`crate::CampaignRecord`]: name, channel, creation, sends and costs |
//! | `d` | opportunity id | [`crate::DealRecord`]: the deal's facts in business-time order |
//! | `l` | lead id | [`crate::LeadRecord`]: source, campaign and the lead's path |
//! | `r` | campaign id, customer id | [`crate::TouchRecord`]: a member's responses and attributed orders |
//! | `u` | customer id | [`crate::CustomerRecord`]: team over time, lead, acquisition source |
//!
//! Every record keeps facts in business-time order; the figures are computed from them
//! at query time (prefix scans, and point reads of `u` and `l` for a deal's
//! attribution), so nothing stored depends on a clock or on the order events arrived in.
//! Campaign members get their own keys so a response rewrites one small record, not a
//! campaign's every response.

pub const CAMPAIGN: u8 = b'c';
pub const DEAL: u8 = b'd';
pub const LEAD: u8 = b'l';
pub const TOUCH: u8 = b'r';
pub const CUSTOMER: u8 = b'u';

fn key(prefix: u8, parts: &[[u8; 16]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + 16 * parts.len());
    k.push(prefix);
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

#[must_use]
pub fn deal_key(id: [u8; 16]) -> Vec<u8> {
    key(DEAL, &[id])
}

#[must_use]
pub fn lead_key(id: [u8; 16]) -> Vec<u8> {
    key(LEAD, &[id])
}

#[must_use]
pub fn campaign_key(id: [u8; 16]) -> Vec<u8> {
    key(CAMPAIGN, &[id])
}

#[must_use]
pub fn touch_key(campaign: [u8; 16], customer: [u8; 16]) -> Vec<u8> {
    key(TOUCH, &[campaign, customer])
}

#[must_use]
pub fn customer_key(id: [u8; 16]) -> Vec<u8> {
    key(CUSTOMER, &[id])
}
