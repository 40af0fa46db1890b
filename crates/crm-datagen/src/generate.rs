//! The generative story: customers joining over the period (directly or through worked
//! leads), buying by BG/NBD with Gamma-Gamma spend, returning some orders, talking to the
//! company over every channel, opening tickets that meet or breach their SLA, moving
//! opportunities through the pipeline, receiving and answering campaigns, and linking to
//! each other. Every customer draws from its own random stream (ChaCha8, stream = index),
//! so a customer's history does not depend on how many others there are.

use std::collections::BTreeMap;
use std::sync::Arc;

use crm_proto::v1::{self, ingest_request::Command};
use prost::Message;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Distribution, Exp, Gamma, LogNormal, Poisson};

use crate::funnel::{EXTRA_LEAD_CONTACTED, EXTRA_LEAD_DISQUALIFIED, STAGES, WALK};
use crate::params::{CustomerTruth, DAY, Params, Summary};

/// Namespace of the name-based (v5) command ids.
const ID_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6372_6d2d_6461_7461_6765_6e2d_6964_7331);

const HOUR: i64 = DAY / 24;
const MINUTE: i64 = HOUR / 60;

/// A command with its business time, held encoded (a prost `IngestRequest` without its
/// sequence): a few hundred bytes instead of the ~1.8 KB of the decoded command, so a data
/// set of millions of commands fits in memory.
#[derive(Clone, PartialEq, Eq)]
pub struct Planned {
    /// Business time (`occurred_at`), microseconds since the epoch.
    pub at: i64,
    /// Creation order: breaks ties between commands at the same time.
    pub n: u64,
    encoded: Box<[u8]>,
}

impl Planned {
    #[must_use]
    pub fn new(at: i64, n: u64, command: Command) -> Self {
        let request = v1::IngestRequest {
            sequence: 0,
            command: Some(command),
        };
        Self {
            at,
            n,
            encoded: request.encode_to_vec().into_boxed_slice(),
        }
    }

    /// The command (decoded from the bytes this type encoded itself).
    #[must_use]
    pub fn command(&self) -> Command {
        self.request(0).command.unwrap_or(Command::RegisterCustomer(
            v1::RegisterCustomerRequest::default(),
        ))
    }

    /// The command as a bulk-ingest request with `sequence`.
    #[must_use]
    pub fn request(&self, sequence: u64) -> v1::IngestRequest {
        let mut request = v1::IngestRequest::decode(&*self.encoded).unwrap_or_default();
        request.sequence = sequence;
        request
    }

    /// Bytes of the encoded command.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        self.encoded.len()
    }
}

impl std::fmt::Debug for Planned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Planned")
            .field("at", &self.at)
            .field("n", &self.n)
            .field("command", &self.command())
            .finish()
    }
}

/// A generated data set: commands in business-time order, and the truth behind them.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub params: Params,
    pub commands: Vec<Planned>,
    pub truth: Vec<CustomerTruth>,
    pub summary: Summary,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid generator parameters: {}", .0.join("; "))]
pub struct ParamsError(pub Vec<String>);

impl Dataset {
    /// The commands as bulk-ingest requests, `sequence` = position in the data set.
    pub fn requests(&self) -> impl Iterator<Item = v1::IngestRequest> + '_ {
        (0..self.commands.len()).filter_map(|i| self.request(i))
    }

    /// The `i`th command as a bulk-ingest request (`sequence` = `i`).
    #[must_use]
    pub fn request(&self, i: usize) -> Option<v1::IngestRequest> {
        self.commands.get(i).map(|p| p.request(i as u64))
    }

    /// The commands as bulk-ingest requests, from a shared data set: an owned iterator
    /// (as a streaming ingest needs) without a copy of the whole data set.
    pub fn shared_requests(self: Arc<Self>) -> impl Iterator<Item = v1::IngestRequest> + Send {
        (0..self.commands.len()).filter_map(move |i| self.request(i))
    }
}

const GIVEN: &[&str] = &[
    "Ada", "Ben", "Clara", "David", "Elena", "Felix", "Greta", "Hugo", "Ines", "Jonas", "Klara",
    "Luca", "Mara", "Noah", "Olivia", "Paul", "Rosa", "Sami", "Tara", "Umar", "Vera", "Wim",
    "Yara", "Zoe", "Lena", "Emil", "Mia", "Leon", "Sofia", "Theo",
];
const FAMILY: &[&str] = &[
    "Schmidt", "Martin", "de Vries", "Garcia", "Rossi", "Huber", "Peeters", "Novak", "Lovelace",
    "Fischer", "Bernard", "Jansen", "Lopez", "Bianchi", "Gruber", "Dubois", "Weber", "Moreau",
    "Bakker", "Romano", "Wagner", "Laurent", "Visser", "Colombo", "Becker",
];
/// (country, language, phone prefix, cities)
const PLACES: &[(&str, &str, &str, &[&str])] = &[
    (
        "DE",
        "de",
        "+4915",
        &["Berlin", "Hamburg", "Munich", "Cologne"],
    ),
    ("FR", "fr", "+336", &["Paris", "Lyon", "Marseille"]),
    ("NL", "nl", "+316", &["Amsterdam", "Rotterdam", "Utrecht"]),
    ("ES", "es", "+346", &["Madrid", "Barcelona", "Valencia"]),
    ("IT", "it", "+393", &["Rome", "Milan", "Turin"]),
    ("AT", "de", "+43664", &["Vienna", "Graz"]),
];
const CATEGORIES: &[&str] = &[
    "books",
    "games",
    "garden",
    "kitchen",
    "outdoor",
    "toys",
    "beauty",
    "electronics",
];
const SOURCES: &[(&str, &str, u32)] = &[
    ("google", "organic", 30),
    ("google", "cpc", 20),
    ("instagram", "paid-social", 15),
    ("newsletter", "email", 10),
    ("friend", "referral", 10),
    ("store", "offline", 15),
];
const LEAD_SOURCES: &[&str] = &["web-form", "referral", "event", "paid-social", "partner"];
const TAGS: &[&str] = &[
    "newsletter",
    "eco",
    "student",
    "gift-buyer",
    "early-adopter",
];
const AGENTS: &[&str] = &[
    "agent-anna",
    "agent-bo",
    "agent-chen",
    "agent-dara",
    "agent-eli",
];
const SALES: &[&str] = &["sales-fay", "sales-gus", "sales-hal"];
/// Teams customers are looked after by.
const TEAMS: &[&str] = &["team-north", "team-south", "team-online"];
/// The chance, at each step of an opportunity's walk, that its expected close slips.
const SLIP: f64 = 0.15;
const LOST: &[&str] = &["price", "timing", "competitor", "no-budget", "no-response"];
const DISQUALIFY: &[&str] = &["not-reachable", "no-interest", "duplicate", "out-of-area"];
const RETURN_REASONS: &[&str] = &["damaged", "wrong-size", "not-as-described", "changed-mind"];
const TICKET_CATEGORIES: &[&str] = &["delivery", "billing", "product", "account", "complaint"];
const OPPORTUNITIES: &[&str] = &[
    "Kitchen makeover",
    "Garden design",
    "Annual membership",
    "Home office setup",
    "Event catering",
];

/// (priority, first-response target, resolution target) in minutes: the domain's default
/// `standard-v1` SLA policy.
const PRIORITIES: &[(v1::TicketPriority, i64, i64, u32)] = &[
    (v1::TicketPriority::Low, 24 * 60, 120 * 60, 30),
    (v1::TicketPriority::Normal, 8 * 60, 48 * 60, 50),
    (v1::TicketPriority::High, 4 * 60, 24 * 60, 15),
    (v1::TicketPriority::Urgent, 60, 4 * 60, 5),
];

fn weighted<'a, T>(rng: &mut ChaCha8Rng, items: &'a [(T, u32)]) -> &'a T {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut pick = rng.gen_range(0..total);
    for (item, w) in items {
        if pick < *w {
            return item;
        }
        pick -= w;
    }
    &items[items.len() - 1].0
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.gen_range(0..items.len())]
}

fn uuid(rng: &mut ChaCha8Rng) -> String {
    uuid::Builder::from_random_bytes(rng.r#gen())
        .into_uuid()
        .to_string()
}

/// An exponential delay with the given mean, in microseconds (at least 1 µs).
fn after(rng: &mut ChaCha8Rng, mean: i64) -> i64 {
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
    let d = Exp::new(1.0 / mean as f64)
        .map(|e| e.sample(rng) as i64)
        .unwrap_or(mean);
    d.max(1)
}

fn money(minor: i64) -> Option<v1::Money> {
    Some(v1::Money {
        minor,
        currency: "EUR".into(),
    })
}

/// Builds one customer's (or one campaign's) commands.
struct Writer<'a> {
    rng: ChaCha8Rng,
    end: i64,
    out: &'a mut Vec<Planned>,
    tally: &'a mut Tally,
}

/// Creation order and counts by command, shared by every writer.
#[derive(Default)]
struct Tally {
    n: u64,
    by_command: BTreeMap<&'static str, u64>,
}

/// A business time as a protobuf timestamp.
fn timestamp(at: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.div_euclid(1_000_000),
        #[allow(clippy::cast_possible_truncation)]
        nanos: (at.rem_euclid(1_000_000) * 1000) as i32,
    }
}

impl Writer<'_> {
    fn opts(&mut self, at: i64) -> Option<v1::CommandOptions> {
        Some(v1::CommandOptions {
            command_id: uuid(&mut self.rng),
            occurred_at: Some(timestamp(at)),
            ..Default::default()
        })
    }

    /// [`Self::push`] of a command built with the writer's random stream.
    fn push_with(&mut self, at: i64, f: impl FnOnce(&mut ChaCha8Rng) -> Command) -> bool {
        let command = f(&mut self.rng);
        self.push(at, command)
    }

    /// Adds `command` at `at` if that is inside the period; `false` (nothing added) if not.
    fn push(&mut self, at: i64, command: Command) -> bool {
        if at >= self.end {
            return false;
        }
        self.tally.n += 1;
        *self
            .tally
            .by_command
            .entry(command_name(&command))
            .or_default() += 1;
        self.out.push(Planned::new(at, self.tally.n, command));
        true
    }
}

/// What the campaign pass needs to know about a customer.
struct Reachable {
    id: String,
    joined_at: i64,
    /// Email consent from..until (`None`: never granted).
    email: Option<(i64, i64)>,
    sms: Option<(i64, i64)>,
    /// (time, order id, total, index of the PlaceOrder in the customer's commands).
    orders: Vec<(i64, String, i64, usize)>,
}

/// Generates the data set described by `params`.
///
/// # Errors
/// [`ParamsError`] listing every invalid parameter.
#[allow(clippy::too_many_lines)]
pub fn generate(params: &Params) -> Result<Dataset, ParamsError> {
    let problems = params.problems();
    if !problems.is_empty() {
        return Err(ParamsError(problems));
    }
    let end = params.end();
    let seed = params.seed;
    let mut summary = Summary::default();
    let mut truth = Vec::with_capacity(params.customers);
    let mut per_customer: Vec<Vec<Planned>> = Vec::with_capacity(params.customers);
    let mut reach = Vec::with_capacity(params.customers);
    let mut tally = Tally::default();
    let pur = params.purchasing;
    let lambda_dist =
        Gamma::new(pur.r, 1.0 / pur.alpha).map_err(|e| ParamsError(vec![e.to_string()]))?;
    let p_dist = Beta::new(pur.a, pur.b).map_err(|e| ParamsError(vec![e.to_string()]))?;
    let nu_dist = Gamma::new(params.spend.q, 1.0 / params.spend.gamma)
        .map_err(|e| ParamsError(vec![e.to_string()]))?;

    for i in 0..params.customers {
        let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
        rng.set_stream(i as u64 + 1);
        let mut out = Vec::new();
        let mut w = Writer {
            rng,
            end,
            out: &mut out,
            tally: &mut tally,
        };
        let id = uuid(&mut w.rng);
        let span = i64::from(params.days.saturating_sub(14)) * DAY;
        let joined_at = params.start + w.rng.gen_range(0..span);
        let given = *pick(&mut w.rng, GIVEN);
        let family = *pick(&mut w.rng, FAMILY);
        let &(country, language, prefix, cities) = pick(&mut w.rng, PLACES);
        let email = format!(
            "{}.{}{}@example.{}",
            given.to_lowercase(),
            family.to_lowercase().replace(' ', ""),
            i,
            country.to_lowercase()
        );
        let phone = format!("{prefix}{:08}", w.rng.gen_range(0..100_000_000u32));
        let profile = v1::Profile {
            given_name: given.into(),
            family_name: family.into(),
            emails: vec![email.clone()],
            phones: if w.rng.gen_bool(0.6) {
                vec![phone.clone()]
            } else {
                vec![]
            },
            address: w.rng.gen_bool(0.5).then(|| v1::Address {
                line1: format!("{} Main Street", w.rng.gen_range(1..200)),
                city: (*pick(&mut w.rng, cities)).into(),
                postal_code: format!("{:05}", w.rng.gen_range(1000..99999)),
                country: country.into(),
                ..Default::default()
            }),
            language: language.into(),
            country: country.into(),
            external_ids: vec![v1::ExternalId {
                system: "shop".into(),
                id: format!("u{}", 100_000 + i),
            }],
        };
        let mut email_consent = w.rng.gen_bool(0.7).then_some((joined_at, end));
        let sms_consent = w.rng.gen_bool(0.35).then_some((joined_at, end));
        let mut tags: Vec<String> = Vec::new();
        if w.rng.gen_bool(0.3) {
            tags.push((*pick(&mut w.rng, TAGS)).into());
        }
        let consents: Vec<v1::Consent> = [
            (v1::ConsentChannel::Email, email_consent.is_some()),
            (v1::ConsentChannel::Sms, sms_consent.is_some()),
            (v1::ConsentChannel::Push, w.rng.gen_bool(0.2)),
        ]
        .into_iter()
        .filter(|(_, granted)| *granted)
        .map(|(channel, granted)| v1::Consent {
            channel: channel as i32,
            granted,
        })
        .collect();

        // Acquisition: a worked lead, converted at `joined_at`, or a direct registration.
        let team = *pick(&mut w.rng, TEAMS);
        let came_from_lead = w.rng.gen_bool(params.from_leads);
        let mut opportunity_at_join = None;
        if came_from_lead {
            summary.leads += 1;
            let lead_id = uuid(&mut w.rng);
            let steps = [
                after(&mut w.rng, 2 * HOUR),
                after(&mut w.rng, DAY),
                after(&mut w.rng, 2 * DAY),
                after(&mut w.rng, 3 * DAY),
            ];
            let created = joined_at - steps.iter().sum::<i64>() - 4;
            let mut t = created;
            let o = w.opts(t);
            w.push_with(t, |rng| {
                Command::CreateLead(v1::CreateLeadRequest {
                    options: o,
                    lead_id: lead_id.clone(),
                    source: (*pick(rng, LEAD_SOURCES)).into(),
                    given_name: given.into(),
                    family_name: family.into(),
                    email: email.clone(),
                    phone: phone.clone(),
                    interest: (*pick(rng, CATEGORIES)).into(),
                    ..Default::default()
                })
            });
            t += steps[0] + 1;
            let o = w.opts(t);
            w.push_with(t, |rng| {
                Command::AssignLead(v1::AssignLeadRequest {
                    options: o,
                    lead_id: lead_id.clone(),
                    owner: (*pick(rng, SALES)).into(),
                    rule: "round-robin".into(),
                })
            });
            t += steps[1] + 1;
            let o = w.opts(t);
            w.push_with(t, |rng| {
                Command::ContactLead(v1::ContactLeadRequest {
                    options: o,
                    lead_id: lead_id.clone(),
                    channel: v1::Channel::Phone as i32,
                    agent: (*pick(rng, SALES)).into(),
                })
            });
            t += steps[2] + 1;
            let o = w.opts(t);
            w.push(
                t,
                Command::QualifyLead(v1::QualifyLeadRequest {
                    options: o,
                    lead_id: lead_id.clone(),
                    note: "budget and need confirmed".into(),
                }),
            );
            let opportunity = w.rng.gen_bool(0.3).then(|| {
                let oid = uuid(&mut w.rng);
                opportunity_at_join = Some(oid.clone());
                v1::ConversionOpportunity {
                    opportunity_id: oid,
                    name: (*pick(&mut w.rng, OPPORTUNITIES)).into(),
                    amount: money(opportunity_amount(&mut w.rng)),
                    ..Default::default()
                }
            });
            let o = w.opts(joined_at);
            w.push(
                joined_at,
                Command::ConvertLead(v1::ConvertLeadRequest {
                    options: o,
                    lead_id,
                    into: Some(v1::convert_lead_request::Into::NewCustomerId(id.clone())),
                    opportunity,
                }),
            );
            // The lead gave names and email; the rest comes with the first profile update.
            let t = joined_at + MINUTE;
            let o = w.opts(t);
            w.push(
                t,
                Command::UpdateProfile(v1::UpdateProfileRequest {
                    options: o,
                    customer_id: id.clone(),
                    phones: profile.phones.clone(),
                    set_phones: !profile.phones.is_empty(),
                    address: profile.address.clone(),
                    language: Some(language.into()),
                    country: Some(country.into()),
                    external_ids: profile.external_ids.clone(),
                    set_external_ids: true,
                    team: Some(team.into()),
                    ..Default::default()
                }),
            );
            for (k, c) in consents.iter().enumerate() {
                let t = joined_at + 2 * MINUTE + k as i64;
                let o = w.opts(t);
                w.push(
                    t,
                    Command::SetConsent(v1::SetConsentRequest {
                        options: o,
                        customer_id: id.clone(),
                        channel: c.channel,
                        granted: true,
                        source: "sales-call".into(),
                    }),
                );
            }
            for (k, tag) in tags.iter().enumerate() {
                let t = joined_at + 3 * MINUTE + k as i64;
                let o = w.opts(t);
                w.push(
                    t,
                    Command::TagCustomer(v1::TagCustomerRequest {
                        options: o,
                        customer_id: id.clone(),
                        tag: tag.clone(),
                    }),
                );
            }
        } else {
            let &(source, medium) = weighted(
                &mut w.rng,
                &SOURCES
                    .iter()
                    .map(|&(s, m, wt)| ((s, m), wt))
                    .collect::<Vec<_>>(),
            );
            let o = w.opts(joined_at);
            w.push(
                joined_at,
                Command::RegisterCustomer(v1::RegisterCustomerRequest {
                    options: o,
                    customer_id: id.clone(),
                    profile: Some(profile.clone()),
                    acquisition: Some(v1::Acquisition {
                        source: source.into(),
                        medium: medium.into(),
                        campaign_id: String::new(),
                    }),
                    consent_source: if consents.is_empty() {
                        String::new()
                    } else {
                        "signup-form".into()
                    },
                    consents,
                    tags: tags.clone(),
                    team: team.into(),
                    ..Default::default()
                }),
            );
        }

        // Purchasing: BG/NBD with Gamma-Gamma spend.
        let buys = !w.rng.gen_bool(params.never_buy);
        let lambda = if buys {
            lambda_dist.sample(&mut w.rng)
        } else {
            0.0
        };
        let p_dropout = p_dist.sample(&mut w.rng);
        let nu = nu_dist.sample(&mut w.rng);
        let spend = Gamma::new(params.spend.p, 1.0 / nu).ok();
        let mut orders = Vec::new();
        let mut dropped_out_at = None;
        let mut spend_minor = 0;
        if buys && lambda > 0.0 {
            let mut t = joined_at + 10 * MINUTE + after(&mut w.rng, 2 * DAY);
            #[allow(clippy::cast_possible_truncation)]
            let gap_mean = (DAY as f64 / lambda).min(1e15) as i64;
            while t < end {
                #[allow(clippy::cast_possible_truncation)]
                let value = spend
                    .as_ref()
                    .map_or(5_000, |g| (g.sample(&mut w.rng) * 100.0).round() as i64)
                    .max(100);
                let (order_id, command) = order(&mut w, &id, t, value);
                let index = w.out.len();
                if !w.push(t, command) {
                    break;
                }
                summary.orders += 1;
                spend_minor += value;
                orders.push((t, order_id.clone(), value, index));
                if w.rng.gen_bool(params.return_rate) {
                    let rt = t + DAY * w.rng.gen_range(3..20);
                    if let Command::PlaceOrder(po) = w.out[index].command() {
                        let line = po.lines[0].clone();
                        let o = w.opts(rt);
                        let pushed = w.push_with(rt, |rng| {
                            Command::RecordReturn(v1::RecordReturnRequest {
                                options: o,
                                customer_id: id.clone(),
                                return_id: String::new(),
                                order_id,
                                lines: vec![v1::ReturnLine {
                                    sku: line.sku,
                                    quantity: 1,
                                }],
                                refund: money(line.unit_price_minor),
                                reason: (*pick(rng, RETURN_REASONS)).into(),
                            })
                        });
                        if pushed {
                            summary.returns += 1;
                        }
                    }
                }
                if w.rng.gen_bool(params.order_ticket_rate) {
                    let tt = t + w.rng.gen_range(DAY..10 * DAY);
                    ticket(&mut w, &id, tt, Some("delivery"), &mut summary);
                }
                // BG/NBD: the first purchase opens the relationship; a customer may drop
                // out after each repeat purchase (not after the first, which would be
                // the MBG/NBD story and bias a BG/NBD fit).
                if orders.len() > 1 && w.rng.gen_bool(p_dropout) {
                    dropped_out_at = Some(t);
                    break;
                }
                t += after(&mut w.rng, gap_mean.max(1));
            }
        }

        // Engagement while active (and a while after): interactions and tickets.
        let active_until = match (buys, dropped_out_at) {
            (false, _) => joined_at + 90 * DAY,
            (true, Some(d)) => d + 60 * DAY,
            (true, None) => end,
        }
        .min(end);
        #[allow(clippy::cast_precision_loss)]
        let active_days = ((active_until - joined_at) as f64 / DAY as f64).max(0.0);
        for _ in 0..poisson(&mut w.rng, params.interaction_rate * active_days) {
            let t = w
                .rng
                .gen_range(joined_at + HOUR..active_until.max(joined_at + HOUR + 1));
            interaction(&mut w, &id, t, None);
            summary.interactions += 1;
        }
        for _ in 0..poisson(&mut w.rng, params.ticket_rate * active_days) {
            let t = w
                .rng
                .gen_range(joined_at + HOUR..active_until.max(joined_at + HOUR + 1));
            ticket(&mut w, &id, t, None, &mut summary);
        }

        // Sales: an opportunity walking the pipeline.
        if let Some(oid) = opportunity_at_join {
            summary.opportunities += 1;
            // A converted lead's deal gets its owner and expected close from sales.
            let t = joined_at + 5 * MINUTE;
            let o = w.opts(t);
            w.push_with(t, |rng| {
                Command::UpdateOpportunity(v1::UpdateOpportunityRequest {
                    options: o,
                    customer_id: id.clone(),
                    opportunity_id: oid.clone(),
                    owner: Some((*pick(rng, SALES)).into()),
                    expected_close: Some(timestamp(t + rng.gen_range(20..90) * DAY)),
                    ..Default::default()
                })
            });
            walk_opportunity(&mut w, &id, &oid, 0, t);
        }
        if w.rng.gen_bool(params.opportunity_rate) {
            let t = w
                .rng
                .gen_range(joined_at + DAY..active_until.max(joined_at + DAY + 1));
            let oid = uuid(&mut w.rng);
            let o = w.opts(t);
            if w.push_with(t, |rng| {
                Command::OpenOpportunity(v1::OpenOpportunityRequest {
                    options: o,
                    customer_id: id.clone(),
                    opportunity_id: oid.clone(),
                    name: (*pick(rng, OPPORTUNITIES)).into(),
                    amount: money(opportunity_amount(rng)),
                    owner: (*pick(rng, SALES)).into(),
                    expected_close: Some(timestamp(t + rng.gen_range(20..90) * DAY)),
                    ..Default::default()
                })
            }) {
                summary.opportunities += 1;
                walk_opportunity(&mut w, &id, &oid, 0, t);
            }
        }

        // Profile changes, tags, consent withdrawals.
        if w.rng.gen_bool(0.08) {
            let t = w
                .rng
                .gen_range(joined_at + DAY..end.max(joined_at + DAY + 1));
            let o = w.opts(t);
            let phones = vec![format!("{prefix}{:08}", w.rng.gen_range(0..100_000_000u32))];
            w.push(
                t,
                Command::UpdateProfile(v1::UpdateProfileRequest {
                    options: o,
                    customer_id: id.clone(),
                    phones,
                    set_phones: true,
                    ..Default::default()
                }),
            );
        }
        if w.rng.gen_bool(0.1) {
            let t = w
                .rng
                .gen_range(joined_at + DAY..end.max(joined_at + DAY + 1));
            let tag = if orders.len() >= 5 {
                "loyal"
            } else {
                *pick(&mut w.rng, TAGS)
            };
            if !tags.iter().any(|x| x == tag) {
                let o = w.opts(t);
                if w.push(
                    t,
                    Command::TagCustomer(v1::TagCustomerRequest {
                        options: o,
                        customer_id: id.clone(),
                        tag: tag.into(),
                    }),
                ) {
                    tags.push(tag.into());
                }
            }
        }
        if !tags.is_empty() && w.rng.gen_bool(0.05) {
            // After every tagging (which happened at the latest by the end).
            let last_tag = w
                .out
                .iter()
                .filter(|p| {
                    matches!(
                        p.command(),
                        Command::TagCustomer(_) | Command::RegisterCustomer(_)
                    )
                })
                .map(|p| p.at)
                .max()
                .unwrap_or(joined_at);
            let t = last_tag + after(&mut w.rng, 60 * DAY);
            let o = w.opts(t);
            w.push(
                t,
                Command::UntagCustomer(v1::UntagCustomerRequest {
                    options: o,
                    customer_id: id.clone(),
                    tag: tags[0].clone(),
                }),
            );
        }
        if let Some((from, _)) = email_consent
            && w.rng.gen_bool(0.05)
        {
            let t = from + 10 * MINUTE + after(&mut w.rng, 200 * DAY);
            let o = w.opts(t);
            if w.push(
                t,
                Command::SetConsent(v1::SetConsentRequest {
                    options: o,
                    customer_id: id.clone(),
                    channel: v1::ConsentChannel::Email as i32,
                    granted: false,
                    source: "preference-centre".into(),
                }),
            ) {
                email_consent = Some((from, t));
            }
        }

        summary.customers += 1;
        truth.push(CustomerTruth {
            customer_id: id.clone(),
            joined_at,
            lambda,
            p_dropout,
            nu,
            dropped_out_at,
            #[allow(clippy::cast_possible_truncation)]
            orders: orders.len() as u32,
            spend_minor,
            came_from_lead,
        });
        reach.push(Reachable {
            id,
            joined_at,
            email: email_consent,
            sms: sms_consent,
            orders,
        });
        per_customer.push(out);
    }

    // Leads that never become customers.
    let mut extra = Vec::new();
    {
        let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
        rng.set_stream(u64::MAX - 1);
        let mut w = Writer {
            rng,
            end,
            out: &mut extra,
            tally: &mut tally,
        };
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let count = (params.customers as f64 * params.extra_leads).round() as usize;
        for i in 0..count {
            summary.leads += 1;
            let lead_id = uuid(&mut w.rng);
            let span = i64::from(params.days) * DAY;
            let mut t = params.start + w.rng.gen_range(0..span);
            let given = *pick(&mut w.rng, GIVEN);
            let family = *pick(&mut w.rng, FAMILY);
            let o = w.opts(t);
            w.push_with(t, |rng| {
                Command::CreateLead(v1::CreateLeadRequest {
                    options: o,
                    lead_id: lead_id.clone(),
                    source: (*pick(rng, LEAD_SOURCES)).into(),
                    given_name: given.into(),
                    family_name: family.into(),
                    email: format!("lead{i}@example.net"),
                    interest: (*pick(rng, CATEGORIES)).into(),
                    ..Default::default()
                })
            });
            t += after(&mut w.rng, 4 * HOUR);
            let o = w.opts(t);
            w.push_with(t, |rng| {
                Command::AssignLead(v1::AssignLeadRequest {
                    options: o,
                    lead_id: lead_id.clone(),
                    owner: (*pick(rng, SALES)).into(),
                    rule: "round-robin".into(),
                })
            });
            if w.rng.gen_bool(EXTRA_LEAD_CONTACTED) {
                t += after(&mut w.rng, 2 * DAY);
                let o = w.opts(t);
                w.push_with(t, |rng| {
                    Command::ContactLead(v1::ContactLeadRequest {
                        options: o,
                        lead_id: lead_id.clone(),
                        channel: v1::Channel::Email as i32,
                        agent: (*pick(rng, SALES)).into(),
                    })
                });
            }
            if w.rng.gen_bool(EXTRA_LEAD_DISQUALIFIED) {
                t += after(&mut w.rng, 5 * DAY);
                let o = w.opts(t);
                w.push_with(t, |rng| {
                    Command::DisqualifyLead(v1::DisqualifyLeadRequest {
                        options: o,
                        lead_id,
                        reason: (*pick(rng, DISQUALIFY)).into(),
                    })
                });
            }
        }
    }

    // Relationships: households and referrals between customers who both exist.
    let mut links = Vec::new();
    {
        let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
        rng.set_stream(u64::MAX - 2);
        let mut w = Writer {
            rng,
            end,
            out: &mut links,
            tally: &mut tally,
        };
        for i in 1..reach.len() {
            if !w.rng.gen_bool(params.relationship_rate) {
                continue;
            }
            let j = w.rng.gen_range(0..i);
            let (a, b) = (&reach[i], &reach[j]);
            let (earlier, later) = if a.joined_at <= b.joined_at {
                (a, b)
            } else {
                (b, a)
            };
            let household = w.rng.gen_bool(0.6);
            let t = later.joined_at + 10 * MINUTE + after(&mut w.rng, 20 * DAY);
            let o = w.opts(t);
            let pushed = w.push(
                t,
                Command::LinkCustomers(v1::LinkCustomersRequest {
                    options: o,
                    customer_id: earlier.id.clone(),
                    other_customer_id: later.id.clone(),
                    kind: if household {
                        v1::RelationshipKind::Household
                    } else {
                        v1::RelationshipKind::Referrer
                    } as i32,
                }),
            );
            if pushed {
                summary.relationships += 1;
            }
        }
    }

    // Campaigns: created, sent to consenting customers in waves, costed, answered; a
    // click followed by an order within a week attributes the order.
    let mut campaigns = Vec::new();
    {
        let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
        rng.set_stream(u64::MAX - 3);
        let mut w = Writer {
            rng,
            end,
            out: &mut campaigns,
            tally: &mut tally,
        };
        let count = params.campaigns();
        // Ids and channels first: the campaigns a business runs do not depend on how many
        // customers it has (the sends below draw per customer).
        let plan: Vec<(String, bool)> = (0..count)
            .map(|_| (uuid(&mut w.rng), w.rng.gen_bool(0.25)))
            .collect();
        for (k, (cid, sms)) in plan.into_iter().enumerate() {
            let span = i64::from(params.days.saturating_sub(10)) * DAY;
            #[allow(clippy::cast_possible_wrap)]
            let created = params.start + span * (2 * k as i64 + 1) / (2 * count as i64);
            let channel = if sms {
                v1::Channel::Sms
            } else {
                v1::Channel::Email
            };
            let o = w.opts(created);
            w.push(
                created,
                Command::CreateCampaign(v1::CreateCampaignRequest {
                    options: o,
                    campaign_id: cid.clone(),
                    name: format!("{} campaign {}", if sms { "SMS" } else { "Email" }, k + 1),
                    channel: channel as i32,
                    segment: "consented-customers".into(),
                    budget: money(500_000),
                }),
            );
            summary.campaigns += 1;
            let sent = created + DAY;
            let recipients: Vec<usize> = (0..reach.len())
                .filter(|&c| {
                    let r = &reach[c];
                    let consent = if sms { r.sms } else { r.email };
                    r.joined_at < sent
                        && consent.is_some_and(|(from, until)| from < sent && sent < until)
                })
                .filter(|_| w.rng.gen_bool(params.campaign_audience))
                .collect();
            for (wave, chunk) in recipients.chunks(10_000).enumerate() {
                let t = sent + wave as i64;
                let o = w.opts(t);
                w.push(
                    t,
                    Command::SendCampaign(v1::SendCampaignRequest {
                        options: o,
                        campaign_id: cid.clone(),
                        recipients: chunk.iter().map(|&c| reach[c].id.clone()).collect(),
                    }),
                );
            }
            if recipients.is_empty() {
                continue;
            }
            let t = sent + 2 * DAY;
            let o = w.opts(t);
            #[allow(clippy::cast_possible_wrap)]
            let cost = 5_000 + 2 * recipients.len() as i64;
            w.push(
                t,
                Command::RecordCampaignCost(v1::RecordCampaignCostRequest {
                    options: o,
                    campaign_id: cid.clone(),
                    amount: money(cost),
                    note: "delivery fees".into(),
                }),
            );
            for &c in &recipients {
                let mut respond = |w: &mut Writer<'_>,
                                   t: i64,
                                   kind: v1::CampaignResponseKind,
                                   revenue: Option<v1::Money>,
                                   order_id: String| {
                    // The id names the response itself (campaign, customer, kind), so data
                    // sets of different sizes that share a campaign and a customer agree
                    // on it instead of reusing one id for different responses.
                    let mut o = w.opts(t);
                    if let Some(o) = o.as_mut() {
                        o.command_id = uuid::Uuid::new_v5(
                            &ID_NAMESPACE,
                            format!("{}:response:{cid}:{}:{}", seed, reach[c].id, kind as i32)
                                .as_bytes(),
                        )
                        .to_string();
                    }
                    let pushed = w.push(
                        t,
                        Command::RecordCampaignResponse(v1::RecordCampaignResponseRequest {
                            options: o,
                            customer_id: reach[c].id.clone(),
                            campaign_id: cid.clone(),
                            kind: kind as i32,
                            revenue,
                            order_id,
                        }),
                    );
                    if pushed {
                        summary.campaign_responses += 1;
                    }
                    pushed
                };
                if !w.rng.gen_bool(0.97) {
                    continue;
                }
                let delivered = sent + 10 * MINUTE + after(&mut w.rng, HOUR);
                respond(
                    &mut w,
                    delivered,
                    v1::CampaignResponseKind::Delivered,
                    None,
                    String::new(),
                );
                if !w.rng.gen_bool(if sms { 0.5 } else { 0.3 }) {
                    if w.rng.gen_bool(0.01) {
                        let t = delivered + after(&mut w.rng, DAY);
                        respond(
                            &mut w,
                            t,
                            v1::CampaignResponseKind::Unsubscribed,
                            None,
                            String::new(),
                        );
                    }
                    continue;
                }
                let opened = delivered + after(&mut w.rng, DAY);
                if !respond(
                    &mut w,
                    opened,
                    v1::CampaignResponseKind::Opened,
                    None,
                    String::new(),
                ) {
                    continue;
                }
                if !w.rng.gen_bool(0.25) {
                    continue;
                }
                let clicked = opened + after(&mut w.rng, 2 * HOUR);
                if !respond(
                    &mut w,
                    clicked,
                    v1::CampaignResponseKind::Clicked,
                    None,
                    String::new(),
                ) {
                    continue;
                }
                // The customer's first order within a week of the click is attributed.
                let order = reach[c]
                    .orders
                    .iter()
                    .find(|(at, ..)| *at > clicked && *at < clicked + 7 * DAY)
                    .cloned();
                let placed = order.as_ref().map(|o| &per_customer[c][o.3]);
                if let Some((at, order_id, total, index)) = order
                    && let Some(Command::PlaceOrder(mut po)) = placed.map(Planned::command)
                    && po.campaign_id.is_empty()
                {
                    po.campaign_id = cid.clone();
                    let p = &mut per_customer[c][index];
                    *p = Planned::new(p.at, p.n, Command::PlaceOrder(po));
                    respond(
                        &mut w,
                        at + MINUTE,
                        v1::CampaignResponseKind::Converted,
                        money(total),
                        order_id,
                    );
                }
            }
        }
    }

    let mut commands: Vec<Planned> = per_customer.into_iter().flatten().collect();
    commands.extend(extra);
    commands.extend(links);
    commands.extend(campaigns);
    commands.sort_by_key(|p| (p.at, p.n));
    summary.commands = commands.len() as u64;
    summary.by_command = tally
        .by_command
        .into_iter()
        .map(|(name, count)| (name.to_owned(), count))
        .collect();
    Ok(Dataset {
        params: params.clone(),
        commands,
        truth,
        summary,
    })
}

fn poisson(rng: &mut ChaCha8Rng, mean: f64) -> u64 {
    if mean <= 0.0 {
        return 0;
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Poisson::new(mean).map_or(0, |p| p.sample(rng) as u64)
}

fn opportunity_amount(rng: &mut ChaCha8Rng) -> i64 {
    #[allow(clippy::cast_possible_truncation)]
    LogNormal::new(7.2_f64, 0.6).map_or(150_000, |d| (d.sample(rng) * 100.0).round() as i64)
}

/// A PlaceOrder of `value` cents split over one to three lines.
fn order(w: &mut Writer<'_>, customer: &str, at: i64, value: i64) -> (String, Command) {
    let order_id = uuid(&mut w.rng);
    let lines = *weighted(&mut w.rng, &[(1usize, 50), (2, 35), (3, 15)]);
    let mut left = value;
    let mut out = Vec::new();
    for k in 0..lines {
        let share = if k + 1 == lines {
            left
        } else {
            let s = (left * w.rng.gen_range(20..60) / 100).max(1);
            left -= s;
            s
        };
        let category = *pick(&mut w.rng, CATEGORIES);
        out.push(v1::OrderLine {
            sku: format!("{category}-{:03}", w.rng.gen_range(0..200)),
            category: category.into(),
            quantity: 1,
            unit_price_minor: share.max(1),
        });
    }
    let o = w.opts(at);
    let channel = *weighted(&mut w.rng, &[("web", 60), ("app", 25), ("store", 15)]);
    (
        order_id.clone(),
        Command::PlaceOrder(v1::PlaceOrderRequest {
            options: o,
            customer_id: customer.into(),
            order_id,
            sales_channel: channel.into(),
            currency: "EUR".into(),
            lines: out,
            shipping_minor: if value < 5_000 && channel != "store" {
                495
            } else {
                0
            },
            ..Default::default()
        }),
    )
}

fn interaction(w: &mut Writer<'_>, customer: &str, at: i64, ticket: Option<&str>) -> bool {
    let channel = *weighted(
        &mut w.rng,
        &[
            (v1::Channel::Email, 35),
            (v1::Channel::Phone, 20),
            (v1::Channel::Chat, 20),
            (v1::Channel::Social, 10),
            (v1::Channel::WebForm, 10),
            (v1::Channel::Meeting, 3),
            (v1::Channel::InPerson, 2),
        ],
    );
    let channel = if ticket.is_some() {
        v1::Channel::Email
    } else {
        channel
    };
    let inbound = ticket.is_some() || w.rng.gen_bool(0.6);
    let call = (channel == v1::Channel::Phone).then(|| {
        let outcome = *weighted(
            &mut w.rng,
            &[
                (v1::CallOutcome::Answered, 75),
                (v1::CallOutcome::Missed, 15),
                (v1::CallOutcome::Voicemail, 10),
            ],
        );
        v1::CallDetails {
            duration_secs: if outcome == v1::CallOutcome::Answered {
                w.rng.gen_range(30..1200)
            } else {
                0
            },
            outcome: outcome as i32,
        }
    });
    #[allow(clippy::cast_possible_truncation)]
    let sentiment = w
        .rng
        .gen_bool(0.5)
        .then(|| (f64::from(w.rng.gen_range(-60..=100)) * 0.9) as i32);
    let o = w.opts(at);
    w.push_with(at, |rng| {
        Command::LogInteraction(v1::LogInteractionRequest {
            options: o,
            customer_id: customer.into(),
            interaction_id: String::new(),
            channel: channel as i32,
            direction: if inbound {
                v1::Direction::Inbound
            } else {
                v1::Direction::Outbound
            } as i32,
            agent: (*pick(rng, AGENTS)).into(),
            subject: if ticket.is_some() {
                "Re: your ticket".into()
            } else {
                "Customer contact".into()
            },
            summary: String::new(),
            sentiment,
            ticket_id: ticket.unwrap_or_default().into(),
            call,
            ..Default::default()
        })
    })
}

/// A ticket's life from `at`: assignment, first response (meeting or breaching its SLA),
/// maybe a wait on the customer, resolution, maybe a reopening, closing with a rating.
/// Steps past the end of the period are not taken (the ticket stays open).
fn ticket(
    w: &mut Writer<'_>,
    customer: &str,
    at: i64,
    category: Option<&str>,
    summary: &mut Summary,
) {
    let ticket_id = uuid(&mut w.rng);
    let &(priority, first_target, resolve_target) = weighted(
        &mut w.rng,
        &PRIORITIES
            .iter()
            .map(|&(p, f, r, wt)| ((p, f, r), wt))
            .collect::<Vec<_>>(),
    );
    let channel = *pick(
        &mut w.rng,
        &[
            v1::Channel::Email,
            v1::Channel::Chat,
            v1::Channel::Phone,
            v1::Channel::WebForm,
        ],
    );
    let category = category.unwrap_or_else(|| *pick(&mut w.rng, TICKET_CATEGORIES));
    let o = w.opts(at);
    if !w.push(
        at,
        Command::OpenTicket(v1::OpenTicketRequest {
            options: o,
            customer_id: customer.into(),
            ticket_id: ticket_id.clone(),
            channel: channel as i32,
            category: category.into(),
            priority: priority as i32,
            subject: format!("Question about {category}"),
        }),
    ) {
        return;
    }
    summary.tickets += 1;
    let agent = (*pick(&mut w.rng, AGENTS)).to_owned();
    let mut t = at + after(&mut w.rng, 20 * MINUTE);
    let o = w.opts(t);
    if !w.push(
        t,
        Command::AssignTicket(v1::AssignTicketRequest {
            options: o,
            customer_id: customer.into(),
            ticket_id: ticket_id.clone(),
            agent: agent.clone(),
            rule: "skills-based".into(),
        }),
    ) {
        return;
    }
    // About a fifth of first responses miss the target.
    let first = at + after(&mut w.rng, first_target * MINUTE * 6 / 10);
    t = first.max(t + 1);
    let breached = t - at > first_target * MINUTE;
    let awaiting = w.rng.gen_bool(0.25);
    let respond = |w: &mut Writer<'_>, t: i64, awaiting_customer: bool| {
        let o = w.opts(t);
        w.push(
            t,
            Command::RespondToTicket(v1::RespondToTicketRequest {
                options: o,
                customer_id: customer.into(),
                ticket_id: ticket_id.clone(),
                agent: agent.clone(),
                awaiting_customer,
            }),
        )
    };
    if !respond(w, t, awaiting) {
        return;
    }
    if awaiting {
        t += after(&mut w.rng, DAY);
        if !interaction(w, customer, t, Some(&ticket_id)) {
            return;
        }
        t += after(&mut w.rng, 2 * HOUR);
        if !respond(w, t, false) {
            return;
        }
    }
    let resolve = |w: &mut Writer<'_>, t: i64| {
        let o = w.opts(t);
        w.push(
            t,
            Command::ResolveTicket(v1::ResolveTicketRequest {
                options: o,
                customer_id: customer.into(),
                ticket_id: ticket_id.clone(),
                resolution: "answered".into(),
            }),
        )
    };
    t += after(&mut w.rng, resolve_target * MINUTE * 4 / 10);
    if !resolve(w, t) {
        return;
    }
    if w.rng.gen_bool(0.08) {
        t += after(&mut w.rng, 2 * DAY);
        let o = w.opts(t);
        if !w.push(
            t,
            Command::ReopenTicket(v1::ReopenTicketRequest {
                options: o,
                customer_id: customer.into(),
                ticket_id: ticket_id.clone(),
                reason: "problem came back".into(),
            }),
        ) {
            return;
        }
        t += after(&mut w.rng, 4 * HOUR);
        if !respond(w, t, false) {
            return;
        }
        t += after(&mut w.rng, DAY);
        if !resolve(w, t) {
            return;
        }
    }
    t += after(&mut w.rng, 36 * HOUR);
    let csat = w.rng.gen_bool(0.65).then(|| {
        let weights: &[(u32, u32)] = if breached {
            &[(1, 25), (2, 25), (3, 25), (4, 15), (5, 10)]
        } else {
            &[(1, 3), (2, 5), (3, 12), (4, 35), (5, 45)]
        };
        *weighted(&mut w.rng, weights)
    });
    let o = w.opts(t);
    w.push(
        t,
        Command::CloseTicket(v1::CloseTicketRequest {
            options: o,
            customer_id: customer.into(),
            ticket_id,
            csat,
            comment: String::new(),
        }),
    );
}

/// Moves an opportunity from stage `stage` at `at`: mostly forward, sometimes skipping or
/// going back a stage, until won (after the last stage) or lost with a reason; now and
/// then the expected close slips by two to six weeks.
fn walk_opportunity(w: &mut Writer<'_>, customer: &str, oid: &str, mut stage: usize, mut at: i64) {
    loop {
        at += after(&mut w.rng, 10 * DAY);
        if w.rng.gen_bool(SLIP) {
            let o = w.opts(at);
            w.push_with(at, |rng| {
                Command::UpdateOpportunity(v1::UpdateOpportunityRequest {
                    options: o,
                    customer_id: customer.into(),
                    opportunity_id: oid.into(),
                    expected_close: Some(timestamp(at + rng.gen_range(14..45) * DAY)),
                    ..Default::default()
                })
            });
            at += 1;
        }
        let r: f64 = w.rng.r#gen();
        if r < WALK.lose {
            let o = w.opts(at);
            w.push_with(at, |rng| {
                Command::LoseOpportunity(v1::LoseOpportunityRequest {
                    options: o,
                    customer_id: customer.into(),
                    opportunity_id: oid.into(),
                    reason: (*pick(rng, LOST)).into(),
                })
            });
            return;
        }
        let next = if r < WALK.lose + WALK.back && stage > 0 {
            stage - 1
        } else if r < WALK.lose + WALK.back + WALK.skip {
            stage + 2
        } else {
            stage + 1
        };
        if next >= STAGES.len() {
            let o = w.opts(at);
            w.push(
                at,
                Command::WinOpportunity(v1::WinOpportunityRequest {
                    options: o,
                    customer_id: customer.into(),
                    opportunity_id: oid.into(),
                    amount: None,
                }),
            );
            return;
        }
        let o = w.opts(at);
        if !w.push(
            at,
            Command::MoveOpportunityStage(v1::MoveOpportunityStageRequest {
                options: o,
                customer_id: customer.into(),
                opportunity_id: oid.into(),
                stage: STAGES[next].into(),
                probability_pct: None,
            }),
        ) {
            return;
        }
        stage = next;
    }
}

/// The RPC name of a command.
#[must_use]
pub fn command_name(c: &Command) -> &'static str {
    match c {
        Command::RegisterCustomer(_) => "RegisterCustomer",
        Command::UpdateProfile(_) => "UpdateProfile",
        Command::SetConsent(_) => "SetConsent",
        Command::TagCustomer(_) => "TagCustomer",
        Command::UntagCustomer(_) => "UntagCustomer",
        Command::LinkCustomers(_) => "LinkCustomers",
        Command::LogInteraction(_) => "LogInteraction",
        Command::PlaceOrder(_) => "PlaceOrder",
        Command::RecordReturn(_) => "RecordReturn",
        Command::OpenTicket(_) => "OpenTicket",
        Command::AssignTicket(_) => "AssignTicket",
        Command::RespondToTicket(_) => "RespondToTicket",
        Command::ResolveTicket(_) => "ResolveTicket",
        Command::ReopenTicket(_) => "ReopenTicket",
        Command::CloseTicket(_) => "CloseTicket",
        Command::OpenOpportunity(_) => "OpenOpportunity",
        Command::MoveOpportunityStage(_) => "MoveOpportunityStage",
        Command::WinOpportunity(_) => "WinOpportunity",
        Command::LoseOpportunity(_) => "LoseOpportunity",
        Command::UpdateOpportunity(_) => "UpdateOpportunity",
        Command::ReopenOpportunity(_) => "ReopenOpportunity",
        Command::CreateLead(_) => "CreateLead",
        Command::AssignLead(_) => "AssignLead",
        Command::ContactLead(_) => "ContactLead",
        Command::QualifyLead(_) => "QualifyLead",
        Command::DisqualifyLead(_) => "DisqualifyLead",
        Command::ConvertLead(_) => "ConvertLead",
        Command::CreateCampaign(_) => "CreateCampaign",
        Command::SendCampaign(_) => "SendCampaign",
        Command::RecordCampaignCost(_) => "RecordCampaignCost",
        Command::RecordCampaignResponse(_) => "RecordCampaignResponse",
        Command::ForgetCustomer(_) => "ForgetCustomer",
    }
}
