//! Configuration validation.

use crate::{DomainConfig, ForecastCategory, TicketPriority};

#[test]
fn the_default_configuration_is_valid() {
    assert_eq!(DomainConfig::default().validate(), Ok(()));
}

#[test]
fn an_unusable_configuration_names_every_problem() {
    let mut cfg = DomainConfig {
        default_pipeline: "missing".into(),
        ..DomainConfig::default()
    };
    let sales = cfg.pipelines.get_mut("sales").unwrap();
    sales.stages[1].key = sales.stages[0].key.clone();
    sales.stages[2].probability_pct = 101;
    sales.stages[3].forecast = ForecastCategory::Closed;
    cfg.sla.targets.remove(&TicketPriority::Urgent);
    cfg.sla.targets.insert(TicketPriority::Low, (0, 10));
    let problems = cfg.validate().unwrap_err();
    assert_eq!(problems.len(), 6, "{problems:#?}");
    for needle in ["missing", "twice", "101", "closed", "Urgent", "zero target"] {
        assert!(
            problems.iter().any(|p| p.contains(needle)),
            "no problem mentions {needle}: {problems:#?}"
        );
    }
}

#[test]
fn business_time_may_lie_decades_back_but_not_past_the_clock_skew_ahead() {
    use crate::{BusinessTimeBounds, RejectionKind, Timestamp};
    let b = BusinessTimeBounds::default();
    let now = Timestamp::from_micros(1_796_400_000 * 1_000_000);
    let minute = Timestamp::MICROS_PER_MINUTE;
    // A historical import (1950), receipt itself, and the clock skew allowed ahead.
    for ok in [
        Timestamp::from_micros(-631_152_000 * 1_000_000),
        BusinessTimeBounds::EARLIEST,
        now,
        Timestamp::from_micros(now.as_micros() + 5 * minute),
    ] {
        assert_eq!(b.check(ok, now), Ok(()), "{ok:?}");
    }
    let too_late = [
        Timestamp::from_micros(now.as_micros() + 5 * minute + 1),
        // 9999-01-01: the order that would keep a customer "new" for ever.
        Timestamp::from_micros(253_370_764_800 * 1_000_000),
        Timestamp::from_micros(i64::MAX),
    ];
    for at in too_late {
        let r = b.check(at, now).unwrap_err();
        assert_eq!(r.kind, RejectionKind::Invalid);
        assert_eq!(
            (r.first().field.as_str(), r.first().rule),
            ("options.occurred_at", "not_in_future")
        );
    }
    for at in [
        Timestamp::from_micros(BusinessTimeBounds::EARLIEST.as_micros() - 1),
        Timestamp::from_micros(i64::MIN),
    ] {
        let r = b.check(at, now).unwrap_err();
        assert_eq!(
            (r.first().field.as_str(), r.first().rule),
            ("options.occurred_at", "not_before_earliest")
        );
    }
    // The tolerance is configuration.
    let strict = BusinessTimeBounds {
        future_tolerance_mins: 0,
        ..b
    };
    assert!(
        strict
            .check(Timestamp::from_micros(now.as_micros() + 1), now)
            .is_err()
    );
}
