//! RegisterCustomer, UpdateProfile, SetConsent, TagCustomer, UntagCustomer, LinkCustomers,
//! LogInteraction.

use crm_proto::v1;

use super::{
    Api, Case, aborted, case, chars, exists, expecting, failed, invalid, noop, not_found, ok,
};
use crate::support::id;

fn register(customer_id: &str, given_name: &str) -> v1::RegisterCustomerRequest {
    v1::RegisterCustomerRequest {
        customer_id: customer_id.into(),
        profile: Some(v1::Profile {
            given_name: given_name.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A registration that is valid but for what `profile` changes.
fn register_with(profile: v1::Profile) -> v1::RegisterCustomerRequest {
    v1::RegisterCustomerRequest {
        profile: Some(profile),
        ..register("", "")
    }
}

fn named(given_name: &str) -> v1::Profile {
    v1::Profile {
        given_name: given_name.into(),
        ..Default::default()
    }
}

fn update(customer_id: &str) -> v1::UpdateProfileRequest {
    v1::UpdateProfileRequest {
        customer_id: customer_id.into(),
        ..Default::default()
    }
}

fn consent(customer_id: &str, channel: v1::ConsentChannel, granted: bool) -> v1::SetConsentRequest {
    v1::SetConsentRequest {
        customer_id: customer_id.into(),
        channel: channel.into(),
        granted,
        source: "preference-center".into(),
        ..Default::default()
    }
}

fn tag(customer_id: &str, tag: &str) -> v1::TagCustomerRequest {
    v1::TagCustomerRequest {
        customer_id: customer_id.into(),
        tag: tag.into(),
        ..Default::default()
    }
}

fn untag(customer_id: &str, tag: &str) -> v1::UntagCustomerRequest {
    v1::UntagCustomerRequest {
        customer_id: customer_id.into(),
        tag: tag.into(),
        ..Default::default()
    }
}

fn link(customer_id: &str, other: &str, kind: v1::RelationshipKind) -> v1::LinkCustomersRequest {
    v1::LinkCustomersRequest {
        customer_id: customer_id.into(),
        other_customer_id: other.into(),
        kind: kind.into(),
        ..Default::default()
    }
}

fn interaction(customer_id: &str, interaction_id: &str) -> v1::LogInteractionRequest {
    v1::LogInteractionRequest {
        customer_id: customer_id.into(),
        interaction_id: interaction_id.into(),
        channel: v1::Channel::Email.into(),
        direction: v1::Direction::Inbound.into(),
        subject: "Question about delivery".into(),
        ..Default::default()
    }
}

fn call_details(outcome: v1::CallOutcome) -> Option<v1::CallDetails> {
    Some(v1::CallDetails {
        duration_secs: 90,
        outcome: outcome.into(),
    })
}

#[tokio::test]
async fn customer_commands_accept_and_reject_over_grpc() {
    use v1::ConsentChannel as Consent;
    use v1::RelationshipKind as Kind;
    let mut api = Api::start().await;
    let (ada, bob, nobody) = (id(), id(), id());

    let ada_full = v1::RegisterCustomerRequest {
        profile: Some(v1::Profile {
            given_name: "Ada".into(),
            emails: vec!["Ada@Example.com".into()],
            ..Default::default()
        }),
        consents: vec![v1::Consent {
            channel: Consent::Email.into(),
            granted: true,
        }],
        consent_source: "signup-form".into(),
        tags: vec!["vip".into(), "early".into()],
        ..register(&ada, "")
    };
    let two_consents = vec![
        v1::Consent {
            channel: Consent::Sms.into(),
            granted: true,
        },
        v1::Consent {
            channel: Consent::Sms.into(),
            granted: false,
        },
    ];
    let address = v1::Address {
        line1: "1 Main St".into(),
        city: "Berlin".into(),
        country: "DE".into(),
        ..Default::default()
    };
    let mut bad_command_id = register("", "Eve");
    bad_command_id.options = Some(v1::CommandOptions {
        command_id: "not-a-uuid".into(),
        ..Default::default()
    });
    let mut bad_occurred_at = register("", "Eve");
    bad_occurred_at.options = Some(v1::CommandOptions {
        occurred_at: Some(Default::default()),
        ..Default::default()
    });
    if let Some(t) = bad_occurred_at
        .options
        .as_mut()
        .and_then(|o| o.occurred_at.as_mut())
    {
        t.nanos = -1;
    }
    let at = |seconds: i64| {
        let mut r = register("", "Eve");
        r.options = Some(v1::CommandOptions {
            occurred_at: Some(prost_types::Timestamp { seconds, nanos: 0 }),
            ..Default::default()
        });
        r
    };
    let mut bad_correlation_id = register("", "Eve");
    bad_correlation_id.options = Some(v1::CommandOptions {
        correlation_id: "x".into(),
        ..Default::default()
    });
    let many_emails = (0..21).map(|i| format!("e{i}@example.com")).collect();

    let register_cases: Vec<Case> = vec![
        case(
            "with consent and tags: one event each",
            ada_full.clone(),
            ok(4),
        ),
        case("a name is enough", register(&bob, "Bob"), ok(1)),
        case(
            "no id: derived from the command id",
            register("", "Cy"),
            ok(1),
        ),
        case("existing id", register(&ada, "Ada"), exists("customer_id")),
        case(
            "existing id, all fields as the first time",
            ada_full,
            exists("customer_id"),
        ),
        case(
            "id not a UUID",
            register("42", "Eve"),
            invalid("customer_id"),
        ),
        case(
            "nil id",
            register("00000000-0000-0000-0000-000000000000", "Eve"),
            invalid("customer_id"),
        ),
        case(
            "command id not a UUID",
            bad_command_id,
            invalid("options.command_id"),
        ),
        case(
            "correlation id not a UUID",
            bad_correlation_id,
            invalid("options.correlation_id"),
        ),
        case(
            "occurred_at out of range",
            bad_occurred_at,
            invalid("options.occurred_at"),
        ),
        case(
            "business time in the year 9999",
            at(253_370_764_800),
            invalid("options.occurred_at"),
        ),
        case(
            "business time an hour after receipt",
            at(unix_now() + 3_600),
            invalid("options.occurred_at"),
        ),
        case(
            "business time in 1850",
            at(-3_786_825_600),
            invalid("options.occurred_at"),
        ),
        case(
            "an import of a registration in 1990",
            at(631_152_000),
            ok(1),
        ),
        case(
            "no profile",
            v1::RegisterCustomerRequest {
                profile: None,
                ..register("", "")
            },
            invalid("profile"),
        ),
        case(
            "no name, email or phone",
            register_with(v1::Profile {
                language: "en".into(),
                ..Default::default()
            }),
            invalid("profile"),
        ),
        case(
            "name with a control character",
            register("", "Eve\u{7}"),
            invalid("profile.given_name"),
        ),
        case(
            "family name too long",
            register_with(v1::Profile {
                family_name: chars(201),
                ..named("Eve")
            }),
            invalid("profile.family_name"),
        ),
        case(
            "not an email",
            register_with(v1::Profile {
                emails: vec!["eve-at-example.com".into()],
                ..named("Eve")
            }),
            invalid("profile.emails[0]"),
        ),
        case(
            "the same email twice (after normalizing)",
            register_with(v1::Profile {
                emails: vec!["eve@example.com".into(), " EVE@example.com".into()],
                ..named("Eve")
            }),
            invalid("profile.emails"),
        ),
        case(
            "21 emails",
            register_with(v1::Profile {
                emails: many_emails,
                ..named("Eve")
            }),
            invalid("profile.emails"),
        ),
        case(
            "not an E.164 phone",
            register_with(v1::Profile {
                phones: vec!["0151 1234".into()],
                ..named("Eve")
            }),
            invalid("profile.phones[0]"),
        ),
        case(
            "the same phone twice",
            register_with(v1::Profile {
                phones: vec!["+4915112345678".into(), "+4915112345678".into()],
                ..named("Eve")
            }),
            invalid("profile.phones"),
        ),
        case(
            "21 phones",
            register_with(v1::Profile {
                phones: (0..21).map(|i| format!("+49151000000{i:02}")).collect(),
                ..named("Eve")
            }),
            invalid("profile.phones"),
        ),
        case(
            "address without first line",
            register_with(v1::Profile {
                address: Some(v1::Address {
                    line1: String::new(),
                    ..address.clone()
                }),
                ..named("Eve")
            }),
            invalid("profile.address.line1"),
        ),
        case(
            "address without city",
            register_with(v1::Profile {
                address: Some(v1::Address {
                    city: " ".into(),
                    ..address.clone()
                }),
                ..named("Eve")
            }),
            invalid("profile.address.city"),
        ),
        case(
            "address postal code too long",
            register_with(v1::Profile {
                address: Some(v1::Address {
                    postal_code: chars(101),
                    ..address.clone()
                }),
                ..named("Eve")
            }),
            invalid("profile.address.postal_code"),
        ),
        case(
            "address with a country name",
            register_with(v1::Profile {
                address: Some(v1::Address {
                    country: "Germany".into(),
                    ..address.clone()
                }),
                ..named("Eve")
            }),
            invalid("profile.address.country"),
        ),
        case(
            "language not BCP 47",
            register_with(v1::Profile {
                language: "english".into(),
                ..named("Eve")
            }),
            invalid("profile.language"),
        ),
        case(
            "country in lower case",
            register_with(v1::Profile {
                country: "de".into(),
                ..named("Eve")
            }),
            invalid("profile.country"),
        ),
        case(
            "external id system not a key",
            register_with(v1::Profile {
                external_ids: vec![v1::ExternalId {
                    system: "Shop!".into(),
                    id: "1".into(),
                }],
                ..named("Eve")
            }),
            invalid("profile.external_ids[0].system"),
        ),
        case(
            "external id without id",
            register_with(v1::Profile {
                external_ids: vec![v1::ExternalId {
                    system: "shop".into(),
                    id: String::new(),
                }],
                ..named("Eve")
            }),
            invalid("profile.external_ids[0].id"),
        ),
        case(
            "two external ids of one system",
            register_with(v1::Profile {
                external_ids: vec![
                    v1::ExternalId {
                        system: "shop".into(),
                        id: "1".into(),
                    },
                    v1::ExternalId {
                        system: "shop".into(),
                        id: "2".into(),
                    },
                ],
                ..named("Eve")
            }),
            invalid("profile.external_ids"),
        ),
        case(
            "21 external ids",
            register_with(v1::Profile {
                external_ids: (0..21)
                    .map(|i| v1::ExternalId {
                        system: format!("s{i}"),
                        id: "1".into(),
                    })
                    .collect(),
                ..named("Eve")
            }),
            invalid("profile.external_ids"),
        ),
        case(
            "blank owner",
            v1::RegisterCustomerRequest {
                owner: "  ".into(),
                ..register("", "Eve")
            },
            invalid("owner"),
        ),
        case(
            "team too long",
            v1::RegisterCustomerRequest {
                team: chars(101),
                ..register("", "Eve")
            },
            invalid("team"),
        ),
        case(
            "acquisition source too long",
            v1::RegisterCustomerRequest {
                acquisition: Some(v1::Acquisition {
                    source: chars(101),
                    ..Default::default()
                }),
                ..register("", "Eve")
            },
            invalid("acquisition.source"),
        ),
        case(
            "acquisition campaign not a UUID",
            v1::RegisterCustomerRequest {
                acquisition: Some(v1::Acquisition {
                    source: "ads".into(),
                    campaign_id: "spring".into(),
                    ..Default::default()
                }),
                ..register("", "Eve")
            },
            invalid("acquisition.campaign_id"),
        ),
        case(
            "tag not a key",
            v1::RegisterCustomerRequest {
                tags: vec!["ok".into(), "bad tag!".into()],
                ..register("", "Eve")
            },
            invalid("tags[1]"),
        ),
        case(
            "21 tags",
            v1::RegisterCustomerRequest {
                tags: (0..21).map(|i| format!("t{i}")).collect(),
                ..register("", "Eve")
            },
            invalid("tags"),
        ),
        case(
            "consent without its source",
            v1::RegisterCustomerRequest {
                consents: vec![v1::Consent {
                    channel: Consent::Email.into(),
                    granted: true,
                }],
                ..register("", "Eve")
            },
            invalid("consent_source"),
        ),
        case(
            "one channel twice",
            v1::RegisterCustomerRequest {
                consents: two_consents,
                consent_source: "signup-form".into(),
                ..register("", "Eve")
            },
            invalid("consents"),
        ),
        case(
            "consent channel unspecified",
            v1::RegisterCustomerRequest {
                consents: vec![v1::Consent {
                    channel: Consent::Unspecified.into(),
                    granted: true,
                }],
                consent_source: "signup-form".into(),
                ..register("", "Eve")
            },
            invalid("consents[0].channel"),
        ),
    ];
    api.run(register_cases).await;

    api.run(vec![
        case(
            "family name",
            v1::UpdateProfileRequest {
                family_name: Some("Lovelace".into()),
                ..update(&ada)
            },
            ok(5),
        ),
        case(
            "the same family name again",
            v1::UpdateProfileRequest {
                family_name: Some("Lovelace".into()),
                ..update(&ada)
            },
            noop(5),
        ),
        case(
            "stale expected_version",
            v1::UpdateProfileRequest {
                options: expecting(4),
                given_name: Some("Augusta".into()),
                ..update(&ada)
            },
            aborted(),
        ),
        case(
            "current expected_version",
            v1::UpdateProfileRequest {
                options: expecting(5),
                given_name: Some("Augusta".into()),
                ..update(&ada)
            },
            ok(6),
        ),
        case(
            "everything else at once",
            v1::UpdateProfileRequest {
                emails: vec!["ada@example.com".into(), "augusta@example.com".into()],
                set_emails: true,
                phones: vec!["+4915112345678".into()],
                set_phones: true,
                address: Some(address.clone()),
                language: Some("en-GB".into()),
                country: Some("GB".into()),
                external_ids: vec![v1::ExternalId {
                    system: "shop".into(),
                    id: "A-1".into(),
                }],
                set_external_ids: true,
                owner: Some("sam".into()),
                team: Some("north".into()),
                ..update(&ada)
            },
            ok(7),
        ),
        case(
            "clear every optional field",
            v1::UpdateProfileRequest {
                clear_address: true,
                clear_language: true,
                clear_country: true,
                clear_owner: true,
                clear_team: true,
                ..update(&ada)
            },
            ok(8),
        ),
        case(
            "unknown customer",
            v1::UpdateProfileRequest {
                family_name: Some("X".into()),
                ..update(&nobody)
            },
            not_found("customer_id"),
        ),
        case("no customer id", update(""), invalid("customer_id")),
        case(
            "would leave no name, email or phone",
            v1::UpdateProfileRequest {
                given_name: Some(String::new()),
                ..update(&bob)
            },
            failed("given_name"),
        ),
        case(
            "emails without set_emails",
            v1::UpdateProfileRequest {
                emails: vec!["ada@example.com".into()],
                ..update(&ada)
            },
            invalid("emails"),
        ),
        case(
            "phones without set_phones",
            v1::UpdateProfileRequest {
                phones: vec!["+4915112345678".into()],
                ..update(&ada)
            },
            invalid("phones"),
        ),
        case(
            "external ids without set_external_ids",
            v1::UpdateProfileRequest {
                external_ids: vec![v1::ExternalId {
                    system: "shop".into(),
                    id: "1".into(),
                }],
                ..update(&ada)
            },
            invalid("external_ids"),
        ),
        case(
            "address and clear_address",
            v1::UpdateProfileRequest {
                address: Some(address.clone()),
                clear_address: true,
                ..update(&ada)
            },
            invalid("clear_address"),
        ),
        case(
            "language and clear_language",
            v1::UpdateProfileRequest {
                language: Some("en".into()),
                clear_language: true,
                ..update(&ada)
            },
            invalid("clear_language"),
        ),
        case(
            "country and clear_country",
            v1::UpdateProfileRequest {
                country: Some("DE".into()),
                clear_country: true,
                ..update(&ada)
            },
            invalid("clear_country"),
        ),
        case(
            "owner and clear_owner",
            v1::UpdateProfileRequest {
                owner: Some("sam".into()),
                clear_owner: true,
                ..update(&ada)
            },
            invalid("clear_owner"),
        ),
        case(
            "team and clear_team",
            v1::UpdateProfileRequest {
                team: Some("north".into()),
                clear_team: true,
                ..update(&ada)
            },
            invalid("clear_team"),
        ),
        case(
            "given name with a control character",
            v1::UpdateProfileRequest {
                given_name: Some("A\u{0}da".into()),
                ..update(&ada)
            },
            invalid("given_name"),
        ),
        case(
            "family name too long",
            v1::UpdateProfileRequest {
                family_name: Some(chars(201)),
                ..update(&ada)
            },
            invalid("family_name"),
        ),
        case(
            "not an email",
            v1::UpdateProfileRequest {
                emails: vec!["ada@".into()],
                set_emails: true,
                ..update(&ada)
            },
            invalid("emails[0]"),
        ),
        case(
            "not a phone",
            v1::UpdateProfileRequest {
                phones: vec!["12345".into()],
                set_phones: true,
                ..update(&ada)
            },
            invalid("phones[0]"),
        ),
        case(
            "address without city",
            v1::UpdateProfileRequest {
                address: Some(v1::Address {
                    city: String::new(),
                    ..address.clone()
                }),
                ..update(&ada)
            },
            invalid("address.city"),
        ),
        case(
            "language not BCP 47",
            v1::UpdateProfileRequest {
                language: Some("en_GB".into()),
                ..update(&ada)
            },
            invalid("language"),
        ),
        case(
            "country not ISO 3166",
            v1::UpdateProfileRequest {
                country: Some("GBR".into()),
                ..update(&ada)
            },
            invalid("country"),
        ),
        case(
            "external id system not a key",
            v1::UpdateProfileRequest {
                external_ids: vec![v1::ExternalId {
                    system: "The Shop".into(),
                    id: "1".into(),
                }],
                set_external_ids: true,
                ..update(&ada)
            },
            invalid("external_ids[0].system"),
        ),
        case(
            "empty owner",
            v1::UpdateProfileRequest {
                owner: Some(String::new()),
                ..update(&ada)
            },
            invalid("owner"),
        ),
        case(
            "blank team",
            v1::UpdateProfileRequest {
                team: Some(" ".into()),
                ..update(&ada)
            },
            invalid("team"),
        ),
    ])
    .await;

    api.run(vec![
        case("grant SMS", consent(&ada, Consent::Sms, true), ok(9)),
        case(
            "grant SMS again",
            consent(&ada, Consent::Sms, true),
            noop(9),
        ),
        case("revoke email", consent(&ada, Consent::Email, false), ok(10)),
        case(
            "unknown customer",
            consent(&nobody, Consent::Sms, true),
            not_found("customer_id"),
        ),
        case(
            "no customer id",
            consent("", Consent::Sms, true),
            invalid("customer_id"),
        ),
        case(
            "without source",
            v1::SetConsentRequest {
                source: String::new(),
                ..consent(&ada, Consent::Post, true)
            },
            invalid("source"),
        ),
        case(
            "source too long",
            v1::SetConsentRequest {
                source: chars(101),
                ..consent(&ada, Consent::Post, true)
            },
            invalid("source"),
        ),
        case(
            "channel unspecified",
            consent(&ada, Consent::Unspecified, true),
            invalid("channel"),
        ),
        case(
            "channel out of the enum",
            v1::SetConsentRequest {
                channel: 99,
                ..consent(&ada, Consent::Post, true)
            },
            invalid("channel"),
        ),
    ])
    .await;

    api.run(vec![
        case("a new tag", tag(&ada, "gold"), ok(11)),
        case("a tag it has", tag(&ada, "gold"), noop(11)),
        case(
            "a tag it has, spelled otherwise",
            tag(&ada, " Gold "),
            noop(11),
        ),
        case(
            "unknown customer",
            tag(&nobody, "gold"),
            not_found("customer_id"),
        ),
        case(
            "customer id not a UUID",
            tag("ada", "gold"),
            invalid("customer_id"),
        ),
        case("not a key", tag(&ada, "bad tag!"), invalid("tag")),
        case("empty", tag(&ada, ""), invalid("tag")),
        case("65 characters", tag(&ada, &chars(65)), invalid("tag")),
    ])
    .await;

    api.run(vec![
        case("a tag it has", untag(&ada, "vip"), ok(12)),
        case("a tag it does not have", untag(&ada, "vip"), noop(12)),
        case(
            "unknown customer",
            untag(&nobody, "vip"),
            not_found("customer_id"),
        ),
        case("no customer id", untag("", "vip"), invalid("customer_id")),
        case("empty", untag(&ada, ""), invalid("tag")),
        case("not a key", untag(&ada, "v i p"), invalid("tag")),
    ])
    .await;

    // Tags per customer: at most 200.
    let full = id();
    let mut fill = vec![case(
        "20 tags",
        v1::RegisterCustomerRequest {
            tags: (0..20).map(|i| format!("t{i}")).collect(),
            ..register(&full, "Fay")
        },
        ok(21),
    )];
    for i in 20..200 {
        fill.push(case(
            format!("tag {}", i + 1),
            tag(&full, &format!("t{i}")),
            ok(i + 2),
        ));
    }
    api.run(fill).await;
    api.run(vec![
        case("the 201st tag", tag(&full, "one-too-many"), failed("tag")),
        case("a tag it has, when full", tag(&full, "t7"), noop(201)),
        case("untag when full", untag(&full, "t7"), ok(202)),
        case("then tag again", tag(&full, "new"), ok(203)),
    ])
    .await;

    api.run(vec![
        case(
            "ada referred bob: an event on each",
            link(&ada, &bob, Kind::Referrer),
            ok(13),
        ),
        case(
            "the same link again",
            link(&ada, &bob, Kind::Referrer),
            noop(13),
        ),
        case(
            "the same link from the other side",
            link(&bob, &ada, Kind::Referee),
            noop(2),
        ),
        case(
            "bob referred ada contradicts it",
            link(&bob, &ada, Kind::Referrer),
            failed("kind"),
        ),
        case("a symmetric kind", link(&bob, &ada, Kind::Household), ok(3)),
        case(
            "to itself",
            link(&ada, &ada, Kind::Household),
            invalid("other_customer_id"),
        ),
        case(
            "unknown customer",
            link(&nobody, &ada, Kind::Household),
            not_found("customer_id"),
        ),
        case(
            "unknown other customer",
            link(&ada, &nobody, Kind::Household),
            not_found("other_customer_id"),
        ),
        case(
            "no other customer",
            link(&ada, "", Kind::Household),
            invalid("other_customer_id"),
        ),
        case(
            "other customer not a UUID",
            link(&ada, "bob", Kind::Household),
            invalid("other_customer_id"),
        ),
        case(
            "kind unspecified",
            link(&ada, &bob, Kind::Unspecified),
            invalid("kind"),
        ),
    ])
    .await;

    let i1 = id();
    api.run(vec![
        case("an email", interaction(&ada, &i1), ok(15)),
        case(
            "a call with details, no id (derived)",
            v1::LogInteractionRequest {
                channel: v1::Channel::Phone.into(),
                direction: v1::Direction::Outbound.into(),
                agent: "sam".into(),
                summary: "Talked about the offer.\nCall back in May.".into(),
                sentiment: Some(-100),
                call: call_details(v1::CallOutcome::Answered),
                ..interaction(&ada, "")
            },
            ok(16),
        ),
        case(
            "the same interaction id again",
            interaction(&ada, &i1),
            exists("interaction_id"),
        ),
        case(
            "unknown customer",
            interaction(&nobody, ""),
            not_found("customer_id"),
        ),
        case(
            "unknown ticket",
            v1::LogInteractionRequest {
                ticket_id: id(),
                ..interaction(&ada, "")
            },
            not_found("ticket_id"),
        ),
        case(
            "unknown opportunity",
            v1::LogInteractionRequest {
                opportunity_id: id(),
                ..interaction(&ada, "")
            },
            not_found("opportunity_id"),
        ),
        case(
            "ticket id not a UUID",
            v1::LogInteractionRequest {
                ticket_id: "T-1".into(),
                ..interaction(&ada, "")
            },
            invalid("ticket_id"),
        ),
        case(
            "opportunity id not a UUID",
            v1::LogInteractionRequest {
                opportunity_id: "O-1".into(),
                ..interaction(&ada, "")
            },
            invalid("opportunity_id"),
        ),
        case(
            "campaign id not a UUID",
            v1::LogInteractionRequest {
                campaign_id: "C-1".into(),
                ..interaction(&ada, "")
            },
            invalid("campaign_id"),
        ),
        case(
            "interaction id not a UUID",
            interaction(&ada, "I-1"),
            invalid("interaction_id"),
        ),
        case(
            "no customer id",
            interaction("", ""),
            invalid("customer_id"),
        ),
        case(
            "channel unspecified",
            v1::LogInteractionRequest {
                channel: v1::Channel::Unspecified.into(),
                ..interaction(&ada, "")
            },
            invalid("channel"),
        ),
        case(
            "direction unspecified",
            v1::LogInteractionRequest {
                direction: v1::Direction::Unspecified.into(),
                ..interaction(&ada, "")
            },
            invalid("direction"),
        ),
        case(
            "sentiment above 100",
            v1::LogInteractionRequest {
                sentiment: Some(101),
                ..interaction(&ada, "")
            },
            invalid("sentiment"),
        ),
        case(
            "sentiment beyond a byte",
            v1::LogInteractionRequest {
                sentiment: Some(-1000),
                ..interaction(&ada, "")
            },
            invalid("sentiment"),
        ),
        case(
            "call details on an email",
            v1::LogInteractionRequest {
                call: call_details(v1::CallOutcome::Missed),
                ..interaction(&ada, "")
            },
            invalid("call"),
        ),
        case(
            "call outcome unspecified",
            v1::LogInteractionRequest {
                channel: v1::Channel::Phone.into(),
                call: call_details(v1::CallOutcome::Unspecified),
                ..interaction(&ada, "")
            },
            invalid("call.outcome"),
        ),
        case(
            "blank agent",
            v1::LogInteractionRequest {
                agent: "  ".into(),
                ..interaction(&ada, "")
            },
            invalid("agent"),
        ),
        case(
            "subject too long",
            v1::LogInteractionRequest {
                subject: chars(501),
                ..interaction(&ada, "")
            },
            invalid("subject"),
        ),
        case(
            "summary with a control character",
            v1::LogInteractionRequest {
                summary: "bell \u{7}".into(),
                ..interaction(&ada, "")
            },
            invalid("summary"),
        ),
    ])
    .await;
    api.finish().await;
}

fn unix_now() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    i64::try_from(now.unwrap().as_secs()).unwrap()
}
