//! Campaigns: creation, sends (consent checked per recipient at the send), costs, and
//! the responses recorded on the customer.

use super::*;

fn ev(id: CampaignId, e: CampaignEvent) -> DomainEvent {
    DomainEvent::Campaign(id, e)
}

/// Decides [`Command::RecordCampaignResponse`].
pub(super) fn record_campaign_response(
    world: &World,
    customer_id: &CustomerId,
    campaign_id: &CampaignId,
    response: &CampaignResponse,
) -> Result<Vec<DomainEvent>, Rejection> {
    let mut check = Check::new();
    if let CampaignResponse::Converted {
        revenue: Some(r), ..
    } = response
    {
        check.amount("response.revenue.minor", r.minor, true);
    }
    check.finish()?;
    let customer = existing_customer(world, *customer_id, "customer_id")?;
    let campaign = existing_campaign(world, *campaign_id, "campaign_id")?;
    if campaign.waves == 0 {
        return Err(Rejection::precondition(
            "campaign_id",
            "state",
            format!("campaign {campaign_id} has not been sent yet"),
        ));
    }
    let mut events = vec![customer_event(
        *customer_id,
        CustomerEvent::CampaignResponseRecorded {
            campaign_id: *campaign_id,
            response: response.clone(),
        },
    )];
    if *response == CampaignResponse::Unsubscribed
        && let Some(channel) = ConsentChannel::for_channel(campaign.channel)
        && customer.consent.get(&channel) != Some(&false)
    {
        events.push(customer_event(
            *customer_id,
            CustomerEvent::ConsentChanged {
                channel,
                granted: false,
                source: format!("campaign:{campaign_id}:unsubscribe"),
            },
        ));
    }
    Ok(events)
}

/// Decides [`Command::CreateCampaign`].
pub(super) fn create_campaign(
    world: &World,
    campaign_id: &CampaignId,
    campaign: &CampaignCreated,
) -> Result<Vec<DomainEvent>, Rejection> {
    let mut check = Check::new();
    check.required("name", &campaign.name, NAME_MAX);
    check.text("segment", &campaign.segment, SUBJECT_MAX);
    if let Some(b) = &campaign.budget {
        check.amount("budget.minor", b.minor, true);
    }
    check.finish()?;
    if world.campaigns.contains_key(campaign_id) {
        return Err(Rejection::already_exists(
            "campaign_id",
            format!("campaign {campaign_id} already exists"),
        ));
    }
    Ok(vec![ev(
        *campaign_id,
        CampaignEvent::Created(campaign.clone()),
    )])
}

/// Decides [`Command::SendCampaign`].
pub(super) fn send_campaign(
    world: &World,
    campaign_id: &CampaignId,
    recipients: &[CustomerId],
) -> Result<Vec<DomainEvent>, Rejection> {
    let mut check = Check::new();
    if recipients.is_empty() {
        check.fail(
            "recipients",
            "required",
            "a send needs at least one recipient",
        );
    }
    check.list_len("recipients", recipients.len(), RECIPIENTS_MAX);
    let mut sorted = recipients.to_vec();
    sorted.sort();
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        check.fail(
            "recipients",
            "unique",
            format!("customer {} is listed more than once", w[0]),
        );
    }
    check.finish()?;
    let campaign = existing_campaign(world, *campaign_id, "campaign_id")?;
    let (sent, skipped) = consenting(world, campaign.channel, recipients);
    if sent.is_empty() {
        return Err(Rejection::precondition(
            "recipients",
            "consent",
            format!(
                "none of the {} recipient(s) may receive a campaign on {:?}: {}",
                recipients.len(),
                campaign.channel,
                skip_counts(&skipped)
            ),
        ));
    }
    Ok(vec![ev(
        *campaign_id,
        CampaignEvent::Sent {
            wave: campaign.waves + 1,
            recipients: sent,
            skipped,
        },
    )])
}

/// Decides [`Command::RecordCampaignCost`].
pub(super) fn record_campaign_cost(
    world: &World,
    campaign_id: &CampaignId,
    amount: &Money,
    note: &str,
) -> Result<Vec<DomainEvent>, Rejection> {
    let mut check = Check::new();
    check.amount("amount.minor", amount.minor, false);
    check.text("note", note, SUBJECT_MAX);
    check.finish()?;
    let campaign = existing_campaign(world, *campaign_id, "campaign_id")?;
    let mut check = Check::new();
    if let Some(cur) = campaign.currency {
        same_currency(&mut check, "amount.currency", cur, amount.currency);
    }
    if campaign.total_cost_minor.saturating_add(amount.minor) > AMOUNT_MAX {
        check.fail(
            "amount.minor",
            "total_exceeds_limit",
            format!("the campaign's total cost would exceed {AMOUNT_MAX} minor units"),
        );
    }
    check.finish().map_err(|mut r| {
        r.kind = RejectionKind::FailedPrecondition;
        r
    })?;
    Ok(vec![ev(
        *campaign_id,
        CampaignEvent::CostRecorded {
            amount: *amount,
            note: note.to_owned(),
        },
    )])
}

/// The recipients who may receive a campaign on `channel` now (their consent to it holds,
/// or the channel needs none), and the others with the reason, in the order given.
pub(super) fn consenting(
    world: &World,
    channel: Channel,
    recipients: &[CustomerId],
) -> (Vec<CustomerId>, Vec<SkippedRecipient>) {
    let needed = ConsentChannel::for_channel(channel);
    let mut sent = Vec::with_capacity(recipients.len());
    let mut skipped = Vec::new();
    for id in recipients {
        let reason = match (world.customers.get(id), needed) {
            // A forgotten customer is no one the business may contact.
            (None, _) => Some(SkipReason::UnknownCustomer),
            (Some(c), _) if c.forgotten => Some(SkipReason::UnknownCustomer),
            (Some(_), None) => None,
            (Some(c), Some(consent)) => match c.consent.get(&consent) {
                Some(true) => None,
                Some(false) => Some(SkipReason::ConsentWithdrawn),
                None => Some(SkipReason::NoConsent),
            },
        };
        match reason {
            None => sent.push(*id),
            Some(reason) => skipped.push(SkippedRecipient {
                customer_id: *id,
                reason,
            }),
        }
    }
    (sent, skipped)
}

/// "3 no_consent, 1 consent_withdrawn": how many were left out for each reason.
pub(super) fn skip_counts(skipped: &[SkippedRecipient]) -> String {
    let mut counts = BTreeMap::new();
    for s in skipped {
        *counts.entry(s.reason).or_insert(0usize) += 1;
    }
    counts
        .iter()
        .map(|(r, n)| format!("{n} {}", r.name()))
        .collect::<Vec<_>>()
        .join(", ")
}
