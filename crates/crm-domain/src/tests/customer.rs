//! Customer identity commands: RegisterCustomer, UpdateProfile, SetConsent, TagCustomer,
//! UntagCustomer, LinkCustomers, LogInteraction.

use super::*;
use crate::testing::Scenario;
use crate::{
    Acquisition, Address, CallDetails, CallOutcome, ConsentChannel, Direction, InteractionLogged,
    LogInteraction, ProfilePatch, RegisterCustomer, RelationshipKind, TicketStatus,
};

fn register(id: CustomerId) -> RegisterCustomer {
    RegisterCustomer {
        customer_id: id,
        profile: ada(),
        acquisition: None,
        owner: None,
        team: None,
        consents: vec![],
        consent_source: String::new(),
        tags: vec![],
    }
}

fn address() -> Address {
    Address {
        line1: "1 Main St".into(),
        line2: String::new(),
        city: "Berlin".into(),
        region: String::new(),
        postal_code: "10115".into(),
        country: "DE".into(),
    }
}

fn emails(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("a{i}@example.com")).collect()
}

fn phones(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("+49151000000{i:02}")).collect()
}

// ---------------------------------------------------------------- RegisterCustomer

#[test]
fn register_customer_emits_registered_with_normalized_profile() {
    let command = RegisterCustomer {
        profile: Profile {
            given_name: "  Ada ".into(),
            family_name: " Lovelace".into(),
            emails: vec![" Ada@Example.COM ".into()],
            phones: vec![" +4915112345678 ".into()],
            address: Some(address()),
            language: Some("pt-BR".into()),
            country: Some("BR".into()),
            external_ids: vec![
                ("shop".into(), "42".into()),
                ("crm-legacy".into(), "7".into()),
            ],
        },
        acquisition: Some(Acquisition {
            source: "google".into(),
            medium: "cpc".into(),
            campaign: Some(K1),
        }),
        owner: Some("alice".into()),
        team: Some("emea".into()),
        ..register(C1)
    };
    let world = Scenario::new()
        .when(Command::RegisterCustomer(command))
        .then_events([cev(
            C1,
            CustomerEvent::Registered(CustomerRegistered {
                profile: Profile {
                    given_name: "Ada".into(),
                    family_name: "Lovelace".into(),
                    emails: vec!["ada@example.com".into()],
                    phones: vec!["+4915112345678".into()],
                    address: Some(address()),
                    language: Some("pt-BR".into()),
                    country: Some("BR".into()),
                    external_ids: vec![
                        ("crm-legacy".into(), "7".into()),
                        ("shop".into(), "42".into()),
                    ],
                },
                acquisition: Some(Acquisition {
                    source: "google".into(),
                    medium: "cpc".into(),
                    campaign: Some(K1),
                }),
                owner: Some("alice".into()),
                team: Some("emea".into()),
                lead: None,
            }),
        )]);
    let c = &world.customers[&C1];
    assert_eq!(c.id, C1);
    assert_eq!(c.owner.as_deref(), Some("alice"));
    assert_eq!(c.team.as_deref(), Some("emea"));
    assert_eq!(c.profile.emails, ["ada@example.com"]);
    assert!(c.tags.is_empty() && c.consent.is_empty() && c.orders.is_empty());
}

#[test]
fn register_customer_with_consents_and_tags_emits_consents_then_deduplicated_lowercased_tags() {
    let command = RegisterCustomer {
        consents: vec![(ConsentChannel::Email, true), (ConsentChannel::Sms, false)],
        consent_source: "signup-form".into(),
        tags: vec!["VIP".into(), " vip ".into(), "Gold".into(), "vip".into()],
        ..register(C1)
    };
    let world = Scenario::new()
        .when(Command::RegisterCustomer(command))
        .then_events([
            registered(C1),
            cev(
                C1,
                CustomerEvent::ConsentChanged {
                    channel: ConsentChannel::Email,
                    granted: true,
                    source: "signup-form".into(),
                },
            ),
            cev(
                C1,
                CustomerEvent::ConsentChanged {
                    channel: ConsentChannel::Sms,
                    granted: false,
                    source: "signup-form".into(),
                },
            ),
            cev(C1, CustomerEvent::Tagged { tag: "vip".into() }),
            cev(C1, CustomerEvent::Tagged { tag: "gold".into() }),
        ]);
    let c = &world.customers[&C1];
    assert_eq!(c.consent.get(&ConsentChannel::Email), Some(&true));
    assert_eq!(c.consent.get(&ConsentChannel::Sms), Some(&false));
    assert_eq!(c.consent.get(&ConsentChannel::Phone), None);
    assert_eq!(c.tags.iter().collect::<Vec<_>>(), ["gold", "vip"]);
}

#[test]
fn register_customer_with_phone_only_is_identifiable() {
    let profile = Profile {
        phones: vec!["+4915112345678".into()],
        ..Profile::default()
    };
    Scenario::new()
        .when(Command::RegisterCustomer(RegisterCustomer {
            profile: profile.clone(),
            ..register(C1)
        }))
        .then_events([cev(C1, registered_event(profile))]);
}

#[test]
fn register_customer_rejects_an_existing_id() {
    Scenario::new()
        .given([registered(C1)])
        .when(Command::RegisterCustomer(register(C1)))
        .then_rejects(
            RejectionKind::AlreadyExists,
            "customer_id",
            "already_exists",
        );
}

#[test]
fn register_customer_validates_before_looking_for_an_existing_customer() {
    Scenario::new()
        .given([registered(C1)])
        .when(Command::RegisterCustomer(RegisterCustomer {
            profile: Profile::default(),
            ..register(C1)
        }))
        .then_rejects(RejectionKind::Invalid, "profile", "identifiable");
}

#[test]
fn register_customer_reports_every_violation_at_once() {
    let rejection = Scenario::new()
        .when(Command::RegisterCustomer(RegisterCustomer {
            profile: Profile {
                emails: vec!["nope".into()],
                country: Some("de".into()),
                ..ada()
            },
            owner: Some(String::new()),
            tags: vec!["bad tag".into()],
            ..register(C1)
        }))
        .then_rejects(RejectionKind::Invalid, "emails[0]", "email");
    let fields: Vec<&str> = rejection
        .violations
        .iter()
        .map(|v| v.field.as_str())
        .collect();
    assert_eq!(fields, ["emails[0]", "country", "owner", "tags[0]"]);
    // A rejected email or phone is personal data: the message names the field, not the value.
    assert!(
        !rejection.to_string().contains("nope"),
        "the rejection echoes the email: {rejection}"
    );
}

#[test]
fn register_customer_rejects_invalid_fields() {
    let with = |r: RegisterCustomer| Command::RegisterCustomer(r);
    let profile = |p: Profile| {
        with(RegisterCustomer {
            profile: p,
            ..register(C1)
        })
    };
    let addr = |a: Address| {
        profile(Profile {
            address: Some(a),
            ..ada()
        })
    };
    let ids = |ids: &[(&str, &str)]| {
        profile(Profile {
            external_ids: ids
                .iter()
                .map(|(s, i)| ((*s).into(), (*i).into()))
                .collect(),
            ..ada()
        })
    };
    let acquisition = |source: String, medium: String| {
        with(RegisterCustomer {
            acquisition: Some(Acquisition {
                source,
                medium,
                campaign: None,
            }),
            ..register(C1)
        })
    };
    let tags = |tags: Vec<String>| {
        with(RegisterCustomer {
            tags,
            ..register(C1)
        })
    };
    let many_ids: Vec<(String, String)> = (0..21).map(|i| (format!("s{i}"), "1".into())).collect();
    assert_rejections(
        &[],
        [
            invalid(
                profile(Profile {
                    given_name: long(201),
                    ..ada()
                }),
                "given_name",
                "max_length",
            ),
            invalid(
                profile(Profile {
                    family_name: ctrl(),
                    ..ada()
                }),
                "family_name",
                "no_control_chars",
            ),
            invalid(profile(Profile::default()), "profile", "identifiable"),
            invalid(
                profile(Profile {
                    given_name: "  ".into(),
                    family_name: " ".into(),
                    ..Profile::default()
                }),
                "profile",
                "identifiable",
            ),
            invalid(
                profile(Profile {
                    emails: emails(21),
                    ..ada()
                }),
                "emails",
                "max_items",
            ),
            invalid(
                profile(Profile {
                    emails: vec!["ada@example.com".into(), "not-an-email".into()],
                    ..ada()
                }),
                "emails[1]",
                "email",
            ),
            invalid(
                profile(Profile {
                    emails: vec!["a@b".into()],
                    ..ada()
                }),
                "emails[0]",
                "email",
            ),
            invalid(
                profile(Profile {
                    phones: phones(21),
                    ..ada()
                }),
                "phones",
                "max_items",
            ),
            invalid(
                profile(Profile {
                    phones: vec!["12345678".into()],
                    ..ada()
                }),
                "phones[0]",
                "e164",
            ),
            invalid(
                profile(Profile {
                    phones: vec!["+1234".into()],
                    ..ada()
                }),
                "phones[0]",
                "e164",
            ),
            invalid(
                addr(Address {
                    line1: " ".into(),
                    ..address()
                }),
                "address.line1",
                "required",
            ),
            invalid(
                addr(Address {
                    line2: long(201),
                    ..address()
                }),
                "address.line2",
                "max_length",
            ),
            invalid(
                addr(Address {
                    city: String::new(),
                    ..address()
                }),
                "address.city",
                "required",
            ),
            invalid(
                addr(Address {
                    region: ctrl(),
                    ..address()
                }),
                "address.region",
                "no_control_chars",
            ),
            invalid(
                addr(Address {
                    postal_code: long(101),
                    ..address()
                }),
                "address.postal_code",
                "max_length",
            ),
            invalid(
                addr(Address {
                    country: "de".into(),
                    ..address()
                }),
                "address.country",
                "iso3166",
            ),
            invalid(
                profile(Profile {
                    language: Some("english".into()),
                    ..ada()
                }),
                "language",
                "bcp47",
            ),
            invalid(
                profile(Profile {
                    language: Some("pt-br".into()),
                    ..ada()
                }),
                "language",
                "bcp47",
            ),
            invalid(
                profile(Profile {
                    country: Some("Germany".into()),
                    ..ada()
                }),
                "country",
                "iso3166",
            ),
            invalid(
                profile(Profile {
                    external_ids: many_ids,
                    ..ada()
                }),
                "external_ids",
                "max_items",
            ),
            invalid(ids(&[("Shop", "1")]), "external_ids[0].system", "format"),
            invalid(ids(&[("shop", " ")]), "external_ids[0].id", "required"),
            invalid(
                ids(&[("shop", "1"), ("crm", "2"), ("shop", "3")]),
                "external_ids",
                "unique",
            ),
            invalid(
                with(RegisterCustomer {
                    owner: Some(String::new()),
                    ..register(C1)
                }),
                "owner",
                "required",
            ),
            invalid(
                with(RegisterCustomer {
                    team: Some(long(101)),
                    ..register(C1)
                }),
                "team",
                "max_length",
            ),
            invalid(
                acquisition(long(101), "cpc".into()),
                "acquisition.source",
                "max_length",
            ),
            invalid(
                acquisition("google".into(), ctrl()),
                "acquisition.medium",
                "no_control_chars",
            ),
            invalid(
                tags((0..21).map(|i| format!("t{i}")).collect()),
                "tags",
                "max_items",
            ),
            invalid(
                tags(vec!["vip".into(), "bad tag".into()]),
                "tags[1]",
                "format",
            ),
            invalid(tags(vec![" ".into()]), "tags[0]", "required"),
            invalid(tags(vec![long(65)]), "tags[0]", "format"),
            invalid(
                with(RegisterCustomer {
                    consents: vec![(ConsentChannel::Email, true)],
                    ..register(C1)
                }),
                "consent_source",
                "required",
            ),
            invalid(
                with(RegisterCustomer {
                    consents: vec![
                        (ConsentChannel::Email, true),
                        (ConsentChannel::Email, false),
                    ],
                    consent_source: "form".into(),
                    ..register(C1)
                }),
                "consents",
                "unique",
            ),
        ],
    );
}

#[test]
fn register_customer_accepts_limits() {
    Scenario::new()
        .when(Command::RegisterCustomer(RegisterCustomer {
            profile: Profile {
                given_name: long(200),
                emails: emails(20),
                phones: phones(20),
                ..ada()
            },
            tags: (0..20).map(|i| format!("t{i}")).collect(),
            ..register(C1)
        }))
        .accepted();
}

// ---------------------------------------------------------------- UpdateProfile

fn update(patch: ProfilePatch) -> Command {
    Command::UpdateProfile {
        customer_id: C1,
        patch,
    }
}

#[test]
fn update_profile_emits_only_the_fields_that_change() {
    let world = Scenario::new()
        .given([registered(C1)])
        .when(update(ProfilePatch {
            given_name: Some("Ada".into()),
            family_name: Some("Byron".into()),
            emails: Some(vec![" ADA@Byron.org ".into()]),
            phones: Some(vec![]),
            address: Some(None),
            ..ProfilePatch::default()
        }))
        .then_events([cev(
            C1,
            CustomerEvent::ProfileUpdated(ProfilePatch {
                family_name: Some("Byron".into()),
                emails: Some(vec!["ada@byron.org".into()]),
                ..ProfilePatch::default()
            }),
        )]);
    let p = &world.customers[&C1].profile;
    assert_eq!(
        (p.given_name.as_str(), p.family_name.as_str()),
        ("Ada", "Byron")
    );
    assert_eq!(p.emails, ["ada@byron.org"]);
}

#[test]
fn update_profile_sets_then_removes_optional_fields() {
    let set = ProfilePatch {
        address: Some(Some(address())),
        language: Some(Some("en".into())),
        country: Some(Some("GB".into())),
        external_ids: Some(vec![
            ("shop".into(), "42".into()),
            ("crm".into(), "7".into()),
        ]),
        owner: Some(Some("alice".into())),
        team: Some(Some("emea".into())),
        ..ProfilePatch::default()
    };
    let set_event = cev(
        C1,
        CustomerEvent::ProfileUpdated(ProfilePatch {
            external_ids: Some(vec![
                ("crm".into(), "7".into()),
                ("shop".into(), "42".into()),
            ]),
            ..set.clone()
        }),
    );
    let world = Scenario::new()
        .given([registered(C1)])
        .when(update(set))
        .then_events([set_event.clone()]);
    let c = &world.customers[&C1];
    assert_eq!(c.profile.address, Some(address()));
    assert_eq!(c.profile.language.as_deref(), Some("en"));
    assert_eq!(c.profile.country.as_deref(), Some("GB"));
    assert_eq!(
        c.profile.external_ids[0],
        ("crm".to_owned(), "7".to_owned())
    );
    assert_eq!(
        (c.owner.as_deref(), c.team.as_deref()),
        (Some("alice"), Some("emea"))
    );

    let remove = ProfilePatch {
        address: Some(None),
        language: Some(None),
        country: Some(None),
        external_ids: Some(vec![]),
        owner: Some(None),
        team: Some(None),
        ..ProfilePatch::default()
    };
    let world = Scenario::new()
        .given([registered(C1), set_event])
        .when(update(remove.clone()))
        .then_events([cev(C1, CustomerEvent::ProfileUpdated(remove))]);
    let c = &world.customers[&C1];
    assert_eq!(c.profile.address, None);
    assert_eq!(c.profile.language, None);
    assert_eq!(c.profile.country, None);
    assert!(c.profile.external_ids.is_empty());
    assert_eq!((c.owner.as_deref(), c.team.as_deref()), (None, None));
}

#[test]
fn update_profile_without_effective_change_is_a_noop() {
    Scenario::new()
        .given([registered(C1)])
        .when(update(ProfilePatch {
            given_name: Some("Ada".into()),
            emails: Some(vec!["ADA@example.com ".into()]),
            address: Some(None),
            owner: Some(None),
            ..ProfilePatch::default()
        }))
        .then_events([]);
    Scenario::new()
        .given([registered(C1)])
        .when(update(ProfilePatch::default()))
        .then_events([]);
}

#[test]
fn update_profile_may_clear_some_identifiers() {
    Scenario::new()
        .given([registered(C1)])
        .when(update(ProfilePatch {
            emails: Some(vec![]),
            family_name: Some(String::new()),
            ..ProfilePatch::default()
        }))
        .then_events([cev(
            C1,
            CustomerEvent::ProfileUpdated(ProfilePatch {
                emails: Some(vec![]),
                family_name: Some(String::new()),
                ..ProfilePatch::default()
            }),
        )]);
}

#[test]
fn update_profile_rejects_leaving_the_customer_unidentifiable() {
    Scenario::new()
        .given([registered(C1)])
        .when(update(ProfilePatch {
            given_name: Some(String::new()),
            family_name: Some(String::new()),
            emails: Some(vec![]),
            ..ProfilePatch::default()
        }))
        .then_rejects(
            RejectionKind::FailedPrecondition,
            "given_name",
            "identifiable",
        );
}

#[test]
fn update_profile_names_each_field_whose_clearing_leaves_the_customer_unidentifiable() {
    // The registered customer has a given name and an email, and no family name: setting
    // the family name to empty changes nothing, so only the two cleared fields are named.
    let profile = Profile {
        given_name: "Ada".into(),
        emails: vec!["ada@example.com".into()],
        ..Profile::default()
    };
    let r = Scenario::new()
        .given([cev(C1, registered_event(profile))])
        .when(update(ProfilePatch {
            given_name: Some(String::new()),
            family_name: Some(String::new()),
            emails: Some(vec![]),
            ..ProfilePatch::default()
        }))
        .then_rejects(RejectionKind::FailedPrecondition, "emails", "identifiable");
    let fields: Vec<&str> = r.violations.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(fields, ["given_name", "emails"], "{r}");
}

#[test]
fn update_profile_rejects_an_unknown_customer() {
    Scenario::new()
        .given([registered(C2)])
        .when(update(ProfilePatch {
            given_name: Some("Eve".into()),
            ..ProfilePatch::default()
        }))
        .then_rejects(RejectionKind::NotFound, "customer_id", "not_found");
}

#[test]
fn update_profile_rejects_invalid_fields() {
    let p = |patch: ProfilePatch| update(patch);
    let d = ProfilePatch::default;
    assert_rejections(
        &[registered(C1)],
        [
            invalid(
                p(ProfilePatch {
                    given_name: Some(long(201)),
                    ..d()
                }),
                "given_name",
                "max_length",
            ),
            invalid(
                p(ProfilePatch {
                    family_name: Some(ctrl()),
                    ..d()
                }),
                "family_name",
                "no_control_chars",
            ),
            invalid(
                p(ProfilePatch {
                    emails: Some(emails(21)),
                    ..d()
                }),
                "emails",
                "max_items",
            ),
            invalid(
                p(ProfilePatch {
                    emails: Some(vec!["nope".into()]),
                    ..d()
                }),
                "emails[0]",
                "email",
            ),
            invalid(
                p(ProfilePatch {
                    phones: Some(phones(21)),
                    ..d()
                }),
                "phones",
                "max_items",
            ),
            invalid(
                p(ProfilePatch {
                    phones: Some(vec!["+49".into()]),
                    ..d()
                }),
                "phones[0]",
                "e164",
            ),
            invalid(
                p(ProfilePatch {
                    address: Some(Some(Address {
                        city: String::new(),
                        ..address()
                    })),
                    ..d()
                }),
                "address.city",
                "required",
            ),
            invalid(
                p(ProfilePatch {
                    language: Some(Some("EN".into())),
                    ..d()
                }),
                "language",
                "bcp47",
            ),
            invalid(
                p(ProfilePatch {
                    country: Some(Some("gb".into())),
                    ..d()
                }),
                "country",
                "iso3166",
            ),
            invalid(
                p(ProfilePatch {
                    external_ids: Some(vec![
                        ("shop".into(), "1".into()),
                        ("shop".into(), "2".into()),
                    ]),
                    ..d()
                }),
                "external_ids",
                "unique",
            ),
            invalid(
                p(ProfilePatch {
                    external_ids: Some(vec![(String::new(), "1".into())]),
                    ..d()
                }),
                "external_ids[0].system",
                "required",
            ),
            invalid(
                p(ProfilePatch {
                    owner: Some(Some(String::new())),
                    ..d()
                }),
                "owner",
                "required",
            ),
            invalid(
                p(ProfilePatch {
                    team: Some(Some(long(101))),
                    ..d()
                }),
                "team",
                "max_length",
            ),
        ],
    );
}

#[test]
fn update_profile_normalizes_names_and_phones_like_register() {
    // RegisterCustomer stores " Ada " as "Ada" and accepts " +4915112345678 " (trimmed);
    // UpdateProfile stores the untrimmed name and rejects the untrimmed phone.
    Scenario::new()
        .given([registered(C1)])
        .when(update(ProfilePatch {
            given_name: Some(" Ada ".into()),
            ..ProfilePatch::default()
        }))
        .then_events([]);
    Scenario::new()
        .given([registered(C1)])
        .when(update(ProfilePatch {
            phones: Some(vec![" +4915112345678 ".into()]),
            ..ProfilePatch::default()
        }))
        .then_events([cev(
            C1,
            CustomerEvent::ProfileUpdated(ProfilePatch {
                phones: Some(vec!["+4915112345678".into()]),
                ..ProfilePatch::default()
            }),
        )]);
}

// ---------------------------------------------------------------- SetConsent

fn consent(granted: bool, source: &str) -> Command {
    Command::SetConsent {
        customer_id: C1,
        channel: ConsentChannel::Email,
        granted,
        source: source.into(),
    }
}

fn consent_changed(granted: bool, source: &str) -> DomainEvent {
    cev(
        C1,
        CustomerEvent::ConsentChanged {
            channel: ConsentChannel::Email,
            granted,
            source: source.into(),
        },
    )
}

#[test]
fn set_consent_grants_then_withdraws() {
    let world = Scenario::new()
        .given([registered(C1)])
        .when(consent(true, "preference-center"))
        .then_events([consent_changed(true, "preference-center")]);
    assert!(world.customers[&C1].consent[&ConsentChannel::Email]);
    let world = Scenario::new()
        .given([registered(C1), consent_changed(true, "form")])
        .when(consent(false, "support-call"))
        .then_events([consent_changed(false, "support-call")]);
    assert!(!world.customers[&C1].consent[&ConsentChannel::Email]);
}

#[test]
fn set_consent_to_its_current_value_is_a_noop() {
    Scenario::new()
        .given([registered(C1), consent_changed(true, "form")])
        .when(consent(true, "another-form"))
        .then_events([]);
    Scenario::new()
        .given([registered(C1), consent_changed(false, "form")])
        .when(consent(false, "another-form"))
        .then_events([]);
}

#[test]
fn set_consent_withdrawal_on_a_channel_never_set_is_recorded() {
    Scenario::new()
        .given([registered(C1)])
        .when(consent(false, "form"))
        .then_events([consent_changed(false, "form")]);
}

#[test]
fn set_consent_rejections() {
    assert_rejections(
        &[registered(C1)],
        [
            invalid(consent(true, " "), "source", "required"),
            invalid(consent(true, &long(101)), "source", "max_length"),
            (
                Command::SetConsent {
                    customer_id: C2,
                    channel: ConsentChannel::Sms,
                    granted: true,
                    source: "form".into(),
                },
                RejectionKind::NotFound,
                "customer_id",
                "not_found",
            ),
        ],
    );
}

// ---------------------------------------------------------------- TagCustomer / UntagCustomer

fn tag(t: &str) -> Command {
    Command::TagCustomer {
        customer_id: C1,
        tag: t.into(),
    }
}

fn untag(t: &str) -> Command {
    Command::UntagCustomer {
        customer_id: C1,
        tag: t.into(),
    }
}

fn tagged(t: &str) -> DomainEvent {
    cev(C1, CustomerEvent::Tagged { tag: t.into() })
}

#[test]
fn tag_customer_normalizes_the_tag() {
    let world = Scenario::new()
        .given([registered(C1)])
        .when(tag("  VIP-2026 "))
        .then_events([tagged("vip-2026")]);
    assert!(world.customers[&C1].tags.contains("vip-2026"));
}

#[test]
fn tag_customer_with_an_existing_tag_is_a_noop() {
    Scenario::new()
        .given([registered(C1), tagged("vip")])
        .when(tag("Vip"))
        .then_events([]);
}

#[test]
fn untag_customer_removes_a_tag_it_has() {
    let world = Scenario::new()
        .given([registered(C1), tagged("vip"), tagged("gold")])
        .when(untag(" VIP"))
        .then_events([cev(C1, CustomerEvent::Untagged { tag: "vip".into() })]);
    assert_eq!(
        world.customers[&C1].tags.iter().collect::<Vec<_>>(),
        ["gold"]
    );
}

#[test]
fn untag_customer_without_the_tag_is_a_noop() {
    Scenario::new()
        .given([registered(C1), tagged("gold")])
        .when(untag("vip"))
        .then_events([]);
}

#[test]
fn tag_customer_rejects_a_201st_tag_but_allows_noops_and_untagging() {
    let given: Vec<DomainEvent> = std::iter::once(registered(C1))
        .chain((0..200).map(|i| tagged(&format!("tag-{i}"))))
        .collect();
    Scenario::new()
        .given(given.clone())
        .when(tag("one-more"))
        .then_rejects(RejectionKind::FailedPrecondition, "tag", "max_items");
    Scenario::new()
        .given(given.clone())
        .when(tag("tag-7"))
        .then_events([]);
    Scenario::new()
        .given(given)
        .when(untag("tag-7"))
        .then_events([cev(
            C1,
            CustomerEvent::Untagged {
                tag: "tag-7".into(),
            },
        )]);
}

#[test]
fn tag_and_untag_rejections() {
    let mut cases = Vec::new();
    for make in [tag, untag] {
        cases.extend([
            invalid(make(" "), "tag", "required"),
            invalid(make("bad tag"), "tag", "format"),
            invalid(make("naïve"), "tag", "format"),
            invalid(make(&long(65)), "tag", "format"),
        ]);
    }
    for command in [
        Command::TagCustomer {
            customer_id: C2,
            tag: "vip".into(),
        },
        Command::UntagCustomer {
            customer_id: C2,
            tag: "vip".into(),
        },
    ] {
        cases.push((command, RejectionKind::NotFound, "customer_id", "not_found"));
    }
    assert_rejections(&[registered(C1)], cases);
}

// ---------------------------------------------------------------- LinkCustomers

fn link(customer_id: CustomerId, other: CustomerId, kind: RelationshipKind) -> Command {
    Command::LinkCustomers {
        customer_id,
        other,
        kind,
    }
}

fn linked(c: CustomerId, other: CustomerId, kind: RelationshipKind) -> DomainEvent {
    cev(c, CustomerEvent::RelationshipLinked { other, kind })
}

#[test]
fn link_customers_records_the_relationship_on_both_with_the_inverse_kind() {
    use RelationshipKind::{EmployedBy, Employs, Household, LinkedAccount, Referee, Referrer};
    for (kind, inverse) in [
        (Household, Household),
        (Referrer, Referee),
        (Referee, Referrer),
        (EmployedBy, Employs),
        (Employs, EmployedBy),
        (LinkedAccount, LinkedAccount),
    ] {
        let world = Scenario::new()
            .given([registered(C1), registered(C2)])
            .when(link(C1, C2, kind))
            .then_events([linked(C1, C2, kind), linked(C2, C1, inverse)]);
        assert!(world.customers[&C1].relationships.contains(&(C2, kind)));
        assert!(world.customers[&C2].relationships.contains(&(C1, inverse)));
    }
}

#[test]
fn link_customers_again_with_the_same_kind_is_a_noop() {
    let history = [
        registered(C1),
        registered(C2),
        linked(C1, C2, RelationshipKind::Referrer),
        linked(C2, C1, RelationshipKind::Referee),
    ];
    Scenario::new()
        .given(history.clone())
        .when(link(C1, C2, RelationshipKind::Referrer))
        .then_events([]);
    // ... from either side.
    Scenario::new()
        .given(history.clone())
        .when(link(C2, C1, RelationshipKind::Referee))
        .then_events([]);
    // A different kind is another relationship.
    Scenario::new()
        .given(history)
        .when(link(C1, C2, RelationshipKind::Household))
        .then_events([
            linked(C1, C2, RelationshipKind::Household),
            linked(C2, C1, RelationshipKind::Household),
        ]);
}

#[test]
fn link_customers_rejections() {
    assert_rejections(
        &[registered(C1), registered(C2)],
        [
            invalid(
                link(C1, C1, RelationshipKind::Household),
                "other",
                "distinct",
            ),
            invalid(
                link(C3, C3, RelationshipKind::Household),
                "other",
                "distinct",
            ),
            (
                link(C3, C1, RelationshipKind::Household),
                RejectionKind::NotFound,
                "customer_id",
                "not_found",
            ),
            (
                link(C1, C3, RelationshipKind::Household),
                RejectionKind::NotFound,
                "other",
                "not_found",
            ),
        ],
    );
}

#[test]
fn link_customers_rejects_contradictory_kinds() {
    // C1 referred C2; "C2 referred C1" would make each the referrer of the other.
    Scenario::new()
        .given([
            registered(C1),
            registered(C2),
            linked(C1, C2, RelationshipKind::Referrer),
            linked(C2, C1, RelationshipKind::Referee),
        ])
        .when(link(C2, C1, RelationshipKind::Referrer))
        .then_rejects(RejectionKind::FailedPrecondition, "kind", "contradicts");
    // Symmetric kinds never contradict themselves.
    Scenario::new()
        .given([
            registered(C1),
            registered(C2),
            linked(C1, C2, RelationshipKind::Household),
            linked(C2, C1, RelationshipKind::Household),
        ])
        .when(link(C2, C1, RelationshipKind::Household))
        .then_events([]);
}

// ---------------------------------------------------------------- LogInteraction

fn interaction() -> LogInteraction {
    LogInteraction {
        customer_id: C1,
        interaction_id: I1,
        channel: Channel::Email,
        direction: Direction::Outbound,
        agent: Some("bob".into()),
        subject: "Follow-up".into(),
        summary: "Sent the invoice again".into(),
        sentiment: None,
        ticket: None,
        opportunity: None,
        campaign: None,
        call: None,
    }
}

fn log(i: LogInteraction) -> Command {
    Command::LogInteraction(i)
}

/// The event of an interaction: a field-by-field copy of the command.
fn logged(i: &LogInteraction) -> DomainEvent {
    cev(
        i.customer_id,
        CustomerEvent::InteractionLogged(InteractionLogged {
            interaction_id: i.interaction_id,
            channel: i.channel,
            direction: i.direction,
            agent: i.agent.clone(),
            subject: i.subject.clone(),
            summary: i.summary.clone(),
            sentiment: i.sentiment,
            ticket: i.ticket,
            opportunity: i.opportunity,
            campaign: i.campaign,
            call: i.call,
        }),
    )
}

#[test]
fn log_interaction_records_it() {
    let world = Scenario::new()
        .given([registered(C1)])
        .when(log(interaction()))
        .then_events([cev(
            C1,
            CustomerEvent::InteractionLogged(InteractionLogged {
                interaction_id: I1,
                channel: Channel::Email,
                direction: Direction::Outbound,
                agent: Some("bob".into()),
                subject: "Follow-up".into(),
                summary: "Sent the invoice again".into(),
                sentiment: None,
                ticket: None,
                opportunity: None,
                campaign: None,
                call: None,
            }),
        )]);
    assert_eq!(world.customers[&C1].interactions.len(), 1);
}

#[test]
fn log_interaction_phone_call_with_details_and_links() {
    let call = LogInteraction {
        channel: Channel::Phone,
        direction: Direction::Inbound,
        agent: None,
        subject: String::new(),
        summary: "line 1\n\tline 2".into(),
        sentiment: Some(-100),
        ticket: Some(T1),
        opportunity: Some(P1),
        call: Some(CallDetails {
            duration_secs: 300,
            outcome: CallOutcome::Answered,
        }),
        ..interaction()
    };
    Scenario::new()
        .given([
            registered(C1),
            ticket_opened(C1, T1),
            opportunity_opened(C1, P1),
        ])
        .when(log(call.clone()))
        .then_events([logged(&call)]);
    let happy = LogInteraction {
        sentiment: Some(100),
        ..interaction()
    };
    Scenario::new()
        .given([registered(C1)])
        .when(log(happy.clone()))
        .then_events([logged(&happy)]);
}

#[test]
fn log_interaction_inbound_on_a_ticket_awaiting_the_customer_resumes_it() {
    let reply = LogInteraction {
        direction: Direction::Inbound,
        ticket: Some(T1),
        ..interaction()
    };
    let world = Scenario::new()
        .given([
            registered(C1),
            ticket_opened(C1, T1),
            ticket_awaiting(C1, T1),
        ])
        .when(log(reply.clone()))
        .then_events([
            logged(&reply),
            cev(C1, CustomerEvent::TicketCustomerReplied { ticket_id: T1 }),
        ]);
    assert_eq!(world.customers[&C1].tickets[&T1].status, TicketStatus::Open);
}

#[test]
fn log_interaction_outbound_on_an_awaiting_ticket_does_not_resume_it() {
    let out = LogInteraction {
        ticket: Some(T1),
        ..interaction()
    };
    let world = Scenario::new()
        .given([
            registered(C1),
            ticket_opened(C1, T1),
            ticket_awaiting(C1, T1),
        ])
        .when(log(out.clone()))
        .then_events([logged(&out)]);
    assert_eq!(
        world.customers[&C1].tickets[&T1].status,
        TicketStatus::AwaitingCustomer
    );
}

#[test]
fn log_interaction_inbound_on_an_open_or_resolved_ticket_only_logs() {
    let reply = LogInteraction {
        direction: Direction::Inbound,
        ticket: Some(T1),
        ..interaction()
    };
    Scenario::new()
        .given([registered(C1), ticket_opened(C1, T1)])
        .when(log(reply.clone()))
        .then_events([logged(&reply)]);
    let world = Scenario::new()
        .given([
            registered(C1),
            ticket_opened(C1, T1),
            ticket_resolved(C1, T1),
        ])
        .when(log(reply.clone()))
        .then_events([logged(&reply)]);
    assert_eq!(
        world.customers[&C1].tickets[&T1].status,
        TicketStatus::Resolved
    );
}

#[test]
fn log_interaction_rejections() {
    let i = |i: LogInteraction| log(i);
    assert_rejections(
        &[
            registered(C1),
            ticket_opened(C1, T1),
            opportunity_opened(C1, P1),
        ],
        [
            invalid(
                i(LogInteraction {
                    agent: Some(" ".into()),
                    ..interaction()
                }),
                "agent",
                "required",
            ),
            invalid(
                i(LogInteraction {
                    agent: Some(long(101)),
                    ..interaction()
                }),
                "agent",
                "max_length",
            ),
            invalid(
                i(LogInteraction {
                    subject: long(501),
                    ..interaction()
                }),
                "subject",
                "max_length",
            ),
            invalid(
                i(LogInteraction {
                    subject: ctrl(),
                    ..interaction()
                }),
                "subject",
                "no_control_chars",
            ),
            invalid(
                i(LogInteraction {
                    summary: long(10_001),
                    ..interaction()
                }),
                "summary",
                "max_length",
            ),
            invalid(
                i(LogInteraction {
                    summary: "a\rb".into(),
                    ..interaction()
                }),
                "summary",
                "no_control_chars",
            ),
            invalid(
                i(LogInteraction {
                    sentiment: Some(101),
                    ..interaction()
                }),
                "sentiment",
                "range",
            ),
            invalid(
                i(LogInteraction {
                    sentiment: Some(-101),
                    ..interaction()
                }),
                "sentiment",
                "range",
            ),
            invalid(
                i(LogInteraction {
                    sentiment: Some(i8::MIN),
                    ..interaction()
                }),
                "sentiment",
                "range",
            ),
            invalid(
                i(LogInteraction {
                    call: Some(CallDetails {
                        duration_secs: 0,
                        outcome: CallOutcome::Missed,
                    }),
                    ..interaction()
                }),
                "call",
                "channel",
            ),
            (
                i(LogInteraction {
                    customer_id: C2,
                    ..interaction()
                }),
                RejectionKind::NotFound,
                "customer_id",
                "not_found",
            ),
            (
                i(LogInteraction {
                    ticket: Some(T2),
                    ..interaction()
                }),
                RejectionKind::NotFound,
                "ticket",
                "not_found",
            ),
            (
                i(LogInteraction {
                    opportunity: Some(P2),
                    ..interaction()
                }),
                RejectionKind::NotFound,
                "opportunity",
                "not_found",
            ),
        ],
    );
}

#[test]
fn log_interaction_cannot_link_another_customers_ticket() {
    Scenario::new()
        .given([registered(C1), registered(C2), ticket_opened(C2, T1)])
        .when(log(LogInteraction {
            ticket: Some(T1),
            ..interaction()
        }))
        .then_rejects(RejectionKind::NotFound, "ticket", "not_found");
}

#[test]
fn questionable_log_interaction_accepts_an_unknown_campaign_reference() {
    // The campaign is not among the command's targets, so decide cannot check it.
    let i = LogInteraction {
        campaign: Some(K2),
        ..interaction()
    };
    Scenario::new()
        .given([registered(C1)])
        .when(log(i.clone()))
        .then_events([logged(&i)]);
}

#[test]
fn log_interaction_rejects_a_duplicate_interaction_id() {
    // Orders, returns, tickets and opportunities reject a second creation with the same
    // id; interactions are only counted, so the same interaction is logged twice.
    Scenario::new()
        .given([registered(C1)])
        .given_commands([log(interaction())])
        .when(log(interaction()))
        .then_rejects(
            RejectionKind::AlreadyExists,
            "interaction_id",
            "already_exists",
        );
}

#[test]
fn register_customer_rejects_an_email_or_phone_listed_twice() {
    // " ADA@example.com" normalizes to the address already listed.
    Scenario::new()
        .when(Command::RegisterCustomer(RegisterCustomer {
            profile: Profile {
                emails: vec!["ada@example.com".into(), " ADA@example.com".into()],
                ..ada()
            },
            ..register(C1)
        }))
        .then_rejects(RejectionKind::Invalid, "emails", "unique");
    Scenario::new()
        .when(Command::RegisterCustomer(RegisterCustomer {
            profile: Profile {
                phones: vec!["+4915112345678".into(), "+4915112345678".into()],
                ..ada()
            },
            ..register(C1)
        }))
        .then_rejects(RejectionKind::Invalid, "phones", "unique");
}
