//! The forecast of a quarter and how it moved, computed by hand.

use crm_funnel::{
    DAY_MICROS, DealAt, DealStatus, Forecast, GroupBy, Movement, Rollup, StageVisit,
    forecast_movements, period_forecast,
};

/// 2026-01-01 00:00 UTC.
const JAN_1: i64 = 1_767_225_600 * 1_000_000;
/// 2026-04-01: Q1 is `[JAN_1, APR_1)`.
const APR_1: i64 = JAN_1 + 90 * DAY_MICROS;

fn day(d: i64) -> i64 {
    JAN_1 + d * DAY_MICROS
}

fn id(n: u8) -> [u8; 16] {
    let mut id = [0; 16];
    id[15] = n;
    id
}

/// An open deal: category and probability frozen at its stage entry.
fn open(n: u8, forecast: Forecast, pct: u8, amount: i64, close: Option<i64>) -> DealAt {
    DealAt {
        id: id(n),
        customer: id(0),
        name: format!("deal {n}"),
        pipeline: "sales".into(),
        lead: None,
        campaign: None,
        team: None,
        source: None,
        status: DealStatus::Open,
        stage: "proposal".into(),
        probability_pct: pct,
        forecast,
        amount_minor: amount,
        currency: "EUR".into(),
        owner: Some(if n.is_multiple_of(2) { "kim" } else { "lee" }.into()),
        expected_close: close,
        opened_at: day(2),
        closed_at: None,
        loss_reason: None,
        visits: vec![StageVisit {
            stage: "proposal".into(),
            entered_at: day(2),
            left_at: None,
        }],
    }
}

fn won(mut d: DealAt, at: i64) -> DealAt {
    d.status = DealStatus::Won;
    d.closed_at = Some(at);
    d.forecast = Forecast::Closed;
    d.probability_pct = 100;
    d
}

fn lost(mut d: DealAt, at: i64) -> DealAt {
    d.status = DealStatus::Lost;
    d.closed_at = Some(at);
    d.forecast = Forecast::Omitted;
    d.probability_pct = 0;
    d
}

#[test]
fn the_quarter_rolls_up_as_salesforce_defines_its_categories() {
    let deals = [
        open(1, Forecast::Commit, 80, 10_000, Some(day(40))),
        open(2, Forecast::BestCase, 50, 20_000, Some(day(59))),
        open(3, Forecast::Pipeline, 10, 5_000, Some(day(73))),
        // Expected in Q2: not in this quarter.
        open(4, Forecast::Commit, 90, 7_000, Some(day(104))),
        won(open(5, Forecast::Commit, 80, 8_000, Some(day(58))), day(50)),
        lost(
            open(6, Forecast::Pipeline, 10, 4_000, Some(day(59))),
            day(31),
        ),
        open(7, Forecast::Omitted, 0, 3_000, Some(day(61))),
        // No expected close: in no period.
        open(9, Forecast::Commit, 80, 1_000, None),
    ];
    let f = period_forecast(&deals, JAN_1, APR_1, GroupBy::Nothing);
    assert_eq!(
        f.groups["all"]["EUR"],
        Rollup {
            closed: 8_000,
            commit: 10_000 + 8_000,
            best_case: 20_000 + 10_000 + 8_000,
            pipeline: 10_000 + 20_000 + 5_000,
            weighted: 8_000 + 10_000 + 500,
        }
    );
    let by_owner = period_forecast(&deals, JAN_1, APR_1, GroupBy::Owner);
    // kim: 2 (best case); lee: 1 (commit), 3 (pipeline), 5 (won).
    assert_eq!(by_owner.groups["kim"]["EUR"].best_case, 20_000);
    assert_eq!(by_owner.groups["kim"]["EUR"].commit, 0);
    assert_eq!(by_owner.groups["lee"]["EUR"].commit, 18_000);
    assert_eq!(by_owner.groups["lee"]["EUR"].pipeline, 15_000);
    let by_category = period_forecast(&deals, JAN_1, APR_1, GroupBy::Category);
    let names: Vec<&str> = by_category.groups.keys().map(String::as_str).collect();
    assert_eq!(names, ["best_case", "closed", "commit", "pipeline"]);
    assert_eq!(by_category.groups["closed"]["EUR"].closed, 8_000);
    // A deal won in the next quarter belongs to that one.
    let later = [won(open(5, Forecast::Commit, 80, 8_000, None), day(95))];
    assert!(
        period_forecast(&later, JAN_1, APR_1, GroupBy::Nothing)
            .groups
            .is_empty()
    );
}

#[test]
fn how_the_quarter_moved_between_two_moments() {
    let before = [
        open(1, Forecast::Commit, 80, 10_000, Some(day(40))),
        open(2, Forecast::BestCase, 50, 20_000, Some(day(110))),
        open(4, Forecast::Commit, 90, 7_000, Some(day(78))),
        open(5, Forecast::Commit, 80, 8_000, Some(day(58))),
        open(6, Forecast::Pipeline, 10, 4_000, Some(day(59))),
        open(8, Forecast::BestCase, 50, 6_000, Some(day(68))),
        // Open without an expected close: in no period.
        open(10, Forecast::Pipeline, 10, 2_000, None),
    ];
    let after = [
        open(1, Forecast::Commit, 80, 10_000, Some(day(40))),
        open(2, Forecast::BestCase, 50, 20_000, Some(day(59))),
        open(3, Forecast::Pipeline, 10, 5_000, Some(day(73))),
        open(4, Forecast::Commit, 90, 7_000, Some(day(104))),
        won(open(5, Forecast::Commit, 80, 8_000, Some(day(58))), day(50)),
        lost(
            open(6, Forecast::Pipeline, 10, 4_000, Some(day(59))),
            day(60),
        ),
        open(8, Forecast::BestCase, 50, 9_000, Some(day(68))),
        won(open(10, Forecast::Pipeline, 10, 2_000, None), day(70)),
    ];
    let moved: Vec<(u8, Movement, i64, i64)> = forecast_movements(&before, &after, JAN_1, APR_1)
        .into_iter()
        .map(|m| (m.deal[15], m.movement, m.amount_before, m.amount_after))
        .collect();
    assert_eq!(
        moved,
        [
            (2, Movement::MovedIn, 0, 20_000),
            (3, Movement::New, 0, 5_000),
            (4, Movement::MovedOut, 7_000, 0),
            (5, Movement::Won, 8_000, 8_000),
            (6, Movement::Lost, 4_000, 0),
            (8, Movement::AmountChanged, 6_000, 9_000),
            (10, Movement::Won, 0, 2_000),
        ]
    );
}
