//! The churn models through `ChurnService`: both models fitted now on the demo's
//! business and served (FitModel), next to the generator's truth, and the ten customers
//! with the most value at risk (CLV x (1 - P(alive))) with the drivers of their risk
//! score (ListAtRisk), the first of them in detail (GetCustomerRisk).

use crm_proto::v1::{self, churn_service_client::ChurnServiceClient};
use tonic::transport::Channel;

use crate::show::authed;

pub(crate) async fn show(
    channel: Channel,
    token: &str,
    position: u64,
    cli: &crate::Cli,
) -> anyhow::Result<()> {
    let mut churn = ChurnServiceClient::new(channel);
    let consistency = Some(v1::Consistency {
        min_position: position,
    });
    let now = std::time::SystemTime::now();
    let fit = churn
        .fit_model(authed(
            v1::FitModelRequest {
                calibration_end: Some(now.into()),
                serve: true,
                consistency,
            },
            token,
        )?)
        .await?
        .into_inner();
    let (b, g) = (
        fit.bgnbd.unwrap_or_default(),
        fit.gamma_gamma.unwrap_or_default(),
    );
    println!(
        "\n== Churn and CLV (ChurnService.FitModel, served as {}: fitted now on {} customers, {} with repeat purchases, in {}s)",
        fit.model_id, fit.customers, fit.repeat_customers, fit.time_unit
    );
    println!(
        "  BG/NBD r {:.3} alpha {:.2} a {:.3} b {:.3} (log-likelihood {:.1}, {} iterations); Gamma-Gamma p {:.2} q {:.2} gamma {:.0} (mean spend {:.2} {})",
        b.r,
        b.alpha,
        b.a,
        b.b,
        fit.log_likelihood,
        fit.iterations,
        g.p,
        g.q,
        g.gamma,
        g.p * g.gamma / (g.q - 1.0) / 100.0,
        fit.currency
    );
    // What the generator drew the business from (its `params.json`).
    let truth = crm_datagen::Params::new(cli.seed, cli.customers);
    let (tp, ts) = (truth.purchasing, truth.spend);
    println!(
        "  the generator's truth: r {:.3} alpha {:.2} a {:.3} b {:.3}; p {:.2} q {:.2} gamma {:.0} (cents; mean spend {:.2} EUR)",
        tp.r,
        tp.alpha,
        tp.a,
        tp.b,
        ts.p,
        ts.q,
        ts.gamma * 100.0,
        ts.p * ts.gamma / (ts.q - 1.0)
    );
    let list = churn
        .list_at_risk(authed(
            v1::ListAtRiskRequest {
                page_size: 10,
                consistency,
                ..Default::default()
            },
            token,
        )?)
        .await?
        .into_inner();
    println!(
        "  the ten customers with the most value at risk of {} (ListAtRisk; CLV over 12 months):",
        list.total
    );
    for c in &list.customers {
        let drivers: Vec<String> = c
            .drivers
            .iter()
            .map(|d| format!("{} {:+.2}", d.name, d.delta))
            .collect();
        println!(
            "  {} P(alive) {:.2} CLV {:>8.2} {cur} at risk {:>8.2} {cur}; risk {:.2} {} {}",
            &c.customer_id[..8],
            c.p_alive,
            c.clv / 100.0,
            c.value_at_risk / 100.0,
            c.risk_score,
            band(c.band()),
            if drivers.is_empty() {
                String::new()
            } else {
                format!("({})", drivers.join(", "))
            },
            cur = list.currency,
        );
    }
    if let Some(top) = list.customers.first() {
        let r = churn
            .get_customer_risk(authed(
                v1::GetCustomerRiskRequest {
                    customer_id: top.customer_id.clone(),
                    consistency,
                    ..Default::default()
                },
                token,
            )?)
            .await?
            .into_inner();
        println!(
            "  {} in detail (GetCustomerRisk): {} repeat days, the last {:.0} {u}s after the first, which was {:.0} {u}s ago; expected purchases in {} days {:.2}, expected spend {:.2} {}, risk {:.2} = 1 - P(alive) {:.2} moved by its drivers",
            &r.customer_id[..8],
            r.x,
            r.t_x,
            r.t,
            r.horizon_days,
            r.expected_transactions,
            r.expected_average_spend / 100.0,
            r.currency,
            r.risk_score,
            r.base_risk,
            u = r.time_unit,
        );
    }
    Ok(())
}

fn band(b: v1::RiskBand) -> &'static str {
    match b {
        v1::RiskBand::Unspecified => "-",
        v1::RiskBand::Low => "low",
        v1::RiskBand::Medium => "medium",
        v1::RiskBand::High => "high",
    }
}
