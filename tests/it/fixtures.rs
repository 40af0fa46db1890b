//! Golden event fixtures: compatibility is forever.
//!
//! `tests/fixtures/events/` holds the stored body (`crm_events::encode(..).bytes`) of one
//! hand-written sample per event type and schema version, named
//! `<event_type>.v<schema_version>[.<suffix>].bin`. A fixture is written once, from its
//! sample, and committed; it is never rewritten or deleted. These tests prove that
//!
//! - every fixture of the current schema versions decodes to exactly its sample, and every
//!   current (event type, schema version) has a fixture;
//! - every fixture ever written (older schema versions included) still decodes;
//! - the current encoder still produces the fixtures byte for byte.
//!
//! Types written sealed (`crm_events::seal::SEALED`) are sealed under [`FIXTURE_KEY`]
//! with nonces pinned per sample ([`pinned_nonces`]), so their fixtures are
//! reproducible too; the check opens them with the key.
//!
//! A missing fixture is written (never overwritten) by running the tests with
//! `CRM_WRITE_MISSING_FIXTURES=1`.
//!
//! The samples are the expectations of committed files: never edit a sample whose fixture
//! exists. To pin another variant of an event, add a sample with a new `suffix`.

use std::collections::BTreeSet;
use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::Once;

use crm_domain::{
    Acquisition, Actor, Address, CallDetails, CallOutcome, CampaignCreated, CampaignEvent,
    CampaignId, CampaignResponse, Channel, CommandId, ConsentChannel, Currency, CustomerEvent,
    CustomerId, CustomerRegistered, Direction, DomainEvent, ForecastCategory, InteractionId,
    InteractionLogged, LeadCaptured, LeadEvent, LeadId, Money, OpportunityId, OpportunityOpened,
    OrderId, OrderLine, OrderPlaced, Profile, ProfilePatch, RelationshipKind, ReturnId, ReturnLine,
    ReturnRecorded, SlaTargets, TicketId, TicketOpened, TicketPriority, Timestamp,
};
use crm_events::seal::is_sealed_type;
use crm_events::{
    EncodedEvent, EventHash, EventMeta, Sealing, decode, encode, encode_sealed_with,
    schema_versions,
};
use uuid::Uuid;

/// Set to `1` to write the fixture of every sample that has none (existing files are
/// never touched).
const WRITE_MISSING: &str = "CRM_WRITE_MISSING_FIXTURES";
const HOW_TO_ADD: &str = "CRM_WRITE_MISSING_FIXTURES=1 cargo xtask test -- fixtures";

/// The data key every sealed sample is sealed under.
const FIXTURE_KEY: [u8; 32] = *b"golden-fixture-data-key-32-bytes";

/// A sample's nonces: its event id, then a counter (unique per key and text).
fn pinned_nonces(event_id: Uuid) -> impl FnMut() -> Result<[u8; 24], crm_events::SealError> {
    let mut n = 0u64;
    move || {
        n += 1;
        let mut nonce = [0u8; 24];
        nonce[..16].copy_from_slice(event_id.as_bytes());
        nonce[16..].copy_from_slice(&n.to_be_bytes());
        Ok(nonce)
    }
}

/// A sample as the service writes it now: sealed when its type is.
fn encode_current(meta: &EventMeta, event: &DomainEvent) -> EncodedEvent {
    if is_sealed_type(event.event_type()) {
        encode_sealed_with(meta, event, &FIXTURE_KEY, &mut pinned_nonces(meta.event_id))
            .expect("pinned nonces")
    } else {
        encode(meta, event)
    }
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/events")
}

// ---------------------------------------------------------------------------------------
// Samples
// ---------------------------------------------------------------------------------------

/// One golden sample: an event with its envelope metadata, stored as one fixture file.
#[derive(Debug)]
struct Sample {
    /// Tells apart several samples of one event type: `<event_type>.v<n>.<suffix>.bin`.
    suffix: Option<&'static str>,
    meta: EventMeta,
    event: DomainEvent,
}

impl Sample {
    fn event_type(&self) -> &'static str {
        self.event.event_type()
    }

    /// The current schema version of the sample's event type: what `encode` writes.
    fn schema_version(&self) -> u16 {
        current_version(self.event_type()).unwrap_or_else(|| {
            panic!(
                "`{}` is not in crm_events::schema_versions()",
                self.event_type()
            )
        })
    }

    fn file_name(&self) -> String {
        file_name(self.event_type(), self.schema_version(), self.suffix)
    }
}

fn sample(meta: EventMeta, event: DomainEvent) -> Sample {
    Sample {
        suffix: None,
        meta,
        event,
    }
}

fn current_version(event_type: &str) -> Option<u16> {
    schema_versions()
        .iter()
        .find(|(t, _)| *t == event_type)
        .map(|(_, v)| *v)
}

fn file_name(event_type: &str, schema_version: u16, suffix: Option<&str>) -> String {
    match suffix {
        Some(suffix) => format!("{event_type}.v{schema_version}.{suffix}.bin"),
        None => format!("{event_type}.v{schema_version}.bin"),
    }
}

/// `(event_type, schema_version, suffix)` of a canonically named fixture file.
fn parse_file_name(name: &str) -> Option<(String, u16, Option<String>)> {
    let stem = name.strip_suffix(".bin")?;
    let mut parts = stem.split('.');
    let event_type = format!("{}.{}", parts.next()?, parts.next()?);
    let version: u16 = parts.next()?.strip_prefix('v')?.parse().ok()?;
    let suffix = parts.next().map(str::to_owned);
    if parts.next().is_some() || file_name(&event_type, version, suffix.as_deref()) != name {
        return None;
    }
    Some((event_type, version, suffix))
}

const CUSTOMER: CustomerId = CustomerId(Uuid::from_u128(0x0199_f3c2_5a10_7d41_9b2e_3c4d_5e6f_7a81));
/// A company customer: the employer of `CUSTOMER`.
const EMPLOYER: CustomerId = CustomerId(Uuid::from_u128(0x0198_77e0_0c21_7a3f_8f10_2b3c_4d5e_6f70));
const CUSTOMER_3: CustomerId =
    CustomerId(Uuid::from_u128(0x019a_0b11_42d7_7e05_a1b2_c3d4_e5f6_0718));
const LEAD: LeadId = LeadId(Uuid::from_u128(0x0199_e8a0_3b5c_7f12_8e9d_0a1b_2c3d_4e5f));
const LEAD_2: LeadId = LeadId(Uuid::from_u128(0x019a_1c2d_3e4f_7a50_9b61_c7d8_e9fa_0b1c));
const CAMPAIGN: CampaignId = CampaignId(Uuid::from_u128(0x0199_c0de_ca3e_7b1a_a2b3_c4d5_e6f7_0819));
const ORDER: OrderId = OrderId(Uuid::from_u128(0x019a_2f10_8c3d_7e4f_b5a6_9788_6950_4a3b));
const RETURN: ReturnId = ReturnId(Uuid::from_u128(0x019a_3a01_5d6e_7f70_8a9b_acbd_cedf_e0f1));
const TICKET: TicketId = TicketId(Uuid::from_u128(0x019a_3b22_6e7f_7081_9aab_bccd_deef_f001));
const OPPORTUNITY: OpportunityId =
    OpportunityId(Uuid::from_u128(0x019a_0c33_7f80_7192_abbc_cdde_eff0_0112));
const LOST_OPPORTUNITY: OpportunityId =
    OpportunityId(Uuid::from_u128(0x019a_4d44_8091_72a3_bccd_deef_f001_1223));
const INTERACTION: InteractionId =
    InteractionId(Uuid::from_u128(0x019a_3c55_91a2_73b4_8dde_eff0_0112_2334));

/// 2025-11-01T00:00:00Z, in seconds.
const NOV_1_2025: i64 = 1_761_955_200;

/// A UTC time in November 2025.
fn nov_2025(day: i64, hour: i64, minute: i64, second: i64) -> Timestamp {
    let secs = NOV_1_2025 + (day - 1) * 86_400 + hour * 3_600 + minute * 60 + second;
    Timestamp::from_micros(secs * Timestamp::MICROS_PER_SECOND)
}

fn eur(minor: i64) -> Money {
    Money::new(
        minor,
        Currency::parse("EUR").expect("EUR is a currency code"),
    )
}

/// The id of sample `n`'s event.
fn event_id(n: u8) -> Uuid {
    Uuid::from_u128(0x019a_5e01_0000_7000_8000_0000_0000_0000 + u128::from(n))
}

fn command_id(n: u8) -> CommandId {
    CommandId(Uuid::from_u128(
        0x019a_5e00_ff00_7000_9000_0000_0000_0000 + u128::from(n),
    ))
}

fn correlation_id(n: u8) -> Uuid {
    Uuid::from_u128(0x019a_5e00_fe00_7000_a000_0000_0000_0000 + u128::from(n))
}

/// The metadata of sample `n`: its own event, command and correlation ids, recorded a
/// little after it occurred, a single-event commit without a cause, and a prev_hash that
/// is genesis only for an aggregate's first event. Samples override fields as needed.
fn meta(n: u8, version: u64, occurred_at: Timestamp, actor: Actor) -> EventMeta {
    EventMeta {
        event_id: event_id(n),
        version,
        occurred_at,
        recorded_at: Timestamp::from_micros(occurred_at.as_micros() + 1_250 + i64::from(n) * 17),
        actor,
        command_id: command_id(n),
        correlation_id: correlation_id(n),
        causation_id: None,
        commit_index: 0,
        commit_size: 1,
        prev_hash: if version == 1 {
            EventHash::GENESIS
        } else {
            EventHash(std::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ n))
        },
    }
}

fn user(id: &str) -> Actor {
    Actor::User(id.to_owned())
}

fn service(id: &str) -> Actor {
    Actor::Service(id.to_owned())
}

fn automation(id: &str) -> Actor {
    Actor::Automation(id.to_owned())
}

/// One sample per event type (in `schema_versions()` order), plus extra variants with a
/// suffix. NEVER edit a sample whose fixture is committed: add a new one instead.
fn samples() -> Vec<Sample> {
    use CustomerEvent as C;
    use DomainEvent::{Campaign, Customer, Lead};
    use LeadEvent as L;

    vec![
        sample(
            meta(1, 4, nov_2025(30, 12, 0, 0), service("billing-sync")),
            Campaign(
                CAMPAIGN,
                CampaignEvent::CostRecorded {
                    amount: eur(48_250),
                    note: "ESP invoice INV-2025-1187 (November sends)".into(),
                },
            ),
        ),
        sample(
            meta(2, 1, nov_2025(1, 8, 0, 0), user("ana.marques")),
            Campaign(
                CAMPAIGN,
                CampaignEvent::Created(CampaignCreated {
                    name: "Black Friday 2025 – Café em casa".into(),
                    channel: Channel::Email,
                    segment: "consent:email AND orders>=1 AND country=PT".into(),
                    budget: Some(eur(250_000)),
                }),
            ),
        ),
        sample(
            EventMeta {
                causation_id: Some(event_id(2)),
                ..meta(
                    3,
                    3,
                    nov_2025(28, 7, 0, 0),
                    automation("scheduler:campaign-waves"),
                )
            },
            Campaign(
                CAMPAIGN,
                CampaignEvent::Sent {
                    wave: 2,
                    recipients: vec![CUSTOMER, CUSTOMER_3, EMPLOYER],
                    skipped: Vec::new(),
                },
            ),
        ),
        // v2: a send that left recipients out (consent checked at the send).
        Sample {
            suffix: Some("skipped"),
            ..sample(
                meta(6, 4, nov_2025(29, 7, 0, 0), user("mara")),
                Campaign(
                    CAMPAIGN,
                    CampaignEvent::Sent {
                        wave: 3,
                        recipients: vec![CUSTOMER],
                        skipped: vec![
                            crm_domain::SkippedRecipient {
                                customer_id: CUSTOMER_3,
                                reason: crm_domain::SkipReason::ConsentWithdrawn,
                            },
                            crm_domain::SkippedRecipient {
                                customer_id: EMPLOYER,
                                reason: crm_domain::SkipReason::NoConsent,
                            },
                        ],
                    },
                ),
            )
        },
        sample(
            EventMeta {
                causation_id: Some(event_id(11)),
                ..meta(4, 10, nov_2025(10, 19, 42, 8), service("attribution"))
            },
            Customer(
                CUSTOMER,
                C::CampaignResponseRecorded {
                    campaign_id: CAMPAIGN,
                    response: CampaignResponse::Converted {
                        revenue: Some(eur(70_937)),
                        order: Some(ORDER),
                    },
                },
            ),
        ),
        Sample {
            suffix: Some("unsubscribed"),
            ..sample(
                EventMeta {
                    causation_id: Some(event_id(3)),
                    ..meta(5, 22, nov_2025(28, 20, 3, 44), service("esp-webhooks"))
                },
                Customer(
                    CUSTOMER,
                    C::CampaignResponseRecorded {
                        campaign_id: CAMPAIGN,
                        response: CampaignResponse::Unsubscribed,
                    },
                ),
            )
        },
        sample(
            EventMeta {
                causation_id: Some(event_id(13)),
                ..meta(6, 4, nov_2025(4, 11, 3, 5), service("customer-portal"))
            },
            Customer(
                CUSTOMER,
                C::ConsentChanged {
                    channel: ConsentChannel::Sms,
                    granted: true,
                    source: "customer-portal:preferences".into(),
                },
            ),
        ),
        sample(
            meta(7, 8, nov_2025(7, 10, 5, 12), user("ines.costa")),
            Customer(
                CUSTOMER,
                C::InteractionLogged(InteractionLogged {
                    interaction_id: INTERACTION,
                    channel: Channel::Phone,
                    direction: Direction::Outbound,
                    agent: Some("ines.costa".into()),
                    subject: "Follow-up on espresso machine demo".into(),
                    summary: "Left a voicemail; Zoë asked for a call back after 17:00.".into(),
                    sentiment: Some(-35),
                    ticket: None,
                    opportunity: Some(OPPORTUNITY),
                    campaign: None,
                    call: Some(CallDetails {
                        duration_secs: 754,
                        outcome: CallOutcome::Voicemail,
                    }),
                }),
            ),
        ),
        sample(
            meta(8, 21, nov_2025(26, 11, 0, 0), user("maria.santos")),
            Customer(
                CUSTOMER,
                C::OpportunityLost {
                    opportunity_id: LOST_OPPORTUNITY,
                    reason: "Chose a competitor on price".into(),
                    stage: "negotiation".into(),
                },
            ),
        ),
        sample(
            EventMeta {
                command_id: command_id(29),
                correlation_id: correlation_id(29),
                commit_index: 2,
                commit_size: 3,
                ..meta(9, 2, nov_2025(3, 9, 15, 0), user("maria.santos"))
            },
            Customer(
                CUSTOMER,
                C::OpportunityOpened(OpportunityOpened {
                    opportunity_id: OPPORTUNITY,
                    name: "Office coffee subscription – 40 seats".into(),
                    pipeline: "b2b-default".into(),
                    stage: "discovery".into(),
                    probability_pct: 20,
                    forecast: ForecastCategory::Pipeline,
                    amount: eur(1_188_000),
                    owner: Some("maria.santos".into()),
                    // 2026-01-31T00:00:00Z
                    expected_close: Some(Timestamp::from_micros(1_769_817_600_000_000)),
                    lead: Some(LEAD),
                    campaign: None,
                }),
            ),
        ),
        sample(
            meta(10, 19, nov_2025(20, 15, 45, 0), user("maria.santos")),
            Customer(
                CUSTOMER,
                C::OpportunityStageMoved {
                    opportunity_id: OPPORTUNITY,
                    from_stage: "discovery".into(),
                    to_stage: "proposal".into(),
                    probability_pct: 60,
                    forecast: ForecastCategory::Commit,
                },
            ),
        ),
        sample(
            meta(12, 20, nov_2025(25, 17, 10, 0), user("maria.santos")),
            Customer(
                CUSTOMER,
                C::OpportunityWon {
                    opportunity_id: OPPORTUNITY,
                    amount: eur(1_140_480),
                    stage: Some("proposal".into()),
                },
            ),
        ),
        sample(
            meta(40, 21, nov_2025(26, 9, 30, 0), user("maria.santos")),
            Customer(
                CUSTOMER,
                C::OpportunityUpdated {
                    opportunity_id: OPPORTUNITY,
                    name: None,
                    amount: Some(eur(1_180_000)),
                    owner: Some("joao.pereira".into()),
                    expected_close: Some(Timestamp::from_micros(1_767_139_200_000_000)),
                },
            ),
        ),
        sample(
            meta(41, 22, nov_2025(27, 11, 0, 0), user("maria.santos")),
            Customer(
                CUSTOMER,
                C::OpportunityReopened {
                    opportunity_id: OPPORTUNITY,
                    stage: "proposal".into(),
                    probability_pct: 60,
                    forecast: ForecastCategory::Commit,
                    reason: "budget approved after the freeze".into(),
                },
            ),
        ),
        sample(
            meta(11, 9, nov_2025(10, 19, 42, 7), service("checkout")),
            Customer(
                CUSTOMER,
                C::OrderPlaced(OrderPlaced {
                    order_id: ORDER,
                    sales_channel: "web".into(),
                    lines: vec![
                        OrderLine {
                            sku: "ESP-BARISTA-PRO".into(),
                            category: "coffee-machines".into(),
                            quantity: 1,
                            unit_price_minor: 54_900,
                        },
                        OrderLine {
                            sku: "BEAN-SANTOS-250".into(),
                            category: "coffee".into(),
                            quantity: 3,
                            unit_price_minor: 1_290,
                        },
                    ],
                    discount_minor: 1_500,
                    tax_minor: 13_172,
                    shipping_minor: 495,
                    total: eur(70_937),
                    campaign: Some(CAMPAIGN),
                }),
            ),
        ),
        sample(
            meta(13, 3, nov_2025(4, 11, 2, 30), service("customer-portal")),
            Customer(
                CUSTOMER,
                C::ProfileUpdated(ProfilePatch {
                    given_name: None,
                    family_name: Some("Ferreira-Łukasiewicz".into()),
                    emails: Some(vec![
                        "zoe.ferreira@example.pt".into(),
                        "zoe@ferreira-design.example".into(),
                    ]),
                    phones: None,
                    address: Some(None),
                    language: Some(Some("en-GB".into())),
                    country: None,
                    external_ids: Some(vec![
                        ("legacy-crm".into(), "C-004521".into()),
                        ("stripe".into(), "cus_Qx7Lm2PzR9".into()),
                    ]),
                    owner: Some(Some("joao.pereira".into())),
                    team: Some(None),
                }),
            ),
        ),
        sample(
            EventMeta {
                command_id: command_id(29),
                correlation_id: correlation_id(29),
                commit_index: 1,
                commit_size: 3,
                ..meta(14, 1, nov_2025(3, 9, 15, 0), user("maria.santos"))
            },
            Customer(
                CUSTOMER,
                C::Registered(CustomerRegistered {
                    profile: Profile {
                        given_name: "Zoë".into(),
                        family_name: "Ferreira".into(),
                        emails: vec!["zoe.ferreira@example.pt".into()],
                        phones: vec!["+351912345678".into(), "+351213456789".into()],
                        address: Some(Address {
                            line1: "Rua Augusta 274".into(),
                            line2: "3.º Esq.".into(),
                            city: "Lisboa".into(),
                            region: "Lisboa".into(),
                            postal_code: "1100-053".into(),
                            country: "PT".into(),
                        }),
                        language: Some("pt-PT".into()),
                        country: Some("PT".into()),
                        external_ids: vec![("legacy-crm".into(), "C-004521".into())],
                    },
                    acquisition: Some(Acquisition {
                        source: "trade-show".into(),
                        medium: "event".into(),
                        campaign: None,
                    }),
                    owner: Some("maria.santos".into()),
                    team: None,
                    lead: Some(LEAD),
                }),
            ),
        ),
        sample(
            EventMeta {
                commit_index: 0,
                commit_size: 2,
                ..meta(15, 7, nov_2025(6, 14, 20, 0), user("maria.santos"))
            },
            Customer(
                CUSTOMER,
                C::RelationshipLinked {
                    other: EMPLOYER,
                    kind: RelationshipKind::EmployedBy,
                },
            ),
        ),
        sample(
            meta(16, 11, nov_2025(11, 16, 0, 0), service("returns-desk")),
            Customer(
                CUSTOMER,
                C::ReturnRecorded(ReturnRecorded {
                    return_id: RETURN,
                    order_id: ORDER,
                    lines: vec![ReturnLine {
                        sku: "BEAN-SANTOS-250".into(),
                        quantity: 2,
                    }],
                    refund: eur(3_173),
                    reason: "Grãos torrados demais para o gosto da cliente".into(),
                }),
            ),
        ),
        sample(
            meta(17, 5, nov_2025(5, 2, 0, 0), Actor::System),
            Customer(
                CUSTOMER,
                C::Tagged {
                    tag: "legacy-import".into(),
                },
            ),
        ),
        sample(
            EventMeta {
                causation_id: Some(event_id(21)),
                ..meta(
                    18,
                    13,
                    nov_2025(12, 8, 1, 1),
                    automation("rule:pt-support-routing"),
                )
            },
            Customer(
                CUSTOMER,
                C::TicketAssigned {
                    ticket_id: TICKET,
                    agent: "ines.costa".into(),
                    rule: Some("round-robin:pt-support".into()),
                },
            ),
        ),
        sample(
            EventMeta {
                causation_id: Some(event_id(23)),
                ..meta(
                    19,
                    18,
                    nov_2025(17, 8, 0, 0),
                    automation("rule:auto-close-after-72h"),
                )
            },
            Customer(
                CUSTOMER,
                C::TicketClosed {
                    ticket_id: TICKET,
                    csat: Some(4),
                    comment: "Resolvido após a segunda entrega. Obrigada!".into(),
                },
            ),
        ),
        sample(
            meta(20, 15, nov_2025(12, 13, 12, 0), service("email-gateway")),
            Customer(CUSTOMER, C::TicketCustomerReplied { ticket_id: TICKET }),
        ),
        sample(
            meta(21, 12, nov_2025(12, 8, 1, 0), service("email-gateway")),
            Customer(
                CUSTOMER,
                C::TicketOpened(TicketOpened {
                    ticket_id: TICKET,
                    channel: Channel::Email,
                    category: "delivery".into(),
                    priority: TicketPriority::High,
                    subject: "Encomenda não chegou 📦".into(),
                    sla: SlaTargets {
                        policy: "standard-2025".into(),
                        first_response_mins: 240,
                        resolution_mins: 2_880,
                    },
                }),
            ),
        ),
        sample(
            meta(22, 17, nov_2025(14, 7, 55, 0), service("email-gateway")),
            Customer(
                CUSTOMER,
                C::TicketReopened {
                    ticket_id: TICKET,
                    reason: "The second package is still missing".into(),
                },
            ),
        ),
        sample(
            meta(23, 16, nov_2025(13, 10, 0, 0), user("ines.costa")),
            Customer(
                CUSTOMER,
                C::TicketResolved {
                    ticket_id: TICKET,
                    resolution: "Carrier re-delivered on 2025-11-13; customer confirmed receipt."
                        .into(),
                },
            ),
        ),
        sample(
            meta(24, 14, nov_2025(12, 9, 40, 0), user("ines.costa")),
            Customer(
                CUSTOMER,
                C::TicketResponded {
                    ticket_id: TICKET,
                    agent: "ines.costa".into(),
                    first_response: true,
                    awaiting_customer: true,
                },
            ),
        ),
        sample(
            meta(
                25,
                6,
                nov_2025(6, 8, 30, 0),
                automation("rule:churn-risk-clear"),
            ),
            Customer(
                CUSTOMER,
                C::Untagged {
                    tag: "churn-risk".into(),
                },
            ),
        ),
        sample(
            EventMeta {
                causation_id: Some(event_id(27)),
                ..meta(
                    26,
                    2,
                    nov_2025(1, 18, 0, 5),
                    automation("rule:lead-routing-iberia"),
                )
            },
            Lead(
                LEAD,
                L::Assigned {
                    owner: "maria.santos".into(),
                    rule: Some("territory:PT".into()),
                },
            ),
        ),
        sample(
            EventMeta {
                // Captured at the event, imported from the badge scans that evening.
                recorded_at: nov_2025(1, 18, 0, 0),
                ..meta(
                    27,
                    1,
                    nov_2025(1, 10, 0, 0),
                    Actor::Import("import:websummit-2025-badges".into()),
                )
            },
            Lead(
                LEAD,
                L::Captured(LeadCaptured {
                    source: "event".into(),
                    campaign: None,
                    given_name: "Zoë".into(),
                    family_name: "Ferreira".into(),
                    email: Some("zoe.ferreira@example.pt".into()),
                    phone: None,
                    interest: "Espresso machines for a 40-seat office".into(),
                }),
            ),
        ),
        sample(
            meta(28, 3, nov_2025(2, 10, 30, 0), user("maria.santos")),
            Lead(
                LEAD,
                L::Contacted {
                    channel: Channel::Phone,
                    agent: Some("maria.santos".into()),
                },
            ),
        ),
        sample(
            EventMeta {
                commit_index: 0,
                commit_size: 3,
                ..meta(29, 5, nov_2025(3, 9, 15, 0), user("maria.santos"))
            },
            Lead(
                LEAD,
                L::Converted {
                    customer_id: CUSTOMER,
                    new_customer: true,
                    opportunity_id: Some(OPPORTUNITY),
                },
            ),
        ),
        sample(
            meta(30, 2, nov_2025(2, 15, 0, 0), user("maria.santos")),
            Lead(
                LEAD_2,
                L::Disqualified {
                    reason: "Student project, no purchasing budget".into(),
                },
            ),
        ),
        sample(
            meta(31, 4, nov_2025(2, 16, 45, 0), user("maria.santos")),
            Lead(
                LEAD,
                L::Qualified {
                    note: "Budget approved; decision by the office manager in Q1".into(),
                },
            ),
        ),
        sample(
            EventMeta {
                commit_index: 1,
                commit_size: 2,
                ..meta(42, 9, nov_2025(20, 11, 5, 0), user("maria.santos"))
            },
            Customer(CUSTOMER_3, C::LeadLinked { lead_id: LEAD_2 }),
        ),
        sample(
            meta(43, 31, nov_2025(29, 17, 40, 0), user("dpo.office")),
            Customer(
                CUSTOMER,
                C::Forgotten {
                    reason: "Erasure request DSR-2025-0412 (web form), identity verified".into(),
                    legal_basis: "gdpr-art-17-1-a".into(),
                    leads: vec![LEAD],
                },
            ),
        ),
    ]
}

// ---------------------------------------------------------------------------------------
// Fixture files
// ---------------------------------------------------------------------------------------

/// With `CRM_WRITE_MISSING_FIXTURES=1`, writes the fixture of every sample that has none,
/// once per test run and before any test reads the directory. Never overwrites a file.
fn write_missing_fixtures() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var(WRITE_MISSING).as_deref() != Ok("1") {
            return;
        }
        let dir = fixtures_dir();
        fs::create_dir_all(&dir).expect("create the fixtures directory");
        for s in samples() {
            let path = dir.join(s.file_name());
            if write_new(&path, &encode_current(&s.meta, &s.event).bytes) {
                println!("wrote new golden fixture {}", path.display());
            }
        }
    });
}

/// Writes a new file; leaves an existing one untouched. Whether it wrote.
fn write_new(path: &Path, bytes: &[u8]) -> bool {
    let mut file = match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return false,
        Err(e) => panic!("create {}: {e}", path.display()),
    };
    if let Err(e) = file.write_all(bytes).and_then(|()| file.sync_all()) {
        // Created above: never leave half a fixture behind.
        let _ = fs::remove_file(path);
        panic!("write {}: {e}", path.display());
    }
    true
}

/// The bytes of a sample's fixture, or, when it has none, the missing file's name.
fn read_fixture(s: &Sample) -> Result<Vec<u8>, String> {
    let path = fixtures_dir().join(s.file_name());
    match fs::read(&path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(s.file_name()),
        Err(e) => panic!("read {}: {e}", path.display()),
    }
}

fn missing_message(missing: &[String]) -> String {
    format!(
        "no golden fixture in {} for:\n  {}\n\nA fixture is written once from its sample \
         (tests/it/fixtures.rs) and committed. Create the missing ones (existing files are \
         never overwritten) with\n\n    {HOW_TO_ADD}\n\nthen review and commit them.",
        fixtures_dir().display(),
        missing.join("\n  ")
    )
}

/// Names of the `.bin` files in the fixtures directory, sorted.
fn fixture_files() -> Vec<String> {
    let dir = fixtures_dir();
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "read {}: {e}\n(create the fixtures with `{HOW_TO_ADD}`)",
            dir.display()
        )
    });
    let mut names: Vec<String> = entries
        .map(|entry| entry.expect("read a directory entry"))
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name.ends_with(".bin"))
        .collect();
    names.sort();
    names
}

/// Checks that a fixture's bytes decode to exactly its sample; every difference if not.
fn check_against_sample(s: &Sample, bytes: &[u8]) -> Result<(), String> {
    let mut env = decode(bytes).map_err(|e| format!("does not decode: {e}"))?;
    let mut diffs = Vec::new();
    let sealed = is_sealed_type(s.event_type());
    if env.is_sealed() != sealed {
        diffs.push(format!(
            "sealing: decoded {:?}, sample sealed: {sealed}",
            env.sealing
        ));
    }
    if let Err(e) = env.unseal(Some(&FIXTURE_KEY)) {
        diffs.push(format!("sealing: {e}"));
    }
    if env.event_type != s.event_type() {
        diffs.push(format!(
            "event_type: decoded `{}`, sample `{}`",
            env.event_type,
            s.event_type()
        ));
    }
    if env.schema_version != s.schema_version() {
        diffs.push(format!(
            "schema_version: decoded {}, sample {}",
            env.schema_version,
            s.schema_version()
        ));
    }
    if env.aggregate != s.event.aggregate() {
        diffs.push(format!(
            "aggregate: decoded {:?}, sample {:?}",
            env.aggregate,
            s.event.aggregate()
        ));
    }
    if env.meta != s.meta {
        diffs.push(format!(
            "meta:\n  decoded {:?}\n  sample  {:?}",
            env.meta, s.meta
        ));
    }
    if env.event != s.event {
        diffs.push(format!(
            "event:\n  decoded {:?}\n  sample  {:?}",
            env.event, s.event
        ));
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join("\n"))
    }
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn every_current_event_type_has_a_golden_fixture_that_decodes_to_its_sample() {
    write_missing_fixtures();
    let samples = samples();

    let mut names = BTreeSet::new();
    for s in &samples {
        if let Some(suffix) = s.suffix {
            assert!(
                !suffix.is_empty()
                    && suffix
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "suffix `{suffix}`: use lower-case letters, digits and `_`"
            );
        }
        assert!(
            names.insert(s.file_name()),
            "two samples share the fixture {}: give one a different suffix",
            s.file_name()
        );
    }

    let mut missing = Vec::new();
    let mut wrong = Vec::new();
    for s in &samples {
        match read_fixture(s) {
            Ok(bytes) => {
                if let Err(why) = check_against_sample(s, &bytes) {
                    wrong.push(format!("{}: {why}", s.file_name()));
                }
            }
            Err(name) => missing.push(name),
        }
    }
    let mut report = Vec::new();
    if !wrong.is_empty() {
        report.push(format!(
            "golden fixtures no longer decode to their samples:\n\n{}\n\nCompatibility is \
             forever: committed fixtures are never rewritten. If decoding changed, fix the \
             decoder; if a sample was edited, revert it (pin new values with a new sample \
             and a suffix).",
            wrong.join("\n\n")
        ));
    }
    if !missing.is_empty() {
        report.push(missing_message(&missing));
    }
    assert!(report.is_empty(), "{}", report.join("\n\n"));

    let on_disk: BTreeSet<(String, u16)> = fixture_files()
        .iter()
        .filter_map(|name| parse_file_name(name))
        .map(|(event_type, version, _)| (event_type, version))
        .collect();
    let uncovered: Vec<String> = schema_versions()
        .iter()
        .filter(|(t, v)| !on_disk.contains(&((*t).to_owned(), *v)))
        .map(|(t, v)| format!("{t} v{v}: add a sample to samples() in tests/it/fixtures.rs"))
        .collect();
    assert!(uncovered.is_empty(), "{}", missing_message(&uncovered));
}

#[test]
fn every_fixture_file_ever_written_still_decodes() {
    write_missing_fixtures();
    let files = fixture_files();
    assert!(
        !files.is_empty(),
        "no fixtures in {}: create them with `{HOW_TO_ADD}`",
        fixtures_dir().display()
    );
    let mut failures = Vec::new();
    for name in &files {
        let Some((event_type, version, _)) = parse_file_name(name) else {
            failures.push(format!(
                "{name}: not named `<event_type>.v<schema_version>[.<suffix>].bin`"
            ));
            continue;
        };
        let bytes = fs::read(fixtures_dir().join(name))
            .unwrap_or_else(|e| panic!("read fixture {name}: {e}"));
        match decode(&bytes) {
            Err(e) => failures.push(format!("{name}: does not decode: {e}")),
            Ok(env) if env.event_type != event_type || env.schema_version != version => {
                failures.push(format!(
                    "{name}: decodes as `{}` v{}",
                    env.event_type, env.schema_version
                ));
            }
            Ok(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "golden fixtures that no longer decode:\n  {}\n\nCompatibility is forever: every \
         event type and schema version ever written must decode. Fix the decoder (keep the \
         old version's wire struct and upcast); never edit or delete a fixture.",
        failures.join("\n  ")
    );
}

#[test]
fn current_encoding_of_the_samples_is_byte_identical_to_the_fixtures() {
    write_missing_fixtures();
    let mut missing = Vec::new();
    let mut changed = Vec::new();
    // `encode_current` writes the current schema version, which names each sample's
    // fixture.
    for s in samples() {
        let fixture = match read_fixture(&s) {
            Ok(bytes) => bytes,
            Err(name) => {
                missing.push(name);
                continue;
            }
        };
        let encoded = encode_current(&s.meta, &s.event).bytes;
        if encoded != fixture {
            let at = encoded
                .iter()
                .zip(&fixture)
                .position(|(a, b)| a != b)
                .unwrap_or(encoded.len().min(fixture.len()));
            changed.push(format!(
                "{}: encodes to {} bytes, the fixture has {}; first difference at byte {at}",
                s.file_name(),
                encoded.len(),
                fixture.len()
            ));
        }
    }
    let mut report = Vec::new();
    if !changed.is_empty() {
        report.push(format!(
            "the current encoding differs from the golden fixtures:\n  {}\n\nThe persisted \
             format changed. Never edit or regenerate old fixtures: add a new schema version \
             for the changed event type (see `Changing an event` in \
             crates/crm-events/src/wire.rs), keep the old version decoding, and add a new \
             fixture for the new version with `{HOW_TO_ADD}`.",
            changed.join("\n  ")
        ));
    }
    if !missing.is_empty() {
        report.push(missing_message(&missing));
    }
    assert!(report.is_empty(), "{}", report.join("\n\n"));
}

/// The golden check itself: a flipped byte in a copy of a fixture, or a valid body of a
/// slightly different event, must not pass.
#[test]
fn the_golden_check_rejects_a_flipped_byte_and_a_different_event() {
    write_missing_fixtures();
    let samples = samples();
    let converted = samples
        .iter()
        .find(|s| s.event_type() == "customer.campaign_response_recorded" && s.suffix.is_none())
        .expect("a converted campaign response sample");
    let unsubscribed = samples
        .iter()
        .find(|s| s.suffix == Some("unsubscribed"))
        .expect("an unsubscribed campaign response sample");
    let fixture =
        read_fixture(converted).unwrap_or_else(|name| panic!("{}", missing_message(&[name])));
    assert_eq!(check_against_sample(converted, &fixture), Ok(()));

    for at in [0, 1, fixture.len() / 2, fixture.len() - 1] {
        let mut copy = fixture.clone();
        copy[at] ^= 0x01;
        assert!(
            check_against_sample(converted, &copy).is_err(),
            "a flipped byte at {at} went unnoticed"
        );
    }
    // Valid bodies (own hash recomputed): same meta, other event; same event, other meta.
    let other_event = encode_current(&converted.meta, &unsubscribed.event).bytes;
    let why = check_against_sample(converted, &other_event).expect_err("another event");
    assert!(why.starts_with("event:"), "{why}");
    let other_meta = EventMeta {
        commit_size: converted.meta.commit_size + 1,
        ..converted.meta.clone()
    };
    let why = check_against_sample(
        converted,
        &encode_current(&other_meta, &converted.event).bytes,
    )
    .expect_err("another meta");
    assert!(why.starts_with("meta:"), "{why}");
}

/// The plain (pre-sealing) fixture of every type now written sealed still decodes, in
/// the clear, to the same sample its sealed fixture opens to: events written before
/// sealing stay readable (and cannot be shredded).
#[test]
fn events_written_before_sealing_decode_in_the_clear_to_their_sample() {
    let mut checked = 0;
    for s in samples().iter().filter(|s| s.suffix.is_none()) {
        let Some((plain, _)) = crm_events::seal::sealed_versions(s.event_type()) else {
            continue;
        };
        let name = file_name(s.event_type(), plain, None);
        let bytes = fs::read(fixtures_dir().join(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let env = decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(env.sealing, Sealing::Plain, "{name}");
        assert_eq!(env.event, s.event, "{name}");
        checked += 1;
    }
    assert_eq!(checked, crm_events::seal::SEALED.len());
}

/// Events of an older schema version read as the current domain event: the v1 files of
/// the types that have a v2 decode to their sample with the fields v1 did not have at
/// their "unknown" value.
#[test]
fn older_schema_versions_upcast_to_what_they_could_not_say() {
    let read = |name: &str| {
        let bytes = fs::read(fixtures_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let won = read("customer.opportunity_won.v1.bin");
    assert_eq!(won.schema_version, 1);
    match won.event {
        DomainEvent::Customer(_, CustomerEvent::OpportunityWon { amount, stage, .. }) => {
            assert_eq!(amount, eur(1_140_480));
            assert_eq!(stage, None, "v1 did not keep the stage a deal was won from");
        }
        other => panic!("{other:?}"),
    }
    let sent = read("campaign.sent.v1.bin");
    assert_eq!(sent.schema_version, 1);
    match sent.event {
        DomainEvent::Campaign(_, CampaignEvent::Sent { skipped, .. }) => {
            assert!(skipped.is_empty());
        }
        other => panic!("{other:?}"),
    }
}
