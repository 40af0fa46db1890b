//! The churn-risk score: signals read from the fold at a moment (tickets open then,
//! complaints and late first responses of the last 90 days, the latest rating, falling
//! engagement, unsubscribes), each moving 1 - P(alive) by its rule, with the drivers.

use crm_churn::signals::{Band, RiskRules, Service, Signals};
use crm_domain::{
    CampaignId, CampaignResponse, Channel, CustomerEvent, Direction, InteractionId,
    InteractionLogged, SlaTargets, TicketId, TicketOpened, TicketPriority, Timestamp,
};
use uuid::Uuid;

const DAY: i64 = Timestamp::MICROS_PER_DAY;
const HOUR: i64 = 60 * Timestamp::MICROS_PER_MINUTE;
/// 2026-01-01T00:00:00Z.
const JAN1: i64 = 1_767_225_600_000_000;

fn opened(id: u128, category: &str) -> CustomerEvent {
    CustomerEvent::TicketOpened(TicketOpened {
        ticket_id: TicketId(Uuid::from_u128(id)),
        channel: Channel::Email,
        category: category.into(),
        priority: TicketPriority::Normal,
        subject: String::new(),
        sla: SlaTargets {
            policy: "standard".into(),
            first_response_mins: 240,
            resolution_mins: 2_880,
        },
    })
}

fn ticket(id: u128) -> TicketId {
    TicketId(Uuid::from_u128(id))
}

fn interaction(id: u128) -> CustomerEvent {
    CustomerEvent::InteractionLogged(InteractionLogged {
        interaction_id: InteractionId(Uuid::from_u128(id)),
        channel: Channel::Phone,
        direction: Direction::Inbound,
        agent: None,
        subject: String::new(),
        summary: String::new(),
        sentiment: None,
        ticket: None,
        opportunity: None,
        campaign: None,
        call: None,
    })
}

fn history() -> Service {
    let mut s = Service::default();
    let events: Vec<(i64, CustomerEvent)> = vec![
        // A complaint on day 100, answered after 2 h (in time), resolved, closed rated 1.
        (JAN1 + 100 * DAY, opened(1, "complaint")),
        (
            JAN1 + 100 * DAY + 2 * HOUR,
            CustomerEvent::TicketResponded {
                ticket_id: ticket(1),
                agent: "bo".into(),
                first_response: true,
                awaiting_customer: false,
            },
        ),
        (
            JAN1 + 101 * DAY,
            CustomerEvent::TicketResolved {
                ticket_id: ticket(1),
                resolution: String::new(),
            },
        ),
        (
            JAN1 + 103 * DAY,
            CustomerEvent::TicketClosed {
                ticket_id: ticket(1),
                csat: Some(1),
                comment: String::new(),
            },
        ),
        // A question on day 150, never answered: late after 4 h, open.
        (JAN1 + 150 * DAY, opened(2, "question")),
        (
            JAN1 + 160 * DAY,
            CustomerEvent::CampaignResponseRecorded {
                campaign_id: CampaignId(Uuid::from_u128(9)),
                response: CampaignResponse::Unsubscribed,
            },
        ),
    ];
    for (at, e) in &events {
        assert!(s.apply(*at, e));
    }
    // Six interactions in days 0-80, one on day 120.
    for (i, d) in [5, 20, 40, 41, 60, 80, 120].into_iter().enumerate() {
        assert!(s.apply(JAN1 + d * DAY, &interaction(i as u128)));
    }
    s
}

#[test]
fn signals_are_read_at_the_moment_asked() {
    let s = history();
    // Day 102: the complaint resolved; rated only on day 103; 5 interactions in days
    // 13-102, 1 in the 90 days before.
    let at_102 = s.signals(JAN1 + 102 * DAY);
    assert_eq!(
        at_102,
        Signals {
            open_tickets: 0,
            complaints: 1,
            sla_breaches: 0,
            last_csat: None,
            interactions_recent: 5,
            interactions_before: 1,
            unsubscribed: false,
        }
    );
    // Day 170: the question open and late, rated 1, unsubscribed; 1 interaction in the
    // last 90 days (days 81-170) against 6 before.
    let at_170 = s.signals(JAN1 + 170 * DAY);
    assert_eq!(
        at_170,
        Signals {
            open_tickets: 1,
            complaints: 1,
            sla_breaches: 1,
            last_csat: Some(1),
            interactions_recent: 1,
            interactions_before: 6,
            unsubscribed: true,
        }
    );
    // Day 350: the complaint out of the 90 days, the rating (day 103) and the
    // unsubscribe (day 160) out of the 180; the question still open.
    let at_300 = s.signals(JAN1 + 350 * DAY);
    assert_eq!(
        (at_300.complaints, at_300.last_csat, at_300.unsubscribed),
        (0, None, false)
    );
    assert_eq!(at_300.open_tickets, 1);
}

#[test]
fn the_score_is_one_minus_p_alive_moved_by_each_driver() {
    let rules = RiskRules::default();
    let s = history().signals(JAN1 + 170 * DAY);
    let risk = rules.score(0.8, &s);
    let names: Vec<&str> = risk.drivers.iter().map(|d| d.name).collect();
    assert_eq!(
        names,
        [
            "open_tickets",
            "recent_complaints",
            "sla_breaches",
            "csat",
            "falling_engagement",
            "unsubscribed"
        ]
    );
    // 0.2 + 0.05 + 0.10 + 0.05 + 0.10 + 0.05 + 0.05.
    assert!((risk.base - 0.2).abs() < 1e-12);
    assert!((risk.score - 0.6).abs() < 1e-12, "{risk:?}");
    assert_eq!(risk.band, Band::High);
    assert_eq!(risk.rules, "risk-v1");
    // Nothing but P(alive): no drivers, the band from the base alone.
    let calm = rules.score(0.9, &Signals::default());
    assert!(calm.drivers.is_empty());
    assert_eq!(calm.band, Band::Low);
    // A good rating lowers the score, never below 0.
    let happy = Signals {
        last_csat: Some(5),
        ..Signals::default()
    };
    let r = rules.score(1.0, &happy);
    assert_eq!((r.score, r.drivers[0].delta), (0.0, -0.05));
    // Capped per signal, and the score stays within [0, 1].
    let storm = Signals {
        open_tickets: 10,
        complaints: 10,
        ..Signals::default()
    };
    let r = rules.score(0.05, &storm);
    assert_eq!(r.drivers[0].delta, 0.15);
    assert_eq!(r.drivers[1].delta, 0.20);
    assert_eq!(r.score, 1.0);
}
