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
