//! The 360 fold against hand-computed expectations, in memory (no I/O).

use std::collections::{BTreeMap, BTreeSet};

use crm_customer360::view::{self, Lifecycle, LifecyclePolicy, Population, ValueClass};
use crm_customer360::{
    Amounts, CategoryStats, ChannelEngagement, ConsentRecord, Customer360, CustomerFacts,
    CustomerRecord, DealStatus, Summary, TicketState, TimelineEntry, decode_chunk, keys,
    sort_timeline,
};
use crm_domain::{
    Actor, CampaignEvent, CampaignId, CampaignResponse, Channel, CommandId, ConsentChannel,
    Currency, CustomerEvent, CustomerId, CustomerRegistered, Direction, DomainEvent,
    ForecastCategory, InteractionId, InteractionLogged, LeadCaptured, LeadEvent, LeadId, Money,
    OpportunityId, OpportunityOpened, OrderId, OrderLine, OrderPlaced, Profile, RelationshipKind,
    ReturnId, ReturnLine, ReturnRecorded, SlaTargets, TicketId, TicketOpened, TicketPriority,
    Timestamp,
};
use crm_events::{Envelope, EventHash, EventMeta};
use crm_projection::{Event, FoldError, MemState, load};
use uuid::Uuid;

const DAY: i64 = Timestamp::MICROS_PER_DAY;
const MIN: i64 = Timestamp::MICROS_PER_MINUTE;
/// 2026-01-01T00:00:00Z
const T0: i64 = 1_767_225_600 * 1_000_000;

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::parse("EUR").unwrap())
}

struct Stream {
    state: MemState,
    fold: Customer360,
    seq: u64,
    versions: BTreeMap<Uuid, u64>,
}

impl Stream {
    fn new() -> Self {
        Self {
            state: MemState::default(),
            fold: Customer360::default(),
            seq: 0,
            versions: BTreeMap::new(),
        }
    }

    fn push(&mut self, at: i64, event: DomainEvent) -> Result<(), FoldError> {
        self.seq += 1;
        let agg = event.aggregate();
        let version = self.versions.entry(agg.uuid()).or_default();
        *version += 1;
        let envelope = Envelope {
            meta: EventMeta {
                event_id: Uuid::from_u128(u128::from(self.seq)),
                version: *version,
                occurred_at: Timestamp(at),
                recorded_at: Timestamp(at + 1),
                actor: Actor::User("alice".into()),
                command_id: CommandId(Uuid::from_u128(1000 + u128::from(self.seq))),
                correlation_id: Uuid::nil(),
                causation_id: None,
                commit_index: 0,
                commit_size: 1,
                prev_hash: EventHash::GENESIS,
            },
            aggregate: agg,
            event_type: event.event_type().into(),
            schema_version: 1,
            event,
            hash: EventHash::GENESIS,
            sealing: crm_events::Sealing::Plain,
        };
        let subject = format!("crm.v1.{}.{}", agg.kind().name(), agg.uuid().simple());
        self.state.apply(
            &self.fold,
            &Event {
                seq: self.seq,
                index: 0,
                subject: &subject,
                envelope: &envelope,
            },
        )
    }

    fn customer(&mut self, id: CustomerId) -> CustomerRecord {
        load(
            &mut self.state,
            &keys::id_key(keys::CUSTOMER, id.0.into_bytes()),
        )
        .unwrap()
        .expect("customer record")
    }

    fn facts(&mut self, id: CustomerId) -> CustomerFacts {
        load(
            &mut self.state,
            &keys::id_key(keys::FACTS, id.0.into_bytes()),
        )
        .unwrap()
        .unwrap_or_default()
    }

    fn timeline(&self, id: CustomerId) -> Vec<TimelineEntry> {
        let prefix = keys::id_key(keys::TIMELINE, id.0.into_bytes());
        let mut entries = Vec::new();
        self.state
            .entries
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .for_each(|(_, v)| decode_chunk(v, &mut entries).unwrap());
        sort_timeline(&mut entries);
        entries
    }

    fn has_key(&self, key: &[u8]) -> bool {
        self.state.entries.contains_key(key)
    }
}

fn c(id: CustomerId, e: CustomerEvent) -> DomainEvent {
    DomainEvent::Customer(id, e)
}

fn registered(given: &str) -> CustomerEvent {
    CustomerEvent::Registered(CustomerRegistered {
        profile: Profile {
            given_name: given.into(),
            family_name: "Doe".into(),
            emails: vec![format!("{}@example.com", given.to_lowercase())],
            ..Profile::default()
        },
        acquisition: None,
        owner: Some("bob".into()),
        team: None,
        lead: None,
    })
}

fn order(id: u128, at_lines: &[(&str, &str, u32, i64)], total: i64) -> CustomerEvent {
    CustomerEvent::OrderPlaced(OrderPlaced {
        order_id: OrderId(Uuid::from_u128(id)),
        sales_channel: "web".into(),
        lines: at_lines
            .iter()
            .map(|(sku, cat, q, p)| OrderLine {
                sku: (*sku).into(),
                category: (*cat).into(),
                quantity: *q,
                unit_price_minor: *p,
            })
            .collect(),
        discount_minor: 100,
        tax_minor: 0,
        shipping_minor: 0,
        total: eur(total),
        campaign: None,
    })
}

#[test]
fn identity_consent_tags_relationships_and_commerce() {
    let mut s = Stream::new();
    let ann = CustomerId(Uuid::from_u128(1));
    let ben = CustomerId(Uuid::from_u128(2));
    s.push(T0, c(ann, registered("Ann"))).unwrap();
    s.push(T0, c(ben, registered("Ben"))).unwrap();
    s.push(
        T0 + DAY,
        c(
            ann,
            CustomerEvent::ConsentChanged {
                channel: ConsentChannel::Email,
                granted: true,
                source: "signup-form".into(),
            },
        ),
    )
    .unwrap();
    s.push(
        T0 + DAY,
        c(ann, CustomerEvent::Tagged { tag: "vip".into() }),
    )
    .unwrap();
    s.push(T0 + DAY, c(ann, CustomerEvent::Tagged { tag: "eu".into() }))
        .unwrap();
    s.push(
        T0 + DAY,
        c(ann, CustomerEvent::Untagged { tag: "eu".into() }),
    )
    .unwrap();
    s.push(
        T0 + DAY,
        c(
            ann,
            CustomerEvent::RelationshipLinked {
                other: ben,
                kind: RelationshipKind::Referrer,
            },
        ),
    )
    .unwrap();
    // Two orders: 2 x shoes @ 30.00 + 1 x socks @ 5.00 = 65.00 - 1.00 discount = 64.00,
    // then 1 x shoes @ 30.00 - 1.00 = 29.00; a return refunds 30.00.
    s.push(
        T0 + 10 * DAY,
        c(
            ann,
            order(
                10,
                &[("S1", "shoes", 2, 3000), ("K1", "socks", 1, 500)],
                6400,
            ),
        ),
    )
    .unwrap();
    s.push(
        T0 + 40 * DAY,
        c(ann, order(11, &[("S1", "shoes", 1, 3000)], 2900)),
    )
    .unwrap();
    s.push(
        T0 + 41 * DAY,
        c(
            ann,
            CustomerEvent::ReturnRecorded(ReturnRecorded {
                return_id: ReturnId(Uuid::from_u128(20)),
                order_id: OrderId(Uuid::from_u128(10)),
                lines: vec![ReturnLine {
                    sku: "S1".into(),
                    quantity: 1,
                }],
                refund: eur(3000),
                reason: "too small".into(),
            }),
        ),
    )
    .unwrap();

    let r = s.customer(ann);
    assert!(r.registered);
    assert_eq!(r.registered_at, T0);
    assert_eq!(r.registered_by, "user:alice");
    assert_eq!(r.version, 9, "Ann's ninth event");
    assert_eq!(r.last_seq, 10);
    assert_eq!(r.updated_at, T0 + 41 * DAY);
    assert_eq!(r.profile.given_name, "Ann");
    assert_eq!(r.profile.emails, vec!["ann@example.com".to_owned()]);
    assert_eq!(r.owner.as_deref(), Some("bob"));
    assert_eq!(
        r.consent,
        BTreeMap::from([(
            "email".to_owned(),
            ConsentRecord {
                granted: true,
                source: "signup-form".into(),
                changed_at: T0 + DAY,
            }
        )])
    );
    assert_eq!(r.tags, BTreeSet::from(["vip".to_owned()]));
    assert_eq!(
        r.relationships,
        BTreeSet::from([("referrer".to_owned(), ben.0.into_bytes())])
    );
    let cm = &r.commerce;
    assert_eq!(cm.orders, 2);
    assert_eq!(cm.first_order_at, Some(T0 + 10 * DAY));
    assert_eq!(cm.last_order_at, Some(T0 + 40 * DAY));
    assert_eq!(
        cm.amounts,
        BTreeMap::from([(
            "EUR".to_owned(),
            Amounts {
                orders: 2,
                revenue_minor: 9300,
                refunded_minor: 3000,
                discount_minor: 200,
            }
        )])
    );
    assert_eq!(cm.returns, 1);
    assert_eq!(cm.items, 4);
    assert_eq!(
        cm.categories,
        BTreeMap::from([
            (
                "shoes".to_owned(),
                CategoryStats {
                    units: 3,
                    orders: 2
                }
            ),
            (
                "socks".to_owned(),
                CategoryStats {
                    units: 1,
                    orders: 1
                }
            ),
        ])
    );
    assert_eq!(cm.sales_channels, BTreeMap::from([("web".to_owned(), 2)]));
    assert_eq!(
        s.facts(ann),
        CustomerFacts {
            orders: 2,
            last_order_at: Some(T0 + 40 * DAY),
            net_revenue_minor: 6300,
        }
    );
    // Indexes: the tag that was removed is gone, owner, recency and value are present.
    let id = ann.0.into_bytes();
    assert!(s.has_key(&keys::text_index(keys::BY_TAG, "vip", id)));
    assert!(!s.has_key(&keys::text_index(keys::BY_TAG, "eu", id)));
    assert!(s.has_key(&keys::text_index(keys::BY_OWNER, "bob", id)));
    assert!(s.has_key(&keys::desc_index(keys::BY_RECENCY, T0 + 40 * DAY, id)));
    assert!(!s.has_key(&keys::desc_index(keys::BY_RECENCY, T0 + 10 * DAY, id)));
    assert!(s.has_key(&keys::desc_index(keys::BY_VALUE, 6300, id)));
    assert!(!s.has_key(&keys::desc_index(keys::BY_VALUE, 6400, id)));

    let timeline = s.timeline(ann);
    assert_eq!(timeline.len(), 9);
    assert_eq!(timeline[0].event_type, "customer.registered");
    assert_eq!(timeline[0].summary.render(true), "Registered Ann Doe");
    // The name is personal data: a reader without `pii.read` sees the line without it.
    assert_eq!(
        timeline[0].summary.render(false),
        format!("Registered {}", Summary::REDACTED)
    );
    assert_eq!(timeline[6].event_type, "customer.order_placed");
    assert_eq!(
        timeline[6].summary.render(false),
        format!(
            "Order {} placed via web: 2 line(s), 64.00 EUR",
            Uuid::from_u128(10)
        )
    );
    assert_eq!(timeline[8].seq, 10);
    assert_eq!(timeline[8].actor, "user:alice");
    assert_eq!(timeline[8].recorded_at, T0 + 41 * DAY + 1);
    assert!(
        timeline
            .windows(2)
            .all(|w| w[0].occurred_at <= w[1].occurred_at),
        "timeline in business-time order"
    );
}

#[test]
fn engagement_sales_marketing_and_service() {
    let mut s = Stream::new();
    let ann = CustomerId(Uuid::from_u128(1));
    let camp = CampaignId(Uuid::from_u128(50));
    let lead = LeadId(Uuid::from_u128(60));
    s.push(
        T0 - DAY,
        DomainEvent::Lead(
            lead,
            LeadEvent::Captured(LeadCaptured {
                source: "web-form".into(),
                campaign: None,
                given_name: "Ann".into(),
                family_name: "Doe".into(),
                email: None,
                phone: None,
                interest: "shoes".into(),
            }),
        ),
    )
    .unwrap();
    s.push(T0, c(ann, registered("Ann"))).unwrap();
    s.push(
        T0,
        DomainEvent::Lead(
            lead,
            LeadEvent::Converted {
                customer_id: ann,
                new_customer: false,
                opportunity_id: None,
            },
        ),
    )
    .unwrap();
    // Interactions: email on day 1 (inbound, sentiment 50) and day 100 (outbound, -10);
    // phone on day 100.
    for (day, channel, direction, sentiment) in [
        (1, Channel::Email, Direction::Inbound, Some(50)),
        (100, Channel::Email, Direction::Outbound, Some(-10)),
        (100, Channel::Phone, Direction::Inbound, None),
    ] {
        s.push(
            T0 + day * DAY,
            c(
                ann,
                CustomerEvent::InteractionLogged(InteractionLogged {
                    interaction_id: InteractionId(Uuid::from_u128(
                        u128::try_from(day).unwrap() + 200,
                    )),
                    channel,
                    direction,
                    agent: None,
                    subject: "hello".into(),
                    summary: String::new(),
                    sentiment,
                    ticket: None,
                    opportunity: None,
                    campaign: None,
                    call: None,
                }),
            ),
        )
        .unwrap();
    }
    // Two opportunities: one open at 40% of 1000.00, one won at 500.00.
    for (n, amount) in [(1, 100_000), (2, 50_000)] {
        s.push(
            T0 + 2 * DAY,
            c(
                ann,
                CustomerEvent::OpportunityOpened(OpportunityOpened {
                    opportunity_id: OpportunityId(Uuid::from_u128(300 + n)),
                    name: format!("deal {n}"),
                    pipeline: "b2c".into(),
                    stage: "prospecting".into(),
                    probability_pct: 10,
                    forecast: ForecastCategory::Pipeline,
                    amount: eur(amount),
                    owner: None,
                    expected_close: None,
                    lead: None,
                    campaign: None,
                }),
            ),
        )
        .unwrap();
    }
    s.push(
        T0 + 3 * DAY,
        c(
            ann,
            CustomerEvent::OpportunityStageMoved {
                opportunity_id: OpportunityId(Uuid::from_u128(301)),
                from_stage: "prospecting".into(),
                to_stage: "proposal".into(),
                probability_pct: 40,
                forecast: ForecastCategory::BestCase,
            },
        ),
    )
    .unwrap();
    s.push(
        T0 + 4 * DAY,
        c(
            ann,
            CustomerEvent::OpportunityWon {
                opportunity_id: OpportunityId(Uuid::from_u128(302)),
                amount: eur(50_000),
                stage: Some("negotiation".into()),
            },
        ),
    )
    .unwrap();
    // Campaign: created, sent in two waves, opened then converted with revenue 20.00.
    s.push(
        T0,
        DomainEvent::Campaign(
            camp,
            CampaignEvent::Created(crm_domain::CampaignCreated {
                name: "spring".into(),
                channel: Channel::Email,
                segment: "all".into(),
                budget: None,
            }),
        ),
    )
    .unwrap();
    for wave in 1..=2 {
        s.push(
            T0 + 5 * DAY,
            DomainEvent::Campaign(
                camp,
                CampaignEvent::Sent {
                    wave,
                    recipients: vec![ann, CustomerId(Uuid::from_u128(999))],
                    skipped: Vec::new(),
                },
            ),
        )
        .unwrap();
    }
    for (day, response) in [
        (6, CampaignResponse::Opened),
        (
            7,
            CampaignResponse::Converted {
                revenue: Some(eur(2000)),
                order: None,
            },
        ),
    ] {
        s.push(
            T0 + day * DAY,
            c(
                ann,
                CustomerEvent::CampaignResponseRecorded {
                    campaign_id: camp,
                    response,
                },
            ),
        )
        .unwrap();
    }
    // A ticket: opened at 0, first response after 90 min asking the customer (pause),
    // customer replies 2 h later, resolved 1 h after that, closed with CSAT 4.
    let t = TicketId(Uuid::from_u128(400));
    let opened = T0 + 10 * DAY;
    let tick = |e| c(ann, e);
    s.push(
        opened,
        tick(CustomerEvent::TicketOpened(TicketOpened {
            ticket_id: t,
            channel: Channel::Chat,
            category: "complaint".into(),
            priority: TicketPriority::High,
            subject: "late delivery".into(),
            sla: SlaTargets {
                policy: "default".into(),
                first_response_mins: 60,
                resolution_mins: 240,
            },
        })),
    )
    .unwrap();
    s.push(
        opened + 90 * MIN,
        tick(CustomerEvent::TicketResponded {
            ticket_id: t,
            agent: "carol".into(),
            first_response: true,
            awaiting_customer: true,
        }),
    )
    .unwrap();
    s.push(
        opened + 210 * MIN,
        tick(CustomerEvent::TicketCustomerReplied { ticket_id: t }),
    )
    .unwrap();
    s.push(
        opened + 270 * MIN,
        tick(CustomerEvent::TicketResolved {
            ticket_id: t,
            resolution: "refunded".into(),
        }),
    )
    .unwrap();
    s.push(
        opened + 300 * MIN,
        tick(CustomerEvent::TicketClosed {
            ticket_id: t,
            csat: Some(4),
            comment: String::new(),
        }),
    )
    .unwrap();

    let r = s.customer(ann);
    let origin = r.origin_lead.as_ref().expect("origin lead");
    assert_eq!(origin.lead_id, lead.0.into_bytes());
    assert_eq!(origin.source.as_deref(), Some("web-form"));
    assert_eq!(origin.captured_at, Some(T0 - DAY));
    assert_eq!(origin.converted_at, Some(T0));

    assert_eq!(
        r.engagement["email"],
        ChannelEngagement {
            last_at: T0 + 100 * DAY,
            inbound: 1,
            outbound: 1,
            per_day: BTreeMap::from([(T0 / DAY + 1, 1), (T0 / DAY + 100, 1)]),
            sentiment_sum: 40,
            sentiment_count: 2,
        }
    );
    assert_eq!(r.engagement["phone"].inbound, 1);
    // As of day 100: the last 30 days hold day 100 (email + phone); day 1 is in none of
    // the 30/90-day windows (it is 99 days earlier: the previous 90-day window).
    let email = view::windows(&r.engagement["email"].per_day, T0 + 100 * DAY);
    assert_eq!(
        (
            email.last_30d,
            email.prev_30d,
            email.last_90d,
            email.prev_90d
        ),
        (1, 0, 1, 1)
    );
    assert_eq!(email.trend_30d(), 1);

    let sales = view::sales(&r);
    assert_eq!((sales.open, sales.won, sales.lost), (1, 1, 0));
    assert_eq!(sales.open_amount["EUR"], 100_000);
    assert_eq!(sales.weighted_pipeline["EUR"], 40_000, "1000.00 x 40%");
    assert_eq!(sales.won_amount["EUR"], 50_000);
    let deal = &r.opportunities[&Uuid::from_u128(301).into_bytes()];
    assert_eq!(deal.stage, "proposal");
    assert_eq!(deal.forecast, "best_case");
    assert_eq!(deal.stage_entered_at, T0 + 3 * DAY);
    assert_eq!(
        r.opportunities[&Uuid::from_u128(302).into_bytes()].status,
        DealStatus::Won
    );

    let m = &r.marketing;
    assert_eq!(m.received, BTreeMap::from([(camp.0.into_bytes(), 2)]));
    let flags = m.responses[&camp.0.into_bytes()];
    assert!(flags.opened && flags.converted && !flags.clicked && !flags.unsubscribed);
    assert_eq!(m.last_response.as_deref(), Some("converted"));
    assert_eq!(m.last_response_at, Some(T0 + 7 * DAY));
    assert_eq!(m.attributed_minor["EUR"], 2000);

    let ticket = &r.tickets[&t.0.into_bytes()];
    assert_eq!(ticket.status, TicketState::Closed);
    assert_eq!(ticket.first_response_at, Some(opened + 90 * MIN));
    assert_eq!(ticket.paused_micros, 120 * MIN, "waiting on the customer");
    assert_eq!(ticket.first_resolved_at, Some(opened + 270 * MIN));
    assert_eq!(ticket.csat, Some(4));
    // First response after 90 min > 60 min target: breached. Resolution: 270 min - 120
    // min paused = 150 min <= 240 min: met.
    assert_eq!(view::sla_breaches(ticket, T0 + 100 * DAY), (true, false));
    let sv = view::service(&r, opened + DAY);
    assert_eq!(sv.open, 0);
    assert_eq!(
        (sv.opened_30d, sv.complaints_30d, sv.complaints_90d),
        (1, 1, 1)
    );
    assert_eq!(sv.median_first_response_mins, Some(90.0));
    assert_eq!(sv.median_resolution_mins, Some(150.0));
    assert_eq!(sv.last_csat, Some(4));
    assert_eq!(sv.average_csat, Some(4.0));
    assert_eq!(sv.csat_pct, Some(1.0));

    // The campaign send is on Ann's timeline (twice), never on the unknown recipient's.
    let timeline = s.timeline(ann);
    assert_eq!(
        timeline
            .iter()
            .filter(|e| e.event_type == "campaign.sent")
            .count(),
        2
    );
    assert!(timeline.iter().any(|e| e.event_type == "lead.converted"));
    assert!(s.timeline(CustomerId(Uuid::from_u128(999))).is_empty());
}

#[test]
fn a_rejected_event_changes_nothing_and_an_open_ticket_breaches_as_time_passes() {
    let mut s = Stream::new();
    let ann = CustomerId(Uuid::from_u128(1));
    assert!(matches!(
        s.push(T0, c(ann, CustomerEvent::Tagged { tag: "x".into() })),
        Err(FoldError::Rejected(_))
    ));
    assert!(
        s.state.entries.is_empty(),
        "nothing written for a rejected event"
    );
    s.push(T0, c(ann, registered("Ann"))).unwrap();
    let before = s.state.clone();
    let err = s
        .push(
            T0,
            c(
                ann,
                CustomerEvent::TicketResolved {
                    ticket_id: TicketId(Uuid::from_u128(9)),
                    resolution: String::new(),
                },
            ),
        )
        .unwrap_err();
    assert!(err.to_string().contains("never opened"), "{err}");
    assert_eq!(s.state, before);

    s.push(
        T0,
        c(
            ann,
            CustomerEvent::TicketOpened(TicketOpened {
                ticket_id: TicketId(Uuid::from_u128(9)),
                channel: Channel::Email,
                category: "question".into(),
                priority: TicketPriority::Normal,
                subject: "?".into(),
                sla: SlaTargets {
                    policy: "default".into(),
                    first_response_mins: 60,
                    resolution_mins: 240,
                },
            }),
        ),
    )
    .unwrap();
    let r = s.customer(ann);
    let t = &r.tickets[&Uuid::from_u128(9).into_bytes()];
    assert_eq!(view::sla_breaches(t, T0 + 59 * MIN), (false, false));
    assert_eq!(view::sla_breaches(t, T0 + 61 * MIN), (true, false));
    assert_eq!(view::sla_breaches(t, T0 + 241 * MIN), (true, true));
    assert_eq!(view::service(&r, T0 + MIN).open, 1);
}

#[test]
fn lifecycle_and_rfm_value_classes_follow_the_versioned_rules() {
    let p = LifecyclePolicy::default();
    let facts = |orders, last: Option<i64>, net| CustomerFacts {
        orders,
        last_order_at: last,
        net_revenue_minor: net,
    };
    let now = T0 + 1000 * DAY;
    assert_eq!(
        view::lifecycle(&facts(0, None, 0), None, now, &p),
        Lifecycle::Prospect
    );
    assert_eq!(
        view::lifecycle(
            &facts(1, Some(now - 10 * DAY), 1),
            Some(now - 10 * DAY),
            now,
            &p
        ),
        Lifecycle::New
    );
    assert_eq!(
        view::lifecycle(
            &facts(1, Some(now - 91 * DAY), 1),
            Some(now - 91 * DAY),
            now,
            &p
        ),
        Lifecycle::Dormant
    );
    // Four orders over 90 days: typical gap 30 days; dormant after 3 gaps (90 days).
    let first = Some(now - 150 * DAY);
    assert_eq!(
        view::lifecycle(&facts(4, Some(now - 60 * DAY), 1), first, now, &p),
        Lifecycle::Repeat
    );
    assert_eq!(
        view::lifecycle(&facts(4, Some(now - 91 * DAY), 1), first, now, &p),
        Lifecycle::Dormant
    );
    assert_eq!(
        view::lifecycle(&facts(4, Some(now - 366 * DAY), 1), first, now, &p),
        Lifecycle::Churned
    );

    // Ten customers: customer i ordered i times, last on day i, net revenue i x 10.00.
    let all: Vec<CustomerFacts> = (1..=10)
        .map(|i| facts(i, Some(T0 + i64::from(i) * DAY), i64::from(i) * 1000))
        .collect();
    let pop = Population::from_facts(&all);
    assert_eq!(pop.len(), 10);
    // Two customers per quintile: values 1-2 score 1, ..., 9-10 score 5.
    let scores: Vec<u8> = all.iter().map(|f| pop.score(f).unwrap().recency).collect();
    assert_eq!(scores, vec![1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
    let best = pop.score(&all[9]).unwrap();
    assert_eq!((best.recency, best.frequency, best.monetary), (5, 5, 5));
    assert_eq!(
        view::value_class(Some(best), Lifecycle::Repeat),
        ValueClass::High
    );
    assert_eq!(view::segment(Some(best)), "champions");
    let mid = pop.score(&all[4]).unwrap();
    assert_eq!(
        view::value_class(Some(mid), Lifecycle::Repeat),
        ValueClass::Potential
    );
    let worst = pop.score(&all[0]).unwrap();
    assert_eq!(
        view::value_class(Some(worst), Lifecycle::Repeat),
        ValueClass::Lost
    );
    assert_eq!(view::segment(Some(worst)), "hibernating");
    assert_eq!(
        view::value_class(Some(best), Lifecycle::Churned),
        ValueClass::Lost
    );
    assert_eq!(
        view::value_class(None, Lifecycle::Prospect),
        ValueClass::Unscored
    );
    assert_eq!(pop.score(&facts(0, None, 0)), None);
}

#[test]
fn sums_and_counters_saturate_instead_of_overflowing() {
    // Three orders of the largest amount and quantity an event can carry: their sum is far
    // beyond i64 (and the units beyond u32). The fold must neither panic (debug) nor wrap
    // (release): the sums stop at the bound.
    let mut s = Stream::new();
    let ann = CustomerId(Uuid::from_u128(1));
    s.push(T0, c(ann, registered("Ann"))).unwrap();
    for i in 0..3 {
        let mut e = order(10 + i, &[("sku", "big", u32::MAX, i64::MAX)], i64::MAX);
        if let CustomerEvent::OrderPlaced(o) = &mut e {
            o.discount_minor = i64::MAX;
        }
        s.push(T0 + DAY * i64::try_from(i).unwrap(), c(ann, e))
            .unwrap();
    }
    s.push(
        T0 + 3 * DAY,
        c(
            ann,
            CustomerEvent::ReturnRecorded(ReturnRecorded {
                return_id: ReturnId(Uuid::from_u128(99)),
                order_id: OrderId(Uuid::from_u128(10)),
                lines: vec![ReturnLine {
                    sku: "sku".into(),
                    quantity: 1,
                }],
                refund: eur(i64::MAX),
                reason: "too big".into(),
            }),
        ),
    )
    .unwrap();
    let r = s.customer(ann);
    assert_eq!(r.commerce.orders, 3);
    assert_eq!(r.commerce.items, 3 * u64::from(u32::MAX));
    let eur = &r.commerce.amounts["EUR"];
    assert_eq!(eur.revenue_minor, i64::MAX, "saturated, not wrapped");
    assert_eq!(eur.discount_minor, i64::MAX);
    assert_eq!(eur.refunded_minor, i64::MAX);
    assert_eq!(r.commerce.categories["big"].units, 3 * u64::from(u32::MAX));
    // Net revenue (revenue - refunds) of the saturated sums stays in range.
    assert_eq!(s.facts(ann).net_revenue_minor, 0);
}

#[test]
fn a_long_timeline_is_kept_in_chunks_and_read_in_business_time_order() {
    let mut s = Stream::new();
    let ann = CustomerId(Uuid::from_u128(1));
    s.push(T0 + 50 * DAY, c(ann, registered("Ann"))).unwrap();
    // 70 more entries, a third of them backdated before the registration.
    for i in 0..70 {
        let at = if i % 3 == 0 {
            T0 + i * MIN
        } else {
            T0 + 60 * DAY + i * MIN
        };
        let tag = format!("t{}", i / 2);
        let e = if i % 2 == 0 {
            CustomerEvent::Tagged { tag }
        } else {
            CustomerEvent::Untagged { tag }
        };
        s.push(at, c(ann, e)).unwrap();
    }
    assert_eq!(s.customer(ann).timeline_len, 71);
    let prefix = keys::id_key(keys::TIMELINE, ann.0.into_bytes());
    let chunks = s
        .state
        .entries
        .keys()
        .filter(|k| k.starts_with(&prefix))
        .count();
    assert_eq!(
        chunks,
        3,
        "71 entries in chunks of {}",
        keys::TIMELINE_CHUNK
    );
    let t = s.timeline(ann);
    assert_eq!(t.len(), 71);
    assert!(
        t.windows(2)
            .all(|w| (w[0].occurred_at, w[0].seq) < (w[1].occurred_at, w[1].seq)),
        "business time, then stream order"
    );
    assert_eq!(t[0].occurred_at, T0, "the earliest backdated entry first");
    assert_eq!(
        t.iter().filter(|e| e.occurred_at < T0 + 50 * DAY).count(),
        24,
        "every third entry was backdated"
    );
}

/// A send says, for each customer, whether their consent held: a v2 send lists the ones
/// it left out (their timeline and figures say so); a send recorded before consent was
/// checked (v1: no one left out) that reached a customer without consent is flagged.
#[test]
fn a_send_shows_whether_consent_held_for_each_customer() {
    let mut s = Stream::new();
    let (ann, bob, cy) = (
        CustomerId(Uuid::from_u128(1)),
        CustomerId(Uuid::from_u128(2)),
        CustomerId(Uuid::from_u128(3)),
    );
    let camp = CampaignId(Uuid::from_u128(50));
    for (id, name) in [(ann, "Ann"), (bob, "Bob"), (cy, "Cy")] {
        s.push(T0, c(id, registered(name))).unwrap();
    }
    let consent = |granted| CustomerEvent::ConsentChanged {
        channel: ConsentChannel::Email,
        granted,
        source: "web form".into(),
    };
    s.push(T0, c(ann, consent(true))).unwrap();
    s.push(T0, c(bob, consent(true))).unwrap();
    s.push(T0 + DAY, c(bob, consent(false))).unwrap();
    s.push(
        T0,
        DomainEvent::Campaign(
            camp,
            CampaignEvent::Created(crm_domain::CampaignCreated {
                name: "spring".into(),
                channel: Channel::Email,
                segment: "all".into(),
                budget: None,
            }),
        ),
    )
    .unwrap();
    // Wave 1, recorded before consent was checked: it reached all three.
    // Wave 2, checked: Ann only; Bob had withdrawn, Cy never consented.
    let sent = |wave, recipients, skipped| {
        DomainEvent::Campaign(
            camp,
            CampaignEvent::Sent {
                wave,
                recipients,
                skipped,
            },
        )
    };
    s.push(T0 + 2 * DAY, sent(1, vec![ann, bob, cy], Vec::new()))
        .unwrap();
    let skip = |customer_id, reason| crm_domain::SkippedRecipient {
        customer_id,
        reason,
    };
    s.push(
        T0 + 3 * DAY,
        sent(
            2,
            vec![ann],
            vec![
                skip(bob, crm_domain::SkipReason::ConsentWithdrawn),
                skip(cy, crm_domain::SkipReason::NoConsent),
            ],
        ),
    )
    .unwrap();

    let figures = |r: &CustomerRecord| {
        (
            r.marketing.received.values().sum::<u32>(),
            r.marketing.received_without_consent,
            r.marketing.skipped,
        )
    };
    assert_eq!(figures(&s.customer(ann)), (2, 0, 0));
    assert_eq!(figures(&s.customer(bob)), (1, 1, 1));
    assert_eq!(figures(&s.customer(cy)), (1, 1, 1));
    let lines = |s: &Stream, id| -> Vec<String> {
        s.timeline(id)
            .iter()
            .filter(|e| e.event_type == "campaign.sent")
            .map(|e| e.summary.render(false))
            .collect()
    };
    assert_eq!(
        lines(&s, ann),
        [
            "Received campaign spring (wave 1)",
            "Received campaign spring (wave 2)"
        ]
    );
    assert_eq!(
        lines(&s, bob),
        [
            "Received campaign spring (wave 1) without email consent",
            "Not sent campaign spring (wave 2): email consent withdrawn"
        ]
    );
    assert_eq!(
        lines(&s, cy),
        [
            "Received campaign spring (wave 1) without email consent",
            "Not sent campaign spring (wave 2): no email consent"
        ]
    );
}

/// A deal lost, reopened and changed: the record follows (open again, at the reopened
/// stage's probability, with the new amount, owner and expected close), the sales view
/// counts it open with its new weighted amount, and the timeline says what happened.
#[test]
fn a_reopened_and_updated_deal_counts_as_open_with_its_new_figures() {
    let mut s = Stream::new();
    let ann = CustomerId(Uuid::from_u128(1));
    let deal = OpportunityId(Uuid::from_u128(301));
    s.push(T0, c(ann, registered("Ann"))).unwrap();
    let events = [
        CustomerEvent::OpportunityOpened(OpportunityOpened {
            opportunity_id: deal,
            name: "deal 1".into(),
            pipeline: "b2c".into(),
            stage: "proposal".into(),
            probability_pct: 40,
            forecast: ForecastCategory::BestCase,
            amount: eur(100_000),
            owner: None,
            expected_close: None,
            lead: None,
            campaign: None,
        }),
        CustomerEvent::OpportunityLost {
            opportunity_id: deal,
            reason: "price".into(),
            stage: "proposal".into(),
        },
        CustomerEvent::OpportunityReopened {
            opportunity_id: deal,
            stage: "negotiation".into(),
            probability_pct: 70,
            forecast: ForecastCategory::Commit,
            reason: "budget approved".into(),
        },
        CustomerEvent::OpportunityUpdated {
            opportunity_id: deal,
            name: Some("deal 1, phase 2".into()),
            amount: Some(eur(120_000)),
            owner: Some("kim".into()),
            expected_close: Some(Timestamp(T0 + 30 * DAY)),
        },
    ];
    for (i, e) in events.into_iter().enumerate() {
        s.push(T0 + (i as i64 + 1) * DAY, c(ann, e)).unwrap();
    }
    let r = s.customer(ann);
    let d = &r.opportunities[&deal.0.into_bytes()];
    assert_eq!(d.status, DealStatus::Open);
    assert_eq!((d.stage.as_str(), d.probability_pct), ("negotiation", 70));
    assert_eq!(d.stage_entered_at, T0 + 3 * DAY);
    assert_eq!((d.closed_at, d.lost_reason.as_deref()), (None, None));
    assert_eq!(
        (d.name.as_str(), d.amount_minor),
        ("deal 1, phase 2", 120_000)
    );
    assert_eq!(d.owner.as_deref(), Some("kim"));
    assert_eq!(d.expected_close, Some(T0 + 30 * DAY));
    let sales = view::sales(&r);
    assert_eq!((sales.open, sales.won, sales.lost), (1, 0, 0));
    assert_eq!(sales.weighted_pipeline["EUR"], 84_000, "1200.00 x 70%");
    let said: Vec<String> = s
        .timeline(ann)
        .iter()
        .map(|e| e.summary.render(true))
        .collect();
    assert!(
        said.iter()
            .any(|t| t == "Opportunity deal 1 reopened at negotiation: budget approved"),
        "{said:?}"
    );
    assert!(
        said.iter().any(|t| t
            == "Opportunity deal 1, phase 2 updated: renamed from deal 1, amount 1200.00 EUR, owner kim, expected close 2026-01-31"),
        "{said:?}"
    );
}
