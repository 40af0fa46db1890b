//! Requests on the campaign aggregate.

use crm_domain::{CampaignCreated, Command, CommandKind, Rejection};

use super::{CommandIds, IntoCommand, purpose};
use crate::check::{created_id, enum_of, finish, money, opt_money, required_id};
use crate::enums::channel;
use crate::v1;

impl IntoCommand for v1::CreateCampaignRequest {
    fn command_kind(&self) -> Option<CommandKind> {
        Some(CommandKind::CreateCampaign)
    }

    fn options(&self) -> Option<&v1::CommandOptions> {
        self.options.as_ref()
    }

    fn into_command(self, ids: &CommandIds) -> Result<Command, Rejection> {
        let mut v = Vec::new();
        let r = self;
        let campaign_id = created_id(
            "campaign_id",
            &r.campaign_id,
            ids,
            purpose::CAMPAIGN,
            &mut v,
        );
        let channel = enum_of("channel", r.channel, channel, &mut v);
        let budget = opt_money("budget", r.budget.as_ref(), &mut v);
        finish(v, || {
            Some(Command::CreateCampaign {
                campaign_id: campaign_id?,
                campaign: CampaignCreated {
                    name: r.name,
                    channel: channel?,
                    segment: r.segment,
                    budget,
                },
            })
        })
    }
}

impl IntoCommand for v1::SendCampaignRequest {
    fn command_kind(&self) -> Option<CommandKind> {
        Some(CommandKind::SendCampaign)
    }

    fn options(&self) -> Option<&v1::CommandOptions> {
        self.options.as_ref()
    }

    fn into_command(self, _: &CommandIds) -> Result<Command, Rejection> {
        let mut v = Vec::new();
        let campaign_id = required_id("campaign_id", &self.campaign_id, &mut v);
        let recipients: Vec<_> = (self.recipients.iter().enumerate())
            .map(|(i, id)| required_id(&format!("recipients[{i}]"), id, &mut v))
            .collect();
        finish(v, || {
            Some(Command::SendCampaign {
                campaign_id: campaign_id?,
                recipients: recipients.into_iter().collect::<Option<_>>()?,
            })
        })
    }
}

impl IntoCommand for v1::RecordCampaignCostRequest {
    fn command_kind(&self) -> Option<CommandKind> {
        Some(CommandKind::RecordCampaignCost)
    }

    fn options(&self) -> Option<&v1::CommandOptions> {
        self.options.as_ref()
    }

    fn into_command(self, _: &CommandIds) -> Result<Command, Rejection> {
        let mut v = Vec::new();
        let campaign_id = required_id("campaign_id", &self.campaign_id, &mut v);
        let amount = money("amount", self.amount.as_ref(), &mut v);
        finish(v, || {
            Some(Command::RecordCampaignCost {
                campaign_id: campaign_id?,
                amount: amount?,
                note: self.note,
            })
        })
    }
}
