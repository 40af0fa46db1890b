//! `crm serve` end to end: the real binary (with its embedded nats-server), a real tonic
//! client, generic health and reflection clients.
//!
//! Modules: `support` (the service process and one dispatch for every RPC), `commands`
//! (every command's accepted and rejected paths), `permissions` (every role against every
//! RPC), `privacy` (forgetting a customer, end to end).

mod audit;
mod churn;
mod commands;
mod funnel;
mod permissions;
mod privacy;
mod support;

use std::time::Duration;

use crm_proto::v1;
use tonic::{Code, Request};
use tonic_types::StatusExt;

use crate::support::{Crm, id, register, with_token};

#[tokio::test]
async fn commands_over_grpc_with_idempotency_errors_health_and_reflection() {
    let crm = Crm::dev();
    let mut client = crm.client().await;

    // Accepted, and the same command id again returns the same reply.
    let id = uuid::Uuid::now_v7().to_string();
    let first = client
        .register_customer(crm.auth(register(&id, "ada@example.com")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (first.version, first.events_appended, first.repeated),
        (1, 1, false)
    );
    assert!(first.position > 0);
    let again = client
        .register_customer(crm.auth(register(&id, "ada@example.com")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (again.aggregate_id.as_str(), again.position),
        (first.aggregate_id.as_str(), first.position)
    );
    assert!(again.repeated && again.events_appended == 0);

    // Validation: INVALID_ARGUMENT with the request's field path in BadRequest.
    let bad = client
        .register_customer(crm.auth(register(&uuid::Uuid::now_v7().to_string(), "not-an-email")))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
    let details = bad.get_error_details();
    let fields: Vec<_> = details
        .bad_request()
        .unwrap()
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect();
    assert_eq!(fields, vec!["profile.emails[0]".to_string()]);

    // Unknown aggregate: NOT_FOUND; business rule: ALREADY_EXISTS / FAILED_PRECONDITION.
    let tag = |customer_id: &str| v1::TagCustomerRequest {
        customer_id: customer_id.into(),
        tag: "vip".into(),
        ..Default::default()
    };
    let missing = client
        .tag_customer(crm.auth(tag(&uuid::Uuid::now_v7().to_string())))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
    let close = v1::CloseTicketRequest {
        customer_id: first.aggregate_id.clone(),
        ticket_id: uuid::Uuid::now_v7().to_string(),
        ..Default::default()
    };
    assert_eq!(
        client
            .close_ticket(crm.auth(close))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );

    // No or a wrong token: UNAUTHENTICATED.
    let anon = client
        .tag_customer(Request::new(tag(&first.aggregate_id)))
        .await
        .unwrap_err();
    assert_eq!(anon.code(), Code::Unauthenticated);
    let wrong = client
        .tag_customer(with_token(tag(&first.aggregate_id), "nope"))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);

    // Health checking.
    let mut health = tonic_health::pb::health_client::HealthClient::new(crm.channel().await);
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "crm.v1.CommandService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        serving.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    // A generic reflection client lists the services.
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut reflection = ServerReflectionClient::new(crm.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("unexpected reflection reply {reply:?}");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"crm.v1.CommandService"), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
    drop((client, health, reflection, replies));
    assert!(crm.stop().await.success());
}

#[tokio::test]
async fn bulk_ingest_answers_every_command_and_keeps_per_aggregate_order() {
    let crm = Crm::dev();
    let mut client = crm.client().await;
    const CUSTOMERS: usize = 200;
    let mut requests = Vec::new();
    let mut seq = 0u64;
    let mut bad = Vec::new();
    for c in 0..CUSTOMERS {
        let customer_id = uuid::Uuid::now_v7().to_string();
        seq += 1;
        requests.push(v1::IngestRequest {
            sequence: seq,
            command: Some(v1::ingest_request::Command::RegisterCustomer(
                v1::RegisterCustomerRequest {
                    customer_id: customer_id.clone(),
                    ..register(
                        &uuid::Uuid::now_v7().to_string(),
                        &format!("c{c}@example.com"),
                    )
                },
            )),
        });
        // Tags right after the registration depend on it: order per aggregate.
        for t in 0..4 {
            seq += 1;
            let tag = if c % 50 == 0 && t == 2 {
                "bad tag!".to_string()
            } else {
                format!("t{t}")
            };
            if tag.contains('!') {
                bad.push(seq);
            }
            requests.push(v1::IngestRequest {
                sequence: seq,
                command: Some(v1::ingest_request::Command::TagCustomer(
                    v1::TagCustomerRequest {
                        customer_id: customer_id.clone(),
                        tag,
                        ..Default::default()
                    },
                )),
            });
        }
    }
    seq += 1;
    bad.push(seq);
    requests.push(v1::IngestRequest {
        sequence: seq,
        command: None,
    });
    let total = requests.len();
    let mut replies = client
        .ingest(crm.auth(tokio_stream::iter(requests)))
        .await
        .unwrap()
        .into_inner();
    let mut ok = 0;
    let mut failed = Vec::new();
    while let Some(r) = replies.message().await.unwrap() {
        match r.result.unwrap() {
            v1::ingest_reply::Result::Ok(_) => ok += 1,
            v1::ingest_reply::Result::Error(e) => {
                assert_eq!(e.code, Code::InvalidArgument as i32, "{e:?}");
                assert!(!e.violations.is_empty(), "{e:?}");
                failed.push(r.sequence);
            }
        }
    }
    failed.sort_unstable();
    assert_eq!(failed, bad);
    assert_eq!(ok + failed.len(), total);
    drop((client, replies));
    assert!(crm.stop().await.success());
}

/// Campaign responses only read their campaign: they must still come after the
/// campaign's earlier writes, and a later write of the campaign after them, while the
/// responses to one campaign need not wait for each other.
/// A command of an ingest stream that the service cannot apply now (a two-aggregate
/// command while the stream is full of open atomic batches: UNAVAILABLE) holds back the
/// later commands on its aggregates, which are answered UNAVAILABLE without running, so
/// a client that sends both again keeps their order; other aggregates go on.
#[tokio::test]
async fn an_ingest_command_that_can_be_sent_again_holds_back_the_later_ones_on_its_aggregates() {
    use v1::ingest_request::Command as C;
    let crm = Crm::dev();
    let mut client = crm.client().await;
    let (a, b, other) = (id(), id(), id());
    for c in [&a, &b, &other] {
        client
            .register_customer(crm.auth(v1::RegisterCustomerRequest {
                customer_id: c.clone(),
                ..register(&id(), "x@example.com")
            }))
            .await
            .unwrap();
    }
    // Fill the stream with batches abandoned mid-way, as writers that died would.
    let nats = crm
        .embedded_nats_as(crm_server::nats_auth::NatsUser::Writer)
        .await;
    for _ in 0..50 {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            "Nats-Batch-Id",
            uuid::Uuid::new_v4().simple().to_string().as_str(),
        );
        headers.insert("Nats-Batch-Sequence", "1");
        let subject = format!("crm.v1.customer.{}", uuid::Uuid::now_v7().simple());
        nats.request_with_headers(subject, headers, "never committed".into())
            .await
            .unwrap();
    }
    let tag = |customer_id: &String| {
        C::TagCustomer(v1::TagCustomerRequest {
            customer_id: customer_id.clone(),
            tag: "after-the-link".into(),
            ..Default::default()
        })
    };
    let commands = [
        C::LinkCustomers(v1::LinkCustomersRequest {
            customer_id: a.clone(),
            other_customer_id: b.clone(),
            kind: v1::RelationshipKind::Household.into(),
            ..Default::default()
        }),
        tag(&b),
        tag(&other),
    ];
    let requests: Vec<v1::IngestRequest> = commands
        .into_iter()
        .enumerate()
        .map(|(i, command)| v1::IngestRequest {
            sequence: i as u64,
            command: Some(command),
        })
        .collect();
    let mut replies = client
        .ingest(crm.auth(tokio_stream::iter(requests)))
        .await
        .unwrap()
        .into_inner();
    let mut codes = [None, None, None];
    let mut messages = [String::new(), String::new(), String::new()];
    while let Some(r) = replies.message().await.unwrap() {
        let i = usize::try_from(r.sequence).unwrap();
        match r.result.unwrap() {
            v1::ingest_reply::Result::Ok(_) => codes[i] = Some(Code::Ok),
            v1::ingest_reply::Result::Error(e) => {
                codes[i] = Some(Code::from(e.code));
                messages[i] = e.message;
            }
        }
    }
    assert_eq!(codes[0], Some(Code::Unavailable), "{messages:?}");
    assert!(messages[0].contains("atomic batches"), "{messages:?}");
    assert_eq!(codes[1], Some(Code::Unavailable), "{messages:?}");
    assert!(messages[1].starts_with("not run"), "{messages:?}");
    assert_eq!(
        codes[2],
        Some(Code::Ok),
        "another aggregate is not held back"
    );
    // B's tag was not applied: its history is its registration alone.
    let reader = crm.embedded_nats().await;
    let js = async_nats::jetstream::new(reader);
    let stream = js.get_stream("CRM_EVENTS").await.unwrap();
    let b_subject = format!(
        "crm.v1.customer.{}",
        b.parse::<uuid::Uuid>().unwrap().simple()
    );
    let last = stream
        .direct_get_last_for_subject(&b_subject)
        .await
        .unwrap();
    let events = crm_events::decode_message(&last.payload).unwrap();
    assert_eq!(
        events.last().unwrap().meta.version,
        1,
        "B was tagged out of order"
    );
    drop((client, replies, nats));
    assert!(crm.stop().await.success());
}

#[tokio::test]
async fn bulk_ingest_orders_readers_of_an_aggregate_against_its_writers() {
    use v1::ingest_request::Command as C;
    let crm = Crm::dev();
    let mut client = crm.client().await;
    const CUSTOMERS: usize = 60;
    let campaign_id = uuid::Uuid::now_v7().to_string();
    let customers: Vec<String> = (0..CUSTOMERS)
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect();
    let mut commands = Vec::new();
    for (c, customer_id) in customers.iter().enumerate() {
        // With email consent: the send reaches only those who have it.
        commands.push(C::RegisterCustomer(v1::RegisterCustomerRequest {
            customer_id: customer_id.clone(),
            consents: vec![v1::Consent {
                channel: v1::ConsentChannel::Email.into(),
                granted: true,
            }],
            consent_source: "signup form".into(),
            ..register(
                &uuid::Uuid::now_v7().to_string(),
                &format!("r{c}@example.com"),
            )
        }));
    }
    commands.push(C::CreateCampaign(v1::CreateCampaignRequest {
        campaign_id: campaign_id.clone(),
        name: "Winter sale".into(),
        channel: v1::Channel::Email.into(),
        ..Default::default()
    }));
    // A response to a campaign that has not been sent is refused: these are accepted
    // only if they wait for the send before them.
    commands.push(C::SendCampaign(v1::SendCampaignRequest {
        campaign_id: campaign_id.clone(),
        recipients: customers.clone(),
        ..Default::default()
    }));
    let response = |customer_id: &String, kind: v1::CampaignResponseKind| {
        C::RecordCampaignResponse(v1::RecordCampaignResponseRequest {
            customer_id: customer_id.clone(),
            campaign_id: campaign_id.clone(),
            kind: kind.into(),
            ..Default::default()
        })
    };
    let first = commands.len();
    for c in &customers {
        commands.push(response(c, v1::CampaignResponseKind::Opened));
    }
    let wave = commands.len();
    commands.push(C::SendCampaign(v1::SendCampaignRequest {
        campaign_id: campaign_id.clone(),
        recipients: customers.clone(),
        ..Default::default()
    }));
    for c in &customers {
        commands.push(response(c, v1::CampaignResponseKind::Clicked));
    }
    let requests: Vec<v1::IngestRequest> = commands
        .into_iter()
        .enumerate()
        .map(|(i, command)| v1::IngestRequest {
            sequence: i as u64,
            command: Some(command),
        })
        .collect();
    let total = requests.len();
    let mut replies = client
        .ingest(crm.auth(tokio_stream::iter(requests)))
        .await
        .unwrap()
        .into_inner();
    let mut position = vec![0u64; total];
    while let Some(r) = replies.message().await.unwrap() {
        match r.result.unwrap() {
            v1::ingest_reply::Result::Ok(ok) => position[r.sequence as usize] = ok.position,
            v1::ingest_reply::Result::Error(e) => panic!("command {} refused: {e:?}", r.sequence),
        }
    }
    assert!(position.iter().all(|&p| p > 0), "every command answered");
    let before = &position[first..wave];
    let after = &position[wave + 1..];
    assert!(
        before.iter().all(|&p| p < position[wave]),
        "the second send waited for the responses sent before it: {before:?} vs {}",
        position[wave]
    );
    assert!(
        after.iter().all(|&p| p > position[wave]),
        "the responses sent after the second send came after it: {after:?} vs {}",
        position[wave]
    );
    drop((client, replies));
    assert!(crm.stop().await.success());
}

#[tokio::test]
async fn sigterm_stops_the_service_cleanly() {
    let crm = Crm::dev();
    let mut client = crm.client().await;
    client
        .register_customer(crm.auth(register(&uuid::Uuid::now_v7().to_string(), "a@example.com")))
        .await
        .unwrap();
    // The embedded nats-server's pid, read while it runs (it removes its pid file when
    // it stops).
    let pid_file = crm.dir.path().join("data/nats/nats-server.pid");
    let nats_pid: u32 = std::fs::read_to_string(&pid_file)
        .expect("the embedded nats-server's pid file")
        .trim()
        .parse()
        .unwrap();
    let nats_alive = || {
        std::fs::read_to_string(format!("/proc/{nats_pid}/cmdline"))
            .is_ok_and(|c| c.contains("nats-server"))
    };
    assert!(nats_alive(), "no nats-server with pid {nats_pid}");
    let status = crm.stop().await;
    assert!(status.success(), "crm exited with {status}");
    // The embedded nats-server is gone too (crm waited for it before exiting).
    assert!(!nats_alive(), "nats-server {nats_pid} still running");
}

/// The embedded default generates the notary's key (owner-only, its public key beside
/// it and printed by `crm notary-key`) and appends anchors that verify under that key
/// and cover what the commands wrote.
#[tokio::test]
async fn the_embedded_default_signs_anchors_with_a_generated_owner_only_key() {
    use std::os::unix::fs::PermissionsExt as _;
    let args = [
        "--dev",
        "--notary-every-secs",
        "1",
        "--notary-every-messages",
        "3",
    ];
    let crm = Crm::start(&args, tempfile::tempdir().unwrap());
    let mut client = crm.client().await;
    for i in 0..4 {
        client
            .register_customer(crm.auth(register(
                &uuid::Uuid::now_v7().to_string(),
                &format!("n{i}@example.com"),
            )))
            .await
            .unwrap();
    }
    let key = crm.dir.path().join("data/notary/notary.key");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(key.parent().unwrap()), 0o700);
    let public = std::fs::read_to_string(key.with_extension("key.pub")).unwrap();
    let printed = std::process::Command::new(env!("CARGO_BIN_EXE_crm"))
        .args(["notary-key", "--key"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(printed.status.success());
    assert_eq!(String::from_utf8(printed.stdout).unwrap(), public);
    let trusted = [crm_events::anchor::parse_public_key(&public).unwrap()];
    let anchors = crm_events::SubjectScheme::default().anchors();
    let last_anchor = || async {
        let js = async_nats::jetstream::new(crm.embedded_nats().await);
        let stream = js.get_stream("CRM_EVENTS").await.unwrap();
        stream.direct_get_last_for_subject(&anchors).await.ok()
    };
    // Four registrations: an anchor covers their last message within a few seconds.
    let mut covered = None;
    for _ in 0..100 {
        if let Some(m) = last_anchor().await {
            let a = crm_events::anchor::verify_anchor(&m.payload, &trusted).unwrap();
            if a.subjects >= 4 {
                covered = Some(a);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let anchor = covered.expect("an anchor covering the four registrations");
    assert_eq!(anchor.stream, "CRM_EVENTS");
    assert!(anchor.messages >= 4, "{anchor:?}");
    drop(client);
    let status = crm.stop().await;
    assert!(status.success());
}

/// With an external nats-server: while it is down commands get UNAVAILABLE (nothing
/// half-written), and once it is back the same service accepts commands again.
#[tokio::test]
async fn an_unreachable_event_log_gives_unavailable_and_the_service_recovers() {
    let mut nats = crm_testkit::NatsServer::start();
    let url = nats.url();
    let crm = Crm::start(&["--dev", "--nats-url", &url], tempfile::tempdir().unwrap());
    let mut client = crm.client().await;
    client
        .register_customer(crm.auth(register(&uuid::Uuid::now_v7().to_string(), "a@example.com")))
        .await
        .unwrap();
    nats.kill();
    let id = uuid::Uuid::now_v7().to_string();
    let down = client
        .register_customer(crm.auth(register(&id, "b@example.com")))
        .await
        .unwrap_err();
    assert_eq!(down.code(), Code::Unavailable, "{down:?}");
    nats.restart();
    // The same command id: whether or not the first attempt landed, it lands once.
    let mut reply = None;
    for _ in 0..100 {
        match client
            .register_customer(crm.auth(register(&id, "b@example.com")))
            .await
        {
            Ok(r) => {
                reply = Some(r.into_inner());
                break;
            }
            Err(s) if s.code() == Code::Unavailable => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(s) => panic!("{s:?}"),
        }
    }
    let reply = reply.expect("the service recovers without a restart");
    assert_eq!(reply.command_id, id);
    assert_eq!(reply.version, 1);
    drop(client);
    assert!(crm.stop().await.success());
}

/// Many commands over one Ingest stream with bad ones mixed in: every good one lands
/// exactly once, every bad one is answered with its reason, nothing else is lost.
#[tokio::test]
async fn one_hundred_thousand_commands_through_ingest_with_bad_ones_mixed_in() {
    const N: u64 = 100_000;
    let nats = crm_testkit::NatsServer::start();
    let crm = Crm::start(
        &["--dev", "--nats-url", &nats.url()],
        tempfile::tempdir().unwrap(),
    );
    let mut client = crm.client().await;
    let is_bad = |seq: u64| seq.is_multiple_of(997);
    let requests = tokio_stream::iter((1..=N).map(move |seq| {
        let email = if is_bad(seq) {
            format!("bad-{seq}")
        } else {
            format!("c{seq}@example.com")
        };
        v1::IngestRequest {
            sequence: seq,
            command: Some(v1::ingest_request::Command::RegisterCustomer(register(
                &uuid::Uuid::now_v7().to_string(),
                &email,
            ))),
        }
    }));
    let started = std::time::Instant::now();
    let mut replies = client
        .ingest(crm.auth(requests))
        .await
        .unwrap()
        .into_inner();
    let mut seen = vec![false; usize::try_from(N).unwrap() + 1];
    let (mut ok, mut bad) = (0u64, 0u64);
    while let Some(r) = replies.message().await.unwrap() {
        let i = usize::try_from(r.sequence).unwrap();
        assert!(!seen[i], "sequence {} answered twice", r.sequence);
        seen[i] = true;
        match r.result.unwrap() {
            v1::ingest_reply::Result::Ok(reply) => {
                assert!(!is_bad(r.sequence), "bad command {} accepted", r.sequence);
                assert_eq!(reply.events_appended, 1);
                ok += 1;
            }
            v1::ingest_reply::Result::Error(e) => {
                assert!(
                    is_bad(r.sequence),
                    "good command {} failed: {e:?}",
                    r.sequence
                );
                assert_eq!(e.code, Code::InvalidArgument as i32);
                assert_eq!(e.violations[0].field, "profile.emails[0]", "{e:?}");
                bad += 1;
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "ingest: {N} commands in {secs:.1}s = {:.0}/s (debug build)",
        N as f64 / secs
    );
    assert_eq!(ok + bad, N, "every command is answered");
    assert_eq!(bad, N / 997);
    // The log holds exactly one event per accepted command.
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let mut stream = js.get_stream("CRM_EVENTS").await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, ok);
    drop((client, replies));
    assert!(crm.stop().await.success());
}

/// Sends bytes as they are: what a client built from other proto files, or a buggy one,
/// puts on the wire.
#[derive(Clone, Copy, Default)]
struct RawRequest;

struct RawEncoder;

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Codec for RawRequest {
    type Encode = Vec<u8>;
    // Any reply decodes as () (unknown fields are skipped): only the status matters.
    type Decode = ();
    type Encoder = RawEncoder;
    type Decoder = tonic_prost::ProstDecoder<()>;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::default()
    }
}

#[tokio::test]
async fn a_request_that_does_not_decode_is_invalid_argument_naming_what_to_fix() {
    let crm = Crm::dev();
    let mut grpc = tonic::client::Grpc::new(crm.channel().await);
    // customer_id (field 2 of a command request, 1 of a query) with bytes that are not
    // UTF-8; a length prefix longer than the message.
    let calls: [(&str, &[u8], &str); 3] = [
        (
            "/crm.v1.CommandService/RegisterCustomer",
            &[0x12, 0x02, 0xff, 0xfe],
            "RegisterCustomerRequest.customer_id: invalid string value",
        ),
        (
            "/crm.v1.CommandService/TagCustomer",
            &[0x12, 0x09, b'a'],
            "TagCustomerRequest.customer_id: buffer underflow",
        ),
        (
            "/crm.v1.QueryService/GetCustomer360",
            &[0x0a, 0x02, 0xff, 0xfe],
            "GetCustomer360Request.customer_id: invalid string value",
        ),
    ];
    for (path, bytes, field) in calls {
        grpc.ready().await.unwrap();
        let err = grpc
            .unary(
                crm.auth(bytes.to_vec()),
                tonic::codegen::http::uri::PathAndQuery::from_static(path),
                RawRequest,
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{path}: {err:?}");
        let method = path.rsplit('/').next().unwrap();
        assert!(
            err.message()
                .contains(&format!("not a valid crm.v1.{method}Request"))
                && err.message().contains(field),
            "{path}: {}",
            err.message()
        );
    }
    // Nothing was appended: the next registration is the log's first event.
    let first = crm
        .client()
        .await
        .register_customer(crm.auth(register(&uuid::Uuid::now_v7().to_string(), "a@example.com")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.position, 1);
    assert!(crm.stop().await.success());
}

/// An external three-node cluster configured with what `crm nats-users` prints: the
/// service works through its two users (events appended with three replicas, the read
/// model follows), and nobody else gets in or appends.
#[tokio::test]
async fn a_cluster_configured_by_crm_nats_users_admits_the_service_and_nobody_else() {
    use crm_server::nats_auth::{NatsUser, NatsUsers};
    let dir = tempfile::tempdir().unwrap();
    let users_dir = dir.path().join("nats-users");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crm"))
        .args(["nats-users", "--dir"])
        .arg(&users_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let block = String::from_utf8(out.stdout).unwrap();
    assert!(block.contains("authorization {"), "{block}");
    let cluster = crm_testkit::NatsCluster::builder(3)
        .authorization(block)
        .start();
    for url in cluster.urls() {
        assert!(
            async_nats::connect(&url).await.is_err(),
            "{url} admitted an anonymous client"
        );
    }

    let urls = cluster.url_list();
    let users = users_dir.to_str().unwrap();
    let crm = Crm::start(
        &[
            "--dev",
            "--nats-url",
            &urls,
            "--replicas",
            "3",
            "--nats-users-dir",
            users,
        ],
        tempfile::tempdir().unwrap(),
    );
    let mut client = crm.client().await;
    let reply = client
        .register_customer(crm.auth(register(
            &uuid::Uuid::now_v7().to_string(),
            "ada@example.com",
        )))
        .await
        .unwrap()
        .into_inner();
    let mut queries = v1::query_service_client::QueryServiceClient::new(crm.channel().await);
    let view = queries
        .get_customer360(crm.auth(v1::GetCustomer360Request {
            customer_id: reply.aggregate_id.clone(),
            consistency: Some(v1::Consistency {
                min_position: reply.position,
            }),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(view.version, 1);

    // The read-only user cannot append, on any node.
    let keys = NatsUsers::load(&users_dir).unwrap();
    let reader = keys
        .connect_options(NatsUser::Reader)
        .connect(cluster.urls().as_slice())
        .await
        .unwrap();
    let js = async_nats::jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(2))
        .build(reader);
    let forged = js
        .publish(
            format!("crm.v1.customer.{}", reply.aggregate_id.replace('-', "")),
            "x".into(),
        )
        .await;
    assert!(
        forged.is_err() || forged.unwrap().await.is_err(),
        "the reader appended"
    );
    let mut stream = js.get_stream("CRM_EVENTS").await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(info.state.messages, 1);
    assert_eq!(info.config.num_replicas, 3);
    assert!(crm.stop().await.success());
}

/// An Ingest stream holds its request slot until its last command is answered, not
/// only while its input is read: with a limit of one request, a unary call is refused
/// while the stream's last commands still run after its input ended.
#[tokio::test]
async fn an_ingest_stream_holds_its_admission_until_its_last_command_is_answered() {
    const N: u64 = 600;
    let crm = Crm::start(
        &["--dev", "--max-concurrent-requests", "1"],
        tempfile::tempdir().unwrap(),
    );
    let mut client = crm.client().await;
    let customer = client
        .register_customer(crm.auth(register(
            &uuid::Uuid::now_v7().to_string(),
            "ada@example.com",
        )))
        .await
        .unwrap()
        .into_inner()
        .aggregate_id;
    // Commands on one customer run one after another; the input (N items) is read
    // ahead by up to 256, so it ends while the last 256 still wait their turn.
    let requests = (1..=N).map(move |seq| v1::IngestRequest {
        sequence: seq,
        command: Some(v1::ingest_request::Command::LogInteraction(
            v1::LogInteractionRequest {
                customer_id: customer.clone(),
                interaction_id: uuid::Uuid::now_v7().to_string(),
                channel: v1::Channel::Email.into(),
                direction: v1::Direction::Inbound.into(),
                subject: format!("message {seq}"),
                ..Default::default()
            },
        )),
    });
    let mut replies = client
        .ingest(crm.auth(tokio_stream::iter(requests)))
        .await
        .unwrap()
        .into_inner();
    let mut answered = 0;
    let mut unary = crm.client().await;
    let other = || register(&uuid::Uuid::now_v7().to_string(), "bob@example.com");
    while let Some(r) = replies.message().await.unwrap() {
        assert!(
            matches!(r.result, Some(v1::ingest_reply::Result::Ok(_))),
            "{r:?}"
        );
        answered += 1;
        // By the 400th answer the input has ended (it needed the 345th answer's slot);
        // 200 commands are still to come.
        if answered == 400 {
            let refused = unary
                .register_customer(crm.auth(other()))
                .await
                .unwrap_err();
            assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
        }
    }
    assert_eq!(answered, N);
    // Released once the last command is done.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match unary.register_customer(crm.auth(other())).await {
            Ok(_) => break,
            Err(s) if s.code() == Code::ResourceExhausted => {
                assert!(std::time::Instant::now() < deadline, "never released");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(s) => panic!("{s:?}"),
        }
    }
    drop((client, unary, replies));
    assert!(crm.stop().await.success());
}

/// Logs written to a pipe carry no colour codes; `--log-format json` writes one JSON
/// object per line (for log shippers).
#[tokio::test]
async fn logs_to_a_pipe_are_plain_text_or_json_lines() {
    use std::io::BufRead as _;
    for json in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_crm"));
        if json {
            cmd.args(["--log-format", "json"]);
        }
        let mut child = cmd
            .args(["serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let mut lines = Vec::new();
        for line in stderr.by_ref() {
            let line = line.unwrap();
            let done = line.contains("crm API listening");
            lines.push(line);
            if done {
                break;
            }
        }
        // Read on (the shutdown's lines too): a closed pipe would fail the child's logging.
        let rest = std::thread::spawn(move || stderr.map(Result::unwrap).collect::<Vec<_>>());
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        assert!(child.wait().unwrap().success());
        lines.extend(rest.join().unwrap());
        assert!(lines.len() > 2, "{lines:?}");
        for line in &lines {
            assert!(!line.contains('\u{1b}'), "a colour code in {line:?}");
            if json {
                let v: serde_json::Value =
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
            }
        }
    }
}

/// A campaign send reaches only customers whose consent to its channel holds when the
/// send is decided: a withdrawal acknowledged just before is honoured (the customer is
/// reported as skipped, with the reason), one just after does not undo the send, and a
/// send that would reach no one is refused and appends nothing.
#[tokio::test]
async fn a_campaign_send_reaches_only_customers_whose_consent_holds() {
    let crm = Crm::dev();
    let mut client = crm.client().await;
    let email = |granted| v1::Consent {
        channel: v1::ConsentChannel::Email.into(),
        granted,
    };
    let mut ids = Vec::new();
    for (n, consents) in [vec![email(true)], vec![email(true)], vec![]]
        .into_iter()
        .enumerate()
    {
        let id = uuid::Uuid::now_v7().to_string();
        client
            .register_customer(crm.auth(v1::RegisterCustomerRequest {
                customer_id: id.clone(),
                consent_source: if consents.is_empty() { "" } else { "signup" }.into(),
                consents,
                ..register(
                    &uuid::Uuid::now_v7().to_string(),
                    &format!("c{n}@example.com"),
                )
            }))
            .await
            .unwrap();
        ids.push(id);
    }
    let (ann, bob, cy) = (ids[0].clone(), ids[1].clone(), ids[2].clone());
    let set_consent = |customer_id: &str, granted| v1::SetConsentRequest {
        customer_id: customer_id.into(),
        channel: v1::ConsentChannel::Email.into(),
        granted,
        source: "preference centre".into(),
        ..Default::default()
    };
    let campaign_id = uuid::Uuid::now_v7().to_string();
    client
        .create_campaign(crm.auth(v1::CreateCampaignRequest {
            campaign_id: campaign_id.clone(),
            name: "Winter sale".into(),
            channel: v1::Channel::Email.into(),
            ..Default::default()
        }))
        .await
        .unwrap();
    // Bob withdraws just before the send.
    client
        .set_consent(crm.auth(set_consent(&bob, false)))
        .await
        .unwrap();
    let send = |recipients: Vec<String>, command_id: &str| v1::SendCampaignRequest {
        options: Some(v1::CommandOptions {
            command_id: command_id.into(),
            ..Default::default()
        }),
        campaign_id: campaign_id.clone(),
        recipients,
    };
    let send_id = uuid::Uuid::now_v7().to_string();
    let reply = client
        .send_campaign(crm.auth(send(vec![ann.clone(), bob.clone(), cy.clone()], &send_id)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.events_appended, 1);
    let skipped: Vec<_> = reply
        .skipped_recipients
        .iter()
        .map(|s| (s.customer_id.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(
        skipped,
        [
            (bob.as_str(), "consent_withdrawn"),
            (cy.as_str(), "no_consent")
        ]
    );
    // Ann withdraws just after: the send stands; a later send to her alone is refused.
    client
        .set_consent(crm.auth(set_consent(&ann, false)))
        .await
        .unwrap();
    let refused = client
        .send_campaign(crm.auth(send(vec![ann.clone()], &uuid::Uuid::now_v7().to_string())))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused.message().contains("recipients"),
        "{}",
        refused.message()
    );
    // The same command id again: the original outcome, nothing appended.
    let again = client
        .send_campaign(crm.auth(send(vec![ann.clone(), bob.clone(), cy.clone()], &send_id)))
        .await
        .unwrap()
        .into_inner();
    assert!(again.repeated && again.events_appended == 0);
    assert_eq!(again.position, reply.position);

    // The 360 view says who got it and who was left out.
    let mut queries = v1::query_service_client::QueryServiceClient::new(crm.channel().await);
    let mut marketing = async |id: &str| {
        queries
            .get_customer360(crm.auth(v1::GetCustomer360Request {
                customer_id: id.into(),
                consistency: Some(v1::Consistency {
                    min_position: reply.position,
                }),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner()
            .marketing
            .unwrap()
    };
    let m = marketing(&ann).await;
    assert_eq!((m.campaigns_received, m.campaigns_skipped), (1, 0));
    let m = marketing(&bob).await;
    assert_eq!((m.campaigns_received, m.campaigns_skipped), (0, 1));
    assert_eq!(m.campaigns_received_without_consent, 0);
    drop((client, queries));
    assert!(crm.stop().await.success());
}

/// A request larger than --max-message-bytes is refused (OUT_OF_RANGE, tonic's answer,
/// naming the limit) and appends nothing; ingesting the same data set twice appends
/// nothing the second time.
#[tokio::test]
async fn too_large_requests_are_refused_and_a_data_set_ingested_twice_appends_nothing() {
    let crm = Crm::start(
        &["--dev", "--max-message-bytes", "65536"],
        tempfile::tempdir().unwrap(),
    );
    let mut client = crm.client().await;
    let mut big = register(&uuid::Uuid::now_v7().to_string(), "big@example.com");
    if let Some(p) = big.profile.as_mut() {
        p.family_name = "x".repeat(100_000);
    }
    let refused = client.register_customer(crm.auth(big)).await.unwrap_err();
    assert_eq!(refused.code(), Code::OutOfRange, "{refused:?}");
    assert!(refused.message().contains("65536"), "{}", refused.message());

    let data = crm_datagen::generate(&crm_datagen::Params::new(11, 30)).unwrap();
    let token = crm.token.clone().unwrap();
    let channel = crm.channel().await;
    let load = || {
        crm_datagen::ingest::ingest(
            channel.clone(),
            &token,
            data.requests()
                .map(Ok::<_, String>)
                .collect::<Vec<_>>()
                .into_iter(),
            |_| {},
        )
    };
    let first = load().await.unwrap();
    assert_eq!(first.failed, 0, "{:#?}", first.failures);
    assert_eq!(first.repeated, 0);
    let nats = crm.embedded_nats().await;
    let stream = async_nats::jetstream::new(nats)
        .get_stream("CRM_EVENTS")
        .await
        .unwrap();
    let stored = stream.cached_info().state.messages;
    assert!(stored > 0);
    let second = load().await.unwrap();
    assert_eq!(second.failed, 0);
    assert_eq!(
        second.repeated, second.ok,
        "every command found already applied"
    );
    let mut stream = stream;
    assert_eq!(
        stream.info().await.unwrap().state.messages,
        stored,
        "appended again"
    );
    assert!(crm.stop().await.success());
}
