//! The fold: events in, record changes out. No clock, no randomness, ordered maps only.

use std::collections::BTreeSet;

use crm_domain::{
    Actor, AggregateRef, CampaignEvent, CampaignResponse, ConsentChannel, CustomerEvent,
    CustomerId, DomainEvent, ForecastCategory, LeadEvent, Money, RelationshipKind, SkipReason,
    TicketPriority, Timestamp,
};
use crm_projection::{DeadLetter, Event, FoldError, Projection, State, load, save, store, take};

use crate::keys::{self, id_key};
use crate::record::{
    AcquisitionRecord, AddressRecord, CampaignInfo, ConsentRecord, CustomerFacts, CustomerRecord,
    DealStatus, Erasure, Id, LeadInfo, LeadOrigin, Opportunity, Part, ProfileRecord, Summary,
    Ticket, TicketState, TimelineEntry,
};

/// Adds without overflow: a fold never panics or wraps, whatever the events hold;
/// counters and sums stop at their type's bound.
pub(crate) trait SatAdd: Copy {
    fn sat_add(&mut self, v: Self);
}

macro_rules! sat_add {
    ($($t:ty),*) => {$(
        impl SatAdd for $t {
            fn sat_add(&mut self, v: Self) {
                *self = self.saturating_add(v);
            }
        }
    )*};
}
sat_add!(u16, u32, u64, i64);

/// The customer 360° projection.
#[derive(Clone, Debug)]
pub struct Customer360 {
    /// The currency whose net revenue drives the value index and RFM's monetary score
    /// (no exchange rates are applied: other currencies are reported per currency).
    pub reporting_currency: String,
}

impl Default for Customer360 {
    fn default() -> Self {
        Self {
            reporting_currency: "EUR".into(),
        }
    }
}

impl Projection for Customer360 {
    const NAME: &'static str = "customer360";
    // 2: timeline keys and entries carry the event's index in its message.
    // 3: the timeline is stored in chunks per customer (`keys::TIMELINE_CHUNK`).
    // 4: timeline summaries keep personal data in their own parts (`record::Summary`).
    // 5: sends record whether consent held (`Marketing::received_without_consent`,
    //    `skipped`; `CampaignInfo::consent`).
    // 6: forgotten customers (`CustomerRecord::forgotten`, personal data scrubbed); a
    //    reopened deal's reason is a personal part of its summary.
    const VERSION: u32 = 6;

    fn fingerprint(&self) -> String {
        format!("reporting_currency={}", self.reporting_currency)
    }

    fn apply(&self, state: &mut dyn State, event: &Event<'_>) -> Result<(), FoldError> {
        match &event.envelope.event {
            DomainEvent::Customer(id, e) => self.customer(state, event, *id, e),
            DomainEvent::Lead(id, e) => lead(state, event, id.0.into_bytes(), e),
            DomainEvent::Campaign(id, e) => campaign(state, event, id.0.into_bytes(), e),
        }
    }

    fn on_dead_letter(
        &self,
        state: &mut dyn State,
        aggregate: Option<AggregateRef>,
        letter: &DeadLetter,
    ) {
        let Some(AggregateRef::Customer(id)) = aggregate else {
            return;
        };
        let key = id_key(keys::CUSTOMER, id.0.into_bytes());
        // A record that does not decode is left alone: its own events dead-letter too.
        let Ok(record) = load::<CustomerRecord>(state, &key) else {
            return;
        };
        let mut record = record.unwrap_or_else(|| CustomerRecord {
            id: id.0.into_bytes(),
            ..CustomerRecord::default()
        });
        record.dead_letters.push(letter.seq);
        save(state, &key, &record);
    }
}

impl Customer360 {
    fn customer(
        &self,
        state: &mut dyn State,
        event: &Event<'_>,
        id: CustomerId,
        e: &CustomerEvent,
    ) -> Result<(), FoldError> {
        let id = id.0.into_bytes();
        let key = id_key(keys::CUSTOMER, id);
        // Taken without a copy: stored back below, or restored by the runtime when the
        // event is rejected.
        let old: Option<CustomerRecord> = take(state, &key)?;
        let meta = &event.envelope.meta;
        let at = meta.occurred_at.0;
        // What the indexes and facts were, so the record itself can be updated in place
        // (no copy of it per event).
        let before = old.as_ref().map(|o| (self.index_keys(o), self.facts(o)));
        let mut r = match (old, e) {
            (Some(ref r), CustomerEvent::Registered(_)) if r.registered => {
                return Err(FoldError::Rejected(
                    "the customer is already registered".into(),
                ));
            }
            (None, CustomerEvent::Registered(_)) => CustomerRecord {
                id,
                ..CustomerRecord::default()
            },
            (None, _) => {
                return Err(FoldError::Rejected(format!(
                    "customer {} was never registered",
                    uuid::Uuid::from_bytes(id)
                )));
            }
            (Some(r), _) => r,
        };
        let summary = apply_customer(&mut r, e, at, &actor(&meta.actor))?;
        if let (CustomerEvent::Registered(_), Some(origin)) = (e, r.origin_lead.as_mut()) {
            // A conversion commit may carry the lead's event before the registration.
            if let Some(info) = load::<LeadInfo>(state, &id_key(keys::LEAD, origin.lead_id))? {
                origin.source = Some(info.source);
                origin.captured_at = Some(info.captured_at);
                origin.converted_at.get_or_insert(at);
            }
        }
        r.version = meta.version;
        r.last_seq = event.seq;
        r.updated_at = r.updated_at.max(at);
        if matches!(e, CustomerEvent::Forgotten { .. }) {
            scrub_timeline(state, &r)?;
        }
        timeline(state, &mut r, event, summary);
        self.reindex(state, before, &r);
        store(state, &key, r);
        Ok(())
    }

    fn facts(&self, r: &CustomerRecord) -> CustomerFacts {
        CustomerFacts {
            orders: r.commerce.orders,
            last_order_at: r.commerce.last_order_at,
            net_revenue_minor: r
                .commerce
                .amounts
                .get(&self.reporting_currency)
                .map_or(0, |a| a.revenue_minor.saturating_sub(a.refunded_minor)),
        }
    }

    fn index_keys(&self, r: &CustomerRecord) -> BTreeSet<Vec<u8>> {
        let mut keys = BTreeSet::new();
        for tag in &r.tags {
            keys.insert(keys::text_index(keys::BY_TAG, tag, r.id));
        }
        if let Some(owner) = &r.owner {
            keys.insert(keys::text_index(keys::BY_OWNER, owner, r.id));
        }
        if let Some(last) = r.commerce.last_order_at {
            keys.insert(keys::desc_index(keys::BY_RECENCY, last, r.id));
        }
        if r.commerce.orders > 0 {
            let facts = self.facts(r);
            keys.insert(keys::desc_index(
                keys::BY_VALUE,
                facts.net_revenue_minor,
                r.id,
            ));
        }
        keys
    }

    /// Moves the record's index entries and facts from `before` (its index keys and
    /// facts before the event; `None` for a new record) to what `new` needs.
    fn reindex(
        &self,
        state: &mut dyn State,
        before: Option<(BTreeSet<Vec<u8>>, CustomerFacts)>,
        new: &CustomerRecord,
    ) {
        let (keys_before, facts_before) = before.unzip();
        let keys_before = keys_before.unwrap_or_default();
        let after = self.index_keys(new);
        for k in keys_before.difference(&after) {
            state.delete(k);
        }
        for k in after.difference(&keys_before) {
            state.put(k, Vec::new());
        }
        let facts = self.facts(new);
        if facts_before.is_none_or(|f| f != facts) {
            save(state, &id_key(keys::FACTS, new.id), &facts);
        }
    }
}

/// Applies a customer event to the record; returns the timeline summary (personal data
/// in its own parts: see [`Summary`]).
#[allow(clippy::too_many_lines)]
fn apply_customer(
    r: &mut CustomerRecord,
    e: &CustomerEvent,
    at: i64,
    actor: &str,
) -> Result<Summary, FoldError> {
    use CustomerEvent as E;
    Ok(match e {
        E::Registered(reg) => {
            r.registered = true;
            r.registered_at = at;
            r.registered_by = actor.to_owned();
            r.profile = profile(&reg.profile);
            r.owner.clone_from(&reg.owner);
            r.team.clone_from(&reg.team);
            r.acquisition = reg.acquisition.as_ref().map(|a| AcquisitionRecord {
                source: a.source.clone(),
                medium: a.medium.clone(),
                campaign: a.campaign.map(|c| c.0.into_bytes()),
            });
            if let Some(lead) = reg.lead {
                r.origin_lead.get_or_insert_with(|| LeadOrigin {
                    lead_id: lead.0.into_bytes(),
                    ..LeadOrigin::default()
                });
            }
            Summary::text("Registered ").p(format!(
                "{} {}",
                reg.profile.given_name, reg.profile.family_name
            ))
        }
        E::ProfileUpdated(p) => {
            let mut changed = Vec::new();
            let pr = &mut r.profile;
            if let Some(v) = &p.given_name {
                pr.given_name.clone_from(v);
                changed.push("given name");
            }
            if let Some(v) = &p.family_name {
                pr.family_name.clone_from(v);
                changed.push("family name");
            }
            if let Some(v) = &p.emails {
                pr.emails.clone_from(v);
                changed.push("emails");
            }
            if let Some(v) = &p.phones {
                pr.phones.clone_from(v);
                changed.push("phones");
            }
            if let Some(v) = &p.address {
                pr.address = v.as_ref().map(address);
                changed.push("address");
            }
            if let Some(v) = &p.language {
                pr.language.clone_from(v);
                changed.push("language");
            }
            if let Some(v) = &p.country {
                pr.country.clone_from(v);
                changed.push("country");
            }
            if let Some(v) = &p.external_ids {
                pr.external_ids.clone_from(v);
                changed.push("external ids");
            }
            if let Some(v) = &p.owner {
                r.owner.clone_from(v);
                changed.push("owner");
            }
            if let Some(v) = &p.team {
                r.team.clone_from(v);
                changed.push("team");
            }
            Summary::text(format!("Profile updated: {}", changed.join(", ")))
        }
        E::ConsentChanged {
            channel,
            granted,
            source,
        } => {
            r.consent.insert(
                consent_name(*channel).to_owned(),
                ConsentRecord {
                    granted: *granted,
                    source: source.clone(),
                    changed_at: at,
                },
            );
            Summary::text(format!(
                "{} consent {} (",
                consent_name(*channel),
                if *granted { "granted" } else { "withdrawn" }
            ))
            .p(source)
            .t(")")
        }
        E::Tagged { tag } => {
            r.tags.insert(tag.clone());
            Summary::text(format!("Tagged {tag}"))
        }
        E::Untagged { tag } => {
            r.tags.remove(tag);
            Summary::text(format!("Untagged {tag}"))
        }
        E::RelationshipLinked { other, kind } => {
            r.relationships
                .insert((relationship_name(*kind).to_owned(), other.0.into_bytes()));
            Summary::text(format!(
                "Linked as {} of {}",
                relationship_name(*kind),
                other.0
            ))
        }
        E::InteractionLogged(i) => {
            let eng = r.engagement.entry(i.channel.name().to_owned()).or_default();
            eng.last_at = eng.last_at.max(at);
            match i.direction {
                crm_domain::Direction::Inbound => eng.inbound.sat_add(1),
                crm_domain::Direction::Outbound => eng.outbound.sat_add(1),
            }
            eng.per_day
                .entry(at.div_euclid(Timestamp::MICROS_PER_DAY))
                .or_default()
                .sat_add(1);
            if let Some(s) = i.sentiment {
                eng.sentiment_sum.sat_add(i64::from(s));
                eng.sentiment_count.sat_add(1);
            }
            Summary::text(format!(
                "{} {} interaction: ",
                match i.direction {
                    crm_domain::Direction::Inbound => "Inbound",
                    crm_domain::Direction::Outbound => "Outbound",
                },
                i.channel.name(),
            ))
            .p(&i.subject)
        }
        E::OrderPlaced(o) => {
            let c = &mut r.commerce;
            c.orders.sat_add(1);
            c.first_order_at = Some(c.first_order_at.map_or(at, |f| f.min(at)));
            c.last_order_at = Some(c.last_order_at.map_or(at, |l| l.max(at)));
            let amounts = c
                .amounts
                .entry(o.total.currency.as_str().to_owned())
                .or_default();
            amounts.orders.sat_add(1);
            amounts.revenue_minor.sat_add(o.total.minor);
            amounts.discount_minor.sat_add(o.discount_minor);
            let mut categories = BTreeSet::new();
            for line in &o.lines {
                c.items.sat_add(u64::from(line.quantity));
                let cat = c.categories.entry(line.category.clone()).or_default();
                cat.units.sat_add(u64::from(line.quantity));
                if categories.insert(&line.category) {
                    cat.orders.sat_add(1);
                }
            }
            c.sales_channels
                .entry(o.sales_channel.clone())
                .or_default()
                .sat_add(1);
            Summary::text(format!(
                "Order {} placed via {}: {} line(s), {}",
                o.order_id.0,
                o.sales_channel,
                o.lines.len(),
                money(o.total)
            ))
        }
        E::ReturnRecorded(ret) => {
            let c = &mut r.commerce;
            c.returns.sat_add(1);
            c.amounts
                .entry(ret.refund.currency.as_str().to_owned())
                .or_default()
                .refunded_minor
                .sat_add(ret.refund.minor);
            Summary::text(format!(
                "Return for order {}: {} refunded (",
                ret.order_id.0,
                money(ret.refund),
            ))
            .p(&ret.reason)
            .t(")")
        }
        E::TicketOpened(t) => {
            r.tickets.insert(
                t.ticket_id.0.into_bytes(),
                Ticket {
                    opened_at: at,
                    channel: t.channel.name().to_owned(),
                    category: t.category.clone(),
                    priority: priority_name(t.priority).to_owned(),
                    subject: t.subject.clone(),
                    sla_policy: t.sla.policy.clone(),
                    first_response_target_mins: t.sla.first_response_mins,
                    resolution_target_mins: t.sla.resolution_mins,
                    ..Ticket::default()
                },
            );
            Summary::text(format!(
                "Ticket opened ({} priority, {}): ",
                priority_name(t.priority),
                t.category,
            ))
            .p(&t.subject)
        }
        E::TicketAssigned {
            ticket_id, agent, ..
        } => {
            ticket(r, ticket_id.0.into_bytes())?.agent = Some(agent.clone());
            Summary::text(format!("Ticket assigned to {agent}"))
        }
        E::TicketResponded {
            ticket_id,
            agent,
            awaiting_customer,
            ..
        } => {
            let t = ticket(r, ticket_id.0.into_bytes())?;
            t.first_response_at.get_or_insert(at);
            if *awaiting_customer {
                t.status = TicketState::AwaitingCustomer;
                t.awaiting_since.get_or_insert(at);
            }
            Summary::text(format!(
                "{agent} responded to the ticket{}",
                if *awaiting_customer {
                    ", waiting on the customer"
                } else {
                    ""
                }
            ))
        }
        E::TicketCustomerReplied { ticket_id } => {
            let t = ticket(r, ticket_id.0.into_bytes())?;
            resume(t, at);
            t.status = TicketState::Open;
            Summary::text("Customer replied to the ticket")
        }
        E::TicketResolved {
            ticket_id,
            resolution,
        } => {
            let t = ticket(r, ticket_id.0.into_bytes())?;
            resume(t, at);
            t.status = TicketState::Resolved;
            t.resolved_at = Some(at);
            if t.first_resolved_at.is_none() {
                t.first_resolved_at = Some(at);
                t.paused_at_first_resolution = t.paused_micros;
            }
            Summary::text("Ticket resolved: ").p(resolution)
        }
        E::TicketReopened { ticket_id, reason } => {
            let t = ticket(r, ticket_id.0.into_bytes())?;
            t.status = TicketState::Open;
            t.resolved_at = None;
            t.reopened.sat_add(1);
            Summary::text("Ticket reopened: ").p(reason)
        }
        E::TicketClosed {
            ticket_id, csat, ..
        } => {
            let t = ticket(r, ticket_id.0.into_bytes())?;
            resume(t, at);
            t.status = TicketState::Closed;
            t.closed_at = Some(at);
            t.csat = *csat;
            Summary::text(match csat {
                Some(c) => format!("Ticket closed, CSAT {c}/5"),
                None => "Ticket closed".to_owned(),
            })
        }
        E::OpportunityOpened(o) => {
            r.opportunities.insert(
                o.opportunity_id.0.into_bytes(),
                Opportunity {
                    name: o.name.clone(),
                    pipeline: o.pipeline.clone(),
                    stage: o.stage.clone(),
                    probability_pct: o.probability_pct,
                    forecast: forecast_name(o.forecast).to_owned(),
                    amount_minor: o.amount.minor,
                    currency: o.amount.currency.as_str().to_owned(),
                    owner: o.owner.clone(),
                    status: DealStatus::Open,
                    opened_at: at,
                    stage_entered_at: at,
                    closed_at: None,
                    lost_reason: None,
                    expected_close: o.expected_close.map(|t| t.0),
                },
            );
            Summary::text(format!(
                "Opportunity {} opened at {} ({})",
                o.name,
                o.stage,
                money(o.amount)
            ))
        }
        E::OpportunityStageMoved {
            opportunity_id,
            from_stage,
            to_stage,
            probability_pct,
            forecast,
        } => {
            let o = opportunity(r, opportunity_id.0.into_bytes())?;
            o.stage.clone_from(to_stage);
            o.probability_pct = *probability_pct;
            o.forecast = forecast_name(*forecast).to_owned();
            o.stage_entered_at = at;
            Summary::text(format!(
                "Opportunity {} moved from {from_stage} to {to_stage}",
                o.name
            ))
        }
        E::OpportunityWon {
            opportunity_id,
            amount,
            ..
        } => {
            let o = opportunity(r, opportunity_id.0.into_bytes())?;
            o.status = DealStatus::Won;
            o.closed_at = Some(at);
            o.amount_minor = amount.minor;
            o.currency = amount.currency.as_str().to_owned();
            o.probability_pct = 100;
            o.forecast = "closed".into();
            Summary::text(format!("Opportunity {} won ({})", o.name, money(*amount)))
        }
        E::OpportunityLost {
            opportunity_id,
            reason,
            ..
        } => {
            let o = opportunity(r, opportunity_id.0.into_bytes())?;
            o.status = DealStatus::Lost;
            o.closed_at = Some(at);
            o.lost_reason = Some(reason.clone());
            o.probability_pct = 0;
            o.forecast = "omitted".into();
            Summary::text(format!("Opportunity {} lost: {reason}", o.name))
        }
        E::OpportunityUpdated {
            opportunity_id,
            name,
            amount,
            owner,
            expected_close,
        } => {
            let o = opportunity(r, opportunity_id.0.into_bytes())?;
            let mut changes = Vec::new();
            if let Some(name) = name {
                changes.push(format!("renamed from {}", o.name));
                o.name.clone_from(name);
            }
            if let Some(amount) = amount {
                o.amount_minor = amount.minor;
                o.currency = amount.currency.as_str().to_owned();
                changes.push(format!("amount {}", money(*amount)));
            }
            if let Some(owner) = owner {
                o.owner = Some(owner.clone());
                changes.push(format!("owner {owner}"));
            }
            if let Some(t) = expected_close {
                o.expected_close = Some(t.0);
                changes.push(format!("expected close {}", day(t.0)));
            }
            Summary::text(format!(
                "Opportunity {} updated: {}",
                o.name,
                changes.join(", ")
            ))
        }
        E::OpportunityReopened {
            opportunity_id,
            stage,
            probability_pct,
            forecast,
            reason,
        } => {
            let o = opportunity(r, opportunity_id.0.into_bytes())?;
            o.status = DealStatus::Open;
            o.stage.clone_from(stage);
            o.probability_pct = *probability_pct;
            o.forecast = forecast_name(*forecast).to_owned();
            o.stage_entered_at = at;
            o.closed_at = None;
            o.lost_reason = None;
            Summary::text(format!("Opportunity {} reopened at {stage}: ", o.name)).p(reason)
        }
        E::CampaignResponseRecorded {
            campaign_id,
            response,
        } => {
            let m = &mut r.marketing;
            let flags = m.responses.entry(campaign_id.0.into_bytes()).or_default();
            let name = match response {
                CampaignResponse::Delivered => {
                    flags.delivered = true;
                    "delivered"
                }
                CampaignResponse::Opened => {
                    flags.opened = true;
                    "opened"
                }
                CampaignResponse::Clicked => {
                    flags.clicked = true;
                    "clicked"
                }
                CampaignResponse::Unsubscribed => {
                    flags.unsubscribed = true;
                    m.unsubscribes.sat_add(1);
                    "unsubscribed"
                }
                CampaignResponse::Converted { revenue, .. } => {
                    flags.converted = true;
                    if let Some(rev) = revenue {
                        m.attributed_minor
                            .entry(rev.currency.as_str().to_owned())
                            .or_default()
                            .sat_add(rev.minor);
                    }
                    "converted"
                }
            };
            if m.last_response_at.is_none_or(|l| l <= at) {
                m.last_response_at = Some(at);
                m.last_response = Some(name.to_owned());
            }
            Summary::text(format!("Campaign {}: {name}", campaign_id.0))
        }
        E::LeadLinked { lead_id } => {
            Summary::text(format!("Lead {} converted into this customer", lead_id.0))
        }
        E::Forgotten {
            reason,
            legal_basis,
            ..
        } => {
            scrub(r);
            r.forgotten = Some(Erasure {
                at,
                legal_basis: legal_basis.clone(),
                reason: reason.clone(),
                by: actor.to_owned(),
            });
            Summary::text(format!(
                "Forgotten at their request ({legal_basis}): {reason}"
            ))
        }
    })
}

/// Empties every personal field of a forgotten customer's record: what a rebuild, which
/// reads their personal text as erased, arrives at too (the same bytes either way).
fn scrub(r: &mut CustomerRecord) {
    let language = r.profile.language.take();
    r.profile = ProfileRecord {
        language,
        ..ProfileRecord::default()
    };
    for c in r.consent.values_mut() {
        c.source.clear();
    }
    for t in r.tickets.values_mut() {
        t.subject.clear();
    }
}

/// Empties the personal parts of every entry of a forgotten customer's timeline.
fn scrub_timeline(state: &mut dyn State, r: &CustomerRecord) -> Result<(), FoldError> {
    for chunk in 0..r.timeline_len.div_ceil(keys::TIMELINE_CHUNK) {
        let key = keys::timeline_chunk(r.id, chunk * keys::TIMELINE_CHUNK);
        let Some(bytes) = state.get(&key) else {
            continue;
        };
        let mut entries = Vec::new();
        crate::record::decode_chunk(&bytes, &mut entries).map_err(|e| FoldError::Corrupt {
            key: format!("timeline chunk {chunk} of {}", uuid::Uuid::from_bytes(r.id)),
            reason: e.to_string(),
        })?;
        let mut out = Vec::with_capacity(bytes.len());
        for mut entry in entries {
            for part in &mut entry.summary.0 {
                if let Part::Personal(text) = part {
                    text.clear();
                }
            }
            // Encoding into a Vec cannot fail.
            out = postcard::to_extend(&entry, out).unwrap_or_default();
        }
        state.put(&key, out);
    }
    Ok(())
}

fn lead(state: &mut dyn State, event: &Event<'_>, id: Id, e: &LeadEvent) -> Result<(), FoldError> {
    let key = id_key(keys::LEAD, id);
    let at = event.envelope.meta.occurred_at.0;
    match e {
        LeadEvent::Captured(c) => save(
            state,
            &key,
            &LeadInfo {
                source: c.source.clone(),
                campaign: c.campaign.map(|c| c.0.into_bytes()),
                captured_at: at,
                converted_to: None,
            },
        ),
        LeadEvent::Converted { customer_id, .. } => {
            let customer = customer_id.0.into_bytes();
            let mut info: LeadInfo = load(state, &key)?.unwrap_or_default();
            info.converted_to = Some(customer);
            save(state, &key, &info);
            let ckey = id_key(keys::CUSTOMER, customer);
            if let Some(mut r) = load::<CustomerRecord>(state, &ckey)? {
                let origin = r.origin_lead.get_or_insert_with(|| LeadOrigin {
                    lead_id: id,
                    ..LeadOrigin::default()
                });
                origin.lead_id = id;
                if !info.source.is_empty() {
                    origin.source = Some(info.source.clone());
                    origin.captured_at = Some(info.captured_at);
                }
                origin.converted_at = Some(at);
                timeline(
                    state,
                    &mut r,
                    event,
                    Summary::text(format!(
                        "Converted from lead {} (source: {})",
                        uuid::Uuid::from_bytes(id),
                        if info.source.is_empty() {
                            "unknown"
                        } else {
                            &info.source
                        }
                    )),
                );
                save(state, &ckey, &r);
            }
        }
        LeadEvent::Assigned { .. }
        | LeadEvent::Contacted { .. }
        | LeadEvent::Qualified { .. }
        | LeadEvent::Disqualified { .. } => {}
    }
    Ok(())
}

fn campaign(
    state: &mut dyn State,
    event: &Event<'_>,
    id: Id,
    e: &CampaignEvent,
) -> Result<(), FoldError> {
    let key = id_key(keys::CAMPAIGN, id);
    match e {
        CampaignEvent::Created(c) => save(
            state,
            &key,
            &CampaignInfo {
                name: c.name.clone(),
                channel: c.channel.name().to_owned(),
                created_at: event.envelope.meta.occurred_at.0,
                consent: ConsentChannel::for_channel(c.channel).map(|c| consent_name(c).to_owned()),
            },
        ),
        CampaignEvent::Sent {
            wave,
            recipients,
            skipped,
        } => {
            let info: CampaignInfo = load(state, &key)?.unwrap_or_default();
            for recipient in recipients {
                // Sends to customers this model does not know are not the customer's
                // history: nothing to show.
                let Some(mut r) = load_customer(state, *recipient)? else {
                    continue;
                };
                r.marketing.received.entry(id).or_default().sat_add(1);
                // Whether the customer's consent held when the send was recorded (the
                // record is as of this stream position).
                let without = info
                    .consent
                    .as_ref()
                    .filter(|c| !r.consent.get(*c).is_some_and(|c| c.granted));
                let mut line = format!("Received campaign {} (wave {wave})", info.name);
                if let Some(c) = without {
                    r.marketing.received_without_consent.sat_add(1);
                    line.push_str(&format!(" without {c} consent"));
                }
                timeline(state, &mut r, event, Summary::text(line));
                save(state, &id_key(keys::CUSTOMER, r.id), &r);
            }
            for s in skipped {
                let Some(mut r) = load_customer(state, s.customer_id)? else {
                    continue;
                };
                r.marketing.skipped.sat_add(1);
                let line = format!(
                    "Not sent campaign {} (wave {wave}): {}",
                    info.name,
                    skip_reason(s.reason, info.consent.as_deref().unwrap_or("its channel"))
                );
                timeline(state, &mut r, event, Summary::text(line));
                save(state, &id_key(keys::CUSTOMER, r.id), &r);
            }
        }
        CampaignEvent::CostRecorded { .. } => {}
    }
    Ok(())
}

fn load_customer(
    state: &mut dyn State,
    id: CustomerId,
) -> Result<Option<CustomerRecord>, FoldError> {
    load(state, &id_key(keys::CUSTOMER, id.0.into_bytes()))
}

fn skip_reason(reason: SkipReason, consent: &str) -> String {
    match reason {
        SkipReason::NoConsent => format!("no {consent} consent"),
        SkipReason::ConsentWithdrawn => format!("{consent} consent withdrawn"),
        SkipReason::UnknownCustomer => "not a customer".to_owned(),
    }
}

/// Appends an entry to the customer's timeline: to the bytes of its last chunk, so an
/// append neither decodes nor rewrites the entries before it.
fn timeline(state: &mut dyn State, r: &mut CustomerRecord, event: &Event<'_>, summary: Summary) {
    let env = event.envelope;
    let entry = TimelineEntry {
        seq: event.seq,
        index: event.index,
        event_id: env.meta.event_id.into_bytes(),
        event_type: env.event_type.clone(),
        source: format!("{}:{}", env.aggregate.kind().name(), env.aggregate.uuid()),
        version: env.meta.version,
        occurred_at: env.meta.occurred_at.0,
        recorded_at: env.meta.recorded_at.0,
        actor: actor(&env.meta.actor),
        summary,
    };
    let key = keys::timeline_chunk(r.id, r.timeline_len);
    // Encoding into a Vec cannot fail.
    let bytes = postcard::to_stdvec(&entry).unwrap_or_default();
    if r.timeline_len.is_multiple_of(keys::TIMELINE_CHUNK) {
        state.put(&key, bytes);
    } else {
        // In place: a chunk is not copied per event.
        state.append(&key, &bytes);
    }
    r.timeline_len.sat_add(1);
}

fn ticket(r: &mut CustomerRecord, id: Id) -> Result<&mut Ticket, FoldError> {
    r.tickets.get_mut(&id).ok_or_else(|| {
        FoldError::Rejected(format!(
            "ticket {} was never opened",
            uuid::Uuid::from_bytes(id)
        ))
    })
}

fn opportunity(r: &mut CustomerRecord, id: Id) -> Result<&mut Opportunity, FoldError> {
    r.opportunities.get_mut(&id).ok_or_else(|| {
        FoldError::Rejected(format!(
            "opportunity {} was never opened",
            uuid::Uuid::from_bytes(id)
        ))
    })
}

/// Ends a pause of the SLA clocks (time waiting on the customer).
fn resume(t: &mut Ticket, at: i64) {
    if let Some(since) = t.awaiting_since.take() {
        t.paused_micros.sat_add(at.saturating_sub(since).max(0));
    }
}

fn profile(p: &crm_domain::Profile) -> ProfileRecord {
    ProfileRecord {
        given_name: p.given_name.clone(),
        family_name: p.family_name.clone(),
        emails: p.emails.clone(),
        phones: p.phones.clone(),
        address: p.address.as_ref().map(address),
        language: p.language.clone(),
        country: p.country.clone(),
        external_ids: p.external_ids.clone(),
    }
}

fn address(a: &crm_domain::Address) -> AddressRecord {
    AddressRecord {
        line1: a.line1.clone(),
        line2: a.line2.clone(),
        city: a.city.clone(),
        region: a.region.clone(),
        postal_code: a.postal_code.clone(),
        country: a.country.clone(),
    }
}

/// `user:alice`, `service:billing`, `import:crm-import`, `automation:rule-7`, `system`.
#[must_use]
pub fn actor(a: &Actor) -> String {
    a.label()
}

/// `YYYY-MM-DD` (UTC) of a time in microseconds since the Unix epoch (Howard Hinnant's
/// civil-from-days).
fn day(micros: i64) -> String {
    let z = micros.div_euclid(86_400 * 1_000_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn money(m: Money) -> String {
    let sign = if m.minor < 0 { "-" } else { "" };
    let abs = m.minor.unsigned_abs();
    format!("{sign}{}.{:02} {}", abs / 100, abs % 100, m.currency)
}

#[must_use]
pub const fn consent_name(c: ConsentChannel) -> &'static str {
    match c {
        ConsentChannel::Email => "email",
        ConsentChannel::Sms => "sms",
        ConsentChannel::Phone => "phone",
        ConsentChannel::Social => "social",
        ConsentChannel::Push => "push",
        ConsentChannel::Post => "post",
    }
}

const fn priority_name(p: TicketPriority) -> &'static str {
    match p {
        TicketPriority::Low => "low",
        TicketPriority::Normal => "normal",
        TicketPriority::High => "high",
        TicketPriority::Urgent => "urgent",
    }
}

const fn relationship_name(k: RelationshipKind) -> &'static str {
    match k {
        RelationshipKind::Household => "household",
        RelationshipKind::Referrer => "referrer",
        RelationshipKind::Referee => "referee",
        RelationshipKind::EmployedBy => "employed_by",
        RelationshipKind::Employs => "employs",
        RelationshipKind::LinkedAccount => "linked_account",
    }
}

const fn forecast_name(f: ForecastCategory) -> &'static str {
    match f {
        ForecastCategory::Pipeline => "pipeline",
        ForecastCategory::BestCase => "best_case",
        ForecastCategory::Commit => "commit",
        ForecastCategory::Closed => "closed",
        ForecastCategory::Omitted => "omitted",
    }
}

#[cfg(test)]
mod day_tests {
    #[test]
    fn days_are_civil_dates() {
        assert_eq!(super::day(0), "1970-01-01");
        assert_eq!(super::day(1_763_290_000_000_000), "2025-11-16");
        assert_eq!(super::day(-1), "1969-12-31");
        assert_eq!(super::day(951_782_400_000_000), "2000-02-29");
    }
}
