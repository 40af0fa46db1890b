//! The lead funnel, campaign performance and deal attribution of a small business,
//! every figure computed by hand, at two cuts (day 7 and day 15); and the same figures
//! when every aggregate's commands after its first arrive backdated, in reverse
//! business-time order.
//!
//! The business (days from T0):
//! - campaigns: A "Spring email" (created d0, waves d1 to c1-c4 and d2 to c4, c5 with one
//!   left out; costs 20,000 d3 and 10,000 d12), B "SMS promo" (created d5, sent d6 to c1
//!   and c6, cost 5,000 d6), C "Webinar" (created d8, never sent, no cost);
//! - leads: L1 web-form/A (captured d1, contacted d2, qualified d4, converted d6 into c1
//!   with deal D1), L2 web-form/A (d2, contacted d3, disqualified d5 "no budget"), L3
//!   referral (d2, contacted d4, qualified d8), L4 referral/B (d6, converted d9 into c6
//!   with no step between), L5 web-form (d3, disqualified d4 "spam"), L6 referral/B
//!   (d10, contacted d11);
//! - members: c1 on A delivered d1, opened and clicked d2, converted d4 reporting order
//!   O1 (30,000, placed d4 with A as attribution: counted once); c2 on A delivered d1,
//!   unsubscribed d3; c3 on A delivered d1, opened d9; c4 on A delivered d2; c5 on A
//!   converted d13 reporting 12,000 without an order; c1 on B delivered d6, clicked d7;
//!   c6 placed O2 (8,000) with B as attribution d10;
//! - deals: D1 (c1, from L1, no campaign link) opened d6, won d12 for 50,000; D2 (c6,
//!   campaign B) opened d9, lost d11; D3 (c2, campaign C) opened d3, won d5 for 10,000;
//! - customers: c1 (lead L1, team north), c6 (lead L4, team south), c2 (acquired through
//!   paid-social, team north, moved to team south d10).

mod support;

use crm_domain::{
    Acquisition, CampaignCreated, CampaignEvent, CampaignId, CampaignResponse, Channel, Currency,
    CustomerEvent, CustomerId, CustomerRegistered, DomainEvent, ForecastCategory, LeadCaptured,
    LeadEvent, LeadId, Money, OpportunityId, OpportunityOpened, OrderId, OrderPlaced, Profile,
    ProfilePatch, SkipReason, SkippedRecipient,
};
use crm_funnel::{
    CampaignFigures, DAY_MICROS, DealSelection, DealStatus, FunnelFilter, LeadFilter, LeadGroupBy,
    ResponseKind, campaign_performance, campaigns_at, deals_at, lead_funnel, leads_at, members_at,
};
use crm_projection::MemState;
use uuid::Uuid;

const T0: i64 = 1_767_225_600 * 1_000_000;

fn day(d: i64) -> i64 {
    T0 + d * DAY_MICROS
}

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::parse("EUR").unwrap())
}

fn c(n: u128) -> CustomerId {
    CustomerId(Uuid::from_u128(n))
}
fn campaign(n: u128) -> CampaignId {
    CampaignId(Uuid::from_u128(200 + n))
}
fn lead(n: u128) -> LeadId {
    LeadId(Uuid::from_u128(300 + n))
}
fn deal(n: u128) -> OpportunityId {
    OpportunityId(Uuid::from_u128(100 + n))
}
fn order(n: u128) -> OrderId {
    OrderId(Uuid::from_u128(400 + n))
}

const A: u128 = 1;
const B: u128 = 2;
const C: u128 = 3;

fn created(n: u128, name: &str, channel: Channel, budget: Option<i64>) -> DomainEvent {
    DomainEvent::Campaign(
        campaign(n),
        CampaignEvent::Created(CampaignCreated {
            name: name.into(),
            channel,
            segment: "all".into(),
            budget: budget.map(eur),
        }),
    )
}

fn sent(n: u128, wave: u32, to: &[u128], skipped: &[u128]) -> DomainEvent {
    DomainEvent::Campaign(
        campaign(n),
        CampaignEvent::Sent {
            wave,
            recipients: to.iter().map(|r| c(*r)).collect(),
            skipped: skipped
                .iter()
                .map(|r| SkippedRecipient {
                    customer_id: c(*r),
                    reason: SkipReason::NoConsent,
                })
                .collect(),
        },
    )
}

fn cost(n: u128, minor: i64) -> DomainEvent {
    DomainEvent::Campaign(
        campaign(n),
        CampaignEvent::CostRecorded {
            amount: eur(minor),
            note: "fees".into(),
        },
    )
}

fn captured(n: u128, source: &str, via: Option<u128>) -> DomainEvent {
    DomainEvent::Lead(
        lead(n),
        LeadEvent::Captured(LeadCaptured {
            source: source.into(),
            campaign: via.map(campaign),
            given_name: "Pat".into(),
            family_name: "Doe".into(),
            email: None,
            phone: None,
            interest: "kitchen".into(),
        }),
    )
}

fn lead_event(n: u128, e: LeadEvent) -> DomainEvent {
    DomainEvent::Lead(lead(n), e)
}

fn contacted(n: u128) -> DomainEvent {
    lead_event(
        n,
        LeadEvent::Contacted {
            channel: Channel::Phone,
            agent: None,
        },
    )
}

fn converted(n: u128, into: u128, opportunity: Option<u128>) -> DomainEvent {
    lead_event(
        n,
        LeadEvent::Converted {
            customer_id: c(into),
            new_customer: true,
            opportunity_id: opportunity.map(deal),
        },
    )
}

fn customer(n: u128, e: CustomerEvent) -> DomainEvent {
    DomainEvent::Customer(c(n), e)
}

fn registered(n: u128, team: &str, from: Option<u128>, source: Option<&str>) -> DomainEvent {
    customer(
        n,
        CustomerEvent::Registered(CustomerRegistered {
            profile: Profile::default(),
            acquisition: source.map(|s| Acquisition {
                source: s.into(),
                medium: "cpc".into(),
                campaign: None,
            }),
            owner: None,
            team: Some(team.into()),
            lead: from.map(lead),
        }),
    )
}

fn response(n: u128, on: u128, response: CampaignResponse) -> DomainEvent {
    customer(
        n,
        CustomerEvent::CampaignResponseRecorded {
            campaign_id: campaign(on),
            response,
        },
    )
}

fn placed(n: u128, o: u128, minor: i64, via: u128) -> DomainEvent {
    customer(
        n,
        CustomerEvent::OrderPlaced(OrderPlaced {
            order_id: order(o),
            sales_channel: "web".into(),
            lines: Vec::new(),
            discount_minor: 0,
            tax_minor: 0,
            shipping_minor: 0,
            total: eur(minor),
            campaign: Some(campaign(via)),
        }),
    )
}

fn opened(n: u128, of: u128, minor: i64, from: Option<u128>, via: Option<u128>) -> DomainEvent {
    customer(
        of,
        CustomerEvent::OpportunityOpened(OpportunityOpened {
            opportunity_id: deal(n),
            name: format!("deal {n}"),
            pipeline: "sales".into(),
            stage: "lead_in".into(),
            probability_pct: 10,
            forecast: ForecastCategory::Pipeline,
            amount: eur(minor),
            owner: Some("kim".into()),
            expected_close: None,
            lead: from.map(lead),
            campaign: via.map(campaign),
        }),
    )
}

fn won(n: u128, of: u128, minor: i64) -> DomainEvent {
    customer(
        of,
        CustomerEvent::OpportunityWon {
            opportunity_id: deal(n),
            amount: eur(minor),
            stage: None,
        },
    )
}

fn business() -> Vec<(i64, DomainEvent)> {
    use CampaignResponse as R;
    vec![
        (0, created(A, "Spring email", Channel::Email, Some(100_000))),
        (1, sent(A, 1, &[1, 2, 3, 4], &[])),
        (1, captured(1, "web-form", Some(A))),
        (1, response(1, A, R::Delivered)),
        (1, response(2, A, R::Delivered)),
        (1, response(3, A, R::Delivered)),
        (2, sent(A, 2, &[4, 5], &[9])),
        (2, response(4, A, R::Delivered)),
        (2, contacted(1)),
        (2, captured(2, "web-form", Some(A))),
        (2, captured(3, "referral", None)),
        (2, response(1, A, R::Opened)),
        (2, response(1, A, R::Clicked)),
        (3, cost(A, 20_000)),
        (3, contacted(2)),
        (3, captured(5, "web-form", None)),
        (3, registered(2, "north", None, Some("paid-social"))),
        (3, opened(3, 2, 10_000, None, Some(C))),
        (3, response(2, A, R::Unsubscribed)),
        (4, lead_event(1, LeadEvent::Qualified { note: "ok".into() })),
        (4, contacted(3)),
        (
            4,
            lead_event(
                5,
                LeadEvent::Disqualified {
                    reason: "spam".into(),
                },
            ),
        ),
        (4, placed(1, 1, 30_000, A)),
        (
            4,
            response(
                1,
                A,
                R::Converted {
                    revenue: Some(eur(30_000)),
                    order: Some(order(1)),
                },
            ),
        ),
        (5, created(B, "SMS promo", Channel::Sms, None)),
        (
            5,
            lead_event(
                2,
                LeadEvent::Disqualified {
                    reason: "no budget".into(),
                },
            ),
        ),
        (5, won(3, 2, 10_000)),
        (6, sent(B, 1, &[1, 6], &[])),
        (6, cost(B, 5_000)),
        (6, captured(4, "referral", Some(B))),
        (6, converted(1, 1, Some(1))),
        (6, registered(1, "north", Some(1), None)),
        (6, opened(1, 1, 50_000, Some(1), None)),
        (6, response(1, B, R::Delivered)),
        (7, response(1, B, R::Clicked)),
        (8, created(C, "Webinar", Channel::Email, None)),
        (8, lead_event(3, LeadEvent::Qualified { note: "ok".into() })),
        (9, converted(4, 6, None)),
        (9, registered(6, "south", Some(4), None)),
        (9, opened(2, 6, 20_000, None, Some(B))),
        (9, response(3, A, R::Opened)),
        (10, captured(6, "referral", Some(B))),
        (10, placed(6, 2, 8_000, B)),
        (
            10,
            customer(
                2,
                CustomerEvent::ProfileUpdated(ProfilePatch {
                    team: Some(Some("south".into())),
                    ..ProfilePatch::default()
                }),
            ),
        ),
        (11, contacted(6)),
        (
            11,
            customer(
                6,
                CustomerEvent::OpportunityLost {
                    opportunity_id: deal(2),
                    reason: "price".into(),
                    stage: String::new(),
                },
            ),
        ),
        (12, cost(A, 10_000)),
        (12, won(1, 1, 50_000)),
        (
            13,
            response(
                5,
                A,
                R::Converted {
                    revenue: Some(eur(12_000)),
                    order: None,
                },
            ),
        ),
    ]
}

/// Folds the events in the given (stream) order.
fn fold(events: &[(i64, DomainEvent)]) -> MemState {
    let timed: Vec<(i64, DomainEvent)> = events.iter().map(|(d, e)| (day(*d), e.clone())).collect();
    support::fold(&timed)
}

/// The same events, each aggregate's first kept first and the rest of its events
/// recorded in reverse business-time order (every one backdated behind a later one).
fn backdated(events: &[(i64, DomainEvent)]) -> Vec<(i64, DomainEvent)> {
    let creates = |e: &DomainEvent| {
        matches!(
            e,
            DomainEvent::Customer(_, CustomerEvent::OpportunityOpened(_))
                | DomainEvent::Lead(_, LeadEvent::Captured(_))
                | DomainEvent::Campaign(_, CampaignEvent::Created(_))
        )
    };
    let mut out = events.to_vec();
    out.sort_by_key(|(d, e)| (format!("{:?}", e.aggregate()), !creates(e), -d));
    out
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

fn performance(state: &MemState, at: i64) -> Vec<CampaignFigures> {
    let deals = deals_at(state, at).unwrap();
    let leads = leads_at(state, at).unwrap();
    campaign_performance(
        &campaigns_at(state, at).unwrap(),
        &members_at(state, at).unwrap(),
        &leads,
        &deals,
    )
}

fn assert_lead_funnel_day_7(state: &MemState) {
    let leads = leads_at(state, day(7)).unwrap();
    let all = &lead_funnel(&leads, &LeadFilter::default(), LeadGroupBy::Nothing)["all"];
    assert_eq!(
        (all.captured, all.contacted, all.qualified, all.converted),
        (5, 3, 1, 1)
    );
    assert_eq!((all.disqualified, all.open), (2, 2));
    assert_eq!(
        all.disqualified_by_reason,
        [("no budget".to_owned(), 1), ("spam".to_owned(), 1)]
    );
    assert!(close(all.contact_rate.unwrap(), 0.6));
    assert!(close(all.qualification_rate.unwrap(), 1.0 / 3.0));
    assert!(close(all.conversion_from_qualified.unwrap(), 1.0));
    assert!(close(all.conversion_rate.unwrap(), 0.2));
    // Captured to contacted: L1 1 day, L2 1, L3 2.
    let t = &all.captured_to_contacted;
    assert!(t.count == 3 && close(t.median_days, 1.0) && close(t.p90_days, 2.0));
    assert!(close(t.mean_days, 4.0 / 3.0));
    assert!(close(all.contacted_to_qualified.median_days, 2.0));
    assert!(close(all.qualified_to_converted.median_days, 2.0));
    assert!(close(all.captured_to_converted.median_days, 5.0));

    let by_source = lead_funnel(&leads, &LeadFilter::default(), LeadGroupBy::Source);
    let web = &by_source["web-form"];
    assert_eq!(
        (web.captured, web.contacted, web.converted, web.disqualified),
        (3, 2, 1, 2)
    );
    let referral = &by_source["referral"];
    assert_eq!(
        (referral.captured, referral.contacted, referral.open),
        (2, 1, 2)
    );
}

fn assert_lead_funnel_day_15(state: &MemState) {
    let leads = leads_at(state, day(15)).unwrap();
    let all = &lead_funnel(&leads, &LeadFilter::default(), LeadGroupBy::Nothing)["all"];
    // L4 converted without contact or qualification: it reached both.
    assert_eq!(
        (all.captured, all.contacted, all.qualified, all.converted),
        (6, 5, 3, 2)
    );
    assert_eq!((all.disqualified, all.open), (2, 2));
    let t = &all.captured_to_contacted; // 1, 1, 2, 1 (L6)
    assert!(close(t.median_days, 1.0) && close(t.p90_days, 2.0) && close(t.mean_days, 1.25));
    let t = &all.contacted_to_qualified; // L1 2, L3 4
    assert!(close(t.median_days, 2.0) && close(t.p90_days, 4.0) && close(t.mean_days, 3.0));
    assert_eq!(
        all.qualified_to_converted.count, 1,
        "L4 was never qualified"
    );
    let t = &all.captured_to_converted; // L1 5, L4 3
    assert!(close(t.median_days, 3.0) && close(t.mean_days, 4.0));

    let by_campaign = lead_funnel(&leads, &LeadFilter::default(), LeadGroupBy::Campaign);
    let b = &by_campaign[&Uuid::from_u128(200 + B).to_string()];
    assert_eq!(
        (b.captured, b.contacted, b.qualified, b.converted),
        (2, 2, 1, 1)
    );
    assert_eq!(
        by_campaign[""].captured, 2,
        "L3 and L5 came from no campaign"
    );
    let filtered = LeadFilter {
        source: Some("referral".into()),
        captured_from: Some(day(5)),
        ..LeadFilter::default()
    };
    let f = &lead_funnel(&leads, &filtered, LeadGroupBy::Nothing)["all"];
    assert_eq!((f.captured, f.converted), (2, 1), "L4 and L6");
}

fn assert_campaigns_day_7(state: &MemState) {
    let ranked = performance(state, day(7));
    let names: Vec<&str> = ranked.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["Spring email", "SMS promo"], "C is not created yet");
    let a = &ranked[0];
    assert_eq!((a.sends, a.recipients, a.skipped), (6, 5, 1));
    let kinds =
        |f: &CampaignFigures| ResponseKind::ALL.map(|k| f.responses.get(&k).copied().unwrap_or(0));
    // delivered, opened, clicked, unsubscribed, converted
    assert_eq!(kinds(a), [4, 1, 1, 1, 1]);
    assert_eq!(a.responders, 1);
    assert!(close(a.response_rate.unwrap(), 0.2));
    assert_eq!(a.order_revenue["EUR"], 30_000, "O1 counted once");
    assert_eq!(
        (a.leads, a.opportunities, a.won),
        (2, 1, 0),
        "D1 through L1"
    );
    assert_eq!(a.cost_minor, 20_000);
    assert!(close(a.roi.unwrap(), 0.5));
    assert!(close(a.cost_per_lead.unwrap(), 10_000.0));
    assert_eq!(a.cost_per_won_deal, None);
    let b = &ranked[1];
    assert_eq!(kinds(b), [1, 0, 1, 0, 0]);
    assert!(close(b.response_rate.unwrap(), 0.5));
    assert_eq!((b.leads, b.opportunities), (1, 0));
    assert!(close(b.roi.unwrap(), -1.0));
}

fn assert_campaigns_day_15(state: &MemState) {
    let ranked = performance(state, day(15));
    let names: Vec<&str> = ranked.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["Spring email", "SMS promo", "Webinar"]);
    let a = &ranked[0];
    assert_eq!((a.responders, a.cost_minor), (3, 30_000));
    assert!(close(a.response_rate.unwrap(), 0.6));
    assert_eq!(a.order_revenue["EUR"], 42_000);
    assert_eq!((a.won, a.won_revenue["EUR"]), (1, 50_000));
    assert!(close(a.roi.unwrap(), 62_000.0 / 30_000.0));
    assert!(close(a.cost_per_lead.unwrap(), 15_000.0));
    assert!(close(a.cost_per_won_deal.unwrap(), 30_000.0));
    let b = &ranked[1];
    assert_eq!((b.leads, b.opportunities, b.won), (2, 1, 0));
    assert_eq!(b.order_revenue["EUR"], 8_000);
    assert_eq!(b.responders, 1, "c6 only placed an order");
    assert!(close(b.roi.unwrap(), 0.6));
    assert!(close(b.cost_per_lead.unwrap(), 2_500.0));
    let w = &ranked[2];
    assert_eq!((w.recipients, w.response_rate, w.roi), (0, None, None));
    assert_eq!(
        (w.opportunities, w.won, w.won_revenue["EUR"]),
        (1, 1, 10_000)
    );
}

fn assert_attribution(state: &MemState) {
    let at7 = deals_at(state, day(7)).unwrap();
    let at15 = deals_at(state, day(15)).unwrap();
    let find = |deals: &[crm_funnel::DealAt], n: u128| {
        deals
            .iter()
            .find(|d| d.id == deal(n).0.into_bytes())
            .cloned()
            .unwrap()
    };
    let d1 = find(&at15, 1);
    assert_eq!(d1.team.as_deref(), Some("north"));
    assert_eq!(d1.source.as_deref(), Some("web-form"));
    assert_eq!(d1.campaign, Some(campaign(A).0.into_bytes()), "through L1");
    let d2 = find(&at15, 2);
    assert_eq!(
        d2.source.as_deref(),
        Some("referral"),
        "the customer's lead"
    );
    assert_eq!(d2.team.as_deref(), Some("south"));
    assert_eq!(find(&at7, 3).team.as_deref(), Some("north"));
    let d3 = find(&at15, 3);
    assert_eq!(d3.team.as_deref(), Some("south"), "moved on day 10");
    assert_eq!(d3.source.as_deref(), Some("paid-social"));

    let north = FunnelFilter {
        team: Some("north".into()),
        ..FunnelFilter::default()
    };
    let ids = |deals: &[crm_funnel::DealAt], f: &FunnelFilter| -> Vec<[u8; 16]> {
        deals.iter().filter(|d| f.admits(d)).map(|d| d.id).collect()
    };
    assert_eq!(ids(&at7, &north).len(), 2, "D1 and D3 on day 7");
    assert_eq!(ids(&at15, &north), [deal(1).0.into_bytes()]);
    let referral = FunnelFilter {
        source: Some("referral".into()),
        ..FunnelFilter::default()
    };
    assert_eq!(ids(&at15, &referral), [deal(2).0.into_bytes()]);

    let won = DealSelection {
        status: Some(DealStatus::Won),
        ..DealSelection::default()
    };
    let selected: Vec<[u8; 16]> = at15
        .iter()
        .filter(|d| won.selects(d, day(15)))
        .map(|d| d.id)
        .collect();
    assert_eq!(selected, [deal(1).0.into_bytes(), deal(3).0.into_bytes()]);
}

#[test]
fn the_lead_funnel_is_what_the_hand_computation_gives() {
    let state = fold(&business());
    assert_lead_funnel_day_7(&state);
    assert_lead_funnel_day_15(&state);
}

#[test]
fn campaign_performance_and_the_roi_ranking_are_what_the_hand_computation_gives() {
    let state = fold(&business());
    assert_campaigns_day_7(&state);
    assert_campaigns_day_15(&state);
}

#[test]
fn deals_are_attributed_to_team_lead_source_and_campaign_as_of_the_cut() {
    assert_attribution(&fold(&business()));
}

#[test]
fn backdated_commands_give_the_same_figures() {
    let events = backdated(&business());
    assert_ne!(events, business());
    let state = fold(&events);
    assert_lead_funnel_day_7(&state);
    assert_lead_funnel_day_15(&state);
    assert_campaigns_day_7(&state);
    assert_campaigns_day_15(&state);
    assert_attribution(&state);
}
