//! The generator without I/O: determinism, independence of customers, the truth it
//! reports, ordering, parameter checks, and the file format.

use crm_datagen::{Params, generate};
use crm_proto::v1::ingest_request::Command;
use prost::Message;

fn encoded(p: &Params) -> Vec<Vec<u8>> {
    generate(p)
        .unwrap()
        .requests()
        .map(|r| r.encode_to_vec())
        .collect()
}

/// The customer a command belongs to, for commands of the customer's own story.
fn customer_of(c: &Command) -> Option<&str> {
    Some(match c {
        Command::RegisterCustomer(r) => &r.customer_id,
        Command::PlaceOrder(r) => &r.customer_id,
        Command::LogInteraction(r) => &r.customer_id,
        Command::OpenTicket(r) => &r.customer_id,
        Command::CloseTicket(r) => &r.customer_id,
        Command::RecordReturn(r) => &r.customer_id,
        Command::UpdateProfile(r) => &r.customer_id,
        _ => return None,
    })
}

#[test]
fn the_same_parameters_give_the_same_bytes_and_another_seed_does_not() {
    let p = Params::new(7, 150);
    assert_eq!(encoded(&p), encoded(&p));
    assert_ne!(encoded(&p), encoded(&Params::new(8, 150)));
}

#[test]
fn a_customers_story_does_not_depend_on_how_many_others_there_are() {
    let small = generate(&Params::new(7, 40)).unwrap();
    let large = generate(&Params::new(7, 120)).unwrap();
    let ids: Vec<&str> = small.truth.iter().map(|t| t.customer_id.as_str()).collect();
    assert_eq!(
        ids,
        large.truth[..40]
            .iter()
            .map(|t| t.customer_id.as_str())
            .collect::<Vec<_>>()
    );
    let story = |d: &crm_datagen::Dataset, id: &str| -> Vec<Vec<u8>> {
        d.commands
            .iter()
            .filter(|p| customer_of(&p.command()) == Some(id))
            // A click can attribute an order to a campaign: compare without that.
            .map(|p| {
                let mut c = p.command();
                if let Command::PlaceOrder(o) = &mut c {
                    o.campaign_id.clear();
                }
                crm_proto::v1::IngestRequest {
                    sequence: 0,
                    command: Some(c),
                }
                .encode_to_vec()
            })
            .collect()
    };
    for id in ids {
        let s = story(&small, id);
        assert!(!s.is_empty());
        assert_eq!(s, story(&large, id), "customer {id}");
    }
}

#[test]
fn the_reported_truth_follows_the_parameters() {
    let p = Params::new(11, 20_000);
    let d = generate(&p).unwrap();
    assert_eq!(d.truth.len(), 20_000);
    #[allow(clippy::cast_precision_loss)]
    let n = d.truth.len() as f64;
    let buyers: Vec<_> = d.truth.iter().filter(|t| t.lambda > 0.0).collect();
    #[allow(clippy::cast_precision_loss)]
    let never = 1.0 - buyers.len() as f64 / n;
    assert!(
        (never - p.never_buy).abs() < 0.01,
        "never-buy share {never}"
    );
    #[allow(clippy::cast_precision_loss)]
    let mean_lambda = buyers.iter().map(|t| t.lambda).sum::<f64>() / buyers.len() as f64;
    let want = p.purchasing.r / p.purchasing.alpha;
    assert!(
        (mean_lambda / want - 1.0).abs() < 0.05,
        "mean lambda {mean_lambda} vs {want}"
    );
    let mean_p = d.truth.iter().map(|t| t.p_dropout).sum::<f64>() / n;
    let want = p.purchasing.a / (p.purchasing.a + p.purchasing.b);
    assert!(
        (mean_p / want - 1.0).abs() < 0.05,
        "mean dropout {mean_p} vs {want}"
    );
    // Orders in the commands are the orders in the truth.
    let orders = d
        .commands
        .iter()
        .filter(|c| matches!(c.command(), Command::PlaceOrder(_)))
        .count() as u64;
    assert_eq!(
        orders,
        d.truth.iter().map(|t| u64::from(t.orders)).sum::<u64>()
    );
    assert_eq!(orders, d.summary.orders);
    // Mean order value ~ p * gamma / (q - 1) (Gamma-Gamma), in cents.
    let spend: i64 = d.truth.iter().map(|t| t.spend_minor).sum();
    #[allow(clippy::cast_precision_loss)]
    let mean_order = spend as f64 / orders as f64 / 100.0;
    let want = p.spend.p * p.spend.gamma / (p.spend.q - 1.0);
    assert!(
        (mean_order / want - 1.0).abs() < 0.05,
        "mean order {mean_order} vs {want}"
    );
    // Everyone who dropped out did so at their last order.
    assert!(d.truth.iter().any(|t| t.dropped_out_at.is_some()));
}

#[test]
fn commands_are_in_business_time_order_inside_the_period_and_every_customer_is_created_first() {
    let p = Params::new(3, 300);
    let d = generate(&p).unwrap();
    let at = |c: &crm_datagen::Planned| c.at;
    assert!(
        d.commands
            .windows(2)
            .all(|w| (at(&w[0]), w[0].n) < (at(&w[1]), w[1].n))
    );
    assert!(d.commands.iter().all(|c| c.at < p.end()));
    let mut created = std::collections::BTreeSet::new();
    for c in &d.commands {
        match &c.command() {
            Command::RegisterCustomer(r) => {
                created.insert(r.customer_id.clone());
            }
            Command::ConvertLead(r) => {
                if let Some(crm_proto::v1::convert_lead_request::Into::NewCustomerId(id)) = &r.into
                {
                    created.insert(id.clone());
                }
            }
            other => {
                if let Some(id) = customer_of(other) {
                    assert!(created.contains(id), "{other:?} before its customer exists");
                }
            }
        }
    }
    assert_eq!(created.len(), 300);
    // Every command has its own id and its business time.
    let mut ids = std::collections::BTreeSet::new();
    for r in d.requests() {
        let json = format!("{r:?}");
        assert!(json.contains("occurred_at: Some"), "{json}");
        let id = json.split("command_id: \"").nth(1).unwrap()[..36].to_owned();
        assert!(ids.insert(id), "duplicate command id");
    }
}

#[test]
fn invalid_parameters_are_refused_naming_each() {
    let mut p = Params::new(1, 0);
    p.purchasing.alpha = -1.0;
    p.never_buy = 1.5;
    p.campaign_audience = 2.0;
    p.campaigns_per_month = -1.0;
    let err = generate(&p).unwrap_err().to_string();
    for needle in [
        "customers",
        "purchasing.alpha",
        "never_buy",
        "campaign_audience",
        "campaigns_per_month",
    ] {
        assert!(err.contains(needle), "{err}");
    }
}

#[test]
fn a_written_data_set_reads_back_the_same() {
    let d = generate(&Params::new(5, 80)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    crm_datagen::file::write(&d, dir.path()).unwrap();
    let back: Vec<_> = crm_datagen::file::requests(dir.path())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(back, d.requests().collect::<Vec<_>>());
    let manifest = crm_datagen::file::manifest(dir.path()).unwrap();
    assert_eq!(manifest.params, d.params);
    assert_eq!(manifest.summary, d.summary);
    let truth = std::fs::read_to_string(dir.path().join("truth.jsonl")).unwrap();
    assert_eq!(truth.lines().count(), 80);
    // A truncated file is an error, not a silent end.
    let path = dir.path().join("commands.pb");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
    let last = crm_datagen::file::requests(dir.path())
        .unwrap()
        .last()
        .unwrap();
    assert!(last.is_err());
}

#[test]
fn campaigns_follow_the_period_and_their_responses_grow_with_the_customers() {
    let small = generate(&Params::new(3, 2_000)).unwrap();
    let large = generate(&Params::new(3, 8_000)).unwrap();
    // Two years at the default cadence, whatever the size.
    assert_eq!(small.summary.campaigns, 12);
    assert_eq!(large.summary.campaigns, 12);
    #[allow(clippy::cast_precision_loss)]
    let per_customer =
        |d: &crm_datagen::Dataset| d.summary.campaign_responses as f64 / d.summary.customers as f64;
    let (s, l) = (per_customer(&small), per_customer(&large));
    assert!(s > 1.0, "{s} responses per customer");
    assert!(
        (l / s - 1.0).abs() < 0.15,
        "responses per customer: {s:.2} with 2,000 customers, {l:.2} with 8,000"
    );
    let mut year = Params::new(3, 500);
    year.days = 365;
    assert_eq!(generate(&year).unwrap().summary.campaigns, 6);
    year.campaigns_per_month = 0.0;
    let none = generate(&year).unwrap();
    assert_eq!(none.summary.campaigns, 0);
    assert_eq!(none.summary.campaign_responses, 0);
}

#[test]
fn a_data_set_too_large_for_the_memory_is_refused_before_generating() {
    let p = Params::new(1, 100_000);
    // The measurement behind the constant: 100,000 customers over two years peaked at
    // 588 MiB, a million at 5.7 GiB.
    let need = p.estimated_peak_bytes();
    assert_eq!(
        need,
        100_000 * 730 * crm_datagen::PEAK_BYTES_PER_CUSTOMER_DAY
    );
    assert!(p.memory_problem(need).is_none());
    let problem = p.memory_problem(1 << 29).expect("512 MiB is too little");
    assert!(
        problem.contains("100000 customers over 730 days"),
        "{problem}"
    );
    assert!(problem.contains("0.7 GiB"), "{problem}");
    assert!(
        problem.contains("at most about 73543 customers fit"),
        "{problem}"
    );
    let mut year = p;
    year.days = 365;
    assert!(
        year.memory_problem(need / 2).is_none(),
        "half the period, half the memory"
    );
}

#[test]
fn commands_are_held_encoded_and_give_back_exactly_what_was_planned() {
    let d = generate(&Params::new(11, 300)).unwrap();
    // Every held command decodes to the request that carries it, with its position.
    for (i, p) in d.commands.iter().enumerate().step_by(17) {
        let request = d.request(i).unwrap();
        assert_eq!(request.sequence, i as u64);
        assert_eq!(request.command.as_ref(), Some(&p.command()));
        assert_eq!(
            crm_datagen::Planned::new(p.at, p.n, p.command()),
            *p,
            "re-encoding a held command gives the same bytes"
        );
    }
    // The memory estimate rests on this: a command is a few hundred bytes at most (the
    // decoded form is ~1.8 KB).
    let bytes: usize = d
        .commands
        .iter()
        .map(crm_datagen::Planned::encoded_len)
        .sum();
    let mean = bytes / d.commands.len();
    assert!((60..400).contains(&mean), "{mean} bytes per command");
    // The tally kept while generating matches the commands held.
    let mut by_command = std::collections::BTreeMap::new();
    for p in &d.commands {
        *by_command
            .entry(crm_datagen::command_name(&p.command()).to_owned())
            .or_insert(0u64) += 1;
    }
    assert_eq!(by_command, d.summary.by_command);
    assert_eq!(d.summary.commands, d.commands.len() as u64);
}
