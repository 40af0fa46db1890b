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

fn eur(minor: i64) -> Option<v1::Money> {
    Some(v1::Money {
        minor,
        currency: "EUR".into(),
    })
}

/// Leads, a campaign and deals written through the command API; the lead funnel, the
/// campaign's performance and the deal list read back with read-your-writes, filters and
/// paging.
#[tokio::test]
#[allow(clippy::too_many_lines)]
async fn leads_campaigns_and_the_deal_list_answer_what_the_commands_wrote() {
    let crm = Crm::dev();
    let mut c = crm.client().await;
    let mut f = v1::funnel_service_client::FunnelServiceClient::new(crm.channel().await);
    let campaign = id();
    c.create_campaign(crm.auth(v1::CreateCampaignRequest {
        campaign_id: campaign.clone(),
        name: "Spring email".into(),
        channel: v1::Channel::Email.into(),
        segment: "all".into(),
        budget: eur(100_000),
        ..Default::default()
    }))
    .await
    .unwrap();
    c.record_campaign_cost(crm.auth(v1::RecordCampaignCostRequest {
        campaign_id: campaign.clone(),
        amount: eur(10_000),
        note: "fees".into(),
        ..Default::default()
    }))
    .await
    .unwrap();
    // L1 from the campaign: worked and converted into a new customer with a deal.
    let (l1, l2, converted, from_lead) = (id(), id(), id(), id());
    c.create_lead(crm.auth(v1::CreateLeadRequest {
        lead_id: l1.clone(),
        source: "web-form".into(),
        campaign_id: campaign.clone(),
        given_name: "Pat".into(),
        email: "pat@example.com".into(),
        interest: "kitchen".into(),
        ..Default::default()
    }))
    .await
    .unwrap();
    c.contact_lead(crm.auth(v1::ContactLeadRequest {
        lead_id: l1.clone(),
        channel: v1::Channel::Phone.into(),
        ..Default::default()
    }))
    .await
    .unwrap();
    c.qualify_lead(crm.auth(v1::QualifyLeadRequest {
        lead_id: l1.clone(),
        note: "budget confirmed".into(),
        ..Default::default()
    }))
    .await
    .unwrap();
    c.convert_lead(crm.auth(v1::ConvertLeadRequest {
        lead_id: l1.clone(),
        into: Some(v1::convert_lead_request::Into::NewCustomerId(
            converted.clone(),
        )),
        opportunity: Some(v1::ConversionOpportunity {
            opportunity_id: from_lead.clone(),
            name: "kitchen".into(),
            amount: eur(50_000),
            ..Default::default()
        }),
        ..Default::default()
    }))
    .await
    .unwrap();
    c.create_lead(crm.auth(v1::CreateLeadRequest {
        lead_id: l2.clone(),
        source: "referral".into(),
        given_name: "Sam".into(),
        email: "sam@example.com".into(),
        interest: "bath".into(),
        ..Default::default()
    }))
    .await
    .unwrap();
    c.disqualify_lead(crm.auth(v1::DisqualifyLeadRequest {
        lead_id: l2.clone(),
        reason: "spam".into(),
        ..Default::default()
    }))
    .await
    .unwrap();
    // A customer of team north with three deals, sent the campaign, who clicks and buys
    // with the campaign as attribution.
    let north = id();
    c.register_customer(crm.auth(v1::RegisterCustomerRequest {
        customer_id: north.clone(),
        team: "north".into(),
        consents: vec![v1::Consent {
            channel: v1::ConsentChannel::Email.into(),
            granted: true,
        }],
        consent_source: "web".into(),
        ..register(&id(), "nora@example.com")
    }))
    .await
    .unwrap();
    let deals: Vec<String> = (0..3).map(|_| id()).collect();
    for deal in &deals {
        c.open_opportunity(crm.auth(v1::OpenOpportunityRequest {
            customer_id: north.clone(),
            opportunity_id: deal.clone(),
            name: "upgrade".into(),
            amount: eur(30_000),
            ..Default::default()
        }))
        .await
        .unwrap();
    }
    c.win_opportunity(crm.auth(v1::WinOpportunityRequest {
        customer_id: north.clone(),
        opportunity_id: deals[0].clone(),
        ..Default::default()
    }))
    .await
    .unwrap();
    c.send_campaign(crm.auth(v1::SendCampaignRequest {
        campaign_id: campaign.clone(),
        recipients: vec![north.clone()],
        ..Default::default()
    }))
    .await
    .unwrap();
    c.record_campaign_response(crm.auth(v1::RecordCampaignResponseRequest {
        customer_id: north.clone(),
        campaign_id: campaign.clone(),
        kind: v1::CampaignResponseKind::Clicked.into(),
        ..Default::default()
    }))
    .await
    .unwrap();
    c.place_order(crm.auth(v1::PlaceOrderRequest {
        customer_id: north.clone(),
        order_id: id(),
        sales_channel: "web".into(),
        currency: "EUR".into(),
        lines: vec![v1::OrderLine {
            sku: "k1".into(),
            category: "kitchen".into(),
            quantity: 1,
            unit_price_minor: 20_000,
        }],
        campaign_id: campaign.clone(),
        ..Default::default()
    }))
    .await
    .unwrap();
    let last = c
        .win_opportunity(crm.auth(v1::WinOpportunityRequest {
            customer_id: converted.clone(),
            opportunity_id: from_lead.clone(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let consistency = Some(v1::Consistency {
        min_position: last.position,
    });

    let leads = f
        .get_lead_funnel(crm.auth(v1::GetLeadFunnelRequest {
            group_by: v1::LeadGroupBy::Source.into(),
            consistency,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(leads.position >= last.position, "read-your-writes");
    let groups: Vec<(&str, u64, u64, u64, u64)> = leads
        .groups
        .iter()
        .map(|g| {
            (
                g.group.as_str(),
                g.captured,
                g.qualified,
                g.converted,
                g.disqualified,
            )
        })
        .collect();
    assert_eq!(groups, [("referral", 1, 0, 0, 1), ("web-form", 1, 1, 1, 0)]);
    assert_eq!(leads.groups[0].disqualified_by_reason[0].reason, "spam");
    // In 2000 none of it had happened.
    let y2k = Some(prost_types::Timestamp {
        seconds: 946_684_800,
        nanos: 0,
    });
    let then = f
        .get_lead_funnel(crm.auth(v1::GetLeadFunnelRequest {
            as_of: y2k,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(then.groups.is_empty(), "{:?}", then.groups);
    let then = f
        .get_campaign_performance(crm.auth(v1::GetCampaignPerformanceRequest {
            as_of: y2k,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(then.campaigns.is_empty());

    let performance = f
        .get_campaign_performance(crm.auth(v1::GetCampaignPerformanceRequest {
            consistency,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let k = &performance.campaigns[0];
    assert_eq!((k.campaign_id.as_str(), k.rank), (campaign.as_str(), 1));
    assert_eq!((k.recipients, k.responders, k.leads), (1, 1, 1));
    assert_eq!((k.opportunities, k.won), (1, 1), "the deal from the lead");
    assert_eq!(k.won_revenue[0].minor, 50_000);
    assert_eq!(k.order_revenue[0].minor, 20_000);
    assert_eq!(k.cost.as_ref().unwrap().minor, 10_000);
    assert_eq!(k.roi, Some(6.0), "(50,000 + 20,000 - 10,000) / 10,000");
    assert_eq!(k.cost_per_won_deal, Some(10_000.0));

    // Every deal, two per page.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = f
            .list_deals(crm.auth(v1::ListDealsRequest {
                page_size: 2,
                page_token: token.clone(),
                consistency,
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(page.deals.len() <= 2);
        seen.extend(page.deals.into_iter().map(|d| d.opportunity_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let mut all: Vec<String> = deals.iter().chain([&from_lead]).cloned().collect();
    all.sort();
    assert_eq!(seen, all, "each deal once, in id order");

    let list = |filter: Option<v1::FunnelFilter>, state: v1::DealState| v1::ListDealsRequest {
        filter,
        state: state.into(),
        consistency,
        ..Default::default()
    };
    let north_deals = f
        .list_deals(crm.auth(list(
            Some(v1::FunnelFilter {
                team: "north".into(),
                ..Default::default()
            }),
            v1::DealState::Unspecified,
        )))
        .await
        .unwrap()
        .into_inner()
        .deals;
    assert_eq!(north_deals.len(), 3);
    assert!(north_deals.iter().all(|d| d.team == "north"));
    let won = f
        .list_deals(crm.auth(list(None, v1::DealState::Won)))
        .await
        .unwrap()
        .into_inner()
        .deals;
    let mut won_ids: Vec<&str> = won.iter().map(|d| d.opportunity_id.as_str()).collect();
    won_ids.sort_unstable();
    let mut want = vec![deals[0].as_str(), from_lead.as_str()];
    want.sort_unstable();
    assert_eq!(won_ids, want);
    let web = won.iter().find(|d| d.opportunity_id == from_lead).unwrap();
    assert_eq!(web.lead_source, "web-form");
    assert_eq!(web.campaign_id, campaign, "through its lead");
    let by_source = f
        .list_deals(crm.auth(list(
            Some(v1::FunnelFilter {
                lead_source: "web-form".into(),
                ..Default::default()
            }),
            v1::DealState::Unspecified,
        )))
        .await
        .unwrap()
        .into_inner()
        .deals;
    assert_eq!(by_source.len(), 1);

    let bad = f
        .list_deals(crm.auth(v1::ListDealsRequest {
            page_token: "00ff".into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().contains("page_token"), "{}", bad.message());
    let bad = f
        .list_deals(crm.auth(v1::ListDealsRequest {
            category: v1::ForecastCategory::Commit.into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert!(bad.message().contains("category"), "{}", bad.message());
    drop((c, f));
    assert!(crm.stop().await.success());
}
