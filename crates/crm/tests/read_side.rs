//! The read side end to end: `crm serve` processes (real binary), a real nats-server, a
//! real tonic client. Read-your-writes through the query API, PII by role, and a
//! projector process killed with SIGKILL mid-stream that resumes to exactly what a
//! from-scratch rebuild gives.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crm_proto::v1::{
    self, admin_service_client::AdminServiceClient, command_service_client::CommandServiceClient,
    query_service_client::QueryServiceClient,
};
use futures::StreamExt;
use tonic::transport::Channel;
use tonic::{Code, Request};

const ROLES: [&str; 4] = ["admin", "analyst", "auditor", "importer"];

/// A tokens file granting `token-<role>` each role.
fn tokens_file(dir: &Path) -> PathBuf {
    let principals: Vec<_> = ROLES
        .iter()
        .map(|role| {
            crm_testkit::Principal::new(
                &format!("{role}-user"),
                "user",
                &[role],
                &format!("token-{role}"),
            )
        })
        .collect();
    let path = dir.join("tokens.toml");
    std::fs::write(&path, crm_testkit::tokens_toml(&principals)).unwrap();
    path
}

struct Proc(crm_testkit::CrmServe);

impl Proc {
    fn start(data_dir: &Path, tokens: &Path, extra: &[&str]) -> Self {
        Self::start_on("127.0.0.1:0", data_dir, tokens, extra)
    }

    /// On a fixed address: a restarted process is where its clients left it.
    fn start_on(listen: &str, data_dir: &Path, tokens: &Path, extra: &[&str]) -> Self {
        let parent = data_dir
            .parent()
            .expect("a data dir inside the test's directory");
        // Every process of one deployment opens personal data with the same master key.
        let master_key = parent.join("master.key");
        Self(
            crm_testkit::CrmServe::builder(env!("CARGO_BIN_EXE_crm"), parent)
                .listen(listen)
                .data_dir(data_dir)
                .tokens_file(tokens)
                .args(["--master-key-file", master_key.to_str().unwrap()])
                .args(extra)
                .start()
                .expect("start crm"),
        )
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(self.0.url())
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// SIGTERM and wait for a clean exit.
    async fn stop(mut self) {
        let status = self
            .0
            .stop(Duration::from_secs(20))
            .await
            .expect("crm stops after SIGTERM");
        assert!(status.success(), "crm exited with {status}");
    }

    fn kill(mut self) {
        self.0.kill().expect("SIGKILL crm");
    }
}

fn auth<T>(msg: T, role: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer token-{role}").parse().unwrap(),
    );
    r
}

fn consistency(position: u64) -> Option<v1::Consistency> {
    Some(v1::Consistency {
        min_position: position,
    })
}

fn register(id: &str, given: &str) -> v1::RegisterCustomerRequest {
    v1::RegisterCustomerRequest {
        customer_id: id.into(),
        profile: Some(v1::Profile {
            given_name: given.into(),
            family_name: "Lovelace".into(),
            emails: vec![format!("{}@example.com", given.to_lowercase())],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn order(customer: &str, price: i64) -> v1::PlaceOrderRequest {
    v1::PlaceOrderRequest {
        customer_id: customer.into(),
        sales_channel: "web".into(),
        currency: "EUR".into(),
        lines: vec![v1::OrderLine {
            sku: "BOOK-1".into(),
            category: "books".into(),
            quantity: 2,
            unit_price_minor: price,
        }],
        ..Default::default()
    }
}

#[tokio::test]
async fn read_your_writes_timeline_lists_and_pii_by_role_over_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = tokens_file(dir.path());
    let crm = Proc::start(&dir.path().join("data"), &tokens, &[]);
    let channel = crm.channel().await;
    let mut commands = CommandServiceClient::new(channel.clone());
    let mut queries = QueryServiceClient::new(channel);
    let id = uuid::Uuid::now_v7().to_string();

    commands
        .register_customer(auth(register(&id, "Ada"), "admin"))
        .await
        .unwrap();
    commands
        .tag_customer(auth(
            v1::TagCustomerRequest {
                customer_id: id.clone(),
                tag: "vip".into(),
                ..Default::default()
            },
            "admin",
        ))
        .await
        .unwrap();
    commands
        .place_order(auth(order(&id, 1250), "admin"))
        .await
        .unwrap();
    let last = commands
        .open_ticket(auth(
            v1::OpenTicketRequest {
                customer_id: id.clone(),
                channel: v1::Channel::Email as i32,
                category: "delivery".into(),
                priority: v1::TicketPriority::High as i32,
                subject: "Where is my book?".into(),
                ..Default::default()
            },
            "admin",
        ))
        .await
        .unwrap()
        .into_inner();

    // Immediately after the write, with its position as the consistency token.
    let view = queries
        .get_customer360(auth(
            v1::GetCustomer360Request {
                customer_id: id.clone(),
                consistency: consistency(last.position),
                ..Default::default()
            },
            "admin",
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(view.read.as_ref().unwrap().position >= last.position);
    assert_eq!(view.version, 4);
    assert!(view.registered && !view.pii_redacted);
    assert_eq!(
        view.profile.as_ref().unwrap().emails,
        vec!["ada@example.com"]
    );
    assert_eq!(view.tags, vec!["vip"]);
    let commerce = view.commerce.unwrap();
    assert_eq!(commerce.orders, 1);
    assert_eq!(commerce.amounts[0].revenue_minor, 2500);
    assert_eq!(commerce.top_categories[0].category, "books");
    let class = view.classification.unwrap();
    assert_eq!(class.lifecycle, "new");
    assert_eq!(class.days_since_last_order, Some(0));
    let service = view.service.unwrap();
    assert_eq!(service.open_tickets, 1);
    assert_eq!(service.tickets[0].subject, "Where is my book?");
    assert!(view.dead_lettered_positions.is_empty());

    // The analyst sees the figures but not the person.
    let redacted = queries
        .get_customer360(auth(
            v1::GetCustomer360Request {
                customer_id: id.clone(),
                consistency: consistency(last.position),
                ..Default::default()
            },
            "analyst",
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(redacted.pii_redacted);
    assert!(redacted.profile.is_none());
    assert_eq!(redacted.service.as_ref().unwrap().tickets[0].subject, "");
    assert_eq!(redacted.commerce.as_ref().unwrap().orders, 1);
    let personal = ["Ada", "Lovelace", "ada@example.com", "Where is my book?"];
    let shown = format!("{redacted:?}");
    for p in personal {
        assert!(!shown.contains(p), "the analyst's 360 shows {p:?}: {shown}");
    }
    // ... nor in the timeline's summaries, which keep the rest of each line.
    let analyst_timeline = queries
        .get_timeline(auth(
            v1::GetTimelineRequest {
                customer_id: id.clone(),
                consistency: consistency(last.position),
                ..Default::default()
            },
            "analyst",
        ))
        .await
        .unwrap()
        .into_inner();
    let shown = format!("{analyst_timeline:?}");
    for p in personal {
        assert!(
            !shown.contains(p),
            "the analyst's timeline shows {p:?}: {shown}"
        );
    }
    let summaries: Vec<_> = analyst_timeline
        .entries
        .iter()
        .map(|e| e.summary.as_str())
        .collect();
    assert_eq!(summaries[0], "Registered [personal data]");
    assert_eq!(
        summaries[3],
        "Ticket opened (high priority, delivery): [personal data]"
    );
    // Importers write but do not read.
    let denied = queries
        .get_customer360(auth(
            v1::GetCustomer360Request {
                customer_id: id.clone(),
                ..Default::default()
            },
            "importer",
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    // A token the read model cannot reach in time: refused, never silently stale.
    let mut stale = auth(
        v1::GetCustomer360Request {
            customer_id: id.clone(),
            consistency: consistency(last.position + 1_000_000),
            ..Default::default()
        },
        "admin",
    );
    stale.set_timeout(Duration::from_millis(300));
    let err = queries.get_customer360(stale).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("not yet position"),
        "{}",
        err.message()
    );

    let timeline = queries
        .get_timeline(auth(
            v1::GetTimelineRequest {
                customer_id: id.clone(),
                consistency: consistency(last.position),
                page_size: 3,
                ..Default::default()
            },
            "admin",
        ))
        .await
        .unwrap()
        .into_inner();
    let types: Vec<_> = timeline
        .entries
        .iter()
        .map(|e| e.event_type.as_str())
        .collect();
    assert_eq!(
        types,
        [
            "customer.registered",
            "customer.tagged",
            "customer.order_placed"
        ]
    );
    assert_eq!(timeline.entries[0].actor, "user:admin-user");
    assert_eq!(timeline.entries[0].summary, "Registered Ada Lovelace");
    assert!(!timeline.next_page_token.is_empty());
    let rest = queries
        .get_timeline(auth(
            v1::GetTimelineRequest {
                customer_id: id.clone(),
                page_token: timeline.next_page_token,
                page_size: 3,
                ..Default::default()
            },
            "admin",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.entries.len(), 1);
    assert_eq!(rest.entries[0].event_type, "customer.ticket_opened");
    assert_eq!(rest.entries[0].position, last.position);
    assert!(rest.next_page_token.is_empty());

    let listed = queries
        .list_customers(auth(
            v1::ListCustomersRequest {
                tag: "vip".into(),
                lifecycle: "new".into(),
                consistency: consistency(last.position),
                ..Default::default()
            },
            "admin",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.customers.len(), 1);
    assert_eq!(listed.customers[0].customer_id, id);
    assert_eq!(listed.customers[0].display_name, "Ada Lovelace");
    let bad = queries
        .list_customers(auth(
            v1::ListCustomersRequest {
                lifecycle: "sleepy".into(),
                ..Default::default()
            },
            "admin",
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let missing = queries
        .get_customer360(auth(
            v1::GetCustomer360Request {
                customer_id: uuid::Uuid::now_v7().to_string(),
                ..Default::default()
            },
            "admin",
        ))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    crm.stop().await;
}

/// Every key and value of the 360 tree in a stopped projector's data dir.
fn tree_contents(data_dir: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    projection_contents(data_dir, "customer360")
}

/// Every entry of `projection`'s live build in the data dir.
fn projection_contents(data_dir: &Path, projection: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let db = sled::open(data_dir.join("read-models")).unwrap();
    let live = crm_projection::live_tree(&db, projection)
        .unwrap()
        .expect("a live build");
    let tree = db.open_tree(live).unwrap();
    tree.iter()
        .map(|r| {
            let (k, v) = r.unwrap();
            (k.to_vec(), v.to_vec())
        })
        .collect()
}

/// The 360 projection's builds behind `proc` (served first).
async fn builds(proc: &Proc) -> Vec<v1::BuildInfo> {
    let mut admin = AdminServiceClient::new(proc.channel().await);
    let reply = admin
        .list_projections(auth(v1::ListProjectionsRequest {}, "admin"))
        .await
        .unwrap()
        .into_inner();
    reply
        .projections
        .into_iter()
        .find(|p| p.name == "customer360")
        .expect("the 360 projection is hosted")
        .builds
}

async fn wait_until_applied(proc: &Proc, position: u64) {
    let mut q = QueryServiceClient::new(proc.channel().await);
    q.list_customers(auth(
        v1::ListCustomersRequest {
            page_size: 1,
            consistency: consistency(position),
            ..Default::default()
        },
        "admin",
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn a_projector_killed_mid_stream_resumes_to_exactly_what_a_rebuild_gives() {
    let nats = crm_testkit::NatsServer::builder()
        .durability(crm_testkit::Durability::Lazy)
        .start();
    let dir = tempfile::tempdir().unwrap();
    let tokens = tokens_file(dir.path());
    let url = nats.url();
    let writer = Proc::start(
        &dir.path().join("writer"),
        &tokens,
        &["--role", "commands", "--nats-url", &url],
    );
    let commands = CommandServiceClient::new(writer.channel().await);
    // 2,000 customers with an order each: 4,000 events.
    let ids: Vec<String> = (0..2000)
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect();
    let mut last = 0;
    for step in 0..2 {
        let replies: Vec<_> = futures::stream::iter(ids.iter().map(|id| {
            let mut c = commands.clone();
            let id = id.clone();
            async move {
                if step == 0 {
                    c.register_customer(auth(register(&id, "Ada"), "admin"))
                        .await
                } else {
                    c.place_order(auth(order(&id, 999), "admin")).await
                }
            }
        }))
        .buffer_unordered(64)
        .collect()
        .await;
        for r in replies {
            last = last.max(r.unwrap().into_inner().position);
        }
    }
    drop(commands);

    // Kill the projector while it works through the stream: as soon as it has applied
    // something and its checkpoint is short of the end, three times; then let it finish.
    let killed_dir = dir.path().join("killed");
    let mut mid_stream_kills = 0;
    while mid_stream_kills < 3 {
        let p = Proc::start(
            &killed_dir,
            &tokens,
            &["--role", "projector", "--nats-url", &url],
        );
        let at = loop {
            let b = builds(&p).await;
            let at = b.iter().map(|b| b.checkpoint).max().unwrap_or(0);
            if at >= last || b.iter().any(|b| b.events_applied > 0) {
                break at;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        p.kill();
        if at >= last {
            break;
        }
        mid_stream_kills += 1;
    }
    // sled may not have written the last batches to disk before the kill: the restarted
    // projector resumes from whatever checkpoint survived (atomically with its data).
    let p = Proc::start(
        &killed_dir,
        &tokens,
        &["--role", "projector", "--nats-url", &url],
    );
    wait_until_applied(&p, last).await;
    p.stop().await;

    let fresh_dir = dir.path().join("fresh");
    let p = Proc::start(
        &fresh_dir,
        &tokens,
        &["--role", "projector", "--nats-url", &url],
    );
    wait_until_applied(&p, last).await;
    p.stop().await;
    writer.stop().await;

    let (killed, fresh) = (tree_contents(&killed_dir), tree_contents(&fresh_dir));
    assert!(fresh.len() > 4000, "{} keys", fresh.len());
    assert!(
        killed == fresh,
        "a projector killed {mid_stream_kills} times mid-stream differs from a rebuild"
    );
    assert!(
        mid_stream_kills >= 1,
        "no kill landed mid-stream: the test proved nothing"
    );

    // A blue/green rebuild of the same data dir, killed repeatedly while it builds: it
    // resumes after each restart, takes over, and equals the uninterrupted build.
    let p = Proc::start(
        &killed_dir,
        &tokens,
        &["--role", "projector", "--nats-url", &url],
    );
    let old = builds(&p).await[0].tree.clone();
    let mut admin = AdminServiceClient::new(p.channel().await);
    let new = admin
        .rebuild_projection(auth(
            v1::RebuildProjectionRequest {
                name: "customer360".into(),
            },
            "admin",
        ))
        .await
        .unwrap()
        .into_inner()
        .build
        .unwrap()
        .tree;
    drop(admin);
    // Killed as soon as the new build has applied something in this process, three
    // times; then it finishes.
    let mut p = Some(p);
    let mut mid_build_kills = 0;
    while mid_build_kills < 3 {
        let proc = match p.take() {
            Some(proc) => proc,
            None => Proc::start(
                &killed_dir,
                &tokens,
                &["--role", "projector", "--nats-url", &url],
            ),
        };
        let live = loop {
            let now = builds(&proc).await;
            let b = now
                .iter()
                .find(|b| b.tree == new)
                .unwrap_or_else(|| panic!("the build {new} disappeared: {now:?}"));
            if b.state == v1::BuildState::Live as i32 {
                break true;
            }
            if b.events_applied > 0 {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        proc.kill();
        if live {
            break;
        }
        mid_build_kills += 1;
    }
    let p = Proc::start(
        &killed_dir,
        &tokens,
        &["--role", "projector", "--nats-url", &url],
    );
    // The new build finishes, takes over, and the old one is dropped.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let served = loop {
        let now = builds(&p).await;
        if now.len() == 1 || std::time::Instant::now() > deadline {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(served.len(), 1, "{served:?}");
    assert_eq!(served[0].tree, new);
    p.stop().await;
    let db = sled::open(killed_dir.join("read-models")).unwrap();
    assert!(
        !db.tree_names().iter().any(|t| t.as_ref() == old.as_bytes()),
        "the replaced build {old} is dropped"
    );
    drop(db);
    assert!(
        tree_contents(&killed_dir) == fresh,
        "a blue/green build killed {mid_build_kills} times differs from an uninterrupted build"
    );
    assert!(
        mid_build_kills >= 1,
        "no kill landed mid-build: the test proved nothing"
    );
}

/// A free loopback port (bound and released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /metrics` over plain HTTP/1.1: the body's sample lines as (series, value).
fn scrape(port: u16) -> Vec<(String, f64)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("application/openmetrics-text"), "{text}");
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse().unwrap())
        })
        .collect()
}

fn sample(samples: &[(String, f64)], series: &str) -> f64 {
    samples
        .iter()
        .find(|(s, _)| s == series)
        .unwrap_or_else(|| panic!("no {series} in {samples:#?}"))
        .1
}

#[tokio::test]
async fn prometheus_metrics_count_commands_calls_and_projection_progress() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = tokens_file(dir.path());
    let port = free_port();
    let metrics = format!("--metrics-listen=127.0.0.1:{port}");
    let crm = Proc::start(&dir.path().join("data"), &tokens, &[&metrics]);
    let channel = crm.channel().await;
    let mut commands = CommandServiceClient::new(channel.clone());
    let mut queries = QueryServiceClient::new(channel);

    let id = "0193a000-0000-7000-8000-00000000a001";
    commands
        .register_customer(auth(register(id, "Ada"), "admin"))
        .await
        .unwrap();
    let mut position = 0;
    for price in [100, 200, 300] {
        position = commands
            .place_order(auth(order(id, price), "admin"))
            .await
            .unwrap()
            .into_inner()
            .position;
    }
    let unknown = commands
        .place_order(auth(
            order("0193a000-0000-7000-8000-00000000a0ff", 1),
            "admin",
        ))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    queries
        .get_customer360(auth(
            v1::GetCustomer360Request {
                customer_id: id.into(),
                consistency: consistency(position),
                ..Default::default()
            },
            "admin",
        ))
        .await
        .unwrap();

    let m = tokio::task::spawn_blocking(move || scrape(port))
        .await
        .unwrap();
    assert_eq!(sample(&m, r#"crm_commands_total{outcome="applied"}"#), 4.0);
    assert_eq!(sample(&m, r#"crm_commands_total{outcome="rejected"}"#), 1.0);
    assert_eq!(sample(&m, "crm_events_appended_total"), 4.0);
    assert_eq!(sample(&m, "crm_append_conflicts_total"), 0.0);
    let p = r#"{projection="customer360"}"#;
    #[allow(clippy::cast_precision_loss)]
    let at = position as f64;
    assert_eq!(sample(&m, &format!("crm_projection_checkpoint{p}")), at);
    assert_eq!(
        sample(&m, &format!("crm_projection_events_applied_total{p}")),
        4.0
    );
    assert_eq!(
        sample(&m, &format!("crm_projection_dead_letters_total{p}")),
        0.0
    );
    assert_eq!(sample(&m, &format!("crm_projection_lag_events{p}")), 0.0);
    assert!(sample(&m, &format!("crm_projection_batches_total{p}")) >= 1.0);
    assert!(sample(&m, &format!("crm_projection_write_backs_total{p}")) >= 1.0);
    assert!(sample(&m, &format!("crm_projection_write_back_keys_total{p}")) >= 1.0);
    assert!(sample(&m, &format!("crm_projection_cache_bytes{p}")) > 0.0);
    assert!(sample(&m, &format!("crm_projection_cache_hits_total{p}")) >= 1.0);
    // One order by one customer is no population to fit: no model stored or served.
    assert_eq!(sample(&m, "crm_churn_fits_total"), 0.0);
    assert_eq!(sample(&m, "crm_churn_served_model_age_seconds"), 0.0);
    let place = "/crm.v1.CommandService/PlaceOrder";
    assert_eq!(
        sample(
            &m,
            &format!(r#"crm_grpc_requests_total{{method="{place}",code="OK"}}"#)
        ),
        3.0
    );
    assert_eq!(
        sample(
            &m,
            &format!(r#"crm_grpc_requests_total{{method="{place}",code="NOT_FOUND"}}"#)
        ),
        1.0
    );
    assert_eq!(
        sample(
            &m,
            &format!(r#"crm_grpc_request_duration_seconds_count{{method="{place}"}}"#)
        ),
        4.0
    );

    // The commands inside an Ingest stream are counted by their own codes (the call
    // itself only answers OK when the stream opens).
    use v1::ingest_request::Command as Cmd;
    let tag = |customer_id: &str| {
        Cmd::TagCustomer(v1::TagCustomerRequest {
            customer_id: customer_id.into(),
            tag: "vip".into(),
            ..Default::default()
        })
    };
    let items = [
        tag(id),
        tag("0193a000-0000-7000-8000-00000000a0ff"),
        tag("not-an-id"),
    ]
    .into_iter()
    .zip(1..)
    .map(|(command, sequence)| v1::IngestRequest {
        sequence,
        command: Some(command),
    });
    let mut replies = commands
        .ingest(auth(tokio_stream::iter(items), "importer"))
        .await
        .unwrap()
        .into_inner();
    let mut answered = 0;
    while let Some(reply) = replies.message().await.unwrap() {
        assert!(reply.result.is_some(), "{reply:?}");
        answered += 1;
    }
    assert_eq!(answered, 3);
    let m = tokio::task::spawn_blocking(move || scrape(port))
        .await
        .unwrap();
    for (code, n) in [("OK", 1.0), ("NOT_FOUND", 1.0), ("INVALID_ARGUMENT", 1.0)] {
        assert_eq!(
            sample(
                &m,
                &format!(r#"crm_grpc_ingest_commands_total{{code="{code}"}}"#)
            ),
            n,
            "{code}"
        );
    }
    assert_eq!(
        sample(&m, "crm_grpc_ingest_command_duration_seconds_count"),
        3.0
    );
    assert_eq!(
        sample(
            &m,
            r#"crm_grpc_requests_total{method="/crm.v1.CommandService/Ingest",code="OK"}"#
        ),
        1.0
    );
    crm.stop().await;
}

#[tokio::test]
async fn a_generated_business_ingests_without_a_refusal_and_the_360_agrees_with_its_truth() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = tokens_file(dir.path());
    let crm = Proc::start(&dir.path().join("data"), &tokens, &[]);
    let channel = crm.channel().await;
    let mut params = crm_datagen::Params::new(2026, 250);
    params.days = 365;
    let data = crm_datagen::generate(&params).unwrap();
    let requests: Vec<_> = data.requests().map(Ok::<_, String>).collect();
    let report = crm_datagen::ingest::ingest(
        channel.clone(),
        "token-importer",
        requests.into_iter(),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(report.failed, 0, "{:#?}", report.failures);
    assert_eq!(report.ok, data.summary.commands);
    assert_eq!(report.repeated, 0);

    let mut queries = QueryServiceClient::new(channel);
    let mut listed = 0;
    let mut token = String::new();
    loop {
        let page = queries
            .list_customers(auth(
                v1::ListCustomersRequest {
                    page_size: 100,
                    page_token: token,
                    consistency: consistency(report.max_position),
                    ..Default::default()
                },
                "analyst",
            ))
            .await
            .unwrap()
            .into_inner();
        listed += page.customers.len();
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(listed, 250);
    for truth in data.truth.iter().step_by(10) {
        let view = queries
            .get_customer360(auth(
                v1::GetCustomer360Request {
                    customer_id: truth.customer_id.clone(),
                    consistency: consistency(report.max_position),
                    ..Default::default()
                },
                "analyst",
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            view.commerce.unwrap().orders,
            truth.orders,
            "customer {}",
            truth.customer_id
        );
        assert_eq!(view.origin_lead.is_some(), truth.came_from_lead);
    }
    replay_every_customer(&crm.channel().await, &data, report.max_position).await;
    crm.stop().await;
}

/// The auditors' replay of a generated business over gRPC: each customer's history
/// holds every event of theirs (as many as their version) attributed to the import that
/// wrote it, and their as-of view at a moment after the ingest is what GetCustomer360
/// answers for that moment (scores ranked against the whole base aside).
async fn replay_every_customer(channel: &Channel, data: &crm_datagen::Dataset, position: u64) {
    let mut queries = QueryServiceClient::new(channel.clone());
    let mut audit = v1::audit_service_client::AuditServiceClient::new(channel.clone());
    let at = crm_proto::timestamp_to_proto(crm_domain::Timestamp(
        i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_micros(),
        )
        .unwrap(),
    ));
    let mut types = std::collections::BTreeSet::new();
    for truth in data.truth.iter().step_by(2) {
        let customer_id = truth.customer_id.clone();
        let history = audit
            .get_customer_history(auth(
                v1::GetCustomerHistoryRequest {
                    customer_id: customer_id.clone(),
                    ..Default::default()
                },
                "auditor",
            ))
            .await
            .unwrap()
            .into_inner();
        let live = queries
            .get_customer360(auth(
                v1::GetCustomer360Request {
                    customer_id: customer_id.clone(),
                    as_of: Some(at),
                    consistency: consistency(position),
                },
                "auditor",
            ))
            .await
            .unwrap()
            .into_inner();
        let own = history.entries.iter().filter(|e| e.concerns == "customer");
        assert_eq!(own.count() as u64, live.version, "customer {customer_id}");
        for e in &history.entries {
            assert_eq!(e.actor, "import:importer-user", "{customer_id}: {e:?}");
            types.insert(e.event_type.clone());
        }
        let replay = audit
            .get_customer_as_of(auth(
                v1::GetCustomerAsOfRequest {
                    customer_id: customer_id.clone(),
                    at: Some(at),
                    clock: v1::Clock::Recorded.into(),
                },
                "auditor",
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            crm_audit::as_of::reconstructible(replay.view.unwrap()),
            crm_audit::as_of::reconstructible(live),
            "customer {customer_id}"
        );
    }
    let all: std::collections::BTreeSet<String> = crm_events::schema_versions()
        .iter()
        .map(|(t, _)| (*t).to_owned())
        .collect();
    let missing: Vec<_> = all.difference(&types).collect();
    eprintln!(
        "replayed {} of {} event types; not in any history: {missing:?}",
        types.len(),
        all.len()
    );
    // Never in a customer's history by design: a campaign's creation and costs (only its
    // sends naming the customer are), a lead disqualified (it never became a customer).
    // Not generated: a reopened opportunity, a lead converted into an existing customer
    // (`customer.lead_linked`), a forgotten customer (the `privacy` serve test replays
    // both).
    let expected = [
        "campaign.cost_recorded",
        "campaign.created",
        "customer.forgotten",
        "customer.lead_linked",
        "customer.opportunity_reopened",
        "lead.disqualified",
    ];
    assert!(
        missing.iter().all(|t| expected.contains(&t.as_str())),
        "{missing:?}"
    );
}

/// Within `sigmas` standard errors of a proportion `p` over `n` trials.
#[allow(clippy::cast_precision_loss)]
fn near(observed: f64, p: f64, n: u64, sigmas: f64) -> bool {
    (observed - p).abs() <= sigmas * (p * (1.0 - p) / n as f64).sqrt()
}

/// A generated business ingested through the API: its funnel shows the win rate and lead
/// rates the generator's parameters imply; and a projector that builds from scratch in
/// another data dir holds, byte for byte, the funnel the live service built while the
/// events came in (the fold is deterministic and a rebuild equals the live build).
#[tokio::test]
async fn a_generated_business_has_a_plausible_funnel_and_a_rebuild_equals_the_live_one() {
    use crm_proto::v1::funnel_service_client::FunnelServiceClient;
    let nats = crm_testkit::NatsServer::builder()
        .durability(crm_testkit::Durability::Lazy)
        .start();
    let url = nats.url();
    let dir = tempfile::tempdir().unwrap();
    let tokens = tokens_file(dir.path());
    let live = Proc::start(&dir.path().join("live"), &tokens, &["--nats-url", &url]);
    let params = crm_datagen::Params::new(2027, 1200);
    let data = crm_datagen::generate(&params).unwrap();
    let requests: Vec<_> = data.requests().map(Ok::<_, String>).collect();
    let report = crm_datagen::ingest::ingest(
        live.channel().await,
        "token-importer",
        requests.into_iter(),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(report.failed, 0, "{:#?}", report.failures);
    let truth = crm_datagen::FunnelTruth::of(&params);
    let mut f = FunnelServiceClient::new(live.channel().await);
    let funnel = f
        .get_pipeline_funnel(auth(
            v1::GetPipelineFunnelRequest {
                consistency: consistency(report.max_position),
                ..Default::default()
            },
            "analyst",
        ))
        .await
        .unwrap()
        .into_inner();
    let closed = funnel.won + funnel.lost;
    assert!(closed >= 100, "{closed} closed deals: too few to judge");
    let stages: Vec<&str> = funnel.stages.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(stages, crm_datagen::STAGES);
    let win_rate = funnel.win_rate.unwrap();
    assert!(
        near(win_rate, truth.win_rate, closed, 4.0),
        "win rate {win_rate:.3} over {closed} deals; the walk implies {:.3}",
        truth.win_rate
    );
    let leads = f
        .get_lead_funnel(auth(
            v1::GetLeadFunnelRequest {
                consistency: consistency(report.max_position),
                ..Default::default()
            },
            "analyst",
        ))
        .await
        .unwrap()
        .into_inner();
    let all = &leads.groups[0];
    assert_eq!(all.captured, data.summary.leads);
    #[allow(clippy::cast_precision_loss)]
    let share = |n: u64| n as f64 / all.captured as f64;
    for (name, observed, expected) in [
        ("conversion", share(all.converted), truth.lead_conversion),
        ("contact", share(all.contacted), truth.lead_contact_rate),
        (
            "disqualification",
            share(all.disqualified),
            truth.lead_disqualified,
        ),
    ] {
        assert!(
            near(observed, expected, all.captured, 4.0),
            "lead {name} rate {observed:.3} over {} leads; the parameters imply {expected:.3}",
            all.captured
        );
    }
    let campaigns = f
        .get_campaign_performance(auth(
            v1::GetCampaignPerformanceRequest {
                consistency: consistency(report.max_position),
                ..Default::default()
            },
            "analyst",
        ))
        .await
        .unwrap()
        .into_inner()
        .campaigns;
    assert_eq!(campaigns.len() as u64, data.summary.campaigns);
    assert!(
        campaigns
            .iter()
            .all(|c| c.roi.is_some() && c.recipients > 0)
    );

    let rebuilt = Proc::start(
        &dir.path().join("rebuilt"),
        &tokens,
        &["--role", "projector", "--nats-url", &url],
    );
    let mut g = FunnelServiceClient::new(rebuilt.channel().await);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while g
        .get_pipeline_funnel(auth(
            v1::GetPipelineFunnelRequest {
                consistency: consistency(report.max_position),
                ..Default::default()
            },
            "analyst",
        ))
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the rebuild never caught up"
        );
    }
    drop((f, g));
    live.stop().await;
    rebuilt.stop().await;
    let (a, b) = (
        projection_contents(&dir.path().join("live"), "funnel"),
        projection_contents(&dir.path().join("rebuilt"), "funnel"),
    );
    assert!(a.len() > 1000, "{} funnel entries", a.len());
    assert!(a == b, "the rebuilt funnel differs from the live one");
}

/// 2026-01-01T00:00:00Z, in seconds.
const T0_SECS: i64 = 1_767_225_600;

fn day(d: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: T0_SECS + d * 86_400,
        nanos: 0,
    })
}

fn at(d: i64) -> Option<v1::CommandOptions> {
    Some(v1::CommandOptions {
        occurred_at: day(d),
        ..Default::default()
    })
}

/// A small business with every figure computed by hand (as of day 100 after T0):
///
/// | customer | owner | orders (day: total) | lifecycle | RFM | value class | segment |
/// |---|---|---|---|---|---|---|
/// | A | ann | 10, 40, 70: 200 each | repeat (30 d since, gap 30 d) | 3-4-3 | potential | loyal |
/// | B | bob | 95: 10,000 | new | 4-1-4 | potential | promising |
/// | C | ann | none | prospect | - | unscored | prospect |
/// | D | bob | 1: 100 | dormant (one order, 99 d) | 1-1-2 | lost | hibernating |
/// | E | cat | 20, 25: 20 each | dormant (75 d > 60 d) | 2-3-1 | general | at_risk |
///
/// Quintiles over the four buyers: 1 + 5 x (buyers strictly below) / 4.
#[tokio::test]
async fn list_filters_sorts_timeline_filters_and_as_of_over_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = tokens_file(dir.path());
    let crm = Proc::start(&dir.path().join("data"), &tokens, &[]);
    let channel = crm.channel().await;
    let mut commands = CommandServiceClient::new(channel.clone());
    let mut queries = QueryServiceClient::new(channel);
    let ids: Vec<String> = (0..5).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let [a, b, c, d, e] = [0, 1, 2, 3, 4].map(|i| ids[i].clone());
    for (id, owner) in [
        (&a, "ann"),
        (&b, "bob"),
        (&c, "ann"),
        (&d, "bob"),
        (&e, "cat"),
    ] {
        let mut r = register(id, "Ada");
        r.owner = owner.into();
        r.options = at(0);
        commands.register_customer(auth(r, "admin")).await.unwrap();
    }
    let mut last = 0;
    for (id, on, price) in [
        (&a, 10, 100),
        (&a, 40, 100),
        (&a, 70, 100),
        (&b, 95, 5000),
        (&d, 1, 50),
        (&e, 20, 10),
        (&e, 25, 10),
    ] {
        let mut o = order(id, price);
        o.options = at(on);
        let reply = commands.place_order(auth(o, "admin")).await.unwrap();
        last = reply.into_inner().position;
    }
    let ticket = commands
        .open_ticket(auth(
            v1::OpenTicketRequest {
                options: at(50),
                customer_id: a.clone(),
                channel: v1::Channel::Email as i32,
                category: "delivery".into(),
                priority: v1::TicketPriority::Normal as i32,
                subject: "Late parcel".into(),
                ..Default::default()
            },
            "admin",
        ))
        .await
        .unwrap()
        .into_inner();
    last = last.max(ticket.position);

    let mut list = async |req: v1::ListCustomersRequest| -> Vec<v1::CustomerListItem> {
        queries
            .list_customers(auth(
                v1::ListCustomersRequest {
                    as_of: req.as_of.or_else(|| day(100)),
                    consistency: consistency(last),
                    ..req
                },
                "admin",
            ))
            .await
            .unwrap()
            .into_inner()
            .customers
    };
    let names = |items: &[v1::CustomerListItem]| -> Vec<String> {
        items.iter().map(|i| i.customer_id.clone()).collect()
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    // Classification of each, as of day 100.
    let all = list(v1::ListCustomersRequest::default()).await;
    assert_eq!(names(&all), sorted(ids.clone()), "by id");
    let class = |id: &str| {
        let c = all
            .iter()
            .find(|i| i.customer_id == id)
            .unwrap()
            .classification
            .clone()
            .unwrap();
        (
            c.lifecycle,
            c.value_class,
            c.segment,
            (c.recency_score, c.frequency_score, c.monetary_score),
        )
    };
    let want = [
        (&a, ("repeat", "potential", "loyal", (3, 4, 3))),
        (&b, ("new", "potential", "promising", (4, 1, 4))),
        (&c, ("prospect", "unscored", "prospect", (0, 0, 0))),
        (&d, ("dormant", "lost", "hibernating", (1, 1, 2))),
        (&e, ("dormant", "general", "at_risk", (2, 3, 1))),
    ];
    for (id, (lifecycle, value, segment, rfm)) in want {
        assert_eq!(
            class(id),
            (lifecycle.into(), value.into(), segment.into(), rfm),
            "customer {id}"
        );
    }
    // Filters.
    let by = |f: fn(&mut v1::ListCustomersRequest)| {
        let mut r = v1::ListCustomersRequest::default();
        f(&mut r);
        r
    };
    let cases: [(v1::ListCustomersRequest, Vec<&String>); 8] = [
        (by(|r| r.owner = "ann".into()), vec![&a, &c]),
        (by(|r| r.owner = "bob".into()), vec![&b, &d]),
        (by(|r| r.lifecycle = "dormant".into()), vec![&d, &e]),
        (by(|r| r.lifecycle = "prospect".into()), vec![&c]),
        (by(|r| r.value_class = "potential".into()), vec![&a, &b]),
        (by(|r| r.value_class = "lost".into()), vec![&d]),
        (by(|r| r.segment = "at_risk".into()), vec![&e]),
        (
            by(|r| {
                r.owner = "bob".into();
                r.lifecycle = "new".into();
            }),
            vec![&b],
        ),
    ];
    for (request, expected) in cases {
        let what = format!("{request:?}");
        let got = names(&list(request).await);
        assert_eq!(
            got,
            sorted(expected.into_iter().cloned().collect()),
            "{what}"
        );
    }
    // Sorts: customers with orders only.
    let by_value = list(v1::ListCustomersRequest {
        sort: v1::CustomerSort::Value as i32,
        ..Default::default()
    })
    .await;
    assert_eq!(names(&by_value), [&b, &a, &d, &e].map(String::clone));
    let by_recency = list(v1::ListCustomersRequest {
        sort: v1::CustomerSort::Recency as i32,
        ..Default::default()
    })
    .await;
    assert_eq!(names(&by_recency), [&b, &a, &e, &d].map(String::clone));
    // as_of: a year and more later every buyer has churned, and is lost.
    let later = list(v1::ListCustomersRequest {
        as_of: day(500),
        lifecycle: "churned".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(
        names(&later),
        sorted(vec![a.clone(), b.clone(), d.clone(), e.clone()])
    );
    assert!(
        later
            .iter()
            .all(|i| i.classification.as_ref().unwrap().value_class == "lost")
    );

    // Timeline filters on A: registration (day 0), orders (10, 40, 70), ticket (50).
    let mut timeline = async |req: v1::GetTimelineRequest| -> Vec<(String, i64)> {
        queries
            .get_timeline(auth(
                v1::GetTimelineRequest {
                    customer_id: a.clone(),
                    consistency: consistency(last),
                    ..req
                },
                "admin",
            ))
            .await
            .unwrap()
            .into_inner()
            .entries
            .into_iter()
            .map(|e| {
                let at = e.occurred_at.unwrap().seconds;
                (e.event_type, (at - T0_SECS) / 86_400)
            })
            .collect()
    };
    let entry = |t: &str, d: i64| (t.to_owned(), d);
    assert_eq!(
        timeline(v1::GetTimelineRequest::default()).await,
        [
            entry("customer.registered", 0),
            entry("customer.order_placed", 10),
            entry("customer.order_placed", 40),
            entry("customer.ticket_opened", 50),
            entry("customer.order_placed", 70),
        ]
    );
    assert_eq!(
        timeline(v1::GetTimelineRequest {
            event_types: vec!["customer.order_placed".into()],
            newest_first: true,
            ..Default::default()
        })
        .await,
        [70, 40, 10].map(|d| entry("customer.order_placed", d))
    );
    assert_eq!(
        timeline(v1::GetTimelineRequest {
            event_types: vec!["customer.ticket_".into()],
            ..Default::default()
        })
        .await,
        [entry("customer.ticket_opened", 50)]
    );
    assert_eq!(
        timeline(v1::GetTimelineRequest {
            from: day(30),
            to: day(60),
            ..Default::default()
        })
        .await,
        [
            entry("customer.order_placed", 40),
            entry("customer.ticket_opened", 50)
        ]
    );

    // A position the read model will not reach: the wait ends at 10 s, not at the call's
    // 30 s deadline, with the STALE_READ_MODEL precondition naming the field.
    let mut request = auth(
        v1::GetCustomer360Request {
            customer_id: a.clone(),
            consistency: consistency(last + 1_000),
            ..Default::default()
        },
        "admin",
    );
    request.set_timeout(Duration::from_secs(30));
    let started = std::time::Instant::now();
    let stale = queries.get_customer360(request).await.unwrap_err();
    let waited = started.elapsed();
    assert_eq!(stale.code(), Code::FailedPrecondition, "{stale:?}");
    assert!(
        waited >= Duration::from_millis(9_900) && waited < Duration::from_secs(29),
        "waited {waited:?}"
    );
    use tonic_types::StatusExt;
    let details = stale.get_error_details();
    let violation = &details
        .precondition_failure()
        .expect("PreconditionFailure")
        .violations[0];
    assert_eq!(violation.r#type, "STALE_READ_MODEL");
    assert_eq!(violation.subject, "consistency.min_position");
    // The live build wrote back at the head after the commands and its cache answered
    // the reads of later events on the same customers.
    let b = &builds(&crm).await[0];
    assert!(
        b.write_backs >= 1 && b.write_back_keys >= b.write_backs,
        "{b:?}"
    );
    assert!(b.cache_bytes > 0, "{b:?}");
    assert!(b.cache_hit_ratio > 0.0 && b.cache_hit_ratio <= 1.0, "{b:?}");
    crm.stop().await;
}

/// `crm serve` SIGKILLed three times while a generated business streams in through
/// Ingest: the loader reconnects and sends again what it has no answer for, by command
/// id. At the end every command is in the log exactly once, every chain verifies, and the
/// read model equals a fresh rebuild.
#[tokio::test]
async fn crm_serve_killed_mid_ingest_loses_nothing_and_duplicates_nothing() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let nats = crm_testkit::NatsServer::start();
    let url = nats.url();
    let dir = tempfile::tempdir().unwrap();
    let tokens = tokens_file(dir.path());
    let listen = format!(
        "127.0.0.1:{}",
        crm_testkit::port_outside_the_ephemeral_range()
    );
    let data_dir = dir.path().join("crm");
    let start = || Proc::start_on(&listen, &data_dir, &tokens, &["--nats-url", &url]);
    let mut crm = Some(start());

    let mut params = crm_datagen::Params::new(7, 300);
    params.days = 365;
    let data = crm_datagen::generate(&params).unwrap();
    let total = data.summary.commands;
    let requests: Vec<_> = data.requests().map(Ok::<_, String>).collect();
    let answered = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&answered);
    let channel = Channel::from_shared(format!("http://{listen}"))
        .unwrap()
        .connect_lazy();
    let reconnect = crm_datagen::ingest::Reconnect {
        give_up_after: Duration::from_secs(60),
        first_pause: Duration::from_millis(50),
        max_pause: Duration::from_secs(1),
    };
    let loader = tokio::spawn(async move {
        crm_datagen::ingest::ingest_with(
            channel,
            "token-importer",
            requests.into_iter(),
            reconnect,
            move |n| seen.store(n, Ordering::Relaxed),
        )
        .await
    });
    for share in [20, 45, 70] {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while answered.load(Ordering::Relaxed) < total * share / 100 {
            assert!(
                !loader.is_finished(),
                "the load ended before the kill at {share}%"
            );
            assert!(
                std::time::Instant::now() < deadline,
                "no progress to {share}%"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        crm.take().unwrap().kill();
        crm = Some(start());
    }
    let report = loader.await.unwrap().unwrap();
    assert_eq!(report.failed, 0, "{:#?}", report.failures);
    assert_eq!(report.ok, total);
    assert_eq!(report.unknown, 0);
    assert!(report.reconnects >= 3, "{report:?}");
    eprintln!(
        "{} commands, {} reconnects, {} sent again, {} of them found already applied",
        total, report.reconnects, report.resent, report.repeated
    );

    assert_every_command_once(&url, total - report.noop).await;

    // The read model of the killed service equals a fresh rebuild.
    let p = crm.take().unwrap();
    wait_until_applied(&p, report.max_position).await;
    p.stop().await;
    let fresh_dir = dir.path().join("fresh");
    let p = Proc::start(
        &fresh_dir,
        &tokens,
        &["--role", "projector", "--nats-url", &url],
    );
    wait_until_applied(&p, report.max_position).await;
    p.stop().await;
    assert!(
        tree_contents(&data_dir) == tree_contents(&fresh_dir),
        "the read model of a service killed three times differs from a rebuild"
    );
}

/// The log: every accepted command exactly once (one commit per command id: `commands`
/// of them), every aggregate's chain intact.
async fn assert_every_command_once(url: &str, commands: u64) {
    let js = async_nats::jetstream::new(async_nats::connect(url).await.unwrap());
    let stream = js.get_stream("CRM_EVENTS").await.unwrap();
    let last = stream.cached_info().state.last_sequence;
    // Per command id: events found, and the size of the commit they say they belong to.
    let mut commits: BTreeMap<crm_domain::CommandId, (u64, u64)> = BTreeMap::new();
    let mut chains: BTreeMap<crm_domain::AggregateRef, crm_events::ChainVerifier> = BTreeMap::new();
    for seq in 1..=last {
        let m = stream.get_raw_message(seq).await.unwrap();
        for env in crm_events::decode_message(&m.payload).unwrap() {
            let c = commits.entry(env.meta.command_id).or_default();
            c.0 += 1;
            c.1 = u64::from(env.meta.commit_size);
            chains
                .entry(env.aggregate)
                .or_insert_with(|| crm_events::ChainVerifier::new(env.aggregate))
                .push(&env)
                .unwrap_or_else(|e| panic!("chain broken at {seq}: {e}"));
        }
    }
    let twice: Vec<_> = commits.iter().filter(|(_, (n, size))| n != size).collect();
    assert!(twice.is_empty(), "commands committed twice: {twice:?}");
    assert_eq!(commits.len() as u64, commands);
}

/// Opens `n` atomic batches on the stream and abandons them, as writers that died
/// mid-batch would: the server allows 50 open at once and drops abandoned ones after
/// about 10 s, so meanwhile every two-aggregate command is refused as busy.
async fn abandon_batches(url: &str, n: usize) {
    let client = async_nats::connect(url).await.unwrap();
    for _ in 0..n {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            "Nats-Batch-Id",
            uuid::Uuid::new_v4().simple().to_string().as_str(),
        );
        headers.insert("Nats-Batch-Sequence", "1");
        let subject = format!("crm.v1.customer.{}", uuid::Uuid::now_v7().simple());
        client
            .request_with_headers(subject, headers, "never committed".into())
            .await
            .unwrap();
    }
}

/// A bulk load meets a stream full of abandoned atomic batches: its two-aggregate
/// commands (lead conversions, links) are answered UNAVAILABLE until the server drops
/// them, and so, to keep the order, are the later commands on their aggregates. The
/// loader sends them again, in order, by command id: nothing refused, nothing applied
/// twice, every command in the log once.
#[tokio::test]
async fn a_bulk_load_sends_again_in_order_what_the_service_could_not_apply_yet() {
    let nats = crm_testkit::NatsServer::start();
    let url = nats.url();
    let dir = tempfile::tempdir().unwrap();
    let tokens = tokens_file(dir.path());
    let crm = Proc::start(&dir.path().join("crm"), &tokens, &["--nats-url", &url]);
    let mut params = crm_datagen::Params::new(11, 200);
    params.days = 365;
    let data = crm_datagen::generate(&params).unwrap();
    let total = data.summary.commands;
    let requests: Vec<_> = data.requests().map(Ok::<_, String>).collect();
    abandon_batches(&url, 50).await;
    let report = crm_datagen::ingest::ingest_with(
        crm.channel().await,
        "token-importer",
        requests.into_iter(),
        crm_datagen::ingest::Reconnect {
            give_up_after: Duration::from_secs(60),
            first_pause: Duration::from_millis(50),
            max_pause: Duration::from_secs(1),
        },
        |_| {},
    )
    .await
    .unwrap();
    eprintln!(
        "{total} commands in {:.1}s, {} streams opened again, {} sent again, {} found already applied",
        report.elapsed.as_secs_f64(),
        report.reconnects,
        report.resent,
        report.repeated
    );
    assert_eq!(report.failed, 0, "{:#?}", report.failures);
    assert_eq!(report.ok, total);
    assert!(report.reconnects >= 1, "never refused: {report:?}");
    assert_every_command_once(&url, total - report.noop).await;
    crm.stop().await;
}

/// Two `crm serve --role commands` processes on one three-node cluster write the same
/// customers at the same time, and a `--role projector` on its own data dir follows:
/// no acknowledged update is lost, no chain forks, and the read model counts exactly
/// what was acknowledged.
#[tokio::test]
async fn two_command_processes_on_one_cluster_lose_no_update_and_fork_no_chain() {
    let cluster = crm_testkit::NatsCluster::start(3);
    let urls = cluster.url_list();
    let dir = tempfile::tempdir().unwrap();
    let tokens = tokens_file(dir.path());
    let writer = |name: &str| {
        Proc::start(
            &dir.path().join(name),
            &tokens,
            &["--role", "commands", "--nats-url", &urls, "--replicas", "3"],
        )
    };
    let (a, b) = (writer("a"), writer("b"));
    let projector = Proc::start(
        &dir.path().join("projector"),
        &tokens,
        &["--role", "projector", "--nats-url", &urls],
    );
    let ids: Vec<String> = (0..10).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let mut ca = CommandServiceClient::new(a.channel().await);
    for id in &ids {
        ca.register_customer(auth(register(id, "Ada"), "admin"))
            .await
            .unwrap();
    }
    let clients = [ca, CommandServiceClient::new(b.channel().await)];
    // 10 customers x 2 processes x 20 interactions, all at once.
    let calls = ids.iter().flat_map(|id| {
        clients.iter().flat_map(move |c| {
            (0..20).map(move |n| {
                let mut c = c.clone();
                let id = id.clone();
                async move {
                    let request = v1::LogInteractionRequest {
                        options: Some(v1::CommandOptions {
                            command_id: uuid::Uuid::now_v7().to_string(),
                            ..Default::default()
                        }),
                        customer_id: id.clone(),
                        interaction_id: uuid::Uuid::now_v7().to_string(),
                        channel: v1::Channel::Email.into(),
                        direction: v1::Direction::Inbound.into(),
                        subject: format!("message {n}"),
                        ..Default::default()
                    };
                    // ABORTED (still conflicting after the handler's re-decisions) is
                    // retryable with the same command id, as clients are told to.
                    let mut tries = 0;
                    loop {
                        match c.log_interaction(auth(request.clone(), "admin")).await {
                            Err(s) if s.code() == Code::Aborted && tries < 5 => tries += 1,
                            other => break other.map(|r| (id, r.into_inner())),
                        }
                    }
                }
            })
        })
    });
    let replies: Vec<_> = futures::stream::iter(calls)
        .buffer_unordered(64)
        .collect()
        .await;
    let mut acked: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut last = 0;
    for r in replies {
        let (id, reply) = r.expect("every write is accepted (conflicts are re-decided)");
        last = last.max(reply.position);
        acked.entry(id).or_default().push(reply.version);
    }
    // Versions 2..=41 on every customer, each acknowledged once: no lost update.
    for (id, mut versions) in acked {
        versions.sort_unstable();
        assert_eq!(versions, (2..=41).collect::<Vec<u64>>(), "{id}");
    }
    // The chains as stored: one per customer, unbroken.
    let js = async_nats::jetstream::new(
        async_nats::connect(cluster.urls().as_slice())
            .await
            .unwrap(),
    );
    let stream = js.get_stream("CRM_EVENTS").await.unwrap();
    let mut chains: BTreeMap<crm_domain::AggregateRef, crm_events::ChainVerifier> = BTreeMap::new();
    for seq in 1..=stream.cached_info().state.last_sequence {
        let m = stream.get_raw_message(seq).await.unwrap();
        for env in crm_events::decode_message(&m.payload).unwrap() {
            chains
                .entry(env.aggregate)
                .or_insert_with(|| crm_events::ChainVerifier::new(env.aggregate))
                .push(&env)
                .unwrap_or_else(|e| panic!("a forked chain at {seq}: {e}"));
        }
    }
    assert_eq!(chains.len(), 10);
    // The projector counts every acknowledged interaction.
    let mut q = QueryServiceClient::new(projector.channel().await);
    for id in &ids {
        let view = q
            .get_customer360(auth(
                v1::GetCustomer360Request {
                    customer_id: id.clone(),
                    consistency: consistency(last),
                    ..Default::default()
                },
                "admin",
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(view.version, 41);
        let inbound: u32 = view
            .engagement
            .unwrap()
            .channels
            .iter()
            .map(|c| c.inbound)
            .sum();
        assert_eq!(inbound, 40, "{id}");
    }
    drop((clients, q));
    a.stop().await;
    b.stop().await;
    projector.stop().await;
}
