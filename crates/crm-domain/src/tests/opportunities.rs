//! Sales commands: OpenOpportunity, MoveOpportunityStage, WinOpportunity,
//! LoseOpportunity.

use std::collections::BTreeMap;

use super::*;
use crate::testing::{Scenario, T0};
use crate::{
    OpenOpportunity, OpportunityState, OpportunityStatus, Pipeline, Stage, Timestamp, World,
};

/// The command behind [`opportunity_opened`].
fn open(p: OpportunityId) -> OpenOpportunity {
    OpenOpportunity {
        customer_id: C1,
        opportunity_id: p,
        name: "Kitchen remodel".into(),
        pipeline: None,
        stage: None,
        amount: eur_m(100_000),
        owner: None,
        expected_close: None,
        lead: None,
        campaign: None,
    }
}

fn open_cmd(o: OpenOpportunity) -> Command {
    Command::OpenOpportunity(o)
}

fn mv(stage: &str, probability_pct: Option<u8>) -> Command {
    Command::MoveOpportunityStage {
        customer_id: C1,
        opportunity_id: P1,
        stage: stage.into(),
        probability_pct,
    }
}

fn moved(from: &str, to: &str, probability_pct: u8, forecast: ForecastCategory) -> DomainEvent {
    cev(
        C1,
        CustomerEvent::OpportunityStageMoved {
            opportunity_id: P1,
            from_stage: from.into(),
            to_stage: to.into(),
            probability_pct,
            forecast,
        },
    )
}

fn win(amount: Option<Money>) -> Command {
    Command::WinOpportunity {
        customer_id: C1,
        opportunity_id: P1,
        amount,
    }
}

fn won(minor: i64, stage: &str) -> DomainEvent {
    cev(
        C1,
        CustomerEvent::OpportunityWon {
            opportunity_id: P1,
            amount: eur_m(minor),
            stage: Some(stage.into()),
        },
    )
}

fn lose(reason: &str) -> Command {
    Command::LoseOpportunity {
        customer_id: C1,
        opportunity_id: P1,
        reason: reason.into(),
    }
}

fn lost(stage: &str) -> DomainEvent {
    cev(
        C1,
        CustomerEvent::OpportunityLost {
            opportunity_id: P1,
            reason: "price".into(),
            stage: stage.into(),
        },
    )
}

fn with_opportunity() -> Vec<DomainEvent> {
    vec![registered(C1), opportunity_opened(C1, P1)]
}

fn then(
    mut history: Vec<DomainEvent>,
    more: impl IntoIterator<Item = DomainEvent>,
) -> Vec<DomainEvent> {
    history.extend(more);
    history
}

fn opp(world: &World) -> &OpportunityState {
    &world.customers[&C1].opportunities[&P1]
}

fn stage(key: &str, probability_pct: u8, forecast: ForecastCategory) -> Stage {
    Stage {
        key: key.into(),
        name: key.into(),
        probability_pct,
        forecast,
    }
}

/// `renewals` (review 40 %, closing 80 %) as the default pipeline, `empty` without
/// stages, and no `sales` pipeline.
fn renewals_config() -> DomainConfig {
    let renewals = Pipeline {
        key: "renewals".into(),
        stages: vec![
            stage("review", 40, ForecastCategory::BestCase),
            stage("closing", 80, ForecastCategory::Commit),
        ],
    };
    let empty = Pipeline {
        key: "empty".into(),
        stages: vec![],
    };
    DomainConfig {
        pipelines: BTreeMap::from([("renewals".into(), renewals), ("empty".into(), empty)]),
        default_pipeline: "renewals".into(),
        ..DomainConfig::default()
    }
}

// ---------------------------------------------------------------- OpenOpportunity

#[test]
fn open_opportunity_defaults_to_the_first_stage_of_the_default_pipeline() {
    let world = Scenario::new()
        .given([registered(C1)])
        .when(open_cmd(open(P1)))
        .then_events([cev(
            C1,
            CustomerEvent::OpportunityOpened(OpportunityOpened {
                opportunity_id: P1,
                name: "Kitchen remodel".into(),
                pipeline: "sales".into(),
                stage: "initial_contact".into(),
                probability_pct: 10,
                forecast: ForecastCategory::Pipeline,
                amount: eur_m(100_000),
                owner: None,
                expected_close: None,
                lead: None,
                campaign: None,
            }),
        )]);
    assert_eq!(
        *opp(&world),
        OpportunityState {
            name: "Kitchen remodel".into(),
            pipeline: "sales".into(),
            stage: "initial_contact".into(),
            status: OpportunityStatus::Open,
            amount: eur_m(100_000),
            owner: None,
            expected_close: None,
        }
    );
}

#[test]
fn open_opportunity_at_a_named_stage_freezes_its_probability_and_forecast() {
    let close = Timestamp(T0.0 + 30 * Timestamp::MICROS_PER_DAY);
    Scenario::new()
        .given([registered(C1)])
        .when(open_cmd(OpenOpportunity {
            pipeline: Some("sales".into()),
            stage: Some("proposal".into()),
            owner: Some("alice".into()),
            expected_close: Some(close),
            lead: Some(L1),
            campaign: Some(K1),
            amount: eur_m(0),
            ..open(P1)
        }))
        .then_events([cev(
            C1,
            CustomerEvent::OpportunityOpened(OpportunityOpened {
                opportunity_id: P1,
                name: "Kitchen remodel".into(),
                pipeline: "sales".into(),
                stage: "proposal".into(),
                probability_pct: 50,
                forecast: ForecastCategory::BestCase,
                amount: eur_m(0),
                owner: Some("alice".into()),
                expected_close: Some(close),
                lead: Some(L1),
                campaign: Some(K1),
            }),
        )]);
}

#[test]
fn open_opportunity_uses_the_configured_default_pipeline() {
    Scenario::new()
        .with_config(renewals_config())
        .given([registered(C1)])
        .when(open_cmd(open(P1)))
        .then_events([cev(
            C1,
            CustomerEvent::OpportunityOpened(OpportunityOpened {
                opportunity_id: P1,
                name: "Kitchen remodel".into(),
                pipeline: "renewals".into(),
                stage: "review".into(),
                probability_pct: 40,
                forecast: ForecastCategory::BestCase,
                amount: eur_m(100_000),
                owner: None,
                expected_close: None,
                lead: None,
                campaign: None,
            }),
        )]);
}

#[test]
fn open_opportunity_rejections() {
    let o = |o: OpenOpportunity| open_cmd(o);
    let given = [registered(C1), opportunity_opened(C1, P2)];
    assert_rejections(
        &given,
        [
            invalid(
                o(OpenOpportunity {
                    name: " ".into(),
                    ..open(P1)
                }),
                "name",
                "required",
            ),
            invalid(
                o(OpenOpportunity {
                    name: long(201),
                    ..open(P1)
                }),
                "name",
                "max_length",
            ),
            invalid(
                o(OpenOpportunity {
                    amount: eur_m(-1),
                    ..open(P1)
                }),
                "amount.minor",
                "range",
            ),
            invalid(
                o(OpenOpportunity {
                    owner: Some(String::new()),
                    ..open(P1)
                }),
                "owner",
                "required",
            ),
            invalid(
                o(OpenOpportunity {
                    pipeline: Some("nope".into()),
                    ..open(P1)
                }),
                "pipeline",
                "unknown_pipeline",
            ),
            invalid(
                o(OpenOpportunity {
                    stage: Some("won".into()),
                    ..open(P1)
                }),
                "stage",
                "unknown_stage",
            ),
            (
                o(OpenOpportunity {
                    customer_id: C2,
                    ..open(P1)
                }),
                RejectionKind::NotFound,
                "customer_id",
                "not_found",
            ),
            (
                o(open(P2)),
                RejectionKind::AlreadyExists,
                "opportunity_id",
                "already_exists",
            ),
        ],
    );
    assert_rejections_with(
        &renewals_config(),
        &given,
        [
            (
                o(OpenOpportunity {
                    pipeline: Some("empty".into()),
                    ..open(P1)
                }),
                RejectionKind::FailedPrecondition,
                "pipeline",
                "no_stages",
            ),
            invalid(
                o(OpenOpportunity {
                    pipeline: Some("empty".into()),
                    stage: Some("review".into()),
                    ..open(P1)
                }),
                "stage",
                "unknown_stage",
            ),
            invalid(
                o(OpenOpportunity {
                    pipeline: Some("sales".into()),
                    ..open(P1)
                }),
                "pipeline",
                "unknown_pipeline",
            ),
        ],
    );
}

// ---------------------------------------------------------------- MoveOpportunityStage

#[test]
fn move_opportunity_stage_freezes_the_stage_probability_and_forecast() {
    let world = Scenario::new()
        .given(with_opportunity())
        .when(mv("negotiation", None))
        .then_events([moved(
            "initial_contact",
            "negotiation",
            70,
            ForecastCategory::Commit,
        )]);
    assert_eq!(opp(&world).stage, "negotiation");
    assert_eq!(opp(&world).status, OpportunityStatus::Open);
}

#[test]
fn move_opportunity_stage_with_a_probability_override_keeps_the_stage_forecast() {
    Scenario::new()
        .given(with_opportunity())
        .when(mv("negotiation", Some(35)))
        .then_events([moved(
            "initial_contact",
            "negotiation",
            35,
            ForecastCategory::Commit,
        )]);
    Scenario::new()
        .given(with_opportunity())
        .when(mv("proposal", Some(0)))
        .then_events([moved(
            "initial_contact",
            "proposal",
            0,
            ForecastCategory::BestCase,
        )]);
    Scenario::new()
        .given(with_opportunity())
        .when(mv("contract_signed", Some(100)))
        .then_events([moved(
            "initial_contact",
            "contract_signed",
            100,
            ForecastCategory::Commit,
        )]);
}

#[test]
fn move_opportunity_stage_backwards_is_allowed() {
    Scenario::new()
        .given(then(
            with_opportunity(),
            [moved(
                "initial_contact",
                "proposal",
                50,
                ForecastCategory::BestCase,
            )],
        ))
        .when(mv("needs_confirmed", None))
        .then_events([moved(
            "proposal",
            "needs_confirmed",
            25,
            ForecastCategory::Pipeline,
        )]);
}

#[test]
fn move_opportunity_stage_takes_the_probability_configured_at_entry_time() {
    // The history holds 50 % from when `proposal` was worth 50 %; a move under a config
    // where `negotiation` is worth 65 % freezes 65 %, and history is untouched.
    let mut config = DomainConfig::default();
    let sales = config.pipelines.get_mut("sales").expect("sales");
    sales.stages[3].probability_pct = 65;
    sales.stages[3].forecast = ForecastCategory::BestCase;
    Scenario::new()
        .with_config(config)
        .given(then(
            with_opportunity(),
            [moved(
                "initial_contact",
                "proposal",
                50,
                ForecastCategory::BestCase,
            )],
        ))
        .when(mv("negotiation", None))
        .then_events([moved(
            "proposal",
            "negotiation",
            65,
            ForecastCategory::BestCase,
        )]);
}

#[test]
fn move_opportunity_stage_rejections() {
    let p = RejectionKind::FailedPrecondition;
    assert_rejections(
        &then(with_opportunity(), [registered(C2)]),
        [
            invalid(mv("proposal", Some(101)), "probability_pct", "range"),
            invalid(mv("", None), "stage", "required"),
            invalid(mv("Proposal", None), "stage", "format"),
            invalid(mv("won", None), "stage", "unknown_stage"),
            (mv("initial_contact", None), p, "stage", "state"),
            (mv("initial_contact", Some(20)), p, "stage", "state"),
            (
                Command::MoveOpportunityStage {
                    customer_id: C1,
                    opportunity_id: P2,
                    stage: "proposal".into(),
                    probability_pct: None,
                },
                RejectionKind::NotFound,
                "opportunity_id",
                "not_found",
            ),
            (
                Command::MoveOpportunityStage {
                    customer_id: C3,
                    opportunity_id: P1,
                    stage: "proposal".into(),
                    probability_pct: None,
                },
                RejectionKind::NotFound,
                "customer_id",
                "not_found",
            ),
        ],
    );
    assert_rejections(
        &then(with_opportunity(), [won(100_000, "initial_contact")]),
        [(mv("proposal", None), p, "opportunity_id", "state")],
    );
    assert_rejections(
        &then(with_opportunity(), [lost("initial_contact")]),
        [(mv("proposal", None), p, "opportunity_id", "state")],
    );
    // The opportunity's pipeline was removed from the configuration.
    assert_rejections_with(
        &renewals_config(),
        &with_opportunity(),
        [(mv("review", None), p, "opportunity_id", "pipeline")],
    );
}

// ---------------------------------------------------------------- WinOpportunity

#[test]
fn win_opportunity_defaults_to_the_open_amount() {
    let world = Scenario::new()
        .given(then(
            with_opportunity(),
            [moved(
                "initial_contact",
                "contract_signed",
                90,
                ForecastCategory::Commit,
            )],
        ))
        .when(win(None))
        .then_events([won(100_000, "contract_signed")]);
    assert_eq!(opp(&world).status, OpportunityStatus::Won);
    assert_eq!(opp(&world).amount, eur_m(100_000));
    assert_eq!(opp(&world).stage, "contract_signed");
}

#[test]
fn win_opportunity_with_a_final_amount() {
    let world = Scenario::new()
        .given(with_opportunity())
        .when(win(Some(eur_m(90_000))))
        .then_events([won(90_000, "initial_contact")]);
    assert_eq!(opp(&world).amount, eur_m(90_000));
    Scenario::new()
        .given(with_opportunity())
        .when(win(Some(eur_m(0))))
        .then_events([won(0, "initial_contact")]);
}

#[test]
fn win_opportunity_rejections() {
    let p = RejectionKind::FailedPrecondition;
    assert_rejections(
        &with_opportunity(),
        [
            invalid(win(Some(eur_m(-1))), "amount.minor", "range"),
            (
                Command::WinOpportunity {
                    customer_id: C1,
                    opportunity_id: P2,
                    amount: None,
                },
                RejectionKind::NotFound,
                "opportunity_id",
                "not_found",
            ),
            (
                Command::WinOpportunity {
                    customer_id: C2,
                    opportunity_id: P1,
                    amount: None,
                },
                RejectionKind::NotFound,
                "customer_id",
                "not_found",
            ),
        ],
    );
    assert_rejections(
        &then(with_opportunity(), [won(100_000, "initial_contact")]),
        [(win(None), p, "opportunity_id", "state")],
    );
    assert_rejections(
        &then(with_opportunity(), [lost("initial_contact")]),
        [(win(None), p, "opportunity_id", "state")],
    );
}

#[test]
fn win_opportunity_rejects_an_amount_in_another_currency() {
    // The opportunity is in EUR; winning it "for 900.00 USD" is accepted and changes the
    // deal's currency. RecordReturn and RecordCampaignCost reject a currency mismatch.
    Scenario::new()
        .given(with_opportunity())
        .when(win(Some(Money::new(90_000, usd()))))
        .then_rejects(
            RejectionKind::FailedPrecondition,
            "amount.currency",
            "currency",
        );
}

// ---------------------------------------------------------------- LoseOpportunity

#[test]
fn lose_opportunity_records_the_stage_it_was_lost_in() {
    let world = Scenario::new()
        .given(then(
            with_opportunity(),
            [moved(
                "initial_contact",
                "negotiation",
                70,
                ForecastCategory::Commit,
            )],
        ))
        .when(lose("price"))
        .then_events([lost("negotiation")]);
    assert_eq!(opp(&world).status, OpportunityStatus::Lost);
    assert_eq!(opp(&world).stage, "negotiation");
}

#[test]
fn lose_opportunity_rejections() {
    let p = RejectionKind::FailedPrecondition;
    assert_rejections(
        &with_opportunity(),
        [
            invalid(lose(" "), "reason", "required"),
            invalid(lose(&long(501)), "reason", "max_length"),
            (
                Command::LoseOpportunity {
                    customer_id: C1,
                    opportunity_id: P2,
                    reason: "price".into(),
                },
                RejectionKind::NotFound,
                "opportunity_id",
                "not_found",
            ),
            (
                Command::LoseOpportunity {
                    customer_id: C2,
                    opportunity_id: P1,
                    reason: "price".into(),
                },
                RejectionKind::NotFound,
                "customer_id",
                "not_found",
            ),
        ],
    );
    assert_rejections(
        &then(with_opportunity(), [won(100_000, "initial_contact")]),
        [(lose("price"), p, "opportunity_id", "state")],
    );
    assert_rejections(
        &then(with_opportunity(), [lost("initial_contact")]),
        [(lose("price"), p, "opportunity_id", "state")],
    );
}

// ---------------------------------------------------------------- UpdateOpportunity

fn update(
    name: Option<&str>,
    amount: Option<Money>,
    owner: Option<&str>,
    expected_close: Option<Timestamp>,
) -> Command {
    Command::UpdateOpportunity {
        customer_id: C1,
        opportunity_id: P1,
        name: name.map(Into::into),
        amount,
        owner: owner.map(Into::into),
        expected_close,
    }
}

#[test]
fn update_opportunity_records_what_changed_and_nothing_else() {
    let close = Timestamp(T0.0 + 45 * Timestamp::MICROS_PER_DAY);
    let world = Scenario::new()
        .given(with_opportunity())
        // The name is the current one: not part of the change.
        .when(update(
            Some("Kitchen remodel"),
            Some(eur_m(120_000)),
            Some(" kim "),
            Some(close),
        ))
        .then_events([cev(
            C1,
            CustomerEvent::OpportunityUpdated {
                opportunity_id: P1,
                name: None,
                amount: Some(eur_m(120_000)),
                owner: Some("kim".into()),
                expected_close: Some(close),
            },
        )]);
    let o = opp(&world);
    assert_eq!(
        (o.amount, o.owner.as_deref(), o.expected_close),
        (eur_m(120_000), Some("kim"), Some(close))
    );
    assert_eq!(o.name, "Kitchen remodel");
    // The same values again change nothing.
    Scenario::new()
        .given(world_history_with_update(close))
        .when(update(None, Some(eur_m(120_000)), Some("kim"), Some(close)))
        .then_events([]);
}

fn world_history_with_update(close: Timestamp) -> Vec<DomainEvent> {
    then(
        with_opportunity(),
        [cev(
            C1,
            CustomerEvent::OpportunityUpdated {
                opportunity_id: P1,
                name: None,
                amount: Some(eur_m(120_000)),
                owner: Some("kim".into()),
                expected_close: Some(close),
            },
        )],
    )
}

#[test]
fn update_opportunity_rejections() {
    let p = RejectionKind::FailedPrecondition;
    assert_rejections(
        &with_opportunity(),
        [
            invalid(update(None, None, None, None), "name", "required"),
            invalid(update(Some(" "), None, None, None), "name", "required"),
            invalid(update(None, None, Some(""), None), "owner", "required"),
            invalid(
                update(None, Some(eur_m(-1)), None, None),
                "amount.minor",
                "range",
            ),
            (
                update(None, Some(Money::new(1, usd())), None, None),
                p,
                "amount.currency",
                "currency",
            ),
        ],
    );
    for closed in [won(100_000, "initial_contact"), lost("initial_contact")] {
        assert_rejections(
            &then(with_opportunity(), [closed]),
            [(
                update(Some("x"), None, None, None),
                p,
                "opportunity_id",
                "state",
            )],
        );
    }
}

// ---------------------------------------------------------------- ReopenOpportunity

fn reopen(stage: Option<&str>, reason: &str) -> Command {
    Command::ReopenOpportunity {
        customer_id: C1,
        opportunity_id: P1,
        stage: stage.map(Into::into),
        reason: reason.into(),
    }
}

fn reopened(stage: &str, probability_pct: u8, forecast: ForecastCategory) -> DomainEvent {
    cev(
        C1,
        CustomerEvent::OpportunityReopened {
            opportunity_id: P1,
            stage: stage.into(),
            probability_pct,
            forecast,
            reason: "budget approved".into(),
        },
    )
}

#[test]
fn a_lost_deal_reopens_at_the_stage_it_was_lost_in_or_a_named_one() {
    let lost_in_negotiation = then(
        with_opportunity(),
        [
            moved(
                "initial_contact",
                "negotiation",
                70,
                ForecastCategory::Commit,
            ),
            lost("negotiation"),
        ],
    );
    let world = Scenario::new()
        .given(lost_in_negotiation.clone())
        .when(reopen(None, "budget approved"))
        .then_events([reopened("negotiation", 70, ForecastCategory::Commit)]);
    assert_eq!(opp(&world).status, OpportunityStatus::Open);
    assert_eq!(opp(&world).stage, "negotiation");
    // Open again, it can be won.
    Scenario::new()
        .given(then(
            lost_in_negotiation.clone(),
            [reopened("negotiation", 70, ForecastCategory::Commit)],
        ))
        .when(win(None))
        .then_events([won(100_000, "negotiation")]);
    Scenario::new()
        .given(lost_in_negotiation)
        .when(reopen(Some("initial_contact"), "budget approved"))
        .then_events([reopened("initial_contact", 10, ForecastCategory::Pipeline)]);
}

#[test]
fn reopen_opportunity_rejections() {
    let p = RejectionKind::FailedPrecondition;
    let lost_deal = then(with_opportunity(), [lost("initial_contact")]);
    assert_rejections(
        &lost_deal,
        [
            invalid(reopen(None, " "), "reason", "required"),
            (
                reopen(Some("no_such_stage"), "x"),
                RejectionKind::Invalid,
                "stage",
                "unknown_stage",
            ),
        ],
    );
    assert_rejections(
        &with_opportunity(),
        [(reopen(None, "x"), p, "opportunity_id", "state")],
    );
    assert_rejections(
        &then(with_opportunity(), [won(100_000, "initial_contact")]),
        [(reopen(None, "x"), p, "opportunity_id", "state")],
    );
}
