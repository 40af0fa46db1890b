//! Every command over the API, table-driven: each case is a request and the outcome it
//! must have. Accepted: the reply names the aggregate with its new version and the commit's
//! stream position, and the log grew by the events it reports. Rejected: the status code,
//! the request field path the `google.rpc` details name (with a description), and nothing
//! appended to the log. One `crm serve` per area; cases run in order, so the accepted
//! ones build the state the later ones need.

mod campaigns;
mod customers;
mod leads;
mod records;

use std::collections::HashMap;
use std::fmt;

use async_nats::jetstream;
use crm_proto::v1::{self, command_service_client::CommandServiceClient};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::support::{Cmd, Crm, Rpc, call, primary, rpc_name};

/// What a command must do.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Expect {
    /// Accepted, appending events: the primary aggregate is now at this version.
    Ok(u64),
    /// Accepted, changing nothing: the primary aggregate stays at this version.
    NoOp(u64),
    /// Refused with this code; the details name this request field (`None`: no details
    /// expected).
    Rejected(Code, Option<&'static str>),
}

pub(crate) const fn ok(version: u64) -> Expect {
    Expect::Ok(version)
}
pub(crate) const fn noop(version: u64) -> Expect {
    Expect::NoOp(version)
}
/// Validation: INVALID_ARGUMENT, a `BadRequest` violation of `field`.
pub(crate) const fn invalid(field: &'static str) -> Expect {
    Expect::Rejected(Code::InvalidArgument, Some(field))
}
/// Unknown aggregate (or part of one): NOT_FOUND, a `BadRequest` violation of `field`.
pub(crate) const fn not_found(field: &'static str) -> Expect {
    Expect::Rejected(Code::NotFound, Some(field))
}
/// Creating what exists: ALREADY_EXISTS, a `BadRequest` violation of `field`.
pub(crate) const fn exists(field: &'static str) -> Expect {
    Expect::Rejected(Code::AlreadyExists, Some(field))
}
/// Business rule: FAILED_PRECONDITION, a `PreconditionFailure` violation about `field`.
pub(crate) const fn failed(field: &'static str) -> Expect {
    Expect::Rejected(Code::FailedPrecondition, Some(field))
}
/// `expected_version` does not match: ABORTED.
pub(crate) const fn aborted() -> Expect {
    Expect::Rejected(Code::Aborted, None)
}

/// One case: what it shows, the request, the expected outcome.
pub(crate) struct Case {
    name: String,
    cmd: Cmd,
    expect: Expect,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} / {}", rpc_name(&self.cmd), self.name)
    }
}

pub(crate) fn case(name: impl Into<String>, request: impl Rpc, expect: Expect) -> Case {
    Case {
        name: name.into(),
        cmd: request.cmd(),
        expect,
    }
}

/// A running `crm serve` (admin token) and its event log, seen directly.
pub(crate) struct Api {
    crm: Crm,
    client: CommandServiceClient<Channel>,
    authorization: String,
    stream: jetstream::stream::Stream,
    /// The last version each aggregate was seen at in a reply.
    versions: HashMap<String, u64>,
    checked: usize,
    failures: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct LogState {
    messages: u64,
    last_sequence: u64,
}

impl Api {
    pub(crate) async fn start() -> Self {
        let crm = Crm::dev();
        let client = crm.client().await;
        let authorization = format!("Bearer {}", crm.token.as_deref().unwrap());
        let nats = crm.embedded_nats().await;
        let stream = jetstream::new(nats).get_stream("CRM_EVENTS").await.unwrap();
        Self {
            crm,
            client,
            authorization,
            stream,
            versions: HashMap::new(),
            checked: 0,
            failures: Vec::new(),
        }
    }

    /// Events stored in the messages after `from` up to `to` (a message holds one event
    /// or a command's group of events on one aggregate).
    async fn events_between(&mut self, from: u64, to: u64) -> u64 {
        let mut events = 0;
        for seq in from + 1..=to {
            let m = self.stream.get_raw_message(seq).await.unwrap();
            events += crm_events::decode_message(&m.payload).unwrap().len() as u64;
        }
        events
    }

    async fn log(&mut self) -> LogState {
        let state = &self.stream.info().await.unwrap().state;
        LogState {
            messages: state.messages,
            last_sequence: state.last_sequence,
        }
    }

    /// Runs the cases in order; a case that does not go as expected is recorded (see
    /// [`Api::finish`]) and the next one runs.
    pub(crate) async fn run(&mut self, cases: Vec<Case>) {
        for c in cases {
            self.check(c).await;
        }
    }

    /// Sends one request and compares what happened with what was expected.
    pub(crate) async fn check(&mut self, c: Case) {
        let label = format!("{c:?}");
        let (kind, id) = primary(&c.cmd);
        let id = id.to_owned();
        let before = self.log().await;
        let got = call(&mut self.client, c.cmd, Some(&self.authorization)).await;
        let after = self.log().await;
        let appended_events = self
            .events_between(before.last_sequence, after.last_sequence)
            .await;
        let mut problems = Vec::new();
        let mut expect = |ok: bool, problem: String| {
            if !ok {
                problems.push(problem);
            }
        };
        match (c.expect, got) {
            (Expect::Ok(version) | Expect::NoOp(version), Ok(r)) => {
                let appends = matches!(c.expect, Expect::Ok(_));
                expect(
                    r.aggregate_type == kind as i32,
                    format!("reply names a {:?}", r.aggregate_type()),
                );
                expect(
                    if id.is_empty() {
                        uuid::Uuid::try_parse(&r.aggregate_id).is_ok()
                    } else {
                        r.aggregate_id == id
                    },
                    format!("reply names aggregate {:?}, not {id:?}", r.aggregate_id),
                );
                expect(
                    r.version == version,
                    format!("version {} (expected {version})", r.version),
                );
                expect(!r.repeated, "reply says repeated".into());
                expect(
                    (r.events_appended > 0) == appends,
                    format!("{} events appended", r.events_appended),
                );
                expect(
                    appended_events == u64::from(r.events_appended),
                    format!(
                        "the log grew by {appended_events} events, the reply says {}",
                        r.events_appended
                    ),
                );
                if appends {
                    expect(
                        r.position == after.last_sequence && r.position > before.last_sequence,
                        format!(
                            "position {} (the log went from {} to {})",
                            r.position, before.last_sequence, after.last_sequence
                        ),
                    );
                } else {
                    expect(
                        r.position > 0 && r.position <= after.last_sequence,
                        format!("position {} of a no-op", r.position),
                    );
                }
                expect(
                    r.aggregates
                        .iter()
                        .any(|a| a.aggregate_id == r.aggregate_id && a.version == r.version),
                    format!("the primary aggregate is not among {:?}", r.aggregates),
                );
                // Every written aggregate moved on by its own events, no more.
                let mut moved = 0;
                for a in &r.aggregates {
                    let seen = self.versions.get(&a.aggregate_id).copied().unwrap_or(0);
                    expect(
                        a.version >= seen,
                        format!("{} went back from {seen} to {}", a.aggregate_id, a.version),
                    );
                    moved += a.version.saturating_sub(seen);
                    self.versions.insert(a.aggregate_id.clone(), a.version);
                }
                expect(
                    moved == u64::from(r.events_appended),
                    format!(
                        "aggregates moved by {moved} versions for {} events: {:?}",
                        r.events_appended, r.aggregates
                    ),
                );
            }
            (Expect::Rejected(code, field), Err(s)) => {
                expect(
                    s.code() == code,
                    format!("{:?}, expected {code:?}: {}", s.code(), s.message()),
                );
                expect(!s.message().is_empty(), "empty status message".into());
                expect(
                    after == before,
                    format!("a rejected command changed the log: {before:?} -> {after:?}"),
                );
                if let Some(field) = field {
                    let violations = violations(&s);
                    let fields: Vec<&str> = violations.iter().map(|(f, _)| f.as_str()).collect();
                    expect(
                        fields == [field],
                        format!("violations name {fields:?}, expected [{field:?}]"),
                    );
                    expect(
                        violations.iter().all(|(_, d)| !d.trim().is_empty()),
                        format!("a violation without description: {violations:?}"),
                    );
                }
            }
            (expected, got) => {
                if let Ok(r) = &got {
                    // Keep track, so later cases are not reported for this one.
                    for a in &r.aggregates {
                        self.versions.insert(a.aggregate_id.clone(), a.version);
                    }
                }
                let got = got.map_err(|s| format!("{:?}: {}", s.code(), s.message()));
                expect(false, format!("expected {expected:?}, got {got:?}"));
            }
        }
        self.checked += 1;
        if !problems.is_empty() {
            self.failures
                .push(format!("{label}: {}", problems.join("; ")));
        }
    }

    /// Stops the service, then fails the test with every case that went wrong.
    pub(crate) async fn finish(self) {
        let Self {
            crm,
            client,
            stream,
            checked,
            failures,
            ..
        } = self;
        drop((client, stream));
        let stopped = crm.stop().await;
        assert!(
            failures.is_empty(),
            "{} of {checked} cases failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
        assert!(stopped.success(), "crm exited with {stopped}");
        eprintln!("{checked} cases passed");
    }
}

/// The (field, description) pairs of a status's details: `PreconditionFailure` for
/// FAILED_PRECONDITION, `BadRequest` otherwise.
fn violations(s: &Status) -> Vec<(String, String)> {
    let details = s.get_error_details();
    if s.code() == Code::FailedPrecondition {
        details
            .precondition_failure()
            .map(|p| {
                (p.violations.iter())
                    .map(|v| (v.subject.clone(), v.description.clone()))
                    .collect()
            })
            .unwrap_or_default()
    } else {
        details
            .bad_request()
            .map(|b| {
                (b.field_violations.iter())
                    .map(|v| (v.field.clone(), v.description.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Text of `n` characters.
pub(crate) fn chars(n: usize) -> String {
    "x".repeat(n)
}

pub(crate) fn money(minor: i64, currency: &str) -> Option<v1::Money> {
    Some(v1::Money {
        minor,
        currency: currency.into(),
    })
}

/// Options with only an expected version.
pub(crate) fn expecting(version: u64) -> Option<v1::CommandOptions> {
    Some(v1::CommandOptions {
        expected_version: Some(version),
        ..Default::default()
    })
}
