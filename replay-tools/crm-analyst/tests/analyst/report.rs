//! The HTML report against the query API: every figure on the page (read back from its
//! `data-figure`/`data-value` cells) equals what the API tells the same analyst at the
//! same moment, asked independently here; the shown text is the value formatted; the
//! binary writes the same bytes; the page names no customer and loads nothing.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, SubsecRound, Utc};
use crm_analyst::report::{self, figures_of};
use crm_proto::v1::{
    self, churn_service_client::ChurnServiceClient, funnel_service_client::FunnelServiceClient,
    query_service_client::QueryServiceClient,
};
use tonic::transport::Channel;

fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

fn ts(at: DateTime<Utc>) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: 0,
    })
}

/// The text a figure's cell shows.
fn shown(html: &str, name: &str) -> String {
    let at = html.find(&format!("data-figure=\"{name}\"")).unwrap();
    let start = at + html[at..].find('>').unwrap() + 1;
    let end = start + html[start..].find('<').unwrap();
    html[start..end].to_owned()
}

/// The page's figures by name.
struct Page(BTreeMap<String, String>);

impl Page {
    fn get(&self, name: &str) -> &str {
        self.0
            .get(name)
            .unwrap_or_else(|| panic!("no figure {name} on the page"))
    }
    fn int(&self, name: &str) -> i64 {
        self.get(name).parse().unwrap()
    }
    fn rate(&self, name: &str) -> Option<f64> {
        let v = self.get(name);
        (!v.is_empty()).then(|| v.parse().unwrap())
    }
}

pub async fn matches_the_query_api(
    channel: Channel,
    service: &super::Service,
    business: &crm_datagen::Dataset,
    root: &Path,
) {
    let token = &service.analyst;
    let as_of = Utc::now().trunc_subsecs(0);
    // A served churn model (an admin's act), so the churn section has figures.
    ChurnServiceClient::new(channel.clone())
        .fit_model(authed(
            v1::FitModelRequest {
                calibration_end: ts(as_of),
                serve: true,
                consistency: None,
            },
            &service.token,
        ))
        .await
        .unwrap();

    let out = root.join("report.html");
    let written = report::write_report(channel.clone(), token, as_of, &out)
        .await
        .unwrap();
    assert!(!root.join("report.html.partial").exists());
    let html = std::fs::read_to_string(&out).unwrap();
    let pairs = figures_of(&html);
    let page = Page(pairs.iter().cloned().collect());
    assert_eq!(pairs.len(), page.0.len(), "every figure named once");
    assert!(pairs.len() > 100, "{} figures", pairs.len());

    customers_match(&page, channel.clone(), token, as_of, written.customers).await;
    funnel_matches(&page, channel.clone(), token, as_of).await;
    churn_matches(&page, channel.clone(), token).await;

    // What is shown is the value formatted: a count as it is, money in major units with
    // grouped thousands, a rate as a percentage.
    let total = page.int("customers.total");
    assert_eq!(shown(&html, "customers.total"), total.to_string());
    let win = page.rate("funnel.win_rate").unwrap();
    assert_eq!(
        shown(&html, "funnel.win_rate"),
        format!("{:.1}%", win * 100.0)
    );
    let won = page.int("funnel.won_amount.EUR");
    assert!(won >= 100_000, "{won}");
    let major = (won / 100).to_string();
    let grouped: Vec<&str> = (0..major.len())
        .rev()
        .step_by(3)
        .map(|end| &major[end.saturating_sub(2)..=end])
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    assert_eq!(
        shown(&html, "funnel.won_amount.EUR"),
        format!("{}.{:02} EUR", grouped.join(","), won % 100)
    );

    // Self-contained: nothing fetched, nothing run; no one named.
    for forbidden in ["<script", " src=", " href=", "url(", "@import", "<link"] {
        assert!(!html.contains(forbidden), "the page has {forbidden}");
    }
    let words: std::collections::BTreeSet<&str> = html
        .split(|c: char| !(c.is_alphanumeric() || "@.+-_'".contains(c)))
        .collect();
    let named: Vec<_> = super::personal(business)
        .into_iter()
        .filter(|p| words.contains(p.as_str()) || (p.contains(' ') && html.contains(p.as_str())))
        .collect();
    assert!(named.is_empty(), "personal data on the page: {named:?}");

    // The binary, at the same moment, writes the same page.
    let by_binary = root.join("report-bin.html");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_crm-analyst"))
        .args(["report", "--addr", &format!("http://{}", service.addr)])
        .args(["--token", token, "--as-of", &as_of.to_rfc3339()])
        .arg("--out")
        .arg(&by_binary)
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    assert_eq!(std::fs::read_to_string(&by_binary).unwrap(), html);
    // Without a valid token: refused, naming the code, and no file.
    let denied = report::write_report(channel, "nope", as_of, &root.join("denied.html"))
        .await
        .unwrap_err();
    assert!(denied.to_string().contains("Unauthenticated"), "{denied}");
    assert!(!root.join("denied.html").exists());
}

async fn customers_match(
    page: &Page,
    channel: Channel,
    token: &str,
    as_of: DateTime<Utc>,
    written: u64,
) {
    let mut q = QueryServiceClient::new(channel);
    let mut by: BTreeMap<String, i64> = BTreeMap::new();
    let (mut total, mut page_token) = (0, String::new());
    loop {
        let reply = q
            .list_customers(authed(
                v1::ListCustomersRequest {
                    page_size: 137,
                    page_token,
                    as_of: ts(as_of),
                    ..Default::default()
                },
                token,
            ))
            .await
            .unwrap()
            .into_inner();
        for c in reply.customers {
            let class = c.classification.unwrap();
            total += 1;
            *by.entry(format!("customers.lifecycle.{}", class.lifecycle))
                .or_default() += 1;
            *by.entry(format!("customers.value_class.{}", class.value_class))
                .or_default() += 1;
            *by.entry(format!("customers.segment.{}", class.segment))
                .or_default() += 1;
            *by.entry(format!(
                "customers.matrix.{}.{}",
                class.lifecycle, class.value_class
            ))
            .or_default() += 1;
        }
        if reply.next_page_token.is_empty() {
            break;
        }
        page_token = reply.next_page_token;
    }
    assert_eq!(page.int("customers.total"), total);
    assert_eq!(written, u64::try_from(total).unwrap());
    assert!(by.len() > 8, "{by:?}");
    for (name, n) in &by {
        assert_eq!(page.int(name), *n, "{name}");
    }
    // Classes no customer has are on the page as 0; nothing else is.
    for (name, value) in &page.0 {
        if name.starts_with("customers.") && name != "customers.total" && !by.contains_key(name) {
            assert_eq!(value, "0", "{name}");
        }
    }
}

async fn funnel_matches(page: &Page, channel: Channel, token: &str, as_of: DateTime<Utc>) {
    let mut f = FunnelServiceClient::new(channel);
    let p = f
        .get_pipeline_funnel(authed(
            v1::GetPipelineFunnelRequest {
                as_of: ts(as_of),
                ..Default::default()
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(p.deals > 0 && p.stages.len() >= 3, "{p:?}");
    assert_eq!(page.int("funnel.deals"), i64::try_from(p.deals).unwrap());
    assert_eq!(page.int("funnel.won"), i64::try_from(p.won).unwrap());
    assert_eq!(page.int("funnel.lost"), i64::try_from(p.lost).unwrap());
    assert_eq!(page.rate("funnel.win_rate"), p.win_rate);
    for st in &p.stages {
        let k = format!("funnel.stage.{}", st.stage);
        assert_eq!(
            page.int(&format!("{k}.reached")),
            i64::try_from(st.reached).unwrap()
        );
        assert_eq!(
            page.int(&format!("{k}.open")),
            i64::try_from(st.open).unwrap()
        );
        assert_eq!(
            page.int(&format!("{k}.stale")),
            i64::try_from(st.stale).unwrap()
        );
        assert_eq!(
            page.rate(&format!("{k}.conversion_from_previous")),
            st.conversion_from_previous
        );
    }
    for r in &p.loss_reasons {
        assert_eq!(
            page.int(&format!("funnel.loss.{}", r.reason)),
            i64::try_from(r.deals).unwrap()
        );
    }

    let q = report::quarter(as_of);
    let forecast = f
        .get_forecast(authed(
            v1::GetForecastRequest {
                period_start: ts(q.start),
                period_end: ts(q.end),
                group_by: v1::ForecastGroupBy::Category.into(),
                as_of: ts(as_of),
                ..Default::default()
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner();
    let mut rollups = 0;
    for g in &forecast.groups {
        for r in &g.rollups {
            let k = format!("forecast.{}.{}", g.group, r.currency);
            assert_eq!(page.int(&format!("{k}.commit")), r.commit);
            assert_eq!(page.int(&format!("{k}.pipeline")), r.pipeline);
            assert_eq!(page.int(&format!("{k}.weighted")), r.weighted);
            assert_eq!(page.int(&format!("{k}.closed")), r.closed);
            rollups += 1;
        }
    }
    assert_eq!(
        page.0
            .keys()
            .filter(|k| k.starts_with("forecast.") && k.ends_with(".closed"))
            .count(),
        rollups
    );

    let leads = f
        .get_lead_funnel(authed(
            v1::GetLeadFunnelRequest {
                as_of: ts(as_of),
                group_by: v1::LeadGroupBy::Source.into(),
                ..Default::default()
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!leads.groups.is_empty());
    for g in &leads.groups {
        let k = format!("leads.{}", g.group);
        assert_eq!(
            page.int(&format!("{k}.captured")),
            i64::try_from(g.captured).unwrap()
        );
        assert_eq!(
            page.int(&format!("{k}.converted")),
            i64::try_from(g.converted).unwrap()
        );
        assert_eq!(
            page.rate(&format!("{k}.conversion_rate")),
            g.conversion_rate
        );
    }

    let campaigns = f
        .get_campaign_performance(authed(
            v1::GetCampaignPerformanceRequest {
                as_of: ts(as_of),
                limit: report::TOP_CAMPAIGNS,
                ..Default::default()
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!campaigns.campaigns.is_empty());
    for c in &campaigns.campaigns {
        let k = format!("campaign.{}", c.campaign_id);
        assert_eq!(page.rate(&format!("{k}.roi")), c.roi);
        assert_eq!(page.int(&format!("{k}.rank")), i64::from(c.rank));
        assert_eq!(
            page.int(&format!("{k}.leads")),
            i64::try_from(c.leads).unwrap()
        );
    }
}

async fn churn_matches(page: &Page, channel: Channel, token: &str) {
    let mut c = ChurnServiceClient::new(channel);
    let model = c
        .get_model(authed(v1::GetModelRequest::default(), token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        page.get("churn.model.r"),
        model.bgnbd.unwrap().r.to_string()
    );
    let mut bands = [(0_i64, 0.0_f64); 3];
    let mut top = Vec::new();
    let mut page_token = String::new();
    loop {
        let reply = c
            .list_at_risk(authed(
                v1::ListAtRiskRequest {
                    page_size: 250,
                    page_token,
                    ..Default::default()
                },
                token,
            ))
            .await
            .unwrap()
            .into_inner();
        for x in reply.customers {
            let i = usize::try_from(x.band - 1).unwrap();
            bands[i].0 += 1;
            bands[i].1 += x.value_at_risk;
            top.push(x.customer_id);
        }
        if reply.next_page_token.is_empty() {
            break;
        }
        page_token = reply.next_page_token;
    }
    assert!(bands.iter().map(|b| b.0).sum::<i64>() > 100, "{bands:?}");
    for (name, (n, var)) in ["low", "medium", "high"].iter().zip(bands) {
        let k = format!("churn.band.{name}");
        assert_eq!(page.int(&format!("{k}.customers")), n, "{k}");
        let shown: f64 = page.get(&format!("{k}.value_at_risk")).parse().unwrap();
        assert!(
            (shown - var).abs() <= 1e-6 * var.abs().max(1.0),
            "{k}: {shown} vs {var}"
        );
    }
    for (i, id) in top.iter().take(report::TOP_AT_RISK).enumerate() {
        assert_eq!(page.get(&format!("churn.top.{}.customer_id", i + 1)), id);
    }
}
