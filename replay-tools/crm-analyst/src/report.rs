//! The analyst's first page: one self-contained HTML file (inline CSS and SVG charts, no
//! script, no external resource) with the customer base by lifecycle and value class,
//! the pipeline funnel, this quarter's forecast, the lead funnel by source, campaigns
//! ranked by ROI, and churn risk bands with their value at risk.
//!
//! Every figure comes from the query API, asked by the caller's token at one `as_of`,
//! so the page says what the service says to that principal (an analyst's token reads no
//! personal data, and the page names customers by id only). Each figure's cell carries
//! `data-figure` (its name) and `data-value` (the API's value, unformatted): that is how
//! a test or a script reads the page back.

mod html;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use crm_proto::v1::{
    self, churn_service_client::ChurnServiceClient, funnel_service_client::FunnelServiceClient,
    query_service_client::QueryServiceClient,
};
use tonic::transport::Channel;

use crate::AnalystError;
use crate::grpc::{answer, authed, refused};

/// Customers counted by their 360° classification.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CustomerBase {
    pub position: u64,
    pub total: u64,
    pub lifecycle: BTreeMap<String, u64>,
    pub value_class: BTreeMap<String, u64>,
    pub segment: BTreeMap<String, u64>,
    /// (lifecycle, value class) → customers.
    pub matrix: BTreeMap<(String, String), u64>,
}

/// One churn risk band's customers, CLV and value at risk (CLV x (1 - P(alive))).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Band {
    pub customers: u64,
    pub clv: f64,
    pub value_at_risk: f64,
}

/// The served churn model and the at-risk listing's snapshot, summed by band.
#[derive(Clone, Debug, PartialEq)]
pub struct Churn {
    pub model: v1::ChurnModel,
    pub position: u64,
    pub currency: String,
    /// Low, medium, high.
    pub bands: [Band; 3],
    /// The highest values at risk, at most [`TOP_AT_RISK`].
    pub top: Vec<v1::AtRiskCustomer>,
}

/// The forecast's period: the calendar quarter holding `as_of`.
#[derive(Clone, Debug, PartialEq)]
pub struct Quarter {
    pub label: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// Everything on the page, as the API answered.
#[derive(Clone, Debug, PartialEq)]
pub struct Figures {
    pub as_of: DateTime<Utc>,
    pub customers: CustomerBase,
    pub funnel: v1::PipelineFunnelReply,
    pub quarter: Quarter,
    /// Grouped by forecast category.
    pub forecast: v1::ForecastReply,
    /// Grouped by lead source.
    pub leads: v1::LeadFunnelReply,
    /// Ranked by ROI, at most [`TOP_CAMPAIGNS`].
    pub campaigns: v1::CampaignPerformanceReply,
    /// None before a churn model is served.
    pub churn: Option<Churn>,
}

pub const TOP_AT_RISK: usize = 10;
pub const TOP_CAMPAIGNS: u32 = 10;
const PAGE: u32 = 1000;

/// What [`write_report`] wrote.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Written {
    pub bytes: u64,
    pub customers: u64,
    pub seconds: f64,
}

/// The calendar quarter holding `at`.
#[must_use]
pub fn quarter(at: DateTime<Utc>) -> Quarter {
    let q0 = at.month0() / 3;
    let start = |y: i32, q: u32| {
        NaiveDate::from_ymd_opt(y + i32::try_from(q / 4).unwrap_or(0), q % 4 * 3 + 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map_or(at, |t| t.and_utc())
    };
    Quarter {
        label: format!("Q{} {}", q0 + 1, at.year()),
        start: start(at.year(), q0),
        end: start(at.year(), q0 + 1),
    }
}

fn ts(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: 0,
    }
}

/// Asks the service for every figure on the page, at `as_of`.
///
/// # Errors
/// The service's refusal of any query (a churn model not served yet is not an error:
/// the page says so).
pub async fn gather(
    channel: Channel,
    token: &str,
    as_of: DateTime<Utc>,
) -> Result<Figures, AnalystError> {
    let customers = customer_base(channel.clone(), token, as_of).await?;
    let mut funnel = FunnelServiceClient::new(channel.clone());
    let at = Some(ts(as_of));
    let pipeline = answer(
        funnel
            .get_pipeline_funnel(authed(
                v1::GetPipelineFunnelRequest {
                    as_of: at,
                    ..Default::default()
                },
                token,
            )?)
            .await,
    )?;
    let quarter = quarter(as_of);
    let forecast = answer(
        funnel
            .get_forecast(authed(
                v1::GetForecastRequest {
                    period_start: Some(ts(quarter.start)),
                    period_end: Some(ts(quarter.end)),
                    group_by: v1::ForecastGroupBy::Category.into(),
                    as_of: at,
                    ..Default::default()
                },
                token,
            )?)
            .await,
    )?;
    let leads = answer(
        funnel
            .get_lead_funnel(authed(
                v1::GetLeadFunnelRequest {
                    as_of: at,
                    group_by: v1::LeadGroupBy::Source.into(),
                    ..Default::default()
                },
                token,
            )?)
            .await,
    )?;
    let campaigns = answer(
        funnel
            .get_campaign_performance(authed(
                v1::GetCampaignPerformanceRequest {
                    as_of: at,
                    limit: TOP_CAMPAIGNS,
                    ..Default::default()
                },
                token,
            )?)
            .await,
    )?;
    Ok(Figures {
        as_of,
        customers,
        funnel: pipeline,
        quarter,
        forecast,
        leads,
        campaigns,
        churn: churn(channel, token).await?,
    })
}

/// Every customer, paged through `ListCustomers` at `as_of`, counted by classification.
async fn customer_base(
    channel: Channel,
    token: &str,
    as_of: DateTime<Utc>,
) -> Result<CustomerBase, AnalystError> {
    let mut q = QueryServiceClient::new(channel);
    let mut base = CustomerBase::default();
    let mut page_token = String::new();
    loop {
        let page = answer(
            q.list_customers(authed(
                v1::ListCustomersRequest {
                    page_size: PAGE,
                    page_token: page_token.clone(),
                    as_of: Some(ts(as_of)),
                    ..Default::default()
                },
                token,
            )?)
            .await,
        )?;
        if base.total == 0 {
            base.position = page.read.as_ref().map_or(0, |r| r.position);
        }
        for c in &page.customers {
            let class = c.classification.clone().unwrap_or_default();
            base.total += 1;
            *base.lifecycle.entry(class.lifecycle.clone()).or_default() += 1;
            *base
                .value_class
                .entry(class.value_class.clone())
                .or_default() += 1;
            *base.segment.entry(class.segment).or_default() += 1;
            *base
                .matrix
                .entry((class.lifecycle, class.value_class))
                .or_default() += 1;
        }
        if page.next_page_token.is_empty() {
            return Ok(base);
        }
        page_token = page.next_page_token;
    }
}

/// The served model and every customer of `ListAtRisk`'s snapshot, summed by band; None
/// before a model is served.
async fn churn(channel: Channel, token: &str) -> Result<Option<Churn>, AnalystError> {
    let mut c = ChurnServiceClient::new(channel);
    let model = match c
        .get_model(authed(v1::GetModelRequest::default(), token)?)
        .await
    {
        Ok(m) => m.into_inner(),
        Err(s) if s.code() == tonic::Code::NotFound => return Ok(None),
        Err(s) => return Err(refused(&s)),
    };
    let mut bands: [Band; 3] = Default::default();
    let mut top = Vec::new();
    let mut page_token = String::new();
    let (position, currency) = loop {
        let page = answer(
            c.list_at_risk(authed(
                v1::ListAtRiskRequest {
                    order_by: v1::AtRiskOrder::ValueAtRisk.into(),
                    page_size: PAGE,
                    page_token: page_token.clone(),
                    ..Default::default()
                },
                token,
            )?)
            .await,
        )?;
        for customer in page.customers {
            let i = match customer.band() {
                v1::RiskBand::High => 2,
                v1::RiskBand::Medium => 1,
                v1::RiskBand::Low | v1::RiskBand::Unspecified => 0,
            };
            bands[i].customers += 1;
            bands[i].clv += customer.clv;
            bands[i].value_at_risk += customer.value_at_risk;
            if top.len() < TOP_AT_RISK {
                top.push(customer);
            }
        }
        if page.next_page_token.is_empty() {
            break (page.position, page.currency);
        }
        page_token = page.next_page_token;
    };
    Ok(Some(Churn {
        model,
        position,
        currency,
        bands,
        top,
    }))
}

/// Gathers the figures at `as_of` and writes the page to `out` (through `out.partial`,
/// renamed when complete).
///
/// # Errors
/// A refused query, or the file cannot be written.
pub async fn write_report(
    channel: Channel,
    token: &str,
    as_of: DateTime<Utc>,
    out: &Path,
) -> Result<Written, AnalystError> {
    let started = Instant::now();
    let figures = gather(channel, token, as_of).await?;
    let page = render(&figures);
    let io = |e| crate::export::io_error(out, e);
    let partial = crate::export::partial_path(out);
    std::fs::write(&partial, page.as_bytes()).map_err(io)?;
    std::fs::rename(&partial, out).map_err(io)?;
    Ok(Written {
        bytes: page.len() as u64,
        customers: figures.customers.total,
        seconds: started.elapsed().as_secs_f64(),
    })
}

pub use html::render;

/// The `data-figure` → `data-value` pairs of a page written by [`render`], in page
/// order: how a test or a script reads the figures back.
#[must_use]
pub fn figures_of(page: &str) -> Vec<(String, String)> {
    let attr = |s: &str, name: &str| -> Option<(String, usize)> {
        let at = s.find(&format!("{name}=\""))? + name.len() + 2;
        let len = s[at..].find('"')?;
        Some((html::unescape(&s[at..at + len]), at + len))
    };
    let mut found = Vec::new();
    let mut rest = page;
    while let Some(i) = rest.find("data-figure=\"") {
        rest = &rest[i..];
        let Some((name, end)) = attr(rest, "data-figure") else {
            break;
        };
        let Some((value, end)) = attr(&rest[end..], "data-value").map(|(v, e)| (v, end + e)) else {
            break;
        };
        found.push((name, value));
        rest = &rest[end..];
    }
    found
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    #[test]
    fn quarters_start_on_their_first_day() {
        let q = super::quarter(chrono::Utc.with_ymd_and_hms(2026, 12, 5, 12, 0, 0).unwrap());
        assert_eq!(q.label, "Q4 2026");
        assert_eq!(q.start.to_rfc3339(), "2026-10-01T00:00:00+00:00");
        assert_eq!(q.end.to_rfc3339(), "2027-01-01T00:00:00+00:00");
        let q = super::quarter(chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
        assert_eq!(
            (q.label.as_str(), q.start.to_rfc3339().as_str()),
            ("Q1 2026", "2026-01-01T00:00:00+00:00")
        );
        assert_eq!(q.end.to_rfc3339(), "2026-04-01T00:00:00+00:00");
    }
}
