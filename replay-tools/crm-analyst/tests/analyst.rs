//! `crm-analyst` against a real `crm serve` (in this process, embedded nats-server, sled
//! files) holding a generated business: a rebuild through the admin RPC followed to the
//! switch; offline builds of every projection equal to what the service built live, key
//! by key; two offline builds equal; an injected difference found and described.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crm_analyst::compare::{DiffKind, compare};
use crm_analyst::{Named, build, rebuild};
use crm_audit::connect::{Source, Target};

#[path = "analyst/models.rs"]
mod models;
#[path = "analyst/report.rs"]
mod report;

struct Service {
    addr: SocketAddr,
    token: String,
    /// An `analyst` principal's token (no `pii.read`).
    analyst: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), crm_server::RunError>>,
}

async fn serve(data: &Path) -> Service {
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let analyst = crm_testkit::Principal::service("analyst", &["analyst"]);
    let tokens = data.with_file_name("tokens.toml");
    std::fs::write(
        &tokens,
        crm_testkit::tokens_toml(std::slice::from_ref(&analyst)),
    )
    .unwrap();
    let config = crm_server::ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data.to_path_buf(),
        tokens_file: Some(tokens),
        dev: true,
        churn_refit_every_secs: 0,
        ..crm_server::ServeConfig::default()
    };
    let task = tokio::spawn(crm_server::run(
        config,
        async move {
            let _ = stopped.await;
        },
        Box::new(move |addr, token| {
            let _ = ready_tx.send((addr, token.map(str::to_owned)));
        }),
    ));
    let (addr, token) = ready_rx.await.expect("crm serve starts");
    Service {
        addr,
        token: token.unwrap(),
        analyst: analyst.token,
        stop,
        task,
    }
}

async fn source(data: &Path) -> Source {
    let conf = std::fs::read_to_string(data.join("nats").join("nats.conf")).unwrap();
    let listen = conf
        .lines()
        .find_map(|l| l.strip_prefix("listen: "))
        .unwrap()
        .trim_matches('"');
    Source::connect(&Target {
        nats_url: format!("nats://{listen}"),
        reader_seed: Some(data.join("nats").join("users").join("crm-reader.nk")),
        stream: "CRM_EVENTS".into(),
        prefix: "crm.v1".into(),
        master_key_file: Some(data.join("keys").join("master.key")),
    })
    .await
    .unwrap()
}

/// The names, emails and phones of the business's customers (those of 4 characters or
/// more: shorter ones occur in any text).
fn personal(business: &crm_datagen::Dataset) -> Vec<String> {
    let mut personal: Vec<String> = Vec::new();
    for c in &business.commands {
        if let crm_proto::v1::ingest_request::Command::RegisterCustomer(r) = c.command()
            && let Some(p) = r.profile
        {
            personal.extend([p.given_name, p.family_name]);
            personal.extend(p.emails);
            personal.extend(p.phones);
        }
    }
    personal.retain(|p| p.len() >= 4);
    assert!(personal.len() > 100);
    personal
}

fn dir(root: &Path, name: &str) -> PathBuf {
    root.join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_offline_builds_comparisons_and_rebuilds_on_a_generated_business() {
    let root = tempfile::tempdir().unwrap();
    let data = dir(root.path(), "data");
    let service = serve(&data).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", service.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let business = crm_datagen::generate(&crm_datagen::Params::new(5, 300)).unwrap();
    let report = crm_datagen::ingest::ingest(
        channel.clone(),
        &service.token,
        business
            .requests()
            .map(Ok::<_, String>)
            .collect::<Vec<_>>()
            .into_iter(),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(report.failed, 0, "{:#?}", report.failures);

    // A rebuild on the service, followed until queries switched to it.
    let mut seen = 0;
    let rebuilt = rebuild::rebuild(
        channel.clone(),
        &service.token,
        Named::Churn,
        Duration::from_secs(120),
        |_| seen += 1,
    )
    .await
    .unwrap();
    assert!(rebuilt.position >= report.max_position, "{rebuilt:?}");
    assert!(rebuilt.tree.starts_with("churn."), "{rebuilt:?}");
    assert!(seen >= 1);
    // Without projections.admin: refused, naming the code.
    let denied = rebuild::rebuild(
        channel.clone(),
        "nope",
        Named::Churn,
        Duration::from_secs(5),
        |_| {},
    )
    .await
    .unwrap_err();
    assert!(denied.to_string().contains("Unauthenticated"), "{denied}");

    // Every projection built offline, and churn twice.
    let source = source(&data).await;
    for p in Named::ALL {
        let built = build::build(&source, p, &dir(root.path(), p.name()), |_, _| {})
            .await
            .unwrap();
        assert!(built.position >= report.max_position, "{built:?}");
        assert!(built.events > 0 && built.dead_lettered == 0, "{built:?}");
    }
    let again = dir(root.path(), "churn-again");
    build::build(&source, Named::Churn, &again, |_, _| {})
        .await
        .unwrap();
    let twice = compare(Named::Churn, &dir(root.path(), "churn"), &again, 5, false).unwrap();
    assert!(twice.same() && twice.equal > 300, "{twice:?}");

    exports_read_back_and_carry_no_personal_data(&source, &business, root.path()).await;
    report::matches_the_query_api(channel.clone(), &service, &business, root.path()).await;
    let expected = models::while_serving(channel.clone(), &service.analyst).await;
    let customers_as_of = customers_from_the_service(&channel, &service, root.path()).await;

    // What the service built live (stopped, so its directory is free) equals the offline
    // builds key by key.
    drop(source);
    let _ = service.stop.send(());
    service.task.await.unwrap().unwrap();
    for p in Named::ALL {
        let c = compare(p, &data, &dir(root.path(), p.name()), 5, false).unwrap();
        assert!(c.same(), "{p}: {c:#?}");
        assert!(c.equal > 0 && c.left.entries == c.right.entries, "{c:?}");
        assert!(c.left.tree.starts_with(p.name()), "{c:?}");
    }

    customers_export_as_the_api_renders_them(&data, &business, root.path(), customers_as_of);
    models::after_stop(&data, &expected, root.path());

    // A difference injected in one build: one key gone, one value changed.
    let (gone, changed) = {
        let db = sled::open(&again).unwrap();
        let tree = db.open_tree("churn").unwrap();
        let mut keys = tree
            .scan_prefix([crm_projection::DATA_PREFIX, crm_churn::purchases::PURCHASES])
            .map(|r| r.unwrap());
        let (gone, _) = keys.next().unwrap();
        let (changed, value) = keys.next().unwrap();
        let mut p: crm_churn::purchases::Purchases = postcard::from_bytes(&value).unwrap();
        p.orders.values_mut().next().unwrap().total_minor += 1;
        tree.remove(&gone).unwrap();
        tree.insert(&changed, postcard::to_stdvec(&p).unwrap())
            .unwrap();
        db.flush().unwrap();
        (gone, changed)
    };
    let c = compare(Named::Churn, &dir(root.path(), "churn"), &again, 5, false).unwrap();
    assert!(!c.same());
    assert_eq!((c.different, c.missing, c.extra), (1, 1, 0), "{c:#?}");
    let uuid = |k: &sled::IVec| uuid::Uuid::from_slice(&k[2..]).unwrap().to_string();
    assert_eq!(c.first[0].kind, DiffKind::Missing);
    assert!(c.first[0].key.ends_with(&uuid(&gone)), "{c:#?}");
    assert_eq!(c.first[1].kind, DiffKind::Different);
    assert!(c.first[1].key.ends_with(&uuid(&changed)), "{c:#?}");
    assert!(
        c.first[1]
            .fields
            .iter()
            .any(|f| f.left.contains("total_minor")),
        "{c:#?}"
    );
    // The same through the binary: exit code 1 when the builds differ, 0 when equal.
    let bin = env!("CARGO_BIN_EXE_crm-analyst");
    let run = |right: &Path| {
        std::process::Command::new(bin)
            .args(["compare", "--projection", "churn"])
            .arg(dir(root.path(), "churn"))
            .arg(right)
            .output()
            .unwrap()
    };
    let differ = run(&again);
    assert_eq!(differ.status.code(), Some(1));
    let text = String::from_utf8(differ.stdout).unwrap();
    assert!(text.contains("1 different, 1 missing"), "{text}");
    assert_eq!(run(&data).status.code(), Some(0));
}

/// The stream exported to each format: read back (the Parquet file by the parquet
/// crate's reader, with its schema), the same rows in each, the orders exactly those
/// the generator placed; without `pii` not one name, email or phone of the business in
/// any file, with it they are there; a filter by type; an export that cannot be written
/// leaves nothing.
async fn exports_read_back_and_carry_no_personal_data(
    source: &Source,
    business: &crm_datagen::Dataset,
    root: &Path,
) {
    use crm_analyst::export::{EventFilter, Format, event_schema, export_events};
    let all = EventFilter::default();
    let export = |format, name: &str, filter: EventFilter, pii| {
        let out = root.join(name);
        let partial = root.join(format!("{name}.partial"));
        async move {
            let done = export_events(source, &filter, format, &out, pii, |_, _| {})
                .await
                .unwrap();
            assert!(!partial.exists());
            (done, out)
        }
    };
    let (jsonl, jsonl_path) = export(Format::Jsonl, "events.jsonl", all.clone(), false).await;
    let (csv, csv_path) = export(Format::Csv, "events.csv", all.clone(), false).await;
    let (parquet, parquet_path) =
        export(Format::Parquet, "events.parquet", all.clone(), false).await;
    let (_, pii_path) = export(Format::Jsonl, "events-pii.jsonl", all.clone(), true).await;
    assert!(jsonl.rows > 1_000 && csv.rows == jsonl.rows && parquet.rows == jsonl.rows);

    // JSON Lines.
    let text = std::fs::read_to_string(&jsonl_path).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len() as u64, jsonl.rows);
    let orders = rows
        .iter()
        .filter(|r| r["event_type"] == "customer.order_placed")
        .count() as u64;
    assert_eq!(orders, business.summary.orders);
    let order = rows
        .iter()
        .find(|r| r["event_type"] == "customer.order_placed")
        .unwrap();
    let payload: serde_json::Value =
        serde_json::from_str(order["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload["total"]["currency"], "EUR", "{payload}");
    assert!(payload["total"]["minor"].as_i64().unwrap() > 0, "{payload}");
    assert!(
        order["occurred_at"].as_str().unwrap().ends_with('Z'),
        "{order}"
    );

    // CSV: the same rows, the same first row.
    let mut reader = csv::Reader::from_path(&csv_path).unwrap();
    let headers = reader.headers().unwrap().clone();
    assert_eq!(&headers[0], "seq");
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len() as u64, csv.rows);
    assert_eq!(records[0][0], rows[0]["seq"].to_string());
    assert_eq!(&records[0][5], rows[0]["event_type"].as_str().unwrap());

    // Parquet: the schema, the row count, typed values.
    let file = std::fs::File::open(&parquet_path).unwrap();
    let builder =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    assert_eq!(builder.schema().fields(), event_schema().fields());
    let mut n = 0u64;
    let mut first_seq = None;
    let mut parquet_text = String::new();
    for batch in builder.build().unwrap() {
        let batch = batch.unwrap();
        n += batch.num_rows() as u64;
        let seq = batch
            .column(0)
            .as_any()
            .downcast_ref::<arrow_array::UInt64Array>()
            .unwrap();
        first_seq.get_or_insert(seq.value(0));
        // Every text column, decoded (the file itself is compressed).
        for column in batch.columns() {
            if let Some(texts) = column.as_any().downcast_ref::<arrow_array::StringArray>() {
                for t in texts.iter().flatten() {
                    parquet_text.push_str(t);
                    parquet_text.push('\n');
                }
            }
        }
    }
    assert_eq!(n, parquet.rows);
    assert_eq!(Some(first_seq.unwrap()), rows[0]["seq"].as_u64());

    // Personal data: none of the business's names, emails or phones without pii.
    let personal = personal(business);
    let csv_text = std::fs::read_to_string(&csv_path).unwrap();
    let with_pii = std::fs::read_to_string(&pii_path).unwrap();
    let found = |body: &str| -> Vec<String> {
        // The words of the body (JSON and CSV delimiters, whitespace), then the personal
        // values with a space in them as they are.
        let words: std::collections::BTreeSet<&str> = body
            .split(|c: char| c.is_whitespace() || "\\\",:{}[]".contains(c))
            .collect();
        personal
            .iter()
            .filter(|p| {
                if p.contains(' ') {
                    body.contains(p.as_str())
                } else {
                    words.contains(p.as_str())
                }
            })
            .cloned()
            .collect()
    };
    for (name, body) in [
        ("jsonl", &text),
        ("csv", &csv_text),
        ("parquet", &parquet_text),
    ] {
        let leaked = found(body);
        assert!(leaked.is_empty(), "{leaked:?} in the {name} export");
    }
    assert!(!found(&with_pii).is_empty(), "the pii export names people");

    // A filter by type; an export to a directory that does not exist leaves nothing.
    let only_orders = EventFilter {
        types: vec!["customer.order".into()],
        ..EventFilter::default()
    };
    let (filtered, _) = export(Format::Csv, "orders.csv", only_orders.clone(), false).await;
    assert!(
        filtered.rows >= orders && filtered.rows < jsonl.rows,
        "{filtered:?}"
    );
    let nowhere = root.join("missing").join("x.parquet");
    assert!(
        export_events(
            source,
            &only_orders,
            Format::Parquet,
            &nowhere,
            false,
            |_, _| {}
        )
        .await
        .is_err()
    );
    assert!(!root.join("missing").exists());
}

/// The 360 model exported from the stopped service's directory: one row per customer,
/// read back from Parquet and CSV; no name, email or phone without `pii`, the emails
/// with it.
/// The customers exported through the running service: as the analyst (CSV, kept for
/// the comparison with the directory's export) and as the admin (with emails). Returns
/// the moment they were exported at.
async fn customers_from_the_service(
    channel: &tonic::transport::Channel,
    service: &Service,
    root: &Path,
) -> i64 {
    use crm_analyst::customers::export_customers_from_service;
    use crm_analyst::export::Format;
    let at = chrono::Utc::now().timestamp_micros();
    let out = root.join("customers-api.csv");
    let mut pages = 0;
    let done = export_customers_from_service(
        channel.clone(),
        &service.analyst,
        Format::Csv,
        &out,
        at,
        |_| pages += 1,
    )
    .await
    .unwrap();
    assert!(done.rows >= 300 && pages >= 1, "{done:?}");
    let admin = root.join("customers-admin.jsonl");
    export_customers_from_service(
        channel.clone(),
        &service.token,
        Format::Jsonl,
        &admin,
        at,
        |_| {},
    )
    .await
    .unwrap();
    let text = std::fs::read_to_string(&admin).unwrap();
    let emails = text
        .lines()
        .filter(|l| l.contains("\"email\":\"") && l.contains('@'))
        .count();
    assert!(emails > 100, "the admin's export carries emails: {emails}");
    let denied = export_customers_from_service(
        channel.clone(),
        "nope",
        Format::Csv,
        &root.join("denied.csv"),
        at,
        |_| {},
    )
    .await
    .unwrap_err();
    assert!(denied.to_string().contains("Unauthenticated"), "{denied}");
    assert!(!root.join("denied.csv").exists());
    at
}

fn customers_export_as_the_api_renders_them(
    data: &Path,
    business: &crm_datagen::Dataset,
    root: &Path,
    service_as_of: i64,
) {
    use crm_analyst::customers::{CustomerRow, export_customers};
    use crm_analyst::export::{Format, Row};
    let now = chrono::Utc::now().timestamp_micros();
    // From the directory at the moment the service exported them: the same file.
    let same = root.join("customers-dir.csv");
    export_customers(data, Format::Csv, &same, service_as_of, false, |_, _| {}).unwrap();
    assert_eq!(
        std::fs::read(&same).unwrap(),
        std::fs::read(root.join("customers-api.csv")).unwrap(),
        "the directory's export and the service's differ"
    );
    let csv_path = root.join("customers.csv");
    let done = export_customers(data, Format::Csv, &csv_path, now, false, |_, _| {}).unwrap();
    assert_eq!(done.rows, business.summary.customers, "{done:?}");
    let mut reader = csv::Reader::from_path(&csv_path).unwrap();
    let headers = reader.headers().unwrap().clone();
    let column = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (email, lifecycle, orders) = (column("email"), column("lifecycle"), column("orders"));
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len() as u64, done.rows);
    assert!(
        records
            .iter()
            .all(|r| r[email].is_empty() && !r[lifecycle].is_empty())
    );
    let with_orders = records.iter().filter(|r| &r[orders] != "0").count();
    assert!(with_orders > 100, "{with_orders}");

    let parquet_path = root.join("customers.parquet");
    let done =
        export_customers(data, Format::Parquet, &parquet_path, now, true, |_, _| {}).unwrap();
    let file = std::fs::File::open(&parquet_path).unwrap();
    let builder =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    assert_eq!(builder.schema().fields(), CustomerRow::schema().fields());
    let mut emails = 0;
    let mut n = 0;
    for batch in builder.build().unwrap() {
        let batch = batch.unwrap();
        n += batch.num_rows() as u64;
        let column = batch.column_by_name("email").unwrap();
        let texts = column
            .as_any()
            .downcast_ref::<arrow_array::StringArray>()
            .unwrap();
        emails += texts.iter().flatten().filter(|e| e.contains('@')).count();
    }
    assert_eq!(n, done.rows);
    assert!(emails > 100, "with pii the emails are there: {emails}");
}
