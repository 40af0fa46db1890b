//! The funnel and churn exports against the query API: while the service runs, every deal
//! (`ListDeals`) and every at-risk customer (`ListAtRisk`) at one moment; once it has
//! stopped, the exports from its directory at that moment carry the same rows and
//! values, read back from JSON Lines, CSV and Parquet (schema checked).

use std::collections::BTreeMap;
use std::path::Path;

use crm_analyst::export::{Format, Row};
use crm_analyst::models::{ChurnRow, DealRow, FunnelTable, StageRow, export_churn, export_funnel};
use crm_proto::v1::{
    self, churn_service_client::ChurnServiceClient, funnel_service_client::FunnelServiceClient,
};
use tonic::transport::Channel;

fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

/// What the API said, kept for after the service stopped.
pub struct Expected {
    deals_as_of: i64,
    deals: BTreeMap<String, v1::DealItem>,
    risk_as_of: i64,
    at_risk: BTreeMap<String, v1::AtRiskCustomer>,
}

fn micros(t: Option<&prost_types::Timestamp>) -> i64 {
    let t = t.unwrap();
    t.seconds * 1_000_000 + i64::from(t.nanos) / 1_000
}

/// Every deal and every at-risk customer (a churn model must be served).
pub async fn while_serving(channel: Channel, token: &str) -> Expected {
    let mut f = FunnelServiceClient::new(channel.clone());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let deals_as_of = i64::try_from(now).unwrap();
    let (mut deals, mut page_token) = (BTreeMap::new(), String::new());
    loop {
        let reply = f
            .list_deals(authed(
                v1::ListDealsRequest {
                    as_of: Some(prost_types::Timestamp {
                        seconds: deals_as_of,
                        nanos: 0,
                    }),
                    page_size: 100,
                    page_token,
                    ..Default::default()
                },
                token,
            ))
            .await
            .unwrap()
            .into_inner();
        deals.extend(
            reply
                .deals
                .into_iter()
                .map(|d| (d.opportunity_id.clone(), d)),
        );
        if reply.next_page_token.is_empty() {
            break;
        }
        page_token = reply.next_page_token;
    }
    let mut c = ChurnServiceClient::new(channel);
    let (mut at_risk, mut page_token) = (BTreeMap::new(), String::new());
    let risk_as_of = loop {
        let reply = c
            .list_at_risk(authed(
                v1::ListAtRiskRequest {
                    page_size: 300,
                    page_token,
                    ..Default::default()
                },
                token,
            ))
            .await
            .unwrap()
            .into_inner();
        at_risk.extend(
            reply
                .customers
                .into_iter()
                .map(|x| (x.customer_id.clone(), x)),
        );
        if reply.next_page_token.is_empty() {
            break micros(reply.as_of.as_ref());
        }
        page_token = reply.next_page_token;
    };
    assert!(deals.len() > 20 && at_risk.len() > 100);
    Expected {
        deals_as_of: deals_as_of * 1_000_000,
        deals,
        risk_as_of,
        at_risk,
    }
}

fn parquet_rows<R: Row>(path: &Path) -> Vec<arrow_array::RecordBatch> {
    let file = std::fs::File::open(path).unwrap();
    let builder =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    assert_eq!(builder.schema().fields(), R::schema().fields());
    builder.build().unwrap().map(Result::unwrap).collect()
}

/// The exports from the stopped service's directory equal what the API said.
pub fn after_stop(data: &Path, expected: &Expected, root: &Path) {
    // Deals, as JSON Lines: each the API's deal.
    let out = root.join("deals.jsonl");
    let done = export_funnel(
        data,
        FunnelTable::Deals,
        Format::Jsonl,
        &out,
        expected.deals_as_of,
        |_| {},
    )
    .unwrap();
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), expected.deals.len());
    assert_eq!(done.rows as usize, rows.len());
    for r in &rows {
        let id = r["opportunity_id"].as_str().unwrap();
        let d = &expected.deals[id];
        assert_eq!(r["stage"], d.stage.as_str(), "{id}");
        assert_eq!(r["customer_id"], d.customer_id.as_str(), "{id}");
        let amount = d.amount.clone().unwrap();
        assert_eq!(r["amount_minor"], amount.minor, "{id}");
        assert_eq!(r["currency"], amount.currency.as_str(), "{id}");
        assert_eq!(r["probability_pct"], d.probability_pct, "{id}");
        assert_eq!(r["forecast_category"], d.forecast_category.as_str(), "{id}");
        assert_eq!(r["owner"].as_str().unwrap_or(""), d.owner, "{id}");
        assert_eq!(
            r["lead_source"].as_str().unwrap_or(""),
            d.lead_source,
            "{id}"
        );
        let status = match d.state() {
            v1::DealState::Open => "open",
            v1::DealState::Won => "won",
            v1::DealState::Lost => "lost",
            v1::DealState::Unspecified => "?",
        };
        assert_eq!(r["status"], status, "{id}");
    }

    // Stage stays, as CSV: every deal's stays, numbered from 1, the last one in the
    // deal's stage.
    let out = root.join("stages.csv");
    export_funnel(
        data,
        FunnelTable::Stages,
        Format::Csv,
        &out,
        expected.deals_as_of,
        |_| {},
    )
    .unwrap();
    let mut reader = csv::Reader::from_path(&out).unwrap();
    let mut last: BTreeMap<String, (u32, String)> = BTreeMap::new();
    let mut n = 0;
    for record in reader.deserialize::<BTreeMap<String, String>>() {
        let r = record.unwrap();
        let visit: u32 = r["visit"].parse().unwrap();
        let days: f64 = r["days"].parse().unwrap();
        assert!(days >= 0.0);
        let prev = last.insert(r["opportunity_id"].clone(), (visit, r["stage"].clone()));
        assert_eq!(prev.map_or(0, |p| p.0) + 1, visit, "{r:?}");
        n += 1;
    }
    assert_eq!(last.len(), expected.deals.len());
    assert!(n > last.len(), "some deals moved: {n} stays");
    for (id, (_, stage)) in &last {
        assert_eq!(stage, &expected.deals[id].stage, "{id}");
    }
    assert!(StageRow::schema().fields().len() == 8);
    assert!(DealRow::schema().field_with_name("opened_at").is_ok());

    // Churn, as Parquet: the ListAtRisk snapshot's customers and figures.
    let out = root.join("churn.parquet");
    let done = export_churn(
        data,
        "",
        crm_churn::service::ChurnConfig::default(),
        Format::Parquet,
        &out,
        expected.risk_as_of,
        |_| {},
    )
    .unwrap();
    assert_eq!(done.rows as usize, expected.at_risk.len());
    let mut seen = 0;
    for batch in parquet_rows::<ChurnRow>(&out) {
        let text = |name: &str| {
            batch
                .column_by_name(name)
                .unwrap()
                .as_any()
                .downcast_ref::<arrow_array::StringArray>()
                .unwrap()
                .clone()
        };
        let float = |name: &str| {
            batch
                .column_by_name(name)
                .unwrap()
                .as_any()
                .downcast_ref::<arrow_array::Float64Array>()
                .unwrap()
                .clone()
        };
        let (ids, bands) = (text("customer_id"), text("band"));
        let (p_alive, clv, var) = (float("p_alive"), float("clv"), float("value_at_risk"));
        for i in 0..batch.num_rows() {
            let x = &expected.at_risk[ids.value(i)];
            assert_eq!(p_alive.value(i), x.p_alive);
            assert_eq!(clv.value(i), x.clv);
            assert_eq!(var.value(i), x.value_at_risk);
            let band = match x.band() {
                v1::RiskBand::Low => "low",
                v1::RiskBand::Medium => "medium",
                v1::RiskBand::High => "high",
                v1::RiskBand::Unspecified => "?",
            };
            assert_eq!(bands.value(i), band);
            seen += 1;
        }
    }
    assert_eq!(seen, expected.at_risk.len());
    // An unknown model: refused, naming it, and no file.
    let err = export_churn(
        data,
        "20200101-1-day",
        crm_churn::service::ChurnConfig::default(),
        Format::Csv,
        &root.join("none.csv"),
        expected.risk_as_of,
        |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("20200101-1-day"), "{err}");
    assert!(!root.join("none.csv").exists());
}
