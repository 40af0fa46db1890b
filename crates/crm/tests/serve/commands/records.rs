//! What a customer record holds besides identity: orders and returns (PlaceOrder,
//! RecordReturn), tickets (OpenTicket, AssignTicket, RespondToTicket, ResolveTicket,
//! ReopenTicket, CloseTicket) and opportunities (OpenOpportunity, MoveOpportunityStage,
//! WinOpportunity, LoseOpportunity, UpdateOpportunity, ReopenOpportunity).

use crm_proto::v1;

use super::{Api, case, chars, exists, failed, invalid, money, noop, not_found, ok};
use crate::support::id;

fn register(customer_id: &str) -> v1::RegisterCustomerRequest {
    v1::RegisterCustomerRequest {
        customer_id: customer_id.into(),
        profile: Some(v1::Profile {
            given_name: "Carl".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn line(sku: &str, quantity: u32, unit_price_minor: i64) -> v1::OrderLine {
    v1::OrderLine {
        sku: sku.into(),
        category: "shoes".into(),
        quantity,
        unit_price_minor,
    }
}

/// 2 x A at 10.00 and 1 x B at 5.00: 25.00 EUR.
fn order(customer_id: &str, order_id: &str) -> v1::PlaceOrderRequest {
    v1::PlaceOrderRequest {
        customer_id: customer_id.into(),
        order_id: order_id.into(),
        sales_channel: "web".into(),
        currency: "EUR".into(),
        lines: vec![line("A", 2, 1000), line("B", 1, 500)],
        ..Default::default()
    }
}

fn return_line(sku: &str, quantity: u32) -> v1::ReturnLine {
    v1::ReturnLine {
        sku: sku.into(),
        quantity,
    }
}

/// 1 x A back, 10.00 EUR refunded.
fn give_back(customer_id: &str, order_id: &str, return_id: &str) -> v1::RecordReturnRequest {
    v1::RecordReturnRequest {
        customer_id: customer_id.into(),
        return_id: return_id.into(),
        order_id: order_id.into(),
        lines: vec![return_line("A", 1)],
        refund: money(1000, "EUR"),
        reason: "too small".into(),
        ..Default::default()
    }
}

fn open(customer_id: &str, ticket_id: &str) -> v1::OpenTicketRequest {
    v1::OpenTicketRequest {
        customer_id: customer_id.into(),
        ticket_id: ticket_id.into(),
        channel: v1::Channel::Chat.into(),
        category: "billing".into(),
        priority: v1::TicketPriority::Normal.into(),
        subject: "Wrong invoice".into(),
        ..Default::default()
    }
}

fn assign(customer_id: &str, ticket_id: &str, agent: &str) -> v1::AssignTicketRequest {
    v1::AssignTicketRequest {
        customer_id: customer_id.into(),
        ticket_id: ticket_id.into(),
        agent: agent.into(),
        ..Default::default()
    }
}

fn respond(customer_id: &str, ticket_id: &str) -> v1::RespondToTicketRequest {
    v1::RespondToTicketRequest {
        customer_id: customer_id.into(),
        ticket_id: ticket_id.into(),
        agent: "alice".into(),
        ..Default::default()
    }
}

fn resolve(customer_id: &str, ticket_id: &str) -> v1::ResolveTicketRequest {
    v1::ResolveTicketRequest {
        customer_id: customer_id.into(),
        ticket_id: ticket_id.into(),
        resolution: "credited".into(),
        ..Default::default()
    }
}

fn reopen(customer_id: &str, ticket_id: &str) -> v1::ReopenTicketRequest {
    v1::ReopenTicketRequest {
        customer_id: customer_id.into(),
        ticket_id: ticket_id.into(),
        reason: "still wrong".into(),
        ..Default::default()
    }
}

fn close(customer_id: &str, ticket_id: &str) -> v1::CloseTicketRequest {
    v1::CloseTicketRequest {
        customer_id: customer_id.into(),
        ticket_id: ticket_id.into(),
        ..Default::default()
    }
}

/// 1,000.00 EUR, default pipeline and its first stage.
fn opportunity(customer_id: &str, opportunity_id: &str) -> v1::OpenOpportunityRequest {
    v1::OpenOpportunityRequest {
        customer_id: customer_id.into(),
        opportunity_id: opportunity_id.into(),
        name: "Fleet deal".into(),
        amount: money(100_000, "EUR"),
        ..Default::default()
    }
}

fn move_to(
    customer_id: &str,
    opportunity_id: &str,
    stage: &str,
) -> v1::MoveOpportunityStageRequest {
    v1::MoveOpportunityStageRequest {
        customer_id: customer_id.into(),
        opportunity_id: opportunity_id.into(),
        stage: stage.into(),
        ..Default::default()
    }
}

fn win(customer_id: &str, opportunity_id: &str) -> v1::WinOpportunityRequest {
    v1::WinOpportunityRequest {
        customer_id: customer_id.into(),
        opportunity_id: opportunity_id.into(),
        ..Default::default()
    }
}

fn lose(customer_id: &str, opportunity_id: &str) -> v1::LoseOpportunityRequest {
    v1::LoseOpportunityRequest {
        customer_id: customer_id.into(),
        opportunity_id: opportunity_id.into(),
        reason: "price".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn order_return_ticket_and_opportunity_commands_accept_and_reject_over_grpc() {
    let mut api = Api::start().await;
    let (carl, nobody) = (id(), id());
    let (o1, r1) = (id(), id());
    let max = 1_000_000_000_000_000; // the largest amount, in minor units
    api.run(vec![case("carl", register(&carl), ok(1))]).await;

    api.run(vec![
        case("two lines", order(&carl, &o1), ok(2)),
        case(
            "no id (derived), with discount, tax, shipping and campaign",
            v1::PlaceOrderRequest {
                discount_minor: 500,
                tax_minor: 300,
                shipping_minor: 499,
                campaign_id: id(),
                ..order(&carl, "")
            },
            ok(3),
        ),
        case(
            "the same order id again",
            order(&carl, &o1),
            exists("order_id"),
        ),
        case(
            "unknown customer",
            order(&nobody, ""),
            not_found("customer_id"),
        ),
        case("no customer id", order("", ""), invalid("customer_id")),
        case(
            "order id not a UUID",
            order(&carl, "o-1"),
            invalid("order_id"),
        ),
        case(
            "campaign id not a UUID",
            v1::PlaceOrderRequest {
                campaign_id: "spring".into(),
                ..order(&carl, "")
            },
            invalid("campaign_id"),
        ),
        case(
            "no currency",
            v1::PlaceOrderRequest {
                currency: String::new(),
                ..order(&carl, "")
            },
            invalid("currency"),
        ),
        case(
            "currency in lower case",
            v1::PlaceOrderRequest {
                currency: "eur".into(),
                ..order(&carl, "")
            },
            invalid("currency"),
        ),
        case(
            "sales channel not a key",
            v1::PlaceOrderRequest {
                sales_channel: "Web Shop".into(),
                ..order(&carl, "")
            },
            invalid("sales_channel"),
        ),
        case(
            "no sales channel",
            v1::PlaceOrderRequest {
                sales_channel: String::new(),
                ..order(&carl, "")
            },
            invalid("sales_channel"),
        ),
        case(
            "no lines",
            v1::PlaceOrderRequest {
                lines: vec![],
                ..order(&carl, "")
            },
            invalid("lines"),
        ),
        case(
            "501 lines",
            v1::PlaceOrderRequest {
                lines: (0..501).map(|i| line(&format!("S{i}"), 1, 1)).collect(),
                ..order(&carl, "")
            },
            invalid("lines"),
        ),
        case(
            "a line without SKU",
            v1::PlaceOrderRequest {
                lines: vec![line("A", 1, 100), line(" ", 1, 100)],
                ..order(&carl, "")
            },
            invalid("lines[1].sku"),
        ),
        case(
            "a line category too long",
            v1::PlaceOrderRequest {
                lines: vec![v1::OrderLine {
                    category: chars(101),
                    ..line("A", 1, 100)
                }],
                ..order(&carl, "")
            },
            invalid("lines[0].category"),
        ),
        case(
            "quantity zero",
            v1::PlaceOrderRequest {
                lines: vec![line("A", 0, 100)],
                ..order(&carl, "")
            },
            invalid("lines[0].quantity"),
        ),
        case(
            "one SKU beyond 2^32 - 1 pieces over two lines",
            v1::PlaceOrderRequest {
                lines: vec![line("A", u32::MAX, 0), line("A", 1, 0)],
                ..order(&carl, "")
            },
            invalid("lines[1].quantity"),
        ),
        case(
            "negative unit price",
            v1::PlaceOrderRequest {
                lines: vec![line("A", 1, 100), line("B", 1, -1)],
                ..order(&carl, "")
            },
            invalid("lines[1].unit_price_minor"),
        ),
        case(
            "unit price beyond the largest amount (the total is not, after discount)",
            v1::PlaceOrderRequest {
                lines: vec![line("A", 1, max + 1)],
                discount_minor: 1,
                ..order(&carl, "")
            },
            invalid("lines[0].unit_price_minor"),
        ),
        case(
            "total beyond the largest amount",
            v1::PlaceOrderRequest {
                lines: vec![line("A", 2, max)],
                ..order(&carl, "")
            },
            invalid("lines"),
        ),
        case(
            "negative discount",
            v1::PlaceOrderRequest {
                discount_minor: -1,
                ..order(&carl, "")
            },
            invalid("discount_minor"),
        ),
        case(
            "discount above the total",
            v1::PlaceOrderRequest {
                discount_minor: 2501,
                ..order(&carl, "")
            },
            invalid("discount_minor"),
        ),
        case(
            "negative tax",
            v1::PlaceOrderRequest {
                tax_minor: -1,
                ..order(&carl, "")
            },
            invalid("tax_minor"),
        ),
        case(
            "negative shipping",
            v1::PlaceOrderRequest {
                shipping_minor: -1,
                ..order(&carl, "")
            },
            invalid("shipping_minor"),
        ),
    ])
    .await;

    api.run(vec![
        case("one line and a refund", give_back(&carl, &o1, &r1), ok(4)),
        case(
            "the same return id again",
            give_back(&carl, &o1, &r1),
            exists("return_id"),
        ),
        case(
            "unknown customer",
            give_back(&nobody, &o1, ""),
            not_found("customer_id"),
        ),
        case(
            "unknown order",
            give_back(&carl, &id(), ""),
            not_found("order_id"),
        ),
        case("no order id", give_back(&carl, "", ""), invalid("order_id")),
        case(
            "return id not a UUID",
            give_back(&carl, &o1, "r-1"),
            invalid("return_id"),
        ),
        case(
            "no refund",
            v1::RecordReturnRequest {
                refund: None,
                ..give_back(&carl, &o1, "")
            },
            invalid("refund"),
        ),
        case(
            "refund without currency",
            v1::RecordReturnRequest {
                refund: money(100, ""),
                ..give_back(&carl, &o1, "")
            },
            invalid("refund.currency"),
        ),
        case(
            "refund currency not ISO 4217",
            v1::RecordReturnRequest {
                refund: money(100, "EURO"),
                ..give_back(&carl, &o1, "")
            },
            invalid("refund.currency"),
        ),
        case(
            "negative refund",
            v1::RecordReturnRequest {
                refund: money(-1, "EUR"),
                ..give_back(&carl, &o1, "")
            },
            invalid("refund.minor"),
        ),
        case(
            "no reason",
            v1::RecordReturnRequest {
                reason: " ".into(),
                ..give_back(&carl, &o1, "")
            },
            invalid("reason"),
        ),
        case(
            "neither lines nor refund",
            v1::RecordReturnRequest {
                lines: vec![],
                refund: money(0, "EUR"),
                ..give_back(&carl, &o1, "")
            },
            invalid("lines"),
        ),
        case(
            "a line without SKU",
            v1::RecordReturnRequest {
                lines: vec![return_line("", 1)],
                ..give_back(&carl, &o1, "")
            },
            invalid("lines[0].sku"),
        ),
        case(
            "a line of quantity zero",
            v1::RecordReturnRequest {
                lines: vec![return_line("A", 0)],
                ..give_back(&carl, &o1, "")
            },
            invalid("lines[0].quantity"),
        ),
        case(
            "refund in another currency than the order",
            v1::RecordReturnRequest {
                refund: money(100, "USD"),
                ..give_back(&carl, &o1, "")
            },
            failed("refund.currency"),
        ),
        case(
            "refund beyond what is left (15.00)",
            v1::RecordReturnRequest {
                lines: vec![],
                refund: money(1501, "EUR"),
                ..give_back(&carl, &o1, "")
            },
            failed("refund.minor"),
        ),
        case(
            "a SKU not on the order",
            v1::RecordReturnRequest {
                lines: vec![return_line("C", 1)],
                ..give_back(&carl, &o1, "")
            },
            failed("lines[0].sku"),
        ),
        case(
            "more pieces than are left (1 x A)",
            v1::RecordReturnRequest {
                lines: vec![return_line("A", 2)],
                ..give_back(&carl, &o1, "")
            },
            failed("lines[0].quantity"),
        ),
        case(
            "more pieces than are left, over two lines",
            v1::RecordReturnRequest {
                lines: vec![return_line("A", 1), return_line("A", 1)],
                refund: money(0, "EUR"),
                ..give_back(&carl, &o1, "")
            },
            failed("lines[1].quantity"),
        ),
        case(
            "the rest, no id (derived)",
            v1::RecordReturnRequest {
                lines: vec![return_line("A", 1), return_line("B", 1)],
                refund: money(1500, "EUR"),
                ..give_back(&carl, &o1, "")
            },
            ok(5),
        ),
        case(
            "anything more",
            v1::RecordReturnRequest {
                lines: vec![],
                refund: money(1, "EUR"),
                ..give_back(&carl, &o1, "")
            },
            failed("refund.minor"),
        ),
    ])
    .await;

    let t1 = id();
    let closed = id();
    api.run(vec![
        case("a chat", open(&carl, &t1), ok(6)),
        case(
            "no id (derived), urgent",
            v1::OpenTicketRequest {
                priority: v1::TicketPriority::Urgent.into(),
                ..open(&carl, "")
            },
            ok(7),
        ),
        case(
            "the same ticket id again",
            open(&carl, &t1),
            exists("ticket_id"),
        ),
        case(
            "unknown customer",
            open(&nobody, ""),
            not_found("customer_id"),
        ),
        case("no customer id", open("", ""), invalid("customer_id")),
        case(
            "ticket id not a UUID",
            open(&carl, "t-1"),
            invalid("ticket_id"),
        ),
        case(
            "channel unspecified",
            v1::OpenTicketRequest {
                channel: v1::Channel::Unspecified.into(),
                ..open(&carl, "")
            },
            invalid("channel"),
        ),
        case(
            "priority unspecified",
            v1::OpenTicketRequest {
                priority: v1::TicketPriority::Unspecified.into(),
                ..open(&carl, "")
            },
            invalid("priority"),
        ),
        case(
            "priority out of the enum",
            v1::OpenTicketRequest {
                priority: 9,
                ..open(&carl, "")
            },
            invalid("priority"),
        ),
        case(
            "no category",
            v1::OpenTicketRequest {
                category: String::new(),
                ..open(&carl, "")
            },
            invalid("category"),
        ),
        case(
            "category not a key",
            v1::OpenTicketRequest {
                category: "Billing Dept".into(),
                ..open(&carl, "")
            },
            invalid("category"),
        ),
        case(
            "no subject",
            v1::OpenTicketRequest {
                subject: String::new(),
                ..open(&carl, "")
            },
            invalid("subject"),
        ),
        case(
            "subject too long",
            v1::OpenTicketRequest {
                subject: chars(501),
                ..open(&carl, "")
            },
            invalid("subject"),
        ),
        // A ticket to close, for the cases on closed tickets.
        case("another", open(&carl, &closed), ok(8)),
        case("resolve it", resolve(&carl, &closed), ok(9)),
        case("close it", close(&carl, &closed), ok(10)),
    ])
    .await;

    api.run(vec![
        case("to an agent", assign(&carl, &t1, "alice"), ok(11)),
        case("to the same agent", assign(&carl, &t1, "alice"), noop(11)),
        case(
            "by a rule",
            v1::AssignTicketRequest {
                rule: "round-robin".into(),
                ..assign(&carl, &t1, "bob")
            },
            ok(12),
        ),
        case(
            "a closed ticket",
            assign(&carl, &closed, "alice"),
            failed("ticket_id"),
        ),
        case(
            "unknown ticket",
            assign(&carl, &id(), "alice"),
            not_found("ticket_id"),
        ),
        case(
            "unknown customer",
            assign(&nobody, &t1, "alice"),
            not_found("customer_id"),
        ),
        case(
            "no ticket id",
            assign(&carl, "", "alice"),
            invalid("ticket_id"),
        ),
        case(
            "no customer id",
            assign("", &t1, "alice"),
            invalid("customer_id"),
        ),
        case("no agent", assign(&carl, &t1, ""), invalid("agent")),
        case(
            "agent too long",
            assign(&carl, &t1, &chars(101)),
            invalid("agent"),
        ),
        case(
            "blank rule",
            v1::AssignTicketRequest {
                rule: " ".into(),
                ..assign(&carl, &t1, "alice")
            },
            invalid("rule"),
        ),
    ])
    .await;

    api.run(vec![
        case("first response", respond(&carl, &t1), ok(13)),
        case(
            "asking the customer",
            v1::RespondToTicketRequest {
                awaiting_customer: true,
                ..respond(&carl, &t1)
            },
            ok(14),
        ),
        case(
            "(LogInteraction) the customer answers: it resumes the ticket, two events",
            v1::LogInteractionRequest {
                customer_id: carl.clone(),
                channel: v1::Channel::Email.into(),
                direction: v1::Direction::Inbound.into(),
                ticket_id: t1.clone(),
                ..Default::default()
            },
            ok(16),
        ),
        case(
            "a closed ticket",
            respond(&carl, &closed),
            failed("ticket_id"),
        ),
        case(
            "unknown ticket",
            respond(&carl, &id()),
            not_found("ticket_id"),
        ),
        case(
            "unknown customer",
            respond(&nobody, &t1),
            not_found("customer_id"),
        ),
        case(
            "ticket id not a UUID",
            respond(&carl, "t1"),
            invalid("ticket_id"),
        ),
        case(
            "no agent",
            v1::RespondToTicketRequest {
                agent: String::new(),
                ..respond(&carl, &t1)
            },
            invalid("agent"),
        ),
    ])
    .await;

    api.run(vec![
        case("an open ticket", resolve(&carl, &t1), ok(17)),
        case("again", resolve(&carl, &t1), failed("ticket_id")),
        case(
            "(RespondToTicket) a resolved ticket",
            respond(&carl, &t1),
            failed("ticket_id"),
        ),
        case(
            "a closed ticket",
            resolve(&carl, &closed),
            failed("ticket_id"),
        ),
        case(
            "unknown ticket",
            resolve(&carl, &id()),
            not_found("ticket_id"),
        ),
        case(
            "unknown customer",
            resolve(&nobody, &t1),
            not_found("customer_id"),
        ),
        case("no ticket id", resolve(&carl, ""), invalid("ticket_id")),
        case(
            "resolution with a control character",
            v1::ResolveTicketRequest {
                resolution: "done\u{1b}".into(),
                ..resolve(&carl, &t1)
            },
            invalid("resolution"),
        ),
        case(
            "resolution too long",
            v1::ResolveTicketRequest {
                resolution: chars(10_001),
                ..resolve(&carl, &t1)
            },
            invalid("resolution"),
        ),
    ])
    .await;

    api.run(vec![
        case("a resolved ticket", reopen(&carl, &t1), ok(18)),
        case("an open ticket", reopen(&carl, &t1), failed("ticket_id")),
        case(
            "a closed ticket",
            reopen(&carl, &closed),
            failed("ticket_id"),
        ),
        case(
            "unknown ticket",
            reopen(&carl, &id()),
            not_found("ticket_id"),
        ),
        case(
            "unknown customer",
            reopen(&nobody, &t1),
            not_found("customer_id"),
        ),
        case("no customer id", reopen("", &t1), invalid("customer_id")),
        case(
            "no reason",
            v1::ReopenTicketRequest {
                reason: String::new(),
                ..reopen(&carl, &t1)
            },
            invalid("reason"),
        ),
        case(
            "reason too long",
            v1::ReopenTicketRequest {
                reason: chars(501),
                ..reopen(&carl, &t1)
            },
            invalid("reason"),
        ),
    ])
    .await;

    let rated = |csat| v1::CloseTicketRequest {
        csat: Some(csat),
        ..close(&carl, &t1)
    };
    api.run(vec![
        case("an open ticket", close(&carl, &t1), failed("ticket_id")),
        case("csat 0", rated(0), invalid("csat")),
        case("csat 6", rated(6), invalid("csat")),
        case("csat beyond a byte", rated(300), invalid("csat")),
        case(
            "comment with a control character",
            v1::CloseTicketRequest {
                comment: "\u{8}".into(),
                ..close(&carl, &t1)
            },
            invalid("comment"),
        ),
        case(
            "unknown ticket",
            close(&carl, &id()),
            not_found("ticket_id"),
        ),
        case(
            "unknown customer",
            close(&nobody, &t1),
            not_found("customer_id"),
        ),
        case(
            "ticket id not a UUID",
            close(&carl, "x"),
            invalid("ticket_id"),
        ),
        case("(ResolveTicket) resolve it", resolve(&carl, &t1), ok(19)),
        case(
            "a resolved ticket, rated",
            v1::CloseTicketRequest {
                comment: "quick and kind".into(),
                ..rated(5)
            },
            ok(20),
        ),
        case("a closed ticket", close(&carl, &t1), failed("ticket_id")),
    ])
    .await;

    let (p1, p2) = (id(), id());
    let mut far_future = v1::OpenOpportunityRequest {
        expected_close: Some(Default::default()),
        ..opportunity(&carl, "")
    };
    if let Some(t) = far_future.expected_close.as_mut() {
        t.seconds = 253_402_300_800; // 10000-01-01
    }
    let mut in_june = v1::OpenOpportunityRequest {
        pipeline: "sales".into(),
        stage: "proposal".into(),
        owner: "sam".into(),
        expected_close: Some(Default::default()),
        lead_id: id(),
        campaign_id: id(),
        ..opportunity(&carl, &p2)
    };
    if let Some(t) = in_june.expected_close.as_mut() {
        t.seconds = 1_782_864_000;
    }
    api.run(vec![
        case(
            "default pipeline and stage",
            opportunity(&carl, &p1),
            ok(21),
        ),
        case("named pipeline and stage, with everything", in_june, ok(22)),
        case(
            "the same opportunity id again",
            opportunity(&carl, &p1),
            exists("opportunity_id"),
        ),
        case(
            "unknown customer",
            opportunity(&nobody, ""),
            not_found("customer_id"),
        ),
        case(
            "no customer id",
            opportunity("", ""),
            invalid("customer_id"),
        ),
        case(
            "opportunity id not a UUID",
            opportunity(&carl, "p1"),
            invalid("opportunity_id"),
        ),
        case(
            "no name",
            v1::OpenOpportunityRequest {
                name: " ".into(),
                ..opportunity(&carl, "")
            },
            invalid("name"),
        ),
        case(
            "no amount",
            v1::OpenOpportunityRequest {
                amount: None,
                ..opportunity(&carl, "")
            },
            invalid("amount"),
        ),
        case(
            "negative amount",
            v1::OpenOpportunityRequest {
                amount: money(-1, "EUR"),
                ..opportunity(&carl, "")
            },
            invalid("amount.minor"),
        ),
        case(
            "amount without currency",
            v1::OpenOpportunityRequest {
                amount: money(1, ""),
                ..opportunity(&carl, "")
            },
            invalid("amount.currency"),
        ),
        case(
            "unknown pipeline",
            v1::OpenOpportunityRequest {
                pipeline: "enterprise".into(),
                ..opportunity(&carl, "")
            },
            invalid("pipeline"),
        ),
        case(
            "unknown stage",
            v1::OpenOpportunityRequest {
                stage: "won".into(),
                ..opportunity(&carl, "")
            },
            invalid("stage"),
        ),
        case(
            "blank owner",
            v1::OpenOpportunityRequest {
                owner: " ".into(),
                ..opportunity(&carl, "")
            },
            invalid("owner"),
        ),
        case(
            "expected close beyond year 9999",
            far_future,
            invalid("expected_close"),
        ),
        case(
            "lead id not a UUID",
            v1::OpenOpportunityRequest {
                lead_id: "l".into(),
                ..opportunity(&carl, "")
            },
            invalid("lead_id"),
        ),
        case(
            "campaign id not a UUID",
            v1::OpenOpportunityRequest {
                campaign_id: "c".into(),
                ..opportunity(&carl, "")
            },
            invalid("campaign_id"),
        ),
    ])
    .await;

    let at = |pct| v1::MoveOpportunityStageRequest {
        probability_pct: Some(pct),
        ..move_to(&carl, &p1, "negotiation")
    };
    api.run(vec![
        case("to a later stage", move_to(&carl, &p1, "proposal"), ok(23)),
        case("with a probability", at(55), ok(24)),
        case(
            "to the stage it is in",
            move_to(&carl, &p1, "negotiation"),
            failed("stage"),
        ),
        case("back", move_to(&carl, &p1, "initial_contact"), ok(25)),
        case(
            "to a stage the pipeline does not have",
            move_to(&carl, &p1, "won"),
            invalid("stage"),
        ),
        case("no stage", move_to(&carl, &p1, ""), invalid("stage")),
        case(
            "stage not a key",
            move_to(&carl, &p1, "Proposal"),
            invalid("stage"),
        ),
        case("probability 101", at(101), invalid("probability_pct")),
        case(
            "probability beyond a byte",
            at(256),
            invalid("probability_pct"),
        ),
        case(
            "unknown opportunity",
            move_to(&carl, &id(), "proposal"),
            not_found("opportunity_id"),
        ),
        case(
            "unknown customer",
            move_to(&nobody, &p1, "proposal"),
            not_found("customer_id"),
        ),
        case(
            "no opportunity id",
            move_to(&carl, "", "proposal"),
            invalid("opportunity_id"),
        ),
    ])
    .await;

    let win_at = |amount| v1::WinOpportunityRequest {
        amount,
        ..win(&carl, &p1)
    };
    api.run(vec![
        case(
            "in another currency",
            win_at(money(90_000, "USD")),
            failed("amount.currency"),
        ),
        case(
            "negative amount",
            win_at(money(-1, "EUR")),
            invalid("amount.minor"),
        ),
        case(
            "amount without currency",
            win_at(money(90_000, "")),
            invalid("amount.currency"),
        ),
        case(
            "unknown opportunity",
            win(&carl, &id()),
            not_found("opportunity_id"),
        ),
        case(
            "unknown customer",
            win(&nobody, &p1),
            not_found("customer_id"),
        ),
        case("no customer id", win("", &p1), invalid("customer_id")),
        case(
            "with the final amount",
            win_at(money(90_000, "EUR")),
            ok(26),
        ),
        case("again", win(&carl, &p1), failed("opportunity_id")),
        case(
            "(MoveOpportunityStage) a won opportunity",
            move_to(&carl, &p1, "proposal"),
            failed("opportunity_id"),
        ),
        case(
            "(LoseOpportunity) a won opportunity",
            lose(&carl, &p1),
            failed("opportunity_id"),
        ),
    ])
    .await;

    api.run(vec![
        case(
            "no reason",
            v1::LoseOpportunityRequest {
                reason: String::new(),
                ..lose(&carl, &p2)
            },
            invalid("reason"),
        ),
        case(
            "reason too long",
            v1::LoseOpportunityRequest {
                reason: chars(501),
                ..lose(&carl, &p2)
            },
            invalid("reason"),
        ),
        case(
            "unknown opportunity",
            lose(&carl, &id()),
            not_found("opportunity_id"),
        ),
        case(
            "unknown customer",
            lose(&nobody, &p2),
            not_found("customer_id"),
        ),
        case(
            "opportunity id not a UUID",
            lose(&carl, "p2"),
            invalid("opportunity_id"),
        ),
        case("an open opportunity", lose(&carl, &p2), ok(27)),
        case("again", lose(&carl, &p2), failed("opportunity_id")),
        case(
            "(WinOpportunity) a lost opportunity",
            win(&carl, &p2),
            failed("opportunity_id"),
        ),
        case(
            "(MoveOpportunityStage) a lost opportunity",
            move_to(&carl, &p2, "proposal"),
            failed("opportunity_id"),
        ),
        case(
            "(UpdateOpportunity) a lost opportunity",
            update(&carl, &p2),
            failed("opportunity_id"),
        ),
    ])
    .await;

    let reopen = |opportunity_id: &str, stage: &str, reason: &str| v1::ReopenOpportunityRequest {
        customer_id: carl.clone(),
        opportunity_id: opportunity_id.into(),
        stage: stage.into(),
        reason: reason.into(),
        ..Default::default()
    };
    api.run(vec![
        case("no reason", reopen(&p2, "", ""), invalid("reason")),
        case(
            "a stage the pipeline does not have",
            reopen(&p2, "won", "budget approved"),
            invalid("stage"),
        ),
        case(
            "a won opportunity",
            reopen(&p1, "", "budget approved"),
            failed("opportunity_id"),
        ),
        case(
            "a lost opportunity, at the stage it was lost at",
            reopen(&p2, "", "budget approved"),
            ok(28),
        ),
        case(
            "again: it is open",
            reopen(&p2, "", "budget approved"),
            failed("opportunity_id"),
        ),
    ])
    .await;

    let amount_owner = v1::UpdateOpportunityRequest {
        amount: money(150_000, "EUR"),
        owner: Some("kim".into()),
        ..update(&carl, &p2)
    };
    api.run(vec![
        case(
            "nothing to change",
            v1::UpdateOpportunityRequest {
                owner: None,
                ..update(&carl, &p2)
            },
            invalid("name"),
        ),
        case(
            "an amount in another currency",
            v1::UpdateOpportunityRequest {
                amount: money(150_000, "USD"),
                ..update(&carl, &p2)
            },
            failed("amount.currency"),
        ),
        case(
            "expected close not a timestamp",
            v1::UpdateOpportunityRequest {
                expected_close: Some(prost_types::Timestamp {
                    seconds: 0,
                    nanos: -1,
                }),
                ..update(&carl, &p2)
            },
            invalid("expected_close"),
        ),
        case("amount and owner", amount_owner.clone(), ok(29)),
        case("the same values again: no change", amount_owner, noop(29)),
        case(
            "(WinOpportunity) the reopened deal",
            win(&carl, &p2),
            ok(30),
        ),
    ])
    .await;
    api.finish().await;
}

fn update(customer_id: &str, opportunity_id: &str) -> v1::UpdateOpportunityRequest {
    v1::UpdateOpportunityRequest {
        customer_id: customer_id.into(),
        opportunity_id: opportunity_id.into(),
        owner: Some("kim".into()),
        ..Default::default()
    }
}
