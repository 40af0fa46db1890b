//! Leads from capture to qualification, disqualification or conversion into a (new or
//! existing) customer, with an optional opportunity.

use super::opportunities::{check_opportunity_fields, resolve_stage};
use super::*;

fn lead_event(id: LeadId, e: LeadEvent) -> DomainEvent {
    DomainEvent::Lead(id, e)
}

/// Decides [`Command::CreateLead`].
pub(super) fn create_lead(
    world: &World,
    lead_id: &LeadId,
    lead: &LeadCaptured,
) -> Result<Vec<DomainEvent>, Rejection> {
    let mut check = Check::new();
    let mut lead = lead.clone();
    lead.email = lead.email.map(|e| e.trim().to_lowercase());
    check.key("source", &lead.source, SHORT_MAX);
    check.text("given_name", &lead.given_name, NAME_MAX);
    check.text("family_name", &lead.family_name, NAME_MAX);
    if let Some(e) = &lead.email {
        check.email("email", e);
    }
    if let Some(p) = &lead.phone {
        check.phone("phone", p);
    }
    if lead.email.is_none() && lead.phone.is_none() {
        check.fail(
            "email",
            "contactable",
            "a lead needs an email or a phone number",
        );
    }
    check.text("interest", &lead.interest, TEXT_MAX);
    check.finish()?;
    if world.leads.contains_key(lead_id) {
        return Err(Rejection::already_exists(
            "lead_id",
            format!("lead {lead_id} already exists"),
        ));
    }
    Ok(vec![lead_event(*lead_id, LeadEvent::Captured(lead))])
}

/// Decides [`Command::AssignLead`].
pub(super) fn assign_lead(
    world: &World,
    lead_id: &LeadId,
    owner: &str,
    rule: &Option<String>,
) -> Result<Vec<DomainEvent>, Rejection> {
    let mut check = Check::new();
    check.required("owner", owner, SHORT_MAX);
    check.opt_text("rule", rule.as_ref(), SHORT_MAX);
    check.finish()?;
    let lead = open_lead(world, *lead_id, "assign")?;
    if lead.owner.as_deref() == Some(owner) {
        return Ok(vec![]);
    }
    Ok(vec![lead_event(
        *lead_id,
        LeadEvent::Assigned {
            owner: owner.to_owned(),
            rule: rule.clone(),
        },
    )])
}

/// Decides [`Command::ContactLead`].
pub(super) fn contact_lead(
    world: &World,
    lead_id: &LeadId,
    channel: &Channel,
    agent: &Option<String>,
) -> Result<Vec<DomainEvent>, Rejection> {
    let mut check = Check::new();
    check.opt_text("agent", agent.as_ref(), SHORT_MAX);
    check.finish()?;
    open_lead(world, *lead_id, "contact")?;
    Ok(vec![lead_event(
        *lead_id,
        LeadEvent::Contacted {
            channel: *channel,
            agent: agent.to_owned(),
        },
    )])
}

/// Decides [`Command::QualifyLead`].
pub(super) fn qualify_lead(
    world: &World,
    lead_id: &LeadId,
    note: &str,
) -> Result<Vec<DomainEvent>, Rejection> {
    let mut check = Check::new();
    check.text("note", note, TEXT_MAX);
    check.finish()?;
    let lead = open_lead(world, *lead_id, "qualify")?;
    if lead.status == LeadStatus::Qualified {
        return Ok(vec![]);
    }
    Ok(vec![lead_event(
        *lead_id,
        LeadEvent::Qualified {
            note: note.to_owned(),
        },
    )])
}

/// Decides [`Command::DisqualifyLead`].
pub(super) fn disqualify_lead(
    world: &World,
    lead_id: &LeadId,
    reason: &str,
) -> Result<Vec<DomainEvent>, Rejection> {
    let mut check = Check::new();
    check.required("reason", reason, SUBJECT_MAX);
    check.finish()?;
    open_lead(world, *lead_id, "disqualify")?;
    Ok(vec![lead_event(
        *lead_id,
        LeadEvent::Disqualified {
            reason: reason.to_owned(),
        },
    )])
}

pub(super) fn open_lead<'w>(
    world: &'w World,
    id: LeadId,
    action: &str,
) -> Result<&'w Lead, Rejection> {
    let lead = existing_lead(world, id)?;
    if lead.status.is_closed() {
        return Err(Rejection::precondition(
            "lead_id",
            "state",
            format!("lead {id} is {}: cannot {action} it", lead.status.name()),
        ));
    }
    Ok(lead)
}

pub(super) fn convert_lead(
    world: &World,
    lead_id: LeadId,
    into: ConvertInto,
    opportunity: Option<&ConversionOpportunity>,
    ctx: &DecideContext<'_>,
) -> Result<Vec<DomainEvent>, Rejection> {
    let opened = match opportunity {
        Some(o) => {
            let mut check = Check::new();
            check_opportunity_fields(&mut check, &o.name, &o.amount);
            check.finish().map_err(|mut r| {
                for v in &mut r.violations {
                    v.field = format!("opportunity.{}", v.field);
                }
                r
            })?;
            Some(o)
        }
        None => None,
    };
    let lead = open_lead(world, lead_id, "convert")?;
    if lead.status != LeadStatus::Qualified {
        return Err(Rejection::precondition(
            "lead_id",
            "state",
            format!(
                "lead {lead_id} must be qualified before conversion (it is {})",
                lead.status.name()
            ),
        ));
    }
    let customer_id = into.customer_id();
    let mut events = Vec::new();
    match into {
        ConvertInto::NewCustomer(_) => {
            if world.customers.contains_key(&customer_id) {
                return Err(Rejection::already_exists(
                    "into.new_customer",
                    format!(
                        "customer {customer_id} already exists; convert into it as an existing customer"
                    ),
                ));
            }
            let c = &lead.captured;
            events.push(DomainEvent::Customer(
                customer_id,
                CustomerEvent::Registered(CustomerRegistered {
                    profile: Profile {
                        given_name: c.given_name.clone(),
                        family_name: c.family_name.clone(),
                        emails: c.email.iter().cloned().collect(),
                        phones: c.phone.iter().cloned().collect(),
                        ..Profile::default()
                    },
                    acquisition: Some(crate::Acquisition {
                        source: c.source.clone(),
                        medium: "lead".into(),
                        campaign: c.campaign,
                    }),
                    owner: lead.owner.clone(),
                    team: None,
                    lead: Some(lead_id),
                }),
            ));
        }
        ConvertInto::ExistingCustomer(_) => {
            let customer = existing_customer(world, customer_id, "into.existing_customer")?;
            if let Some(o) = opened
                && customer.opportunities.contains_key(&o.opportunity_id)
            {
                return Err(Rejection::already_exists(
                    "opportunity.opportunity_id",
                    format!("opportunity {} already exists", o.opportunity_id),
                ));
            }
            // The customer records the lead: forgetting them forgets it too.
            events.push(DomainEvent::Customer(
                customer_id,
                CustomerEvent::LeadLinked { lead_id },
            ));
        }
    }
    if let Some(o) = opened {
        let (p, s) =
            resolve_stage(ctx.config, o.pipeline.as_ref(), o.stage.as_ref()).map_err(|mut r| {
                for v in &mut r.violations {
                    v.field = format!("opportunity.{}", v.field);
                }
                r
            })?;
        events.push(DomainEvent::Customer(
            customer_id,
            CustomerEvent::OpportunityOpened(OpportunityOpened {
                opportunity_id: o.opportunity_id,
                name: o.name.clone(),
                pipeline: p.key.clone(),
                stage: s.key.clone(),
                probability_pct: s.probability_pct,
                forecast: s.forecast,
                amount: o.amount,
                owner: lead.owner.clone(),
                expected_close: None,
                lead: Some(lead_id),
                campaign: lead.captured.campaign,
            }),
        ));
    }
    events.insert(
        0,
        DomainEvent::Lead(
            lead_id,
            LeadEvent::Converted {
                customer_id,
                new_customer: matches!(into, ConvertInto::NewCustomer(_)),
                opportunity_id: opened.map(|o| o.opportunity_id),
            },
        ),
    );
    Ok(events)
}
