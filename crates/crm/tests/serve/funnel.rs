//! `FunnelService` over gRPC: the funnel of deals written through the command API, with
//! read-your-writes, at the present and at a past moment.

use crm_proto::v1;

use crate::support::{Crm, id, register};

#[tokio::test]
async fn the_pipeline_funnel_answers_what_the_commands_wrote() {
    let crm = Crm::dev();
    let mut c = crm.client().await;
    let mut f = v1::funnel_service_client::FunnelServiceClient::new(crm.channel().await);
    let customer = id();
    let registered = c
        .register_customer(crm.auth(v1::RegisterCustomerRequest {
            customer_id: customer.clone(),
            ..register(&id(), "ann@example.com")
        }))
        .await
        .unwrap()
        .into_inner();
    let deals: Vec<String> = (0..3).map(|_| id()).collect();
    for (i, deal) in deals.iter().enumerate() {
        c.open_opportunity(crm.auth(v1::OpenOpportunityRequest {
            customer_id: customer.clone(),
            opportunity_id: deal.clone(),
            name: format!("deal {i}"),
            amount: Some(v1::Money {
                minor: 100_000 * (i as i64 + 1),
                currency: "EUR".into(),
            }),
            ..Default::default()
        }))
        .await
        .unwrap();
    }
    c.move_opportunity_stage(crm.auth(v1::MoveOpportunityStageRequest {
        customer_id: customer.clone(),
        opportunity_id: deals[0].clone(),
        stage: "proposal".into(),
        ..Default::default()
    }))
    .await
    .unwrap();
    c.win_opportunity(crm.auth(v1::WinOpportunityRequest {
        customer_id: customer.clone(),
        opportunity_id: deals[0].clone(),
        ..Default::default()
    }))
    .await
    .unwrap();
    let last = c
        .lose_opportunity(crm.auth(v1::LoseOpportunityRequest {
            customer_id: customer.clone(),
            opportunity_id: deals[1].clone(),
            reason: "price".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();

    let now = f
        .get_pipeline_funnel(crm.auth(v1::GetPipelineFunnelRequest {
            consistency: Some(v1::Consistency {
                min_position: last.position,
            }),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(now.position >= last.position, "read-your-writes");
    assert_eq!(now.pipeline, "sales", "the default pipeline");
    assert_eq!((now.deals, now.open, now.won, now.lost), (3, 1, 1, 1));
    assert_eq!(now.win_rate, Some(0.5));
    let reached: Vec<(String, u64)> = now
        .stages
        .iter()
        .map(|s| (s.stage.clone(), s.reached))
        .collect();
    assert_eq!(reached[0], ("initial_contact".into(), 3));
    let proposal = reached.iter().find(|(s, _)| s == "proposal").unwrap();
    assert_eq!(proposal.1, 1, "only the won deal got to proposal");
    assert_eq!(now.won_amount[0].minor, 100_000);
    assert_eq!(now.lost_amount[0].minor, 200_000);
    assert_eq!(now.loss_reasons[0].reason, "price");

    // Before the customer was registered, there was no deal.
    let before = f
        .get_pipeline_funnel(crm.auth(v1::GetPipelineFunnelRequest {
            as_of: Some(prost_types::Timestamp {
                seconds: 946_684_800,
                nanos: 0,
            }),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(before.deals, 0);
    assert!(registered.position > 0);

    // The forecast of the month around today: the win counts as closed. Then deal 2 gets
    // an expected close inside it, and moves in.
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let secs = |d: i64| prost_types::Timestamp {
        seconds: i64::try_from(now_s).unwrap() + d * 86_400,
        nanos: 0,
    };
    let before_update = prost_types::Timestamp::from(std::time::SystemTime::now());
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let updated = c
        .update_opportunity(crm.auth(v1::UpdateOpportunityRequest {
            customer_id: customer.clone(),
            opportunity_id: deals[2].clone(),
            expected_close: Some(secs(10)),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let forecast = f
        .get_forecast(crm.auth(v1::GetForecastRequest {
            period_start: Some(secs(-15)),
            period_end: Some(secs(15)),
            compare_to: Some(before_update),
            consistency: Some(v1::Consistency {
                min_position: updated.position,
            }),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let all = &forecast.groups[0];
    assert_eq!(all.group, "all");
    let eur = &all.rollups[0];
    assert_eq!(
        (eur.closed, eur.commit, eur.best_case, eur.pipeline),
        (100_000, 100_000, 100_000, 300_000)
    );
    assert_eq!(eur.weighted, 30_000, "3000.00 at the first stage's 10%");
    assert_eq!(forecast.movements.len(), 1, "{:?}", forecast.movements);
    assert_eq!(forecast.movements[0].opportunity_id, deals[2]);
    assert_eq!(
        forecast.movements[0].kind(),
        v1::ForecastMovementKind::MovedIn
    );
    let backwards = f
        .get_forecast(crm.auth(v1::GetForecastRequest {
            period_start: Some(secs(15)),
            period_end: Some(secs(-15)),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(backwards.code(), tonic::Code::InvalidArgument);

    let unknown = f
        .get_pipeline_funnel(crm.auth(v1::GetPipelineFunnelRequest {
            pipeline: "no-such-pipeline".into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    assert!(unknown.message().contains("pipeline"), "{unknown:?}");
    drop((c, f));
    assert!(crm.stop().await.success());
}
