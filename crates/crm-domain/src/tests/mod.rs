//! decide/evolve unit tests and property tests.
//!
//! Every expected event is written out by hand. Tests named `questionable_*` pin down the
//! current behaviour of a rule that is worth a second look.

mod campaigns;
mod config;
mod customer;
mod evolve;
mod leads;
mod opportunities;
mod orders;
mod privacy;
mod props;
mod tickets;

use uuid::Uuid;

use crate::testing::Scenario;
use crate::{
    CampaignCreated, CampaignEvent, CampaignId, Channel, Command, Currency, CustomerEvent,
    CustomerId, CustomerRegistered, DomainConfig, DomainEvent, ForecastCategory, InteractionId,
    LeadCaptured, LeadEvent, LeadId, Money, OpportunityId, OpportunityOpened, OrderId, OrderLine,
    OrderPlaced, Profile, RejectionKind, ReturnId, SlaTargets, TicketId, TicketOpened,
    TicketPriority,
};

const C1: CustomerId = CustomerId(Uuid::from_u128(0xC1));
const C2: CustomerId = CustomerId(Uuid::from_u128(0xC2));
const C3: CustomerId = CustomerId(Uuid::from_u128(0xC3));
const L1: LeadId = LeadId(Uuid::from_u128(0x11));
const K1: CampaignId = CampaignId(Uuid::from_u128(0xA1));
const K2: CampaignId = CampaignId(Uuid::from_u128(0xA2));
const O1: OrderId = OrderId(Uuid::from_u128(0x01));
const O2: OrderId = OrderId(Uuid::from_u128(0x02));
const R1: ReturnId = ReturnId(Uuid::from_u128(0x21));
const R2: ReturnId = ReturnId(Uuid::from_u128(0x22));
const T1: TicketId = TicketId(Uuid::from_u128(0x31));
const T2: TicketId = TicketId(Uuid::from_u128(0x32));
const P1: OpportunityId = OpportunityId(Uuid::from_u128(0x41));
const P2: OpportunityId = OpportunityId(Uuid::from_u128(0x42));
const I1: InteractionId = InteractionId(Uuid::from_u128(0x51));

fn cid(n: u128) -> CustomerId {
    CustomerId(Uuid::from_u128(n))
}

fn eur() -> Currency {
    Currency::parse("EUR").expect("EUR")
}

fn usd() -> Currency {
    Currency::parse("USD").expect("USD")
}

fn eur_m(minor: i64) -> Money {
    Money::new(minor, eur())
}

/// A string of `n` characters.
fn long(n: usize) -> String {
    "x".repeat(n)
}

/// Text with a control character (BEL).
fn ctrl() -> String {
    "bad\u{7}text".into()
}

fn cev(id: CustomerId, e: CustomerEvent) -> DomainEvent {
    DomainEvent::Customer(id, e)
}

fn lev(id: LeadId, e: LeadEvent) -> DomainEvent {
    DomainEvent::Lead(id, e)
}

fn kev(id: CampaignId, e: CampaignEvent) -> DomainEvent {
    DomainEvent::Campaign(id, e)
}

fn ada() -> Profile {
    Profile {
        given_name: "Ada".into(),
        family_name: "Lovelace".into(),
        emails: vec!["ada@example.com".into()],
        ..Profile::default()
    }
}

fn registered_event(profile: Profile) -> CustomerEvent {
    CustomerEvent::Registered(CustomerRegistered {
        profile,
        acquisition: None,
        owner: None,
        team: None,
        lead: None,
    })
}

/// A customer registered with the [`ada`] profile.
fn registered(id: CustomerId) -> DomainEvent {
    cev(id, registered_event(ada()))
}

fn line(sku: &str, quantity: u32, unit_price_minor: i64) -> OrderLine {
    OrderLine {
        sku: sku.into(),
        category: "books".into(),
        quantity,
        unit_price_minor,
    }
}

/// Order `order` of customer `c`: 2 x `A` at 10.00 and 1 x `B` at 5.00, total 25.00 EUR.
fn order_placed(c: CustomerId, order: OrderId) -> DomainEvent {
    cev(
        c,
        CustomerEvent::OrderPlaced(OrderPlaced {
            order_id: order,
            sales_channel: "web".into(),
            lines: vec![line("A", 2, 1000), line("B", 1, 500)],
            discount_minor: 0,
            tax_minor: 0,
            shipping_minor: 0,
            total: eur_m(2500),
            campaign: None,
        }),
    )
}

fn sla(first_response_mins: u32, resolution_mins: u32) -> SlaTargets {
    SlaTargets {
        policy: "standard-v1".into(),
        first_response_mins,
        resolution_mins,
    }
}

fn ticket_opened(c: CustomerId, t: TicketId) -> DomainEvent {
    cev(
        c,
        CustomerEvent::TicketOpened(TicketOpened {
            ticket_id: t,
            channel: Channel::Email,
            category: "billing".into(),
            priority: TicketPriority::Normal,
            subject: "Double charge".into(),
            sla: sla(480, 2880),
        }),
    )
}

fn ticket_resolved(c: CustomerId, t: TicketId) -> DomainEvent {
    cev(
        c,
        CustomerEvent::TicketResolved {
            ticket_id: t,
            resolution: "refunded".into(),
        },
    )
}

fn ticket_closed(c: CustomerId, t: TicketId) -> DomainEvent {
    cev(
        c,
        CustomerEvent::TicketClosed {
            ticket_id: t,
            csat: None,
            comment: String::new(),
        },
    )
}

fn ticket_awaiting(c: CustomerId, t: TicketId) -> DomainEvent {
    cev(
        c,
        CustomerEvent::TicketResponded {
            ticket_id: t,
            agent: "bob".into(),
            first_response: true,
            awaiting_customer: true,
        },
    )
}

/// Opportunity `p` of customer `c` in `sales`/`initial_contact` (10 %, pipeline), 1000.00 EUR.
fn opportunity_opened(c: CustomerId, p: OpportunityId) -> DomainEvent {
    cev(
        c,
        CustomerEvent::OpportunityOpened(OpportunityOpened {
            opportunity_id: p,
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
    )
}

fn captured() -> LeadCaptured {
    LeadCaptured {
        source: "web-form".into(),
        campaign: Some(K1),
        given_name: "Grace".into(),
        family_name: "Hopper".into(),
        email: Some("grace@example.com".into()),
        phone: Some("+15551234567".into()),
        interest: "solar panels".into(),
    }
}

fn lead_captured(l: LeadId) -> DomainEvent {
    lev(l, LeadEvent::Captured(captured()))
}

fn lead_qualified(l: LeadId) -> DomainEvent {
    lev(
        l,
        LeadEvent::Qualified {
            note: "budget ok".into(),
        },
    )
}

fn campaign(channel: Channel, budget: Option<Money>) -> CampaignCreated {
    CampaignCreated {
        name: "Spring sale".into(),
        channel,
        segment: "newsletter".into(),
        budget,
    }
}

fn campaign_created(k: CampaignId, channel: Channel) -> DomainEvent {
    kev(
        k,
        CampaignEvent::Created(campaign(channel, Some(eur_m(50_000)))),
    )
}

fn campaign_sent(k: CampaignId, wave: u32, recipients: Vec<CustomerId>) -> DomainEvent {
    kev(
        k,
        CampaignEvent::Sent {
            wave,
            recipients,
            skipped: Vec::new(),
        },
    )
}

/// Asserts that every command is rejected against `given` with its kind, field and rule.
#[track_caller]
fn assert_rejections(
    given: &[DomainEvent],
    cases: impl IntoIterator<Item = (Command, RejectionKind, &'static str, &'static str)>,
) {
    assert_rejections_with(&DomainConfig::default(), given, cases);
}

#[track_caller]
fn assert_rejections_with(
    config: &DomainConfig,
    given: &[DomainEvent],
    cases: impl IntoIterator<Item = (Command, RejectionKind, &'static str, &'static str)>,
) {
    for (command, kind, field, rule) in cases {
        Scenario::new()
            .with_config(config.clone())
            .given(given.iter().cloned())
            .when(command)
            .then_rejects(kind, field, rule);
    }
}

/// `(command, Invalid, field, rule)`: most rejection tables are validation failures.
fn invalid(
    command: Command,
    field: &'static str,
    rule: &'static str,
) -> (Command, RejectionKind, &'static str, &'static str) {
    (command, RejectionKind::Invalid, field, rule)
}
