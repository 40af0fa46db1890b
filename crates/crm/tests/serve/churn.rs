//! `ChurnService` over gRPC on a business made by the data generator and ingested
//! through the command API: the fitted models give back the generator's true
//! parameters, fits are deterministic (again, and after a rebuild of the projection),
//! one customer's figures follow the formulas, the at-risk listing pages over every
//! customer in order, and GetCustomer360 carries the served model's predictions.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crm_churn::model::{BgNbd, Stats};
use crm_proto::v1;
use tonic::Code;

use crate::support::Crm;

/// A purchases-only business (no interactions, tickets, deals, campaigns or returns, so
/// the spend is the generator's Gamma draw) of `customers` customers, ingested.
async fn business(crm: &Crm, customers: usize) -> (crm_datagen::Params, u64) {
    let params = crm_datagen::Params {
        return_rate: 0.0,
        interaction_rate: 0.0,
        ticket_rate: 0.0,
        order_ticket_rate: 0.0,
        opportunity_rate: 0.0,
        campaigns_per_month: 0.0,
        relationship_rate: 0.0,
        extra_leads: 0.0,
        from_leads: 0.0,
        ..crm_datagen::Params::new(11, customers)
    };
    let data = crm_datagen::generate(&params).unwrap();
    let report = crm_datagen::ingest::ingest(
        crm.channel().await,
        crm.token.as_deref().unwrap(),
        data.requests()
            .map(Ok::<_, String>)
            .collect::<Vec<_>>()
            .into_iter(),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(report.failed, 0, "{:#?}", report.failures);
    (params, report.max_position)
}

fn ts(micros: i64) -> Option<prost_types::Timestamp> {
    crm_proto::ts(micros)
}

fn within(got: f64, want: f64, rel: f64) -> bool {
    (got - want).abs() <= rel * want
}

#[tokio::test]
async fn churn_models_fitted_through_the_api_recover_the_generators_truth() {
    // The models of this test are the API's: no scheduled fit may replace the served one
    // while it pages through it.
    let crm = Crm::start(
        &["--dev", "--churn-refit-every-secs", "0"],
        tempfile::tempdir().unwrap(),
    );
    let (params, position) = business(&crm, 4_000).await;
    let mut churn = v1::churn_service_client::ChurnServiceClient::new(crm.channel().await);
    let consistency = Some(v1::Consistency {
        min_position: position,
    });
    let end = params.end();
    let fit = |serve| v1::FitModelRequest {
        calibration_end: ts(end),
        serve,
        consistency,
    };
    let model = churn
        .fit_model(crm.auth(fit(true)))
        .await
        .unwrap()
        .into_inner();
    let (b, t) = (model.bgnbd.unwrap(), params.purchasing);
    let (g, s) = (model.gamma_gamma.unwrap(), params.spend);
    eprintln!(
        "{} customers ({} repeat): BG/NBD {b:?} vs truth {t:?}; Gamma-Gamma {g:?} vs truth {s:?} (gamma in cents)",
        model.customers, model.repeat_customers
    );
    assert!(model.converged && model.served, "{model:?}");
    assert_eq!(
        (model.time_unit.as_str(), model.currency.as_str()),
        ("day", "EUR")
    );
    assert!(
        within(b.r, t.r, 0.2) && within(b.alpha, t.alpha, 0.2),
        "{b:?} vs {t:?}"
    );
    assert!(
        within(b.a, t.a, 0.4) && within(b.b, t.b, 0.4),
        "{b:?} vs {t:?}"
    );
    assert!(
        within(g.p, s.p, 0.25) && within(g.q, s.q, 0.25) && within(g.gamma, s.gamma * 100.0, 0.25),
        "{g:?} vs {s:?}"
    );

    // The same calibration end again: the same model, bit for bit, under the same id;
    // the served one is what GetModel gives.
    let again = churn
        .fit_model(crm.auth(fit(false)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (again.model_id.clone(), again.bgnbd, again.gamma_gamma),
        (model.model_id.clone(), model.bgnbd, model.gamma_gamma)
    );
    let served = churn
        .get_model(crm.auth(v1::GetModelRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(served.model_id, model.model_id);

    // After a rebuild of the projection from the stream: the same parameters.
    rebuild_churn(&crm).await;
    let rebuilt = churn
        .fit_model(crm.auth(fit(false)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (rebuilt.bgnbd, rebuilt.gamma_gamma),
        (model.bgnbd, model.gamma_gamma),
        "a rebuild gives the same model"
    );

    // A replay: the stream read back and folded offline by the same fold, fitted at the
    // same calibration end: the same parameters.
    let replayed = replay(&crm, end).await;
    let (rb, rg) = (replayed.bgnbd.params, replayed.gamma_gamma.params);
    assert_eq!(
        [rb.r, rb.alpha, rb.a, rb.b, rg.p, rg.q, rg.gamma],
        [b.r, b.alpha, b.a, b.b, g.p, g.q, g.gamma],
        "a replay gives the same model"
    );

    at_risk_pages_cover_every_customer_in_order(&crm, &model).await;
    one_customer_follows_the_formulas(&crm, &model, end).await;
    assert!(crm.stop().await.success());
}

/// Every message of the stream folded by `crm_churn::Churn` in memory, then both models
/// fitted at `end`.
async fn replay(crm: &Crm, end: i64) -> crm_churn::fit::ChurnFit {
    use futures::StreamExt;
    let js = async_nats::jetstream::new(crm.embedded_nats().await);
    let mut stream = js.get_stream("CRM_EVENTS").await.unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let mut messages = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
        .await
        .unwrap()
        .messages()
        .await
        .unwrap();
    let fold = crm_churn::Churn::default();
    let mut state = crm_projection::MemState::default();
    while let Some(m) = messages.next().await {
        let m = m.unwrap();
        let seq = m.info().unwrap().stream_sequence;
        // Anchors are no customer's events.
        if let Ok(envelopes) = crm_events::decode_message(&m.payload) {
            let events: Vec<crm_projection::Event<'_>> = envelopes
                .iter()
                .map(|e| crm_projection::Event {
                    seq,
                    index: 0,
                    subject: &m.subject,
                    envelope: e,
                })
                .collect();
            state.apply_message(&fold, &events).unwrap();
        }
        if seq >= last {
            break;
        }
    }
    let purchases: Vec<crm_churn::purchases::Purchases> = state
        .entries
        .iter()
        .filter(|(k, _)| k[0] == crm_churn::purchases::PURCHASES)
        .map(|(_, v)| postcard::from_bytes(v).unwrap())
        .collect();
    crm_churn::fit::fit_at(&purchases, end, "EUR", crm_churn::fit::TimeUnit::Day).unwrap()
}

async fn rebuild_churn(crm: &Crm) {
    let mut admin = v1::admin_service_client::AdminServiceClient::new(crm.channel().await);
    let started = admin
        .rebuild_projection(crm.auth(v1::RebuildProjectionRequest {
            name: "churn".into(),
        }))
        .await
        .unwrap()
        .into_inner()
        .build
        .unwrap()
        .tree;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let list = admin
            .list_projections(crm.auth(v1::ListProjectionsRequest {}))
            .await
            .unwrap()
            .into_inner();
        let churn = list.projections.iter().find(|p| p.name == "churn").unwrap();
        if churn.builds.len() == 1 && churn.builds[0].tree == started {
            return;
        }
        assert!(Instant::now() < deadline, "rebuild not served: {churn:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn at_risk_pages_cover_every_customer_in_order(crm: &Crm, model: &v1::ChurnModel) {
    let mut churn = v1::churn_service_client::ChurnServiceClient::new(crm.channel().await);
    let mut seen = BTreeSet::new();
    let mut last = f64::INFINITY;
    let mut token = String::new();
    let mut snapshot = None;
    loop {
        let page = churn
            .list_at_risk(crm.auth(v1::ListAtRiskRequest {
                page_size: 700,
                page_token: token.clone(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(page.model_id, model.model_id);
        // Every page from one snapshot.
        let this = (page.as_of, page.position, page.total);
        assert!(snapshot.get_or_insert(this) == &this);
        for c in &page.customers {
            assert!(c.value_at_risk <= last, "ordered by value at risk");
            last = c.value_at_risk;
            assert!((c.value_at_risk - c.clv * (1.0 - c.p_alive)).abs() < 1e-6);
            assert!(
                seen.insert(c.customer_id.clone()),
                "{} twice",
                c.customer_id
            );
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let (_, _, total) = snapshot.unwrap();
    assert_eq!(seen.len() as u64, total);
    assert!(total >= model.customers, "everyone who bought by now");

    // Only the high band, ordered by risk; another order on a token is refused.
    let high = churn
        .list_at_risk(crm.auth(v1::ListAtRiskRequest {
            band: v1::RiskBand::High.into(),
            order_by: v1::AtRiskOrder::Risk.into(),
            page_size: 1000,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(!high.customers.is_empty());
    assert!(
        high.customers
            .iter()
            .all(|c| c.band() == v1::RiskBand::High)
    );
    assert!(
        high.customers
            .windows(2)
            .all(|w| w[0].risk_score >= w[1].risk_score)
    );
    if !high.next_page_token.is_empty() {
        let refused = churn
            .list_at_risk(crm.auth(v1::ListAtRiskRequest {
                page_token: high.next_page_token,
                ..Default::default()
            }))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    }
}

async fn one_customer_follows_the_formulas(crm: &Crm, model: &v1::ChurnModel, end: i64) {
    let mut churn = v1::churn_service_client::ChurnServiceClient::new(crm.channel().await);
    let mut queries = v1::query_service_client::QueryServiceClient::new(crm.channel().await);
    let top = churn
        .list_at_risk(crm.auth(v1::ListAtRiskRequest {
            page_size: 1,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .customers
        .remove(0);
    let risk = churn
        .get_customer_risk(crm.auth(v1::GetCustomerRiskRequest {
            customer_id: top.customer_id.clone(),
            as_of: ts(end),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let b = model.bgnbd.unwrap();
    let m = BgNbd {
        r: b.r,
        alpha: b.alpha,
        a: b.a,
        b: b.b,
    };
    let s = Stats {
        x: risk.x,
        t_x: risk.t_x,
        t: risk.t,
    };
    assert!((risk.p_alive - m.p_alive(s)).abs() < 1e-12, "{risk:?}");
    assert!((risk.expected_transactions - m.expected(s, 90.0)).abs() < 1e-9);
    assert!((risk.base_risk - (1.0 - risk.p_alive)).abs() < 1e-12);
    assert_eq!(risk.horizon_days, 90);

    // The 360 view carries the served model's figures for the customer now.
    let view = queries
        .get_customer360(crm.auth(v1::GetCustomer360Request {
            customer_id: top.customer_id.clone(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let p = view
        .predictions
        .expect("predictions under the served model");
    assert_eq!(p.model_version, model.model_id);
    assert!((p.p_alive - top.p_alive).abs() < 1e-6, "{p:?} vs {top:?}");
    assert_eq!(p.band, top.band);

    // Before any purchase (and for a customer the store does not know): NOT_FOUND.
    let before = churn
        .get_customer_risk(crm.auth(v1::GetCustomerRiskRequest {
            customer_id: top.customer_id.clone(),
            as_of: ts(0),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(before.code(), Code::NotFound, "{before:?}");
    assert!(before.message().contains("no purchase"), "{before:?}");
    let bad = churn
        .get_customer_risk(crm.auth(v1::GetCustomerRiskRequest {
            customer_id: top.customer_id,
            horizon_days: 5_000,
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("horizon_days"), "{bad:?}");
}

/// The CDNOW cohort of the BG/NBD paper (2,357 customers, calibration through
/// 1997-09-30) written as orders through the ingest API: a customer with statistics
/// (x, t_x, T) in weeks gets a first order T weeks before the calibration end's day,
/// x - 1 repeat orders on the days after it and the last one t_x weeks after it, each
/// repeat order worth the customer's mean repeat spend. Fitted in weeks through
/// FitModel, the models give the published estimates to 1%.
#[tokio::test]
async fn the_published_cdnow_estimates_are_reproduced_through_the_api() {
    const DAY: i64 = 86_400_000_000;
    let calibration_day = 10_134; // 1997-09-30
    let crm = Crm::start(
        &[
            "--dev",
            "--churn-time-unit",
            "week",
            "--churn-refit-every-secs",
            "0",
        ],
        tempfile::tempdir().unwrap(),
    );
    let mut requests = Vec::new();
    let csv = include_str!("../../../../projections/crm-churn/tests/data/cdnow_summary.csv");
    let mut customer1 = None;
    for line in csv.lines().skip(1) {
        let f: Vec<f64> = line.split(',').map(|v| v.parse().unwrap()).collect();
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let (n, x, t_x, t) = (
            f[0] as u128,
            f[1] as i64,
            (f[2] * 7.0).round() as i64,
            (f[3] * 7.0).round() as i64,
        );
        #[allow(clippy::cast_possible_truncation)]
        let repeat_cents = (f[4] * 100.0).round() as i64;
        let customer = uuid::Uuid::from_u128(n).to_string();
        customer1.get_or_insert((customer.clone(), f[1], f[2], f[3]));
        let first = calibration_day - t;
        // Noon of each day: the models count UTC days.
        let at = |day: i64| {
            Some(v1::CommandOptions {
                occurred_at: ts(day * DAY + DAY / 2),
                ..Default::default()
            })
        };
        requests.push(v1::ingest_request::Command::RegisterCustomer(
            v1::RegisterCustomerRequest {
                options: at(first),
                customer_id: customer.clone(),
                profile: Some(v1::Profile {
                    given_name: format!("cdnow {n}"),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ));
        assert!(
            x == 0 || t_x >= x,
            "customer {n}: {x} repeat days in {t_x} days"
        );
        let days = std::iter::once((first, 1_000))
            .chain((1..x).map(|k| (first + k, repeat_cents)))
            .chain((x > 0).then_some((first + t_x, repeat_cents)));
        for (k, (day, cents)) in days.enumerate() {
            requests.push(v1::ingest_request::Command::PlaceOrder(
                v1::PlaceOrderRequest {
                    options: at(day),
                    customer_id: customer.clone(),
                    order_id: uuid::Uuid::from_u128((n << 32) | k as u128).to_string(),
                    sales_channel: "web".into(),
                    currency: "EUR".into(),
                    lines: vec![v1::OrderLine {
                        sku: "cd".into(),
                        quantity: 1,
                        unit_price_minor: cents,
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            ));
        }
    }
    let requests: Vec<_> = requests
        .into_iter()
        .zip(1..)
        .map(|(command, sequence)| {
            Ok::<_, String>(v1::IngestRequest {
                sequence,
                command: Some(command),
            })
        })
        .collect();
    let report = crm_datagen::ingest::ingest(
        crm.channel().await,
        crm.token.as_deref().unwrap(),
        requests.into_iter(),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(report.failed, 0, "{:#?}", report.failures);

    let mut churn = v1::churn_service_client::ChurnServiceClient::new(crm.channel().await);
    let model = churn
        .fit_model(crm.auth(v1::FitModelRequest {
            calibration_end: ts(calibration_day * DAY),
            serve: true,
            consistency: Some(v1::Consistency {
                min_position: report.max_position,
            }),
        }))
        .await
        .unwrap()
        .into_inner();
    eprintln!("CDNOW through the API: {model:?}");
    assert_eq!(model.time_unit, "week");
    assert_eq!((model.customers, model.repeat_customers), (2357, 946));
    let (b, g) = (model.bgnbd.unwrap(), model.gamma_gamma.unwrap());
    // Fader, Hardie & Lee (2005); Hardie's note 025 (gamma in dollars, here cents).
    for (name, got, want) in [
        ("r", b.r, 0.243),
        ("alpha", b.alpha, 4.414),
        ("a", b.a, 0.793),
        ("b", b.b, 2.426),
        ("p", g.p, 6.25),
        ("q", g.q, 3.74),
        ("gamma", g.gamma / 100.0, 15.44),
    ] {
        assert!(within(got, want, 0.01), "{name} {got} vs {want}");
    }
    assert!((model.log_likelihood - -9582.4).abs() < 1.0, "{model:?}");

    // Customer 1 (x 2, t_x 30.43, T 38.86 weeks): the statistics in weeks, and P(alive)
    // by the formula with the fitted parameters.
    let (id, x, t_x, t) = customer1.unwrap();
    let risk = churn
        .get_customer_risk(crm.auth(v1::GetCustomerRiskRequest {
            customer_id: id,
            as_of: ts(calibration_day * DAY + DAY / 2),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(risk.time_unit, "week");
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let x = x as u32;
    assert_eq!(risk.x, x);
    assert!(
        (risk.t_x - t_x).abs() < 0.005 && (risk.t - t).abs() < 0.005,
        "{risk:?}"
    );
    let m = BgNbd {
        r: b.r,
        alpha: b.alpha,
        a: b.a,
        b: b.b,
    };
    let p = m.p_alive(Stats {
        x: risk.x,
        t_x: risk.t_x,
        t: risk.t,
    });
    assert!((risk.p_alive - p).abs() < 1e-12, "{} vs {p}", risk.p_alive);
    assert!(crm.stop().await.success());
}
