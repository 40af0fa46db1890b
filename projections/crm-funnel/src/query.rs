//! Reading the funnel's records as of a moment, from a [`Source`].

use std::collections::BTreeMap;

use crm_projection::ProjectionError;

use crate::campaign::{CampaignAt, CampaignRecord, MemberAt, TouchRecord};
use crate::customer::CustomerRecord;
use crate::keys::{CAMPAIGN, DEAL, LEAD, TOUCH, customer_key, lead_key};
use crate::lead::{LeadAt, LeadRecord};
use crate::record::{DealAt, DealRecord};
use crate::source::{Source, decode};

/// Every deal as of `as_of` (business time), attributed ([`attribute`]); deals opened
/// later are left out. With `after`, only the deals whose key sorts after it (paging),
/// at most `limit` of them that `keep` admits.
///
/// # Errors
/// The build is not served yet, storage fails, or a stored record does not decode.
pub fn deals_at(src: &dyn Source, as_of: i64) -> Result<Vec<DealAt>, ProjectionError> {
    deals_page(src, as_of, None, usize::MAX, &|_| true)
}

/// A page of deals as of `as_of`: those after the deal key `after` that `keep` admits,
/// at most `limit`, in opportunity id order.
///
/// # Errors
/// As [`deals_at`].
pub fn deals_page(
    src: &dyn Source,
    as_of: i64,
    after: Option<&[u8]>,
    limit: usize,
    keep: &dyn Fn(&DealAt) -> bool,
) -> Result<Vec<DealAt>, ProjectionError> {
    let mut out = Vec::new();
    let mut attribution = Attribution::new(src, as_of);
    src.each(DEAL, after, &mut |key, value| {
        let deal: DealRecord = decode(key, value)?;
        if let Some(mut d) = deal.at(as_of) {
            attribution.attribute(&mut d)?;
            if keep(&d) {
                out.push(d);
            }
        }
        Ok(out.len() < limit)
    })?;
    Ok(out)
}

/// What a deal takes from its lead: the lead's source and campaign.
type LeadOrigin = (String, Option<[u8; 16]>);

/// What a deal is attributed to beyond its own links, read once per customer and lead.
///
/// - **team**: its customer's team as of the cut;
/// - **lead source**: the source of the deal's lead, else of its customer's lead, else
///   the customer's acquisition source;
/// - **campaign**: the deal's own campaign link, else its lead's campaign.
struct Attribution<'a> {
    src: &'a dyn Source,
    as_of: i64,
    /// Per lead read: its source and campaign (`None`: no such lead).
    leads: BTreeMap<[u8; 16], Option<LeadOrigin>>,
}

impl<'a> Attribution<'a> {
    fn new(src: &'a dyn Source, as_of: i64) -> Self {
        Self {
            src,
            as_of,
            leads: BTreeMap::new(),
        }
    }

    fn attribute(&mut self, d: &mut DealAt) -> Result<(), ProjectionError> {
        let key = customer_key(d.customer);
        let customer: CustomerRecord = match self.src.value(&key)? {
            Some(v) => decode(&key, &v)?,
            None => CustomerRecord::default(),
        };
        d.team = customer.team_at(self.as_of);
        let lead = match d.lead.or(customer.lead) {
            Some(id) => self.lead(id)?,
            None => None,
        };
        let (source, campaign) = match lead {
            Some((source, campaign)) => (Some(source), campaign),
            None => (customer.source, None),
        };
        d.source = source;
        d.campaign = d.campaign.or(campaign);
        Ok(())
    }

    fn lead(&mut self, id: [u8; 16]) -> Result<Option<LeadOrigin>, ProjectionError> {
        if let Some(l) = self.leads.get(&id) {
            return Ok(l.clone());
        }
        let key = lead_key(id);
        let lead = match self.src.value(&key)? {
            Some(v) => {
                let l: LeadRecord = decode(&key, &v)?;
                Some((l.source, l.campaign))
            }
            None => None,
        };
        self.leads.insert(id, lead.clone());
        Ok(lead)
    }
}

/// Every lead as of `as_of`; leads captured later are left out.
///
/// # Errors
/// As [`deals_at`].
pub fn leads_at(src: &dyn Source, as_of: i64) -> Result<Vec<LeadAt>, ProjectionError> {
    let mut out = Vec::new();
    src.each(LEAD, None, &mut |key, value| {
        let lead: LeadRecord = decode(key, value)?;
        out.extend(lead.at(as_of));
        Ok(true)
    })?;
    Ok(out)
}

/// Every campaign as of `as_of`; campaigns created later are left out.
///
/// # Errors
/// As [`deals_at`].
pub fn campaigns_at(src: &dyn Source, as_of: i64) -> Result<Vec<CampaignAt>, ProjectionError> {
    let mut out = Vec::new();
    src.each(CAMPAIGN, None, &mut |key, value| {
        let c: CampaignRecord = decode(key, value)?;
        out.extend(c.at(as_of));
        Ok(true)
    })?;
    Ok(out)
}

/// Every campaign member (responses and attributed orders) as of `as_of`.
///
/// # Errors
/// As [`deals_at`].
pub fn members_at(src: &dyn Source, as_of: i64) -> Result<Vec<MemberAt>, ProjectionError> {
    let mut out = Vec::new();
    src.each(TOUCH, None, &mut |key, value| {
        let t: TouchRecord = decode(key, value)?;
        out.extend(t.at(as_of));
        Ok(true)
    })?;
    Ok(out)
}
