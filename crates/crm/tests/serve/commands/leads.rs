//! CreateLead, AssignLead, ContactLead, QualifyLead, DisqualifyLead, ConvertLead.

use crm_proto::v1;
use v1::convert_lead_request::Into as ConvertInto;

use super::{Api, case, chars, exists, failed, invalid, money, noop, not_found, ok};
use crate::support::id;

fn lead(lead_id: &str) -> v1::CreateLeadRequest {
    v1::CreateLeadRequest {
        lead_id: lead_id.into(),
        source: "web-form".into(),
        given_name: "Lea".into(),
        email: "lea@example.com".into(),
        interest: "a fleet of bikes".into(),
        ..Default::default()
    }
}

fn assign(lead_id: &str, owner: &str) -> v1::AssignLeadRequest {
    v1::AssignLeadRequest {
        lead_id: lead_id.into(),
        owner: owner.into(),
        ..Default::default()
    }
}

fn contact(lead_id: &str) -> v1::ContactLeadRequest {
    v1::ContactLeadRequest {
        lead_id: lead_id.into(),
        channel: v1::Channel::Phone.into(),
        agent: "kim".into(),
        ..Default::default()
    }
}

fn qualify(lead_id: &str) -> v1::QualifyLeadRequest {
    v1::QualifyLeadRequest {
        lead_id: lead_id.into(),
        note: "budget confirmed".into(),
        ..Default::default()
    }
}

fn disqualify(lead_id: &str) -> v1::DisqualifyLeadRequest {
    v1::DisqualifyLeadRequest {
        lead_id: lead_id.into(),
        reason: "spam".into(),
        ..Default::default()
    }
}

fn deal(opportunity_id: &str) -> v1::ConversionOpportunity {
    v1::ConversionOpportunity {
        opportunity_id: opportunity_id.into(),
        name: "Fleet".into(),
        amount: money(50_000, "EUR"),
        ..Default::default()
    }
}

/// Into a new customer, with an opportunity (a new one, id derived).
fn convert(lead_id: &str, customer_id: &str) -> v1::ConvertLeadRequest {
    v1::ConvertLeadRequest {
        lead_id: lead_id.into(),
        into: Some(ConvertInto::NewCustomerId(customer_id.into())),
        opportunity: Some(deal("")),
        ..Default::default()
    }
}

fn convert_into_existing(lead_id: &str, customer_id: &str) -> v1::ConvertLeadRequest {
    v1::ConvertLeadRequest {
        into: Some(ConvertInto::ExistingCustomerId(customer_id.into())),
        ..convert(lead_id, "")
    }
}

fn with_deal(
    request: v1::ConvertLeadRequest,
    opportunity: v1::ConversionOpportunity,
) -> v1::ConvertLeadRequest {
    v1::ConvertLeadRequest {
        opportunity: Some(opportunity),
        ..request
    }
}

#[tokio::test]
async fn lead_commands_accept_and_reject_over_grpc() {
    let mut api = Api::start().await;
    // l1 goes all the way, l2 is disqualified, l3 stays new, l4 and l5 are converted
    // into existing and derived customers.
    let (l1, l2, l3, l4, l5, nobody) = (id(), id(), id(), id(), id(), id());
    let (cust, new_customer, opp) = (id(), id(), id());

    api.run(vec![
        case("with an email", lead(&l1), ok(1)),
        case("another", lead(&l2), ok(1)),
        case(
            "with a phone only, and a campaign",
            v1::CreateLeadRequest {
                email: String::new(),
                phone: "+4915112345678".into(),
                campaign_id: id(),
                ..lead(&l3)
            },
            ok(1),
        ),
        case("one more", lead(&l4), ok(1)),
        case("and one more", lead(&l5), ok(1)),
        case("no id (derived)", lead(""), ok(1)),
        case("the same lead id again", lead(&l1), exists("lead_id")),
        case("lead id not a UUID", lead("lea"), invalid("lead_id")),
        case(
            "campaign id not a UUID",
            v1::CreateLeadRequest {
                campaign_id: "spring".into(),
                ..lead("")
            },
            invalid("campaign_id"),
        ),
        case(
            "no source",
            v1::CreateLeadRequest {
                source: String::new(),
                ..lead("")
            },
            invalid("source"),
        ),
        case(
            "source not a key",
            v1::CreateLeadRequest {
                source: "Web Form".into(),
                ..lead("")
            },
            invalid("source"),
        ),
        case(
            "neither email nor phone",
            v1::CreateLeadRequest {
                email: String::new(),
                ..lead("")
            },
            invalid("email"),
        ),
        case(
            "not an email",
            v1::CreateLeadRequest {
                email: "lea".into(),
                ..lead("")
            },
            invalid("email"),
        ),
        case(
            "not an E.164 phone",
            v1::CreateLeadRequest {
                phone: "0151".into(),
                ..lead("")
            },
            invalid("phone"),
        ),
        case(
            "name with a control character",
            v1::CreateLeadRequest {
                given_name: "L\u{7}a".into(),
                ..lead("")
            },
            invalid("given_name"),
        ),
        case(
            "family name too long",
            v1::CreateLeadRequest {
                family_name: chars(201),
                ..lead("")
            },
            invalid("family_name"),
        ),
        case(
            "interest too long",
            v1::CreateLeadRequest {
                interest: chars(10_001),
                ..lead("")
            },
            invalid("interest"),
        ),
        case(
            "(RegisterCustomer) a customer to convert into",
            v1::RegisterCustomerRequest {
                customer_id: cust.clone(),
                profile: Some(v1::Profile {
                    given_name: "Carl".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ok(1),
        ),
    ])
    .await;

    api.run(vec![
        case("to an owner", assign(&l1, "sam"), ok(2)),
        case("to the same owner", assign(&l1, "sam"), noop(2)),
        case(
            "by a rule",
            v1::AssignLeadRequest {
                rule: "round-robin".into(),
                ..assign(&l1, "kim")
            },
            ok(3),
        ),
        case("unknown lead", assign(&nobody, "sam"), not_found("lead_id")),
        case("no lead id", assign("", "sam"), invalid("lead_id")),
        case("no owner", assign(&l1, ""), invalid("owner")),
        case("owner too long", assign(&l1, &chars(101)), invalid("owner")),
        case(
            "rule with a control character",
            v1::AssignLeadRequest {
                rule: "\u{7}".into(),
                ..assign(&l1, "sam")
            },
            invalid("rule"),
        ),
    ])
    .await;

    api.run(vec![
        case("by phone", contact(&l1), ok(4)),
        case("again: every contact counts", contact(&l1), ok(5)),
        case("unknown lead", contact(&nobody), not_found("lead_id")),
        case("lead id not a UUID", contact("l1"), invalid("lead_id")),
        case(
            "channel unspecified",
            v1::ContactLeadRequest {
                channel: v1::Channel::Unspecified.into(),
                ..contact(&l1)
            },
            invalid("channel"),
        ),
        case(
            "blank agent",
            v1::ContactLeadRequest {
                agent: " ".into(),
                ..contact(&l1)
            },
            invalid("agent"),
        ),
    ])
    .await;

    api.run(vec![
        case("a contacted lead", qualify(&l1), ok(6)),
        case("again", qualify(&l1), noop(6)),
        case("a new lead", qualify(&l4), ok(2)),
        case("another new lead", qualify(&l5), ok(2)),
        case("unknown lead", qualify(&nobody), not_found("lead_id")),
        case("no lead id", qualify(""), invalid("lead_id")),
        case(
            "note with a control character",
            v1::QualifyLeadRequest {
                note: "\u{0}".into(),
                ..qualify(&l1)
            },
            invalid("note"),
        ),
        case(
            "note too long",
            v1::QualifyLeadRequest {
                note: chars(10_001),
                ..qualify(&l1)
            },
            invalid("note"),
        ),
    ])
    .await;

    api.run(vec![
        case(
            "no reason",
            v1::DisqualifyLeadRequest {
                reason: " ".into(),
                ..disqualify(&l2)
            },
            invalid("reason"),
        ),
        case(
            "reason too long",
            v1::DisqualifyLeadRequest {
                reason: chars(501),
                ..disqualify(&l2)
            },
            invalid("reason"),
        ),
        case("unknown lead", disqualify(&nobody), not_found("lead_id")),
        case("lead id not a UUID", disqualify("x"), invalid("lead_id")),
        case("a new lead", disqualify(&l2), ok(2)),
        case("again", disqualify(&l2), failed("lead_id")),
        case(
            "(AssignLead) a disqualified lead",
            assign(&l2, "kim"),
            failed("lead_id"),
        ),
        case(
            "(ContactLead) a disqualified lead",
            contact(&l2),
            failed("lead_id"),
        ),
        case(
            "(QualifyLead) a disqualified lead",
            qualify(&l2),
            failed("lead_id"),
        ),
    ])
    .await;

    api.run(vec![
        case("a new lead", convert(&l3, &new_customer), failed("lead_id")),
        case(
            "a disqualified lead",
            convert(&l2, &new_customer),
            failed("lead_id"),
        ),
        case(
            "unknown lead",
            convert(&nobody, &new_customer),
            not_found("lead_id"),
        ),
        case("no lead id", convert("", &new_customer), invalid("lead_id")),
        case(
            "neither new nor existing customer",
            v1::ConvertLeadRequest {
                into: None,
                ..convert(&l1, &new_customer)
            },
            invalid("into"),
        ),
        case(
            "new customer id not a UUID",
            convert(&l1, "c1"),
            invalid("new_customer_id"),
        ),
        case(
            "no existing customer id",
            convert_into_existing(&l1, ""),
            invalid("existing_customer_id"),
        ),
        case(
            "unknown existing customer",
            convert_into_existing(&l1, &nobody),
            not_found("existing_customer_id"),
        ),
        case(
            "a new customer that exists",
            convert(&l1, &cust),
            exists("new_customer_id"),
        ),
        case(
            "opportunity without name",
            with_deal(
                convert(&l1, &new_customer),
                v1::ConversionOpportunity {
                    name: String::new(),
                    ..deal("")
                },
            ),
            invalid("opportunity.name"),
        ),
        case(
            "opportunity without amount",
            with_deal(
                convert(&l1, &new_customer),
                v1::ConversionOpportunity {
                    amount: None,
                    ..deal("")
                },
            ),
            invalid("opportunity.amount"),
        ),
        case(
            "opportunity with a negative amount",
            with_deal(
                convert(&l1, &new_customer),
                v1::ConversionOpportunity {
                    amount: money(-1, "EUR"),
                    ..deal("")
                },
            ),
            invalid("opportunity.amount.minor"),
        ),
        case(
            "opportunity amount in lower-case currency",
            with_deal(
                convert(&l1, &new_customer),
                v1::ConversionOpportunity {
                    amount: money(1, "eur"),
                    ..deal("")
                },
            ),
            invalid("opportunity.amount.currency"),
        ),
        case(
            "opportunity id not a UUID",
            with_deal(convert(&l1, &new_customer), deal("o")),
            invalid("opportunity.opportunity_id"),
        ),
        case(
            "opportunity in an unknown pipeline",
            with_deal(
                convert(&l1, &new_customer),
                v1::ConversionOpportunity {
                    pipeline: "enterprise".into(),
                    ..deal("")
                },
            ),
            invalid("opportunity.pipeline"),
        ),
        case(
            "opportunity in an unknown stage",
            with_deal(
                convert(&l1, &new_customer),
                v1::ConversionOpportunity {
                    stage: "won".into(),
                    ..deal("")
                },
            ),
            invalid("opportunity.stage"),
        ),
        case(
            "into a new customer with an opportunity: three events",
            with_deal(convert(&l1, &new_customer), deal(&opp)),
            ok(7),
        ),
        case("a converted lead", convert(&l1, &id()), failed("lead_id")),
        case(
            "(AssignLead) a converted lead",
            assign(&l1, "sam"),
            failed("lead_id"),
        ),
        case(
            "(ContactLead) a converted lead",
            contact(&l1),
            failed("lead_id"),
        ),
        case(
            "(QualifyLead) a converted lead",
            qualify(&l1),
            failed("lead_id"),
        ),
        case(
            "(DisqualifyLead) a converted lead",
            disqualify(&l1),
            failed("lead_id"),
        ),
        case(
            "into an existing customer, with an opportunity id it has",
            with_deal(convert_into_existing(&l4, &new_customer), deal(&opp)),
            exists("opportunity.opportunity_id"),
        ),
        case(
            "into an existing customer, with a new opportunity",
            convert_into_existing(&l4, &cust),
            ok(3),
        ),
        case(
            "into a new customer, id derived, no opportunity",
            v1::ConvertLeadRequest {
                opportunity: None,
                ..convert(&l5, "")
            },
            ok(3),
        ),
    ])
    .await;
    api.finish().await;
}
