//! Opportunities through a configured pipeline: opening, stage moves (probability and
//! forecast category frozen on the event), winning and losing.

use super::*;

/// Decides [`Command::OpenOpportunity`].
pub(super) fn open_new_opportunity(
    world: &World,
    c: &OpenOpportunity,
    ctx: &DecideContext<'_>,
) -> Result<Vec<DomainEvent>, Rejection> {
    let event = opportunity_opened(ctx.config, c)?;
    let customer = existing_customer(world, c.customer_id, "customer_id")?;
    if customer.opportunities.contains_key(&c.opportunity_id) {
        return Err(Rejection::already_exists(
            "opportunity_id",
            format!("opportunity {} already exists", c.opportunity_id),
        ));
    }
    Ok(vec![customer_event(
        c.customer_id,
        CustomerEvent::OpportunityOpened(event),
    )])
}

/// Decides [`Command::MoveOpportunityStage`].
pub(super) fn move_opportunity_stage(
    world: &World,
    customer_id: &CustomerId,
    opportunity_id: &OpportunityId,
    stage: &str,
    probability_pct: &Option<u8>,
    ctx: &DecideContext<'_>,
) -> Result<Vec<DomainEvent>, Rejection> {
    let mut check = Check::new();
    if let Some(p) = probability_pct
        && *p > 100
    {
        check.fail(
            "probability_pct",
            "range",
            format!("must be 0 to 100 (got {p})"),
        );
    }
    check.key("stage", stage, SHORT_MAX);
    check.finish()?;
    let o = open_opportunity(world, *customer_id, *opportunity_id)?;
    let pipeline = ctx.config.pipelines.get(&o.pipeline).ok_or_else(|| {
        Rejection::precondition(
            "opportunity_id",
            "pipeline",
            format!(
                "the opportunity's pipeline {:?} is no longer configured",
                o.pipeline
            ),
        )
    })?;
    let to = pipeline
        .stage(stage)
        .ok_or_else(|| unknown_stage(pipeline, stage))?;
    if o.stage == *stage {
        return Err(Rejection::precondition(
            "stage",
            "state",
            format!("opportunity {opportunity_id} is already in stage {stage}"),
        ));
    }
    Ok(vec![customer_event(
        *customer_id,
        CustomerEvent::OpportunityStageMoved {
            opportunity_id: *opportunity_id,
            from_stage: o.stage.clone(),
            to_stage: stage.to_owned(),
            probability_pct: probability_pct.unwrap_or(to.probability_pct),
            forecast: to.forecast,
        },
    )])
}

/// Decides [`Command::WinOpportunity`].
pub(super) fn win_opportunity(
    world: &World,
    customer_id: &CustomerId,
    opportunity_id: &OpportunityId,
    amount: &Option<Money>,
) -> Result<Vec<DomainEvent>, Rejection> {
    let mut check = Check::new();
    if let Some(a) = amount {
        check.amount("amount.minor", a.minor, true);
    }
    check.finish()?;
    let o = open_opportunity(world, *customer_id, *opportunity_id)?;
    if let Some(a) = amount {
        let mut check = Check::new();
        same_currency(&mut check, "amount.currency", o.amount.currency, a.currency);
        check.finish().map_err(|mut r| {
            r.kind = RejectionKind::FailedPrecondition;
            r
        })?;
    }
    let amount = amount.unwrap_or(o.amount);
    Ok(vec![customer_event(
        *customer_id,
        CustomerEvent::OpportunityWon {
            opportunity_id: *opportunity_id,
            amount,
            stage: Some(o.stage.clone()),
        },
    )])
}

/// Decides [`Command::LoseOpportunity`].
pub(super) fn lose_opportunity(
    world: &World,
    customer_id: &CustomerId,
    opportunity_id: &OpportunityId,
    reason: &str,
) -> Result<Vec<DomainEvent>, Rejection> {
    let mut check = Check::new();
    check.required("reason", reason, SUBJECT_MAX);
    check.finish()?;
    let o = open_opportunity(world, *customer_id, *opportunity_id)?;
    Ok(vec![customer_event(
        *customer_id,
        CustomerEvent::OpportunityLost {
            opportunity_id: *opportunity_id,
            reason: reason.to_owned(),
            stage: o.stage.clone(),
        },
    )])
}

/// The fields of [`Command::UpdateOpportunity`].
#[derive(Clone, Copy, Debug)]
pub(super) struct OpportunityChanges<'c> {
    pub name: Option<&'c String>,
    pub amount: Option<&'c Money>,
    pub owner: Option<&'c String>,
    pub expected_close: Option<&'c Timestamp>,
}

/// Decides [`Command::UpdateOpportunity`]: only an open deal changes; the event carries
/// the fields that differ from the deal's current values (none: a no-op). The amount
/// keeps the deal's currency.
pub(super) fn update_opportunity(
    world: &World,
    customer_id: &CustomerId,
    opportunity_id: &OpportunityId,
    changes: OpportunityChanges<'_>,
) -> Result<Vec<DomainEvent>, Rejection> {
    let mut check = Check::new();
    let OpportunityChanges {
        name,
        amount,
        owner,
        expected_close,
    } = changes;
    if name.is_none() && amount.is_none() && owner.is_none() && expected_close.is_none() {
        check.fail(
            "name",
            "required",
            "name, amount, owner or expected_close: at least one change is required",
        );
    }
    let name = name.map(|n| n.trim().to_owned());
    if let Some(n) = &name {
        check.required("name", n, NAME_MAX);
    }
    if let Some(a) = amount {
        check.amount("amount.minor", a.minor, true);
    }
    let owner = owner.map(|o| o.trim().to_owned());
    if let Some(o) = &owner {
        check.required("owner", o, SHORT_MAX);
    }
    check.finish()?;
    let o = open_opportunity(world, *customer_id, *opportunity_id)?;
    if let Some(a) = amount {
        let mut check = Check::new();
        same_currency(&mut check, "amount.currency", o.amount.currency, a.currency);
        check.finish().map_err(|mut r| {
            r.kind = RejectionKind::FailedPrecondition;
            r
        })?;
    }
    let name = name.filter(|n| *n != o.name);
    let amount = amount.copied().filter(|a| *a != o.amount);
    let owner = owner.filter(|w| o.owner.as_ref() != Some(w));
    let expected_close = expected_close
        .copied()
        .filter(|t| o.expected_close != Some(*t));
    if name.is_none() && amount.is_none() && owner.is_none() && expected_close.is_none() {
        return Ok(vec![]);
    }
    Ok(vec![customer_event(
        *customer_id,
        CustomerEvent::OpportunityUpdated {
            opportunity_id: *opportunity_id,
            name,
            amount,
            owner,
            expected_close,
        },
    )])
}

/// Decides [`Command::ReopenOpportunity`]: a lost deal opens again at `stage` (the stage
/// it was lost at by default), its probability and forecast category taken from the
/// pipeline's configuration now, as a stage move does. A won deal is not reopened: a new
/// deal with the same customer is a new opportunity.
pub(super) fn reopen_opportunity(
    world: &World,
    customer_id: &CustomerId,
    opportunity_id: &OpportunityId,
    stage: Option<&String>,
    reason: &str,
    ctx: &DecideContext<'_>,
) -> Result<Vec<DomainEvent>, Rejection> {
    let mut check = Check::new();
    if let Some(s) = stage {
        check.key("stage", s, SHORT_MAX);
    }
    check.required("reason", reason, SUBJECT_MAX);
    check.finish()?;
    let o = existing_customer(world, *customer_id, "customer_id")?
        .opportunities
        .get(opportunity_id)
        .ok_or_else(|| {
            Rejection::not_found(
                "opportunity_id",
                format!("opportunity {opportunity_id} does not exist on customer {customer_id}"),
            )
        })?;
    match o.status {
        OpportunityStatus::Lost => {}
        OpportunityStatus::Open => {
            return Err(Rejection::precondition(
                "opportunity_id",
                "state",
                format!("opportunity {opportunity_id} is open: only a lost deal is reopened"),
            ));
        }
        OpportunityStatus::Won => {
            return Err(Rejection::precondition(
                "opportunity_id",
                "state",
                format!(
                    "opportunity {opportunity_id} was won: a won deal is not reopened (open a new opportunity)"
                ),
            ));
        }
    }
    let pipeline = ctx.config.pipelines.get(&o.pipeline).ok_or_else(|| {
        Rejection::precondition(
            "opportunity_id",
            "pipeline",
            format!(
                "the opportunity's pipeline {:?} is no longer configured",
                o.pipeline
            ),
        )
    })?;
    let key = stage.unwrap_or(&o.stage);
    let to = pipeline
        .stage(key)
        .ok_or_else(|| unknown_stage(pipeline, key))?;
    Ok(vec![customer_event(
        *customer_id,
        CustomerEvent::OpportunityReopened {
            opportunity_id: *opportunity_id,
            stage: key.clone(),
            probability_pct: to.probability_pct,
            forecast: to.forecast,
            reason: reason.to_owned(),
        },
    )])
}

pub(super) fn open_opportunity(
    world: &World,
    customer_id: CustomerId,
    id: OpportunityId,
) -> Result<&OpportunityState, Rejection> {
    let o = existing_customer(world, customer_id, "customer_id")?
        .opportunities
        .get(&id)
        .ok_or_else(|| {
            Rejection::not_found(
                "opportunity_id",
                format!("opportunity {id} does not exist on customer {customer_id}"),
            )
        })?;
    match o.status {
        OpportunityStatus::Open => Ok(o),
        OpportunityStatus::Won | OpportunityStatus::Lost => Err(Rejection::precondition(
            "opportunity_id",
            "state",
            format!(
                "opportunity {id} is already {}",
                if o.status == OpportunityStatus::Won {
                    "won"
                } else {
                    "lost"
                }
            ),
        )),
    }
}

pub(super) fn unknown_stage(pipeline: &Pipeline, stage: &str) -> Rejection {
    let known: Vec<&str> = pipeline.stages.iter().map(|s| s.key.as_str()).collect();
    Rejection::new(
        RejectionKind::Invalid,
        "stage",
        "unknown_stage",
        format!(
            "pipeline {} has no stage {stage:?}; its stages are {}",
            pipeline.key,
            known.join(", ")
        ),
    )
}

pub(super) fn resolve_stage<'c>(
    config: &'c DomainConfig,
    pipeline: Option<&String>,
    stage: Option<&String>,
) -> Result<(&'c Pipeline, &'c crate::Stage), Rejection> {
    let key = pipeline.unwrap_or(&config.default_pipeline);
    let p = config.pipelines.get(key).ok_or_else(|| {
        let known: Vec<&str> = config.pipelines.keys().map(String::as_str).collect();
        Rejection::new(
            RejectionKind::Invalid,
            "pipeline",
            "unknown_pipeline",
            format!(
                "no pipeline {key:?}; configured pipelines are {}",
                known.join(", ")
            ),
        )
    })?;
    let s = match stage {
        Some(s) => p.stage(s).ok_or_else(|| unknown_stage(p, s))?,
        None => p.stages.first().ok_or_else(|| {
            Rejection::precondition(
                "pipeline",
                "no_stages",
                format!("pipeline {key} has no stages"),
            )
        })?,
    };
    Ok((p, s))
}

pub(super) fn check_opportunity_fields(check: &mut Check, name: &str, amount: &Money) {
    check.required("name", name, NAME_MAX);
    check.amount("amount.minor", amount.minor, true);
}

pub(super) fn opportunity_opened(
    config: &DomainConfig,
    c: &OpenOpportunity,
) -> Result<OpportunityOpened, Rejection> {
    let mut check = Check::new();
    check_opportunity_fields(&mut check, &c.name, &c.amount);
    check.opt_text("owner", c.owner.as_ref(), SHORT_MAX);
    check.finish()?;
    let (p, s) = resolve_stage(config, c.pipeline.as_ref(), c.stage.as_ref())?;
    Ok(OpportunityOpened {
        opportunity_id: c.opportunity_id,
        name: c.name.clone(),
        pipeline: p.key.clone(),
        stage: s.key.clone(),
        probability_pct: s.probability_pct,
        forecast: s.forecast,
        amount: c.amount,
        owner: c.owner.clone(),
        expected_close: c.expected_close,
        lead: c.lead,
        campaign: c.campaign,
    })
}
