//! The projections the tools know, by name, and how their stored values decode for a
//! comparison.

use std::str::FromStr;

/// A hosted projection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Named {
    Customer360,
    Funnel,
    Churn,
}

impl Named {
    pub const ALL: [Self; 3] = [Self::Customer360, Self::Funnel, Self::Churn];

    /// As the read side names it (its sled tree, `AdminService`).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Customer360 => "customer360",
            Self::Funnel => "funnel",
            Self::Churn => "churn",
        }
    }

    /// A fold value decoded, when its key's prefix names a record type (timeline chunks
    /// and index keys stay opaque). `None` when it does not decode.
    #[must_use]
    pub fn decode(self, key: &[u8], value: &[u8]) -> Option<Decoded> {
        use crm_customer360::keys as c;
        use crm_funnel::keys as f;
        // Only keys of a prefix byte and one id hold records.
        if key.len() != 17 {
            return None;
        }
        match (self, key[0]) {
            (Self::Customer360, c::CUSTOMER) => decoded::<crm_customer360::CustomerRecord>(value),
            (Self::Customer360, c::FACTS) => decoded::<crm_customer360::CustomerFacts>(value),
            (Self::Customer360, c::CAMPAIGN) => decoded::<crm_customer360::CampaignInfo>(value),
            (Self::Customer360, c::LEAD) => decoded::<crm_customer360::LeadInfo>(value),
            (Self::Funnel, f::DEAL) => decoded::<crm_funnel::DealRecord>(value),
            (Self::Funnel, f::LEAD) => decoded::<crm_funnel::LeadRecord>(value),
            (Self::Funnel, f::CAMPAIGN) => decoded::<crm_funnel::CampaignRecord>(value),
            (Self::Funnel, f::CUSTOMER) => decoded::<crm_funnel::CustomerRecord>(value),
            (Self::Churn, crm_churn::purchases::PURCHASES) => {
                decoded::<crm_churn::purchases::Purchases>(value)
            }
            (Self::Churn, crm_churn::signals::SERVICE) => {
                decoded::<crm_churn::signals::Service>(value)
            }
            _ => None,
        }
    }
}

/// A stored value decoded: as JSON, or (a record with maps keyed by ids, which JSON
/// cannot key) as its pretty `Debug` text.
#[derive(Clone, Debug, PartialEq)]
pub enum Decoded {
    Json(serde_json::Value),
    Text(String),
}

fn decoded<T>(value: &[u8]) -> Option<Decoded>
where
    T: serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let record: T = postcard::from_bytes(value).ok()?;
    Some(match serde_json::to_value(&record) {
        Ok(json) => Decoded::Json(json),
        Err(_) => Decoded::Text(format!("{record:#?}")),
    })
}

impl FromStr for Named {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|n| n.name() == s)
            .ok_or_else(|| format!("no projection {s:?}: customer360, funnel or churn"))
    }
}

impl std::fmt::Display for Named {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A fold key for people: its prefix letters, then an id as a UUID when 16 bytes follow,
/// else hex.
#[must_use]
pub fn render_key(key: &[u8]) -> String {
    let letters = key
        .iter()
        .take_while(|b| b.is_ascii_lowercase())
        .count()
        .min(2);
    let (prefix, rest) = key.split_at(letters);
    let prefix = String::from_utf8_lossy(prefix);
    match <[u8; 16]>::try_from(rest) {
        Ok(id) => format!("{prefix}/{}", uuid::Uuid::from_bytes(id)),
        Err(_) => format!("{prefix}/{}", hex::encode(rest)),
    }
}
