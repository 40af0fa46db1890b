//! `CommandOptions`, and a whole request (options and command) in one step.

use crm_domain::{Command, CommandId, Rejection, Timestamp};
use uuid::Uuid;

use crate::check::{Violations, invalid, opt_id, timestamp};
use crate::requests::{CommandIds, IntoCommand};
use crate::v1;

/// `CommandOptions` in domain types; `None` where the caller left a field unset.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ParsedOptions {
    pub command_id: Option<CommandId>,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
    pub occurred_at: Option<Timestamp>,
    pub expected_version: Option<u64>,
}

fn options_into(o: Option<&v1::CommandOptions>, v: &mut Violations) -> ParsedOptions {
    let Some(o) = o else {
        return ParsedOptions::default();
    };
    ParsedOptions {
        command_id: opt_id("options.command_id", &o.command_id, v),
        correlation_id: opt_id("options.correlation_id", &o.correlation_id, v),
        causation_id: opt_id("options.causation_id", &o.causation_id, v),
        occurred_at: (o.occurred_at.as_ref()).and_then(|t| timestamp("options.occurred_at", t, v)),
        expected_version: o.expected_version,
    }
}

/// Converts a request's options (absent options are all unset). Violations name
/// `options.<field>`.
pub fn parse_options(options: Option<&v1::CommandOptions>) -> Result<ParsedOptions, Rejection> {
    let mut v = Vec::new();
    let parsed = options_into(options, &mut v);
    if v.is_empty() {
        Ok(parsed)
    } else {
        Err(invalid(v))
    }
}

/// A request converted: its command id (the caller's, or a generated one), options and
/// domain command.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ParsedRequest {
    pub command_id: CommandId,
    pub options: ParsedOptions,
    pub command: Command,
}

/// Converts a request's options and command, reporting the violations of both in one
/// rejection. `new_command_id` is called when the options carry no command id (then a
/// retry is a new command); ids the request leaves empty are derived from the command id.
pub fn parse_request<R: IntoCommand>(
    request: R,
    new_command_id: impl FnOnce() -> CommandId,
) -> Result<ParsedRequest, Rejection> {
    let mut v = Vec::new();
    let options = options_into(request.options(), &mut v);
    let command_id = options.command_id.unwrap_or_else(new_command_id);
    match request.into_command(&CommandIds::new(command_id)) {
        Ok(command) if v.is_empty() => Ok(ParsedRequest {
            command_id,
            options,
            command,
        }),
        Ok(_) => Err(invalid(v)),
        Err(r) => {
            v.extend(r.violations);
            Err(invalid(v))
        }
    }
}
