//! The right to be forgotten over gRPC, end to end: a customer with a full history (and
//! a lead converted into them) is forgotten; commands on them are refused; every read
//! model and the audit history keep their figures but none of their personal data, for
//! every caller; another customer is untouched; and no file under the data directory
//! holds their name, email or phone, once the read models are compacted the way the
//! README says (removed and rebuilt from the log), and the rebuild changes nothing; every
//! hash chain and signed anchor still verifies; the subject-access export held every
//! personal field written, and holds none afterwards.

use std::path::Path;
use std::time::Duration;

use crm_proto::v1;
use crm_testkit::CrmServe;
use tonic::Code;

use crate::support::{Crm, id};

const GIVEN: &str = "Zephyrine";
const FAMILY: &str = "Quillfeather-Oduya";
const EMAIL: &str = "zephyrine.quill@example.org";
const PHONE: &str = "+351912345678";
const STREET: &str = "Rua das Glicinias 77";
const LEAD_GIVEN: &str = "Xanthippe";
const LEAD_EMAIL: &str = "xanthippe.marlowe@example.net";
const LEAD_PHONE: &str = "+351934567812";
const OTHER_FAMILY: &str = "Kettleby-Strand";

/// What must not survive the erasure anywhere.
const FORGOTTEN: [&str; 8] = [
    GIVEN, FAMILY, EMAIL, PHONE, STREET, LEAD_GIVEN, LEAD_EMAIL, LEAD_PHONE,
];

/// Writes the customer to forget (with a lead converted into them) and another one.
async fn populate(crm: &Crm, customer: &str, other: &str) -> u64 {
    let mut c = crm.client().await;
    c.register_customer(crm.auth(v1::RegisterCustomerRequest {
        customer_id: customer.into(),
        profile: Some(v1::Profile {
            given_name: GIVEN.into(),
            family_name: FAMILY.into(),
            emails: vec![EMAIL.into()],
            phones: vec![PHONE.into()],
            address: Some(v1::Address {
                line1: STREET.into(),
                city: "Porto".into(),
                postal_code: "4000-123".into(),
                country: "PT".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        consents: vec![v1::Consent {
            channel: v1::ConsentChannel::Email.into(),
            granted: true,
        }],
        consent_source: format!("newsletter form signed by {GIVEN}"),
        ..Default::default()
    }))
    .await
    .unwrap();
    c.log_interaction(crm.auth(v1::LogInteractionRequest {
        customer_id: customer.into(),
        interaction_id: id(),
        channel: v1::Channel::Phone.into(),
        direction: v1::Direction::Inbound.into(),
        subject: format!("{GIVEN} asked about delivery"),
        summary: format!("{GIVEN} {FAMILY} called from {PHONE}"),
        ..Default::default()
    }))
    .await
    .unwrap();
    c.place_order(crm.auth(v1::PlaceOrderRequest {
        customer_id: customer.into(),
        order_id: id(),
        sales_channel: "web".into(),
        currency: "EUR".into(),
        lines: vec![v1::OrderLine {
            sku: "kettle-1".into(),
            category: "kitchen".into(),
            quantity: 2,
            unit_price_minor: 2_500,
        }],
        ..Default::default()
    }))
    .await
    .unwrap();
    c.open_ticket(crm.auth(v1::OpenTicketRequest {
        customer_id: customer.into(),
        ticket_id: id(),
        channel: v1::Channel::Email.into(),
        category: "delivery".into(),
        priority: v1::TicketPriority::Normal.into(),
        subject: format!("Parcel for {FAMILY} at {STREET}"),
        ..Default::default()
    }))
    .await
    .unwrap();
    let lead = id();
    c.create_lead(crm.auth(v1::CreateLeadRequest {
        lead_id: lead.clone(),
        source: "web-form".into(),
        given_name: LEAD_GIVEN.into(),
        family_name: FAMILY.into(),
        email: LEAD_EMAIL.into(),
        phone: LEAD_PHONE.into(),
        interest: format!("{LEAD_GIVEN} wants a kettle"),
        ..Default::default()
    }))
    .await
    .unwrap();
    c.qualify_lead(crm.auth(v1::QualifyLeadRequest {
        lead_id: lead.clone(),
        note: format!("call {LEAD_PHONE} after six"),
        ..Default::default()
    }))
    .await
    .unwrap();
    c.convert_lead(crm.auth(v1::ConvertLeadRequest {
        lead_id: lead,
        into: Some(v1::convert_lead_request::Into::ExistingCustomerId(
            customer.into(),
        )),
        ..Default::default()
    }))
    .await
    .unwrap();
    c.register_customer(crm.auth(v1::RegisterCustomerRequest {
        customer_id: other.into(),
        profile: Some(v1::Profile {
            given_name: "Bartholomew".into(),
            family_name: OTHER_FAMILY.into(),
            emails: vec!["b.kettleby@example.com".into()],
            ..Default::default()
        }),
        ..Default::default()
    }))
    .await
    .unwrap()
    .into_inner()
    .position
}

async fn view(crm: &Crm, customer: &str, min_position: u64) -> v1::Customer360 {
    let mut q = v1::query_service_client::QueryServiceClient::new(crm.channel().await);
    q.get_customer360(crm.auth(v1::GetCustomer360Request {
        customer_id: customer.into(),
        consistency: Some(v1::Consistency { min_position }),
        ..Default::default()
    }))
    .await
    .unwrap()
    .into_inner()
}

async fn timeline(crm: &Crm, customer: &str, min_position: u64) -> Vec<String> {
    let mut q = v1::query_service_client::QueryServiceClient::new(crm.channel().await);
    q.get_timeline(crm.auth(v1::GetTimelineRequest {
        customer_id: customer.into(),
        page_size: 1000,
        consistency: Some(v1::Consistency { min_position }),
        ..Default::default()
    }))
    .await
    .unwrap()
    .into_inner()
    .entries
    .into_iter()
    .map(|e| format!("{} {}", e.event_type, e.summary))
    .collect()
}

/// Every file under `dir` holding one of `needles`: (file, needle).
fn files_holding(dir: &Path, needles: &[&str]) -> Vec<(String, String)> {
    let mut hits = Vec::new();
    for file in crm_testkit::files_under(dir) {
        for n in needles {
            if crm_testkit::holds(&file, n.as_bytes()) {
                hits.push((file.display().to_string(), (*n).to_owned()));
            }
        }
    }
    hits
}

fn leaks(text: &str) -> Vec<&'static str> {
    FORGOTTEN
        .iter()
        .copied()
        .filter(|n| text.contains(n))
        .collect()
}

/// `crm-audit verify` of the whole stream (through its library) as the reader, with the
/// notary's public key: every hash chain and every signed anchor.
async fn verify_log(crm: &Crm) -> crm_audit::verify::Report {
    let data = crm.dir.path().join("data");
    let source = crm_audit::connect::Source::connect(&crm_audit::connect::Target {
        nats_url: crm.embedded_nats_url(),
        reader_seed: Some(data.join("nats/users/crm-reader.nk")),
        stream: "CRM_EVENTS".into(),
        prefix: "crm.v1".into(),
        master_key_file: None,
    })
    .await
    .unwrap();
    let public_key = std::fs::read_to_string(data.join("notary/notary.key.pub")).unwrap();
    let trust = crm_audit::verify::Trust {
        keys: vec![crm_events::anchor::parse_public_key(&public_key).unwrap()],
        kept: Vec::new(),
    };
    crm_audit::verify::verify_stream(&source, None, &trust, &mut |_, _| {})
        .await
        .unwrap()
}

/// The notary signs an anchor after every message: the erasure must leave each valid.
const ARGS: [&str; 3] = ["--dev", "--notary-every-messages", "1"];

#[tokio::test]
async fn a_forgotten_customer_leaves_figures_and_no_personal_data_anywhere() {
    let mut crm = Crm::start(&ARGS, tempfile::tempdir().unwrap());
    let (customer, other) = (id(), id());
    let written = populate(&crm, &customer, &other).await;
    let before = view(&crm, &customer, written).await;
    assert_eq!(before.profile.as_ref().unwrap().given_name, GIVEN);
    let events_before = timeline(&crm, &customer, written).await;
    assert!(
        events_before.iter().any(|e| e.contains(GIVEN)),
        "{events_before:?}"
    );

    // Subject access: every personal field ever recorded, the lead's included.
    let mut audit = v1::audit_service_client::AuditServiceClient::new(crm.channel().await);
    let export = |audit: &mut v1::audit_service_client::AuditServiceClient<_>| {
        let request = crm.auth(v1::ExportSubjectDataRequest {
            customer_id: customer.clone(),
        });
        let mut audit = audit.clone();
        async move {
            audit
                .export_subject_data(request)
                .await
                .unwrap()
                .into_inner()
        }
    };
    let access = export(&mut audit).await;
    let document: serde_json::Value = serde_json::from_str(&access.json).unwrap();
    assert_eq!(document["format"], "crm-subject-access/1");
    let values: Vec<&str> = document["personal_data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["value"].as_str().unwrap())
        .collect();
    let written = [
        GIVEN.to_owned(),
        FAMILY.to_owned(),
        EMAIL.to_owned(),
        PHONE.to_owned(),
        STREET.to_owned(),
        "Porto".to_owned(),
        "4000-123".to_owned(),
        format!("newsletter form signed by {GIVEN}"),
        format!("{GIVEN} asked about delivery"),
        format!("{GIVEN} {FAMILY} called from {PHONE}"),
        format!("Parcel for {FAMILY} at {STREET}"),
        LEAD_GIVEN.to_owned(),
        LEAD_EMAIL.to_owned(),
        LEAD_PHONE.to_owned(),
        format!("{LEAD_GIVEN} wants a kettle"),
        format!("call {LEAD_PHONE} after six"),
    ];
    for w in &written {
        assert!(
            values.contains(&w.as_str()),
            "{w:?} missing from {values:?}"
        );
    }
    assert_eq!(access.personal_fields as usize, values.len());
    assert!(!access.forgotten);

    // Forget: admin only (the matrix test covers the others); idempotent.
    let mut c = crm.client().await;
    let forget = || v1::ForgetCustomerRequest {
        customer_id: customer.clone(),
        reason: "erasure request DSR-2026-0412, identity verified".into(),
        legal_basis: "gdpr-art-17-1-a".into(),
        ..Default::default()
    };
    let reply = c
        .forget_customer(crm.auth(forget()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.events_appended, 1);
    let again = c
        .forget_customer(crm.auth(forget()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.events_appended, 0, "forgetting twice records nothing");

    // Every command on the customer is refused, naming the erasure.
    let refused = c
        .tag_customer(crm.auth(v1::TagCustomerRequest {
            customer_id: customer.clone(),
            tag: "vip".into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused.message().contains("forgotten"),
        "{}",
        refused.message()
    );

    // The figures stay; the person is gone, for an admin too.
    let after = view(&crm, &customer, reply.position).await;
    let erasure = after.forgotten.as_ref().expect("marked forgotten");
    assert_eq!(erasure.legal_basis, "gdpr-art-17-1-a");
    assert_eq!(after.profile, Some(v1::Profile::default()));
    assert_eq!(
        after.commerce.as_ref().map(|c| c.orders),
        before.commerce.as_ref().map(|c| c.orders)
    );
    assert_eq!(after.commerce, before.commerce);
    let rendered = format!("{after:?}");
    assert!(
        leaks(&rendered).is_empty(),
        "{:?} in {rendered}",
        leaks(&rendered)
    );
    let events_after = timeline(&crm, &customer, reply.position).await;
    assert_eq!(events_after.len(), events_before.len() + 1);
    for e in &events_after {
        assert!(leaks(e).is_empty(), "{e}");
    }
    // Nothing personal is left to give; the figures' events are all still there.
    let access = export(&mut audit).await;
    assert!(access.forgotten && access.personal_fields == 0);
    assert!(leaks(&access.json).is_empty(), "{}", access.json);
    // The auditors' replay: every event still there, none of the personal data.
    let history = audit
        .get_customer_history(crm.auth(v1::GetCustomerHistoryRequest {
            customer_id: customer.clone(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(
        history
            .entries
            .iter()
            .any(|e| e.event_type == "customer.forgotten")
    );
    for e in &history.entries {
        assert!(leaks(&e.event).is_empty(), "{}", e.event);
    }
    // Another customer is untouched.
    let untouched = view(&crm, &other, reply.position).await;
    assert_eq!(
        untouched.profile.as_ref().unwrap().family_name,
        OTHER_FAMILY
    );
    // The log did not change: every chain and every signed anchor verifies.
    let report = verify_log(&crm).await;
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert!(report.counts.anchors > 0, "{:?}", report.counts);
    assert_eq!(report.counts.anchors_verified, report.counts.anchors);

    // No file of the log or the key store holds the person. The read models' sled files
    // may keep old pages until they are compacted: removed and rebuilt from the log.
    crm.process.stop(Duration::from_secs(20)).await.unwrap();
    let data = crm.dir.path().join("data");
    let (in_read_models, outside_read_models): (Vec<_>, Vec<_>) = files_holding(&data, &FORGOTTEN)
        .into_iter()
        .partition(|(f, _)| f.contains("read-models"));
    // What sled's files still held before compaction (for the README's account).
    eprintln!(
        "before compaction, the read models' files held {} of the forgotten values: {in_read_models:?}",
        in_read_models.len()
    );
    assert!(outside_read_models.is_empty(), "{outside_read_models:?}");
    std::fs::remove_dir_all(data.join("read-models")).unwrap();
    crm.process = CrmServe::builder(env!("CARGO_BIN_EXE_crm"), crm.dir.path())
        .args(ARGS)
        .start()
        .expect("restart crm");
    crm.addr = crm.process.url();
    crm.token = crm.process.dev_token().map(str::to_owned);
    let rebuilt = view(&crm, &customer, reply.position).await;
    assert_eq!(
        v1::Customer360 {
            read: None,
            ..rebuilt.clone()
        },
        v1::Customer360 {
            read: None,
            ..after.clone()
        },
        "a rebuild from the log gives the same view"
    );
    assert_eq!(
        timeline(&crm, &customer, reply.position).await,
        events_after
    );
    let untouched = view(&crm, &other, reply.position).await;
    assert_eq!(
        untouched.profile.as_ref().unwrap().family_name,
        OTHER_FAMILY
    );
    crm.process.stop(Duration::from_secs(20)).await.unwrap();
    let anywhere = files_holding(&data, &FORGOTTEN);
    assert!(anywhere.is_empty(), "{anywhere:?}");
    assert!(
        !files_holding(&data, &[OTHER_FAMILY]).is_empty(),
        "the search finds what is there"
    );
}
