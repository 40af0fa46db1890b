//! Property tests: random command sequences over a small fixed set of ids, run through
//! decide + evolve, checking determinism, invariants after every step, and replay.

use std::collections::{BTreeMap, BTreeSet};

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use proptest::strategy::{Union, ValueTree};
use proptest::test_runner::TestRunner;
use uuid::Uuid;

use super::*;
use crate::testing::T0;
use crate::{
    AggregateRef, CampaignResponse, ConsentChannel, ConversionOpportunity, ConvertInto,
    DecideContext, Direction, LeadStatus, LogInteraction, OpenOpportunity, OpenTicket,
    OpportunityStatus, PlaceOrder, ProfilePatch, RecordReturn, RegisterCustomer, Rejection,
    RelationshipKind, ReturnLine, TicketStatus, World, decide,
};

const L2: LeadId = LeadId(Uuid::from_u128(0x12));
const O3: OrderId = OrderId(Uuid::from_u128(0x03));
const R3: ReturnId = ReturnId(Uuid::from_u128(0x23));
const R4: ReturnId = ReturnId(Uuid::from_u128(0x24));
const P3: OpportunityId = OpportunityId(Uuid::from_u128(0x43));
const I2: InteractionId = InteractionId(Uuid::from_u128(0x52));

const STAGES: [&str; 6] = [
    "initial_contact",
    "needs_confirmed",
    "proposal",
    "negotiation",
    "contract_signed",
    "won",
];

const COMMAND_NAMES: [&str; 31] = [
    "RegisterCustomer",
    "UpdateProfile",
    "SetConsent",
    "TagCustomer",
    "UntagCustomer",
    "LinkCustomers",
    "LogInteraction",
    "PlaceOrder",
    "RecordReturn",
    "OpenTicket",
    "AssignTicket",
    "RespondToTicket",
    "ResolveTicket",
    "ReopenTicket",
    "CloseTicket",
    "OpenOpportunity",
    "MoveOpportunityStage",
    "WinOpportunity",
    "LoseOpportunity",
    "UpdateOpportunity",
    "ReopenOpportunity",
    "RecordCampaignResponse",
    "CreateLead",
    "AssignLead",
    "ContactLead",
    "QualifyLead",
    "DisqualifyLead",
    "ConvertLead",
    "CreateCampaign",
    "SendCampaign",
    "RecordCampaignCost",
];

// ---------------------------------------------------------------- strategies
//
// Ids are skewed towards the first of each kind so that commands often address things
// that exist; each field is valid most of the time, so that both the accepted paths and
// every kind of rejection come up.

fn customer() -> impl Strategy<Value = CustomerId> {
    select(vec![C1, C1, C1, C1, C2, C3])
}

fn lead() -> impl Strategy<Value = LeadId> {
    select(vec![L1, L1, L2])
}

fn campaign_id() -> impl Strategy<Value = CampaignId> {
    select(vec![K1, K1, K2])
}

fn order_id() -> impl Strategy<Value = OrderId> {
    select(vec![O1, O1, O1, O1, O2, O3])
}

fn ticket() -> impl Strategy<Value = TicketId> {
    select(vec![T1, T1, T1, T2])
}

fn opportunity() -> impl Strategy<Value = OpportunityId> {
    select(vec![P1, P1, P1, P2, P3])
}

/// `good` nine times out of ten, else `bad`.
fn mostly(good: &'static str, bad: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![9 => Just(good), 1 => Just(bad)].prop_map(str::to_owned)
}

fn text(choices: &[&'static str]) -> impl Strategy<Value = String> {
    select(choices.to_vec()).prop_map(str::to_owned)
}

fn currency() -> impl Strategy<Value = Currency> {
    prop_oneof![12 => Just(eur()), 1 => Just(usd())]
}

/// Mostly valid, sometimes negative, mostly EUR.
fn money(max: i64) -> impl Strategy<Value = Money> {
    (currency(), prop_oneof![1 => Just(-1_i64), 15 => 0..max])
        .prop_map(|(currency, minor)| Money::new(minor, currency))
}

fn consent_channel() -> impl Strategy<Value = ConsentChannel> {
    select(vec![
        ConsentChannel::Email,
        ConsentChannel::Sms,
        ConsentChannel::Phone,
    ])
}

fn channel() -> impl Strategy<Value = Channel> {
    select(vec![
        Channel::Email,
        Channel::Sms,
        Channel::Phone,
        Channel::Chat,
    ])
}

fn stage() -> impl Strategy<Value = String> {
    prop_oneof![
        9 => select(STAGES[..5].to_vec()),
        1 => Just(STAGES[5]),
    ]
    .prop_map(str::to_owned)
}

fn register() -> BoxedStrategy<Command> {
    (
        customer(),
        select(vec![0_u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2]),
        prop_oneof![
            8 => subsequence(vec![ConsentChannel::Email, ConsentChannel::Sms], 0..=2),
            1 => Just(vec![ConsentChannel::Sms, ConsentChannel::Sms]),
        ],
        any::<bool>(),
        mostly("form", ""),
        prop_oneof![
            8 => vec(text(&["vip", "VIP", "gold", " Gold "]), 0..3),
            1 => vec(text(&["vip", " ", "bad tag"]), 1..3),
        ],
    )
        .prop_map(
            |(customer_id, profile, channels, granted, consent_source, tags)| {
                let consents = channels.into_iter().map(|c| (c, granted)).collect();
                Command::RegisterCustomer(RegisterCustomer {
                    customer_id,
                    profile: match profile {
                        0 => ada(),
                        1 => Profile::default(),
                        _ => Profile {
                            emails: vec!["nope".into()],
                            ..ada()
                        },
                    },
                    acquisition: None,
                    owner: None,
                    team: None,
                    consents,
                    consent_source,
                    tags,
                })
            },
        )
        .boxed()
}

fn update_profile() -> BoxedStrategy<Command> {
    (
        customer(),
        option::of(text(&["Ada", "Eve", ""])),
        option::of(text(&["Lovelace", ""])),
        option::of(select(vec![0_u8, 1, 1, 1, 1, 2])),
        option::of(option::of(mostly("alice", ""))),
    )
        .prop_map(
            |(customer_id, given_name, family_name, emails, owner)| Command::UpdateProfile {
                customer_id,
                patch: ProfilePatch {
                    given_name,
                    family_name,
                    emails: emails.map(|e| match e {
                        0 => vec![],
                        1 => vec!["X@example.com".into()],
                        _ => vec!["bad".into()],
                    }),
                    owner,
                    ..ProfilePatch::default()
                },
            },
        )
        .boxed()
}

fn set_consent() -> BoxedStrategy<Command> {
    (
        customer(),
        consent_channel(),
        any::<bool>(),
        mostly("form", ""),
    )
        .prop_map(
            |(customer_id, channel, granted, source)| Command::SetConsent {
                customer_id,
                channel,
                granted,
                source,
            },
        )
        .boxed()
}

fn tag_or_untag() -> BoxedStrategy<Command> {
    (
        customer(),
        text(&["vip", "VIP", "gold", "gold", "bad tag"]),
        any::<bool>(),
    )
        .prop_map(|(customer_id, tag, add)| {
            if add {
                Command::TagCustomer { customer_id, tag }
            } else {
                Command::UntagCustomer { customer_id, tag }
            }
        })
        .boxed()
}

fn link() -> BoxedStrategy<Command> {
    (
        customer(),
        customer(),
        select(vec![
            RelationshipKind::Household,
            RelationshipKind::Referrer,
            RelationshipKind::EmployedBy,
        ]),
    )
        .prop_map(|(customer_id, other, kind)| Command::LinkCustomers {
            customer_id,
            other,
            kind,
        })
        .boxed()
}

fn log_interaction() -> BoxedStrategy<Command> {
    (
        customer(),
        select(vec![I1, I2]),
        channel(),
        any::<bool>(),
        prop_oneof![1 => Just(None), 3 => ticket().prop_map(Some)],
        prop_oneof![4 => Just(None), 1 => opportunity().prop_map(Some)],
        option::of(-110_i8..=110),
        prop_oneof![5 => Just(false), 1 => Just(true)],
        select(vec![
            Some("bob"),
            Some("bob"),
            Some("bob"),
            None,
            None,
            Some(""),
        ]),
    )
        .prop_map(
            |(
                customer_id,
                interaction_id,
                channel,
                inbound,
                ticket,
                opportunity,
                sentiment,
                call,
                agent,
            )| {
                Command::LogInteraction(LogInteraction {
                    customer_id,
                    interaction_id,
                    channel,
                    direction: if inbound {
                        Direction::Inbound
                    } else {
                        Direction::Outbound
                    },
                    agent: agent.map(Into::into),
                    subject: "s".into(),
                    summary: String::new(),
                    sentiment,
                    ticket,
                    opportunity,
                    campaign: None,
                    call: call.then_some(crate::CallDetails {
                        duration_secs: 60,
                        outcome: crate::CallOutcome::Answered,
                    }),
                })
            },
        )
        .boxed()
}

fn place_order() -> BoxedStrategy<Command> {
    let order_line = (
        select(vec!["A", "A", "B", "C"]),
        prop_oneof![40 => 1_u32..4, 1 => Just(0)],
        prop_oneof![40 => 0..2000_i64, 1 => Just(-5)],
    )
        .prop_map(|(sku, quantity, price)| line(sku, quantity, price));
    (
        customer(),
        order_id(),
        prop_oneof![20 => vec(order_line, 1..4), 1 => Just(vec![])],
        prop_oneof![20 => 0..300_i64, 1 => Just(1_000_000)],
        currency(),
        mostly("web", "Web"),
    )
        .prop_map(
            |(customer_id, order_id, lines, discount_minor, currency, sales_channel)| {
                Command::PlaceOrder(PlaceOrder {
                    customer_id,
                    order_id,
                    sales_channel,
                    currency,
                    lines,
                    discount_minor,
                    tax_minor: 100,
                    shipping_minor: 0,
                    campaign: None,
                })
            },
        )
        .boxed()
}

fn record_return() -> BoxedStrategy<Command> {
    let return_line = (
        select(vec!["A", "A", "A", "B", "B", "C", "Z"]),
        prop_oneof![30 => 1_u32..3, 1 => Just(0)],
    )
        .prop_map(|(sku, quantity)| ReturnLine {
            sku: sku.into(),
            quantity,
        });
    (
        customer(),
        select(vec![R1, R2, R3, R4]),
        order_id(),
        prop_oneof![1 => Just(vec![]), 5 => vec(return_line, 1..3)],
        prop_oneof![1 => Just(eur_m(0)), 2 => money(2500)],
        mostly("damaged", ""),
    )
        .prop_map(
            |(customer_id, return_id, order_id, lines, refund, reason)| {
                Command::RecordReturn(RecordReturn {
                    customer_id,
                    return_id,
                    order_id,
                    lines,
                    refund,
                    reason,
                })
            },
        )
        .boxed()
}

fn open_ticket() -> BoxedStrategy<Command> {
    (
        customer(),
        ticket(),
        select(vec![TicketPriority::Low, TicketPriority::Urgent]),
        mostly("billing", "Billing"),
    )
        .prop_map(|(customer_id, ticket_id, priority, category)| {
            Command::OpenTicket(OpenTicket {
                customer_id,
                ticket_id,
                channel: Channel::Chat,
                category,
                priority,
                subject: "help".into(),
            })
        })
        .boxed()
}

fn ticket_command() -> BoxedStrategy<Command> {
    (
        customer(),
        ticket(),
        select(vec![0_u8, 1, 1, 2, 2, 2, 3, 4, 4]),
        prop_oneof![5 => Just("bob"), 4 => Just("carol"), 1 => Just("")].prop_map(str::to_owned),
        any::<bool>(),
        option::of(prop_oneof![8 => 1_u8..=5, 1 => Just(0), 1 => Just(6)]),
    )
        .prop_map(
            |(customer_id, ticket_id, which, agent, flag, csat)| match which {
                0 => Command::AssignTicket {
                    customer_id,
                    ticket_id,
                    agent,
                    rule: None,
                },
                1 => Command::RespondToTicket {
                    customer_id,
                    ticket_id,
                    agent,
                    awaiting_customer: flag,
                },
                2 => Command::ResolveTicket {
                    customer_id,
                    ticket_id,
                    resolution: if csat == Some(6) {
                        "\u{7}".into()
                    } else {
                        "done".into()
                    },
                },
                3 => Command::ReopenTicket {
                    customer_id,
                    ticket_id,
                    reason: agent,
                },
                _ => Command::CloseTicket {
                    customer_id,
                    ticket_id,
                    csat,
                    comment: String::new(),
                },
            },
        )
        .boxed()
}

fn open_opportunity() -> BoxedStrategy<Command> {
    (
        customer(),
        opportunity(),
        option::of(stage()),
        prop_oneof![12 => Just(None), 2 => Just(Some("sales")), 1 => Just(Some("nope"))],
        money(200_000),
        mostly("Deal", " "),
    )
        .prop_map(
            |(customer_id, opportunity_id, stage, pipeline, amount, name)| {
                Command::OpenOpportunity(OpenOpportunity {
                    customer_id,
                    opportunity_id,
                    name,
                    pipeline: pipeline.map(Into::into),
                    stage,
                    amount,
                    owner: None,
                    expected_close: None,
                    lead: None,
                    campaign: None,
                })
            },
        )
        .boxed()
}

fn opportunity_command() -> BoxedStrategy<Command> {
    (
        customer(),
        opportunity(),
        select(vec![0_u8, 0, 0, 1, 2, 3, 4]),
        stage(),
        option::of(0_u8..=110),
        option::of(money(200_000)),
        mostly("price", ""),
    )
        .prop_map(
            |(customer_id, opportunity_id, which, stage, probability_pct, amount, reason)| {
                match which {
                    0 => Command::MoveOpportunityStage {
                        customer_id,
                        opportunity_id,
                        stage,
                        probability_pct,
                    },
                    1 => Command::WinOpportunity {
                        customer_id,
                        opportunity_id,
                        amount,
                    },
                    2 => Command::LoseOpportunity {
                        customer_id,
                        opportunity_id,
                        reason,
                    },
                    3 => Command::UpdateOpportunity {
                        customer_id,
                        opportunity_id,
                        name: None,
                        amount,
                        owner: probability_pct.map(|p| format!("owner-{}", p % 3)),
                        expected_close: None,
                    },
                    _ => Command::ReopenOpportunity {
                        customer_id,
                        opportunity_id,
                        stage: probability_pct.map(|_| stage),
                        reason,
                    },
                }
            },
        )
        .boxed()
}

fn campaign_response() -> BoxedStrategy<Command> {
    (customer(), campaign_id(), 0_u8..5, money(10_000))
        .prop_map(
            |(customer_id, campaign_id, which, revenue)| Command::RecordCampaignResponse {
                customer_id,
                campaign_id,
                response: match which {
                    0 => CampaignResponse::Opened,
                    1 => CampaignResponse::Clicked,
                    2 => CampaignResponse::Converted {
                        revenue: Some(revenue),
                        order: None,
                    },
                    _ => CampaignResponse::Unsubscribed,
                },
            },
        )
        .boxed()
}

fn create_lead() -> BoxedStrategy<Command> {
    (
        lead(),
        select(vec![
            Some("g@example.com"),
            Some(" G@Example.com"),
            Some("g@example.com"),
            None,
            Some("bad"),
        ]),
        select(vec![Some("+15551234567"), None]),
        mostly("web-form", "Web"),
    )
        .prop_map(|(lead_id, email, phone, source)| Command::CreateLead {
            lead_id,
            lead: LeadCaptured {
                source,
                campaign: Some(K1),
                given_name: "Grace".into(),
                family_name: String::new(),
                email: email.map(Into::into),
                phone: phone.map(Into::into),
                interest: String::new(),
            },
        })
        .boxed()
}

fn lead_command() -> BoxedStrategy<Command> {
    (
        lead(),
        select(vec![0_u8, 1, 2, 2, 2, 3]),
        prop_oneof![5 => Just("alice"), 4 => Just("bob"), 1 => Just("")].prop_map(str::to_owned),
        channel(),
    )
        .prop_map(|(lead_id, which, who, channel)| match which {
            0 => Command::AssignLead {
                lead_id,
                owner: who,
                rule: None,
            },
            1 => Command::ContactLead {
                lead_id,
                channel,
                agent: Some(who),
            },
            2 => Command::QualifyLead {
                lead_id,
                note: String::new(),
            },
            _ => Command::DisqualifyLead {
                lead_id,
                reason: who,
            },
        })
        .boxed()
}

fn convert_lead() -> BoxedStrategy<Command> {
    (
        lead(),
        prop_oneof![
            1 => select(vec![C3, C3, C2]).prop_map(ConvertInto::NewCustomer),
            1 => customer().prop_map(ConvertInto::ExistingCustomer),
        ],
        option::of((opportunity(), option::of(stage()), money(100_000))),
    )
        .prop_map(|(lead_id, into, opportunity)| Command::ConvertLead {
            lead_id,
            into,
            opportunity: opportunity.map(|(opportunity_id, stage, amount)| ConversionOpportunity {
                opportunity_id,
                name: "Converted".into(),
                pipeline: None,
                stage,
                amount,
            }),
        })
        .boxed()
}

fn campaign_command() -> BoxedStrategy<Command> {
    (
        campaign_id(),
        0_u8..4,
        select(vec![Channel::Email, Channel::Sms, Channel::Chat]),
        option::of(money(100_000)),
        prop_oneof![
            8 => subsequence(vec![C1, C2, C3], 1..=3),
            1 => Just(vec![]),
            1 => Just(vec![C1, C1]),
        ],
        money(10_000),
    )
        .prop_map(
            |(campaign_id, which, channel, budget, recipients, amount)| match which {
                0 => Command::CreateCampaign {
                    campaign_id,
                    campaign: campaign(channel, budget),
                },
                1 | 2 => Command::SendCampaign {
                    campaign_id,
                    recipients,
                },
                _ => Command::RecordCampaignCost {
                    campaign_id,
                    amount,
                    note: String::new(),
                },
            },
        )
        .boxed()
}

fn command() -> impl Strategy<Value = Command> {
    Union::new_weighted(vec![
        (5, register()),
        (3, update_profile()),
        (2, set_consent()),
        (3, tag_or_untag()),
        (2, link()),
        (4, log_interaction()),
        (6, place_order()),
        (6, record_return()),
        (6, open_ticket()),
        (14, ticket_command()),
        (6, open_opportunity()),
        (8, opportunity_command()),
        (4, campaign_response()),
        (3, create_lead()),
        (8, lead_command()),
        (3, convert_lead()),
        (5, campaign_command()),
    ])
}

/// A few creations first (they may still be rejected), then anything.
fn commands() -> impl Strategy<Value = Vec<Command>> {
    let setup = prop_oneof![4 => register(), 1 => create_lead(), 1 => campaign_command()];
    (vec(setup, 1..8), vec(command(), 10..100)).prop_map(|(mut setup, rest)| {
        setup.extend(rest);
        setup
    })
}

// ---------------------------------------------------------------- the model run

/// The outcome of running a sequence: the world, every decided event, and per command the
/// number of events it decided or its rejection.
#[derive(Debug, PartialEq)]
struct Run {
    world: World,
    events: Vec<DomainEvent>,
    results: Vec<Result<usize, Rejection>>,
}

/// Ordered quantities per SKU of every order, from the decided `OrderPlaced` events.
type Ordered = BTreeMap<(CustomerId, OrderId), BTreeMap<String, u64>>;

fn run(commands: &[Command]) -> Run {
    let config = DomainConfig::default();
    let ctx = DecideContext {
        config: &config,
        occurred_at: T0,
    };
    let mut world = World::default();
    let mut events = Vec::new();
    let mut results = Vec::new();
    let mut ordered = Ordered::new();
    for command in commands {
        let before = world.clone();
        let decided = decide(&world, command, &ctx);
        assert_eq!(decided, decide(&world, command, &ctx), "decide is pure");
        match decided {
            Ok(decided) => {
                let writes: Vec<AggregateRef> = command
                    .targets()
                    .iter()
                    .filter(|t| t.write)
                    .map(|t| t.aggregate)
                    .collect();
                for e in &decided {
                    assert!(
                        writes.contains(&e.aggregate()),
                        "{} wrote to {} outside its targets",
                        command.name(),
                        e.aggregate()
                    );
                    world.apply(e).unwrap_or_else(|err| {
                        panic!("decided event does not evolve: {err}: {e:?}")
                    });
                    if let DomainEvent::Customer(c, CustomerEvent::OrderPlaced(o)) = e {
                        let quantities = ordered.entry((*c, o.order_id)).or_default();
                        for l in &o.lines {
                            *quantities.entry(l.sku.clone()).or_default() += u64::from(l.quantity);
                        }
                    }
                }
                if decided.is_empty() {
                    assert_eq!(world, before, "an empty decision changes nothing");
                }
                results.push(Ok(decided.len()));
                events.extend(decided);
            }
            Err(rejection) => {
                assert!(!rejection.violations.is_empty());
                assert!(rejection.violations.iter().all(|v| !v.message.is_empty()));
                assert_eq!(
                    world, before,
                    "a rejected command leaves the world unchanged"
                );
                results.push(Err(rejection));
            }
        }
        check_invariants(command, &before, &world, &ordered);
    }
    Run {
        world,
        events,
        results,
    }
}

#[track_caller]
fn check_invariants(command: &Command, before: &World, after: &World, ordered: &Ordered) {
    let name = command.name();
    // Aggregates never disappear.
    assert!(
        before
            .customers
            .keys()
            .all(|id| after.customers.contains_key(id))
    );
    assert!(before.leads.keys().all(|id| after.leads.contains_key(id)));
    assert!(
        before
            .campaigns
            .keys()
            .all(|id| after.campaigns.contains_key(id))
    );

    for (cid, c) in &after.customers {
        for (oid, o) in &c.orders {
            assert!(
                (0..=o.total.minor).contains(&o.refunded_minor),
                "{name}: order {oid} refunded {} of {}",
                o.refunded_minor,
                o.total.minor
            );
            let quantities = &ordered[&(*cid, *oid)];
            assert_eq!(
                o.returnable.keys().collect::<Vec<_>>(),
                quantities.keys().collect::<Vec<_>>(),
                "{name}: returnable SKUs of order {oid}"
            );
            for (sku, left) in &o.returnable {
                assert!(
                    u64::from(*left) <= quantities[sku],
                    "{name}: {left} of {sku} returnable, {} ordered",
                    quantities[sku]
                );
            }
        }
        for (other, kind) in &c.relationships {
            assert!(
                after.customers[other]
                    .relationships
                    .contains(&(*cid, kind.inverse())),
                "{name}: relationship {cid} -> {other} ({kind:?}) has no inverse"
            );
        }
        if let Some(prev) = before.customers.get(cid) {
            for (tid, t) in &prev.tickets {
                if t.status == TicketStatus::Closed {
                    assert_eq!(
                        c.tickets[tid].status,
                        TicketStatus::Closed,
                        "{name}: closed ticket {tid} changed"
                    );
                }
            }
            for (pid, o) in &prev.opportunities {
                // A won deal never changes; a lost one only by being reopened.
                let reopened = name == "ReopenOpportunity"
                    && o.status == OpportunityStatus::Lost
                    && c.opportunities[pid].status == OpportunityStatus::Open;
                if o.status != OpportunityStatus::Open && !reopened {
                    assert_eq!(
                        &c.opportunities[pid], o,
                        "{name}: closed opportunity {pid} changed"
                    );
                }
            }
        }
    }
    for (lid, l) in &after.leads {
        if let Some(prev) = before.leads.get(lid)
            && prev.status.is_closed()
        {
            assert_eq!(prev, l, "{name}: closed lead {lid} changed");
        }
        if l.status == LeadStatus::Converted {
            let customer = l.customer.expect("a converted lead names its customer");
            assert!(
                after.customers.contains_key(&customer),
                "{name}: lead {lid} converted into nothing"
            );
        }
    }
}

fn replay<'e>(
    events: impl IntoIterator<Item = &'e DomainEvent>,
) -> Result<World, crate::HistoryError> {
    let mut world = World::default();
    for e in events {
        world.apply(e)?;
    }
    Ok(world)
}

/// 300 cases; no regression files (they would land outside this module's directory:
/// a failure prints the minimal sequence instead).
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Same commands, same world, same events, same rejections; and the invariants hold
    /// after every step (checked inside `run`).
    #[test]
    fn decide_and_evolve_are_deterministic(commands in commands()) {
        let first = run(&commands);
        let second = run(&commands);
        prop_assert_eq!(first, second);
    }

    /// Folding the decided events from an empty world reproduces the live world, whether
    /// folded as one log or as one stream per aggregate.
    #[test]
    fn replaying_the_decided_events_reproduces_the_live_world(commands in commands()) {
        let live = run(&commands);
        prop_assert_eq!(&replay(&live.events)?, &live.world);
        let mut streams: BTreeMap<AggregateRef, Vec<&DomainEvent>> = BTreeMap::new();
        for e in &live.events {
            streams.entry(e.aggregate()).or_default().push(e);
        }
        prop_assert_eq!(&replay(streams.into_values().flatten())?, &live.world);
        // Every aggregate of the live world has a stream, and vice versa.
        let aggregates: BTreeSet<AggregateRef> = live.events.iter().map(DomainEvent::aggregate).collect();
        prop_assert!(aggregates.iter().all(|a| live.world.contains(*a)));
        prop_assert_eq!(
            aggregates.len(),
            live.world.customers.len() + live.world.leads.len() + live.world.campaigns.len()
        );
    }
}

/// Units returned per SKU over all returns of an order, from the decided events.
fn returned_units(events: &[DomainEvent]) -> Ordered {
    let mut returned = Ordered::new();
    for e in events {
        if let DomainEvent::Customer(c, CustomerEvent::ReturnRecorded(r)) = e {
            let units = returned.entry((*c, r.order_id)).or_default();
            for l in &r.lines {
                *units.entry(l.sku.clone()).or_default() += u64::from(l.quantity);
            }
        }
    }
    returned
}

proptest! {
    #![proptest_config(config())]

    /// Stronger than `returnable <= ordered` (which evolve's saturating_sub guarantees by
    /// itself): the units the returns record never exceed the units ordered.
    #[test]
    fn returned_units_never_exceed_ordered_units(commands in commands()) {
        let live = run(&commands);
        let mut ordered = Ordered::new();
        for e in &live.events {
            if let DomainEvent::Customer(c, CustomerEvent::OrderPlaced(o)) = e {
                let units = ordered.entry((*c, o.order_id)).or_default();
                for l in &o.lines {
                    *units.entry(l.sku.clone()).or_default() += u64::from(l.quantity);
                }
            }
        }
        for (order, units) in returned_units(&live.events) {
            for (sku, n) in units {
                prop_assert!(n <= ordered[&order][&sku], "{n} of {sku} returned on {order:?}");
            }
        }
    }
}

/// The generators reach both outcomes of every command, and the multi-event decisions.
#[test]
fn generated_commands_hit_accepted_and_rejected_paths_of_every_command() {
    #[derive(Default, Debug)]
    struct Tally {
        changed: u32,
        noop: u32,
        rejected: u32,
        most_events: usize,
    }
    let mut runner = TestRunner::deterministic();
    let strategy = commands();
    let mut tally: BTreeMap<&'static str, Tally> = BTreeMap::new();
    let mut rules: BTreeSet<(&'static str, &'static str)> = BTreeSet::new();
    for _ in 0..300 {
        let commands = strategy
            .new_tree(&mut runner)
            .expect("a value tree")
            .current();
        let run = run(&commands);
        for (command, result) in commands.iter().zip(&run.results) {
            let t = tally.entry(command.name()).or_default();
            match result {
                Ok(0) => t.noop += 1,
                Ok(n) => {
                    t.changed += 1;
                    t.most_events = t.most_events.max(*n);
                }
                Err(r) => {
                    t.rejected += 1;
                    rules.extend(r.violations.iter().map(|v| (command.name(), v.rule)));
                }
            }
        }
    }
    for name in COMMAND_NAMES {
        let t = tally
            .get(name)
            .unwrap_or_else(|| panic!("{name} never generated"));
        assert!(t.changed > 0 && t.rejected > 0, "{name}: {t:?}");
    }
    for (name, events) in [
        ("RegisterCustomer", 3),
        ("LinkCustomers", 2),
        ("LogInteraction", 2),
        ("RecordCampaignResponse", 2),
        ("ConvertLead", 3),
    ] {
        assert!(
            tally[name].most_events >= events,
            "{name}: {:?}",
            tally[name]
        );
    }
    for name in [
        "TagCustomer",
        "UntagCustomer",
        "SetConsent",
        "UpdateProfile",
        "AssignTicket",
        "AssignLead",
        "QualifyLead",
    ] {
        assert!(
            tally[name].noop > 0,
            "{name} no-op never reached: {:?}",
            tally[name]
        );
    }
    for rule in [
        ("RecordReturn", "refund_exceeds_order"),
        ("RecordReturn", "exceeds_ordered"),
        ("RecordReturn", "not_on_order"),
        ("RecordReturn", "currency"),
        ("ResolveTicket", "state"),
        ("CloseTicket", "state"),
        ("MoveOpportunityStage", "state"),
        ("MoveOpportunityStage", "unknown_stage"),
        ("ConvertLead", "state"),
        ("ConvertLead", "already_exists"),
        ("RecordCampaignResponse", "state"),
        ("RecordCampaignCost", "currency"),
    ] {
        assert!(rules.contains(&rule), "{rule:?} never reached");
    }
}
