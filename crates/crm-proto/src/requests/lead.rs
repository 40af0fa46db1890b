//! Requests on the lead aggregate.

use crm_domain::{
    Command, CommandKind, ConversionOpportunity, ConvertInto, LeadCaptured, Rejection,
};

use super::{CommandIds, IntoCommand, purpose};
use crate::check::{created_id, enum_of, fail, finish, money, opt_id, opt_string, required_id};
use crate::enums::channel;
use crate::v1;
use crate::v1::convert_lead_request::Into as ConvertInto1;

impl IntoCommand for v1::CreateLeadRequest {
    fn command_kind(&self) -> Option<CommandKind> {
        Some(CommandKind::CreateLead)
    }

    fn options(&self) -> Option<&v1::CommandOptions> {
        self.options.as_ref()
    }

    fn into_command(self, ids: &CommandIds) -> Result<Command, Rejection> {
        let mut v = Vec::new();
        let r = self;
        let lead_id = created_id("lead_id", &r.lead_id, ids, purpose::LEAD, &mut v);
        let campaign = opt_id("campaign_id", &r.campaign_id, &mut v);
        finish(v, || {
            Some(Command::CreateLead {
                lead_id: lead_id?,
                lead: LeadCaptured {
                    source: r.source,
                    campaign,
                    given_name: r.given_name,
                    family_name: r.family_name,
                    email: opt_string(r.email),
                    phone: opt_string(r.phone),
                    interest: r.interest,
                },
            })
        })
    }
}

impl IntoCommand for v1::AssignLeadRequest {
    fn command_kind(&self) -> Option<CommandKind> {
        Some(CommandKind::AssignLead)
    }

    fn options(&self) -> Option<&v1::CommandOptions> {
        self.options.as_ref()
    }

    fn into_command(self, _: &CommandIds) -> Result<Command, Rejection> {
        let mut v = Vec::new();
        let lead_id = required_id("lead_id", &self.lead_id, &mut v);
        finish(v, || {
            Some(Command::AssignLead {
                lead_id: lead_id?,
                owner: self.owner,
                rule: opt_string(self.rule),
            })
        })
    }
}

impl IntoCommand for v1::ContactLeadRequest {
    fn command_kind(&self) -> Option<CommandKind> {
        Some(CommandKind::ContactLead)
    }

    fn options(&self) -> Option<&v1::CommandOptions> {
        self.options.as_ref()
    }

    fn into_command(self, _: &CommandIds) -> Result<Command, Rejection> {
        let mut v = Vec::new();
        let lead_id = required_id("lead_id", &self.lead_id, &mut v);
        let channel = enum_of("channel", self.channel, channel, &mut v);
        finish(v, || {
            Some(Command::ContactLead {
                lead_id: lead_id?,
                channel: channel?,
                agent: opt_string(self.agent),
            })
        })
    }
}

impl IntoCommand for v1::QualifyLeadRequest {
    fn command_kind(&self) -> Option<CommandKind> {
        Some(CommandKind::QualifyLead)
    }

    fn options(&self) -> Option<&v1::CommandOptions> {
        self.options.as_ref()
    }

    fn into_command(self, _: &CommandIds) -> Result<Command, Rejection> {
        let mut v = Vec::new();
        let lead_id = required_id("lead_id", &self.lead_id, &mut v);
        finish(v, || {
            Some(Command::QualifyLead {
                lead_id: lead_id?,
                note: self.note,
            })
        })
    }
}

impl IntoCommand for v1::DisqualifyLeadRequest {
    fn command_kind(&self) -> Option<CommandKind> {
        Some(CommandKind::DisqualifyLead)
    }

    fn options(&self) -> Option<&v1::CommandOptions> {
        self.options.as_ref()
    }

    fn into_command(self, _: &CommandIds) -> Result<Command, Rejection> {
        let mut v = Vec::new();
        let lead_id = required_id("lead_id", &self.lead_id, &mut v);
        finish(v, || {
            Some(Command::DisqualifyLead {
                lead_id: lead_id?,
                reason: self.reason,
            })
        })
    }
}

impl IntoCommand for v1::ConvertLeadRequest {
    fn command_kind(&self) -> Option<CommandKind> {
        Some(CommandKind::ConvertLead)
    }

    fn options(&self) -> Option<&v1::CommandOptions> {
        self.options.as_ref()
    }

    /// `into` must be set: `new_customer_id` (empty: derived from the command id) or
    /// `existing_customer_id`. Leaving both unset is refused rather than read as "new
    /// customer", so a forgotten existing id cannot silently create a duplicate.
    fn into_command(self, ids: &CommandIds) -> Result<Command, Rejection> {
        let mut v = Vec::new();
        let lead_id = required_id("lead_id", &self.lead_id, &mut v);
        let into = match &self.into {
            Some(ConvertInto1::NewCustomerId(id)) => {
                created_id("new_customer_id", id, ids, purpose::CUSTOMER, &mut v)
                    .map(ConvertInto::NewCustomer)
            }
            Some(ConvertInto1::ExistingCustomerId(id)) => {
                required_id("existing_customer_id", id, &mut v).map(ConvertInto::ExistingCustomer)
            }
            None => {
                fail(
                    &mut v,
                    "into",
                    "required",
                    "set new_customer_id (may be empty: derived from the command id) or existing_customer_id",
                );
                None
            }
        };
        let opportunity = self.opportunity.and_then(|o| {
            let opportunity_id = created_id(
                "opportunity.opportunity_id",
                &o.opportunity_id,
                ids,
                purpose::OPPORTUNITY,
                &mut v,
            );
            let amount = money("opportunity.amount", o.amount.as_ref(), &mut v);
            Some(ConversionOpportunity {
                opportunity_id: opportunity_id?,
                name: o.name,
                pipeline: opt_string(o.pipeline),
                stage: opt_string(o.stage),
                amount: amount?,
            })
        });
        finish(v, || {
            Some(Command::ConvertLead {
                lead_id: lead_id?,
                into: into?,
                opportunity,
            })
        })
    }
}
