//! CreateCampaign, SendCampaign, RecordCampaignCost, RecordCampaignResponse.

use crm_proto::v1;
use v1::CampaignResponseKind as Kind;

use super::{Api, case, chars, exists, failed, invalid, money, not_found, ok};
use crate::support::id;

/// An email campaign with a budget in EUR.
fn campaign(campaign_id: &str) -> v1::CreateCampaignRequest {
    v1::CreateCampaignRequest {
        campaign_id: campaign_id.into(),
        name: "Spring sale".into(),
        channel: v1::Channel::Email.into(),
        segment: "newsletter subscribers".into(),
        budget: money(500_000, "EUR"),
        ..Default::default()
    }
}

fn send(campaign_id: &str, recipients: &[&str]) -> v1::SendCampaignRequest {
    v1::SendCampaignRequest {
        campaign_id: campaign_id.into(),
        recipients: recipients.iter().map(|&r| r.to_owned()).collect(),
        ..Default::default()
    }
}

fn cost(campaign_id: &str, minor: i64, currency: &str) -> v1::RecordCampaignCostRequest {
    v1::RecordCampaignCostRequest {
        campaign_id: campaign_id.into(),
        amount: money(minor, currency),
        note: "ads".into(),
        ..Default::default()
    }
}

fn response(customer_id: &str, campaign_id: &str, kind: Kind) -> v1::RecordCampaignResponseRequest {
    v1::RecordCampaignResponseRequest {
        customer_id: customer_id.into(),
        campaign_id: campaign_id.into(),
        kind: kind.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn campaign_commands_accept_and_reject_over_grpc() {
    let mut api = Api::start().await;
    // k1: email, sent; k2: chat, no budget, never sent.
    let (k1, k2, cust, nobody) = (id(), id(), id(), id());
    let max = 1_000_000_000_000_000; // the largest amount, in minor units

    api.run(vec![
        case(
            "(RegisterCustomer) a recipient",
            v1::RegisterCustomerRequest {
                customer_id: cust.clone(),
                profile: Some(v1::Profile {
                    emails: vec!["cleo@example.com".into()],
                    ..Default::default()
                }),
                consents: vec![v1::Consent {
                    channel: v1::ConsentChannel::Email.into(),
                    granted: true,
                }],
                consent_source: "signup-form".into(),
                ..Default::default()
            },
            ok(2),
        ),
        case("with a budget", campaign(&k1), ok(1)),
        case(
            "without budget",
            v1::CreateCampaignRequest {
                channel: v1::Channel::Chat.into(),
                budget: None,
                ..campaign(&k2)
            },
            ok(1),
        ),
        case("no id (derived)", campaign(""), ok(1)),
        case(
            "the same campaign id again",
            campaign(&k1),
            exists("campaign_id"),
        ),
        case(
            "campaign id not a UUID",
            campaign("k1"),
            invalid("campaign_id"),
        ),
        case(
            "no name",
            v1::CreateCampaignRequest {
                name: String::new(),
                ..campaign("")
            },
            invalid("name"),
        ),
        case(
            "name too long",
            v1::CreateCampaignRequest {
                name: chars(201),
                ..campaign("")
            },
            invalid("name"),
        ),
        case(
            "channel unspecified",
            v1::CreateCampaignRequest {
                channel: v1::Channel::Unspecified.into(),
                ..campaign("")
            },
            invalid("channel"),
        ),
        case(
            "segment too long",
            v1::CreateCampaignRequest {
                segment: chars(501),
                ..campaign("")
            },
            invalid("segment"),
        ),
        case(
            "negative budget",
            v1::CreateCampaignRequest {
                budget: money(-1, "EUR"),
                ..campaign("")
            },
            invalid("budget.minor"),
        ),
        case(
            "budget currency not ISO 4217",
            v1::CreateCampaignRequest {
                budget: money(1, "euro"),
                ..campaign("")
            },
            invalid("budget.currency"),
        ),
    ])
    .await;

    let one_too_many: Vec<String> = (0..10_001).map(|_| id()).collect();
    api.run(vec![
        case("one recipient", send(&k1, &[&cust]), ok(2)),
        case("a second wave", send(&k1, &[&cust, &nobody]), ok(3)),
        case(
            "unknown campaign",
            send(&nobody, &[&cust]),
            not_found("campaign_id"),
        ),
        case("no campaign id", send("", &[&cust]), invalid("campaign_id")),
        case("no recipients", send(&k1, &[]), invalid("recipients")),
        case(
            "a recipient twice",
            send(&k1, &[&cust, &nobody, &cust]),
            invalid("recipients"),
        ),
        case(
            "a recipient not a UUID",
            send(&k1, &[&cust, "cleo"]),
            invalid("recipients[1]"),
        ),
        case(
            "10,001 recipients",
            v1::SendCampaignRequest {
                recipients: one_too_many,
                ..send(&k1, &[])
            },
            invalid("recipients"),
        ),
    ])
    .await;

    api.run(vec![
        case("in the budget's currency", cost(&k1, 1_000, "EUR"), ok(4)),
        case(
            "in another currency than the budget",
            cost(&k1, 1_000, "USD"),
            failed("amount.currency"),
        ),
        case(
            "beyond the largest total",
            cost(&k1, max, "EUR"),
            failed("amount.minor"),
        ),
        case(
            "the first cost of a campaign without budget sets its currency",
            cost(&k2, 300, "USD"),
            ok(2),
        ),
        case(
            "then another currency",
            cost(&k2, 300, "EUR"),
            failed("amount.currency"),
        ),
        case("zero", cost(&k1, 0, "EUR"), invalid("amount.minor")),
        case("negative", cost(&k1, -5, "EUR"), invalid("amount.minor")),
        case(
            "beyond the largest amount",
            cost(&k1, max + 1, "EUR"),
            invalid("amount.minor"),
        ),
        case(
            "no amount",
            v1::RecordCampaignCostRequest {
                amount: None,
                ..cost(&k1, 1, "EUR")
            },
            invalid("amount"),
        ),
        case(
            "amount without currency",
            cost(&k1, 1, ""),
            invalid("amount.currency"),
        ),
        case(
            "note too long",
            v1::RecordCampaignCostRequest {
                note: chars(501),
                ..cost(&k1, 1, "EUR")
            },
            invalid("note"),
        ),
        case(
            "unknown campaign",
            cost(&nobody, 1, "EUR"),
            not_found("campaign_id"),
        ),
        case(
            "campaign id not a UUID",
            cost("k", 1, "EUR"),
            invalid("campaign_id"),
        ),
    ])
    .await;

    let converted = |revenue, order_id: &str| v1::RecordCampaignResponseRequest {
        revenue,
        order_id: order_id.into(),
        ..response(&cust, &k1, Kind::Converted)
    };
    api.run(vec![
        case("opened", response(&cust, &k1, Kind::Opened), ok(3)),
        case(
            "converted, with revenue and order",
            converted(money(5_000, "EUR"), &id()),
            ok(4),
        ),
        case(
            "unsubscribed: also revokes the channel's consent",
            response(&cust, &k1, Kind::Unsubscribed),
            ok(6),
        ),
        case(
            "unsubscribed again: the consent is already revoked",
            response(&cust, &k1, Kind::Unsubscribed),
            ok(7),
        ),
        case(
            "a campaign not sent yet",
            response(&cust, &k2, Kind::Delivered),
            failed("campaign_id"),
        ),
        case(
            "unknown customer",
            response(&nobody, &k1, Kind::Opened),
            not_found("customer_id"),
        ),
        case(
            "unknown campaign",
            response(&cust, &nobody, Kind::Opened),
            not_found("campaign_id"),
        ),
        case(
            "no customer id",
            response("", &k1, Kind::Opened),
            invalid("customer_id"),
        ),
        case(
            "campaign id not a UUID",
            response(&cust, "k1", Kind::Opened),
            invalid("campaign_id"),
        ),
        case(
            "kind unspecified",
            response(&cust, &k1, Kind::Unspecified),
            invalid("kind"),
        ),
        case(
            "revenue on a click",
            v1::RecordCampaignResponseRequest {
                revenue: money(1, "EUR"),
                ..response(&cust, &k1, Kind::Clicked)
            },
            invalid("revenue"),
        ),
        case(
            "order on an open",
            v1::RecordCampaignResponseRequest {
                order_id: id(),
                ..response(&cust, &k1, Kind::Opened)
            },
            invalid("order_id"),
        ),
        case(
            "negative revenue",
            converted(money(-1, "EUR"), ""),
            invalid("revenue.minor"),
        ),
        case(
            "revenue without currency",
            converted(money(1, ""), ""),
            invalid("revenue.currency"),
        ),
        case(
            "order id not a UUID",
            converted(None, "o-1"),
            invalid("order_id"),
        ),
    ])
    .await;
    api.finish().await;
}
