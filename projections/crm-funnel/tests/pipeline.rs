//! The pipeline funnel of a small business, every figure computed by hand, at two cuts;
//! and the same figures when commands arrive backdated (out of business-time order).

mod support;

use crm_domain::{
    Currency, CustomerEvent, CustomerId, DomainEvent, ForecastCategory, Money, OpportunityId,
    OpportunityOpened,
};
use crm_funnel::{
    DAY_MICROS, DealAt, DealRecord, DealStatus, FunnelFilter, PipelineFunnel, keys, pipeline_funnel,
};
use crm_projection::load;
use uuid::Uuid;

const T0: i64 = 1_767_225_600 * 1_000_000;
const STAGES: [&str; 5] = [
    "lead_in",
    "qualified",
    "proposal",
    "negotiation",
    "contract",
];
const CUSTOMER: CustomerId = CustomerId(Uuid::from_u128(1));

fn day(d: i64) -> i64 {
    T0 + d * DAY_MICROS
}

fn deal(n: u128) -> OpportunityId {
    OpportunityId(Uuid::from_u128(100 + n))
}

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::parse("EUR").unwrap())
}

/// One event of the business: its business day and what happened.
type Happening = (i64, CustomerEvent);

fn opened(n: u128, stage: &str, minor: i64) -> CustomerEvent {
    CustomerEvent::OpportunityOpened(OpportunityOpened {
        opportunity_id: deal(n),
        name: format!("deal {n}"),
        pipeline: "sales".into(),
        stage: stage.into(),
        probability_pct: 10,
        forecast: ForecastCategory::Pipeline,
        amount: eur(minor),
        owner: Some(if n.is_multiple_of(2) { "kim" } else { "lee" }.into()),
        expected_close: None,
        lead: None,
        campaign: None,
    })
}

fn moved(n: u128, to: &str) -> CustomerEvent {
    CustomerEvent::OpportunityStageMoved {
        opportunity_id: deal(n),
        from_stage: String::new(),
        to_stage: to.into(),
        probability_pct: 50,
        forecast: ForecastCategory::BestCase,
    }
}

fn won(n: u128, minor: i64) -> CustomerEvent {
    CustomerEvent::OpportunityWon {
        opportunity_id: deal(n),
        amount: eur(minor),
        stage: None,
    }
}

fn lost(n: u128, reason: &str) -> CustomerEvent {
    CustomerEvent::OpportunityLost {
        opportunity_id: deal(n),
        reason: reason.into(),
        stage: String::new(),
    }
}

/// Six deals through five stages: skips (2 goes from lead_in to proposal; 4 opens at
/// qualified), a regression (3 goes back to lead_in), wins, losses.
fn business() -> Vec<Happening> {
    vec![
        (0, opened(1, "lead_in", 100_000)),
        (1, opened(2, "lead_in", 50_000)),
        (2, moved(1, "qualified")),
        (2, opened(3, "lead_in", 70_000)),
        (3, moved(2, "proposal")),
        (3, opened(4, "qualified", 200_000)),
        (4, moved(3, "qualified")),
        (4, opened(6, "lead_in", 40_000)),
        (5, moved(1, "proposal")),
        (5, opened(5, "lead_in", 30_000)),
        (6, moved(3, "lead_in")),
        (6, lost(5, "no budget")),
        (7, moved(4, "negotiation")),
        (8, lost(2, "price")),
        (9, moved(6, "qualified")),
        (10, won(1, 100_000)),
        (12, won(4, 200_000)),
    ]
}

/// Folds the happenings in the given order (their stream order) and returns every deal.
fn fold(happenings: &[Happening]) -> Vec<DealRecord> {
    let events: Vec<(i64, DomainEvent)> = happenings
        .iter()
        .map(|(d, e)| (day(*d), DomainEvent::Customer(CUSTOMER, e.clone())))
        .collect();
    let mut state = support::fold(&events);
    (1..=6)
        .map(|n| {
            load(&mut state, &keys::deal_key(deal(n).0.into_bytes()))
                .unwrap()
                .expect("deal stored")
        })
        .collect()
}

fn funnel_at(deals: &[DealRecord], at: i64, filter: &FunnelFilter) -> PipelineFunnel {
    let stages: Vec<String> = STAGES.iter().map(|s| (*s).to_owned()).collect();
    let deals: Vec<DealAt> = deals.iter().filter_map(|d| d.at(at)).collect();
    pipeline_funnel(&deals, "sales", &stages, at, 10 * DAY_MICROS, filter)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn the_funnel_as_of_day_20_is_what_the_hand_computation_gives() {
    let f = funnel_at(&fold(&business()), day(20), &FunnelFilter::default());
    assert_eq!(f.deals, 6);
    let reached: Vec<u64> = f.stages.iter().map(|s| s.reached).collect();
    assert_eq!(reached, [6, 5, 3, 1, 0]);
    let from_previous: Vec<Option<f64>> = f
        .stages
        .iter()
        .map(|s| s.conversion_from_previous)
        .collect();
    assert_eq!(from_previous[0], None);
    assert!(close(from_previous[1].unwrap(), 5.0 / 6.0));
    assert!(close(from_previous[2].unwrap(), 3.0 / 5.0));
    assert!(close(from_previous[3].unwrap(), 1.0 / 3.0));
    assert!(close(from_previous[4].unwrap(), 0.0));
    assert!(close(f.stages[2].conversion_from_first.unwrap(), 0.5));
    // Open now: 3 back in lead_in since day 6 (14 days), 6 in qualified since day 9 (11).
    assert_eq!(
        f.stages.iter().map(|s| s.open).collect::<Vec<_>>(),
        [1, 1, 0, 0, 0]
    );
    assert!(close(f.stages[0].latest.median_days, 14.0));
    assert!(close(f.stages[1].latest.median_days, 11.0));
    assert_eq!(
        f.stages.iter().map(|s| s.stale).collect::<Vec<_>>(),
        [1, 1, 0, 0, 0],
        "both open deals are over the 10-day limit"
    );
    // Cumulative time in lead_in: 1 -> 2, 2 -> 2, 3 -> 2 + 14, 5 -> 1, 6 -> 5 days.
    let c = &f.stages[0].cumulative;
    assert_eq!(c.count, 5);
    assert!(close(c.median_days, 2.0) && close(c.p90_days, 16.0) && close(c.mean_days, 5.2));
    // In qualified: 1 -> 3, 3 -> 2, 4 -> 4, 6 -> 11.
    let c = &f.stages[1].cumulative;
    assert!(close(c.median_days, 3.0) && close(c.p90_days, 11.0) && close(c.mean_days, 5.0));
    assert!(
        close(f.stages[3].cumulative.mean_days, 5.0),
        "4: day 7 to its win on day 12"
    );

    assert_eq!((f.open, f.won, f.lost), (2, 2, 2));
    assert!(close(f.win_rate.unwrap(), 0.5));
    assert_eq!(f.won_amount["EUR"], 300_000);
    assert_eq!(f.lost_amount["EUR"], 80_000);
    assert!(close(f.win_rate_by_amount["EUR"], 300_000.0 / 380_000.0));
    assert_eq!(
        f.loss_reasons,
        [("no budget".to_owned(), 1), ("price".to_owned(), 1)],
        "a tie is ranked by name"
    );
    // Won after 10 and 9 days.
    assert!(close(f.cycle.median_days, 9.0) && close(f.cycle.p90_days, 10.0));
    assert!(close(f.cycle.mean_days, 9.5));
    // 2 open deals x 1,500.00 average won x 0.5 / 9.5 days, in minor units per day.
    assert!(close(
        f.velocity_per_day["EUR"],
        2.0 * 150_000.0 * 0.5 / 9.5
    ));
}

#[test]
fn the_funnel_as_of_day_7_sees_only_what_had_happened() {
    let deals = fold(&business());
    let f = funnel_at(&deals, day(7), &FunnelFilter::default());
    assert_eq!(
        f.stages.iter().map(|s| s.reached).collect::<Vec<_>>(),
        [6, 4, 3, 1, 0]
    );
    assert_eq!((f.open, f.won, f.lost), (5, 0, 1));
    assert_eq!(f.win_rate, Some(0.0));
    assert_eq!(
        f.stages.iter().map(|s| s.open).collect::<Vec<_>>(),
        [2, 0, 2, 1, 0]
    );
    assert!(f.velocity_per_day.is_empty(), "no deal won yet: no cycle");
    assert!(f.stages.iter().all(|s| s.stale == 0));
    // Deal 6 has not moved yet; nothing of day 9 shows.
    let six = deals[5].at(day(7)).unwrap();
    assert_eq!(
        (six.stage.as_str(), six.status),
        ("lead_in", DealStatus::Open)
    );
    // Before it was opened, a deal is not there at all.
    assert!(deals[4].at(day(4)).is_none());
    // A cohort: deals opened on days 0-2 (1, 2 and 3); one owner.
    let cohort = FunnelFilter {
        opened_from: Some(day(0)),
        opened_to: Some(day(3)),
        ..FunnelFilter::default()
    };
    assert_eq!(funnel_at(&deals, day(20), &cohort).deals, 3);
    let kim = FunnelFilter {
        owner: Some("kim".into()),
        ..FunnelFilter::default()
    };
    let f = funnel_at(&deals, day(20), &kim);
    assert_eq!((f.deals, f.won, f.lost), (3, 1, 1), "deals 2, 4 and 6");
}

/// Commands whose business time is earlier than events already applied (a sales rep
/// recording on Friday what happened on Tuesday) give the same deals and figures as if
/// they had arrived in order.
#[test]
fn backdated_commands_give_the_same_figures_as_commands_in_order() {
    let in_order = fold(&business());
    let mut late = business();
    // Deal 1's move to qualified (day 2) and deal 6's (day 9) arrive last, and deal 2's
    // loss (day 8) before its move to proposal (day 3).
    let one = late.remove(2);
    let six = late.remove(13);
    late.push(one);
    late.push(six);
    let loss = late
        .iter()
        .position(|(_, e)| *e == lost(2, "price"))
        .unwrap();
    let loss = late.remove(loss);
    let mv = late
        .iter()
        .position(|(_, e)| *e == moved(2, "proposal"))
        .unwrap();
    late.insert(mv, loss);
    let shuffled = fold(&late);
    for cut in [day(3), day(7), day(8), day(20)] {
        let a: Vec<DealAt> = in_order.iter().filter_map(|d| d.at(cut)).collect();
        let b: Vec<DealAt> = shuffled.iter().filter_map(|d| d.at(cut)).collect();
        assert_eq!(a, b, "deals as of day {}", (cut - T0) / DAY_MICROS);
        assert_eq!(
            funnel_at(&in_order, cut, &FunnelFilter::default()),
            funnel_at(&shuffled, cut, &FunnelFilter::default())
        );
    }
}
