//! Forgetting a customer (crypto-shredding): `customer.forgotten` is appended, then the
//! data keys of the customer and of the leads converted into them are destroyed, so
//! every personal text sealed under them reads as erased from then on.
//!
//! The two steps cannot be one atomic write (the keys are in their own bucket), so an
//! erasure is marked in the key store before the command runs and the mark is removed
//! only once the outcome is known: the customer forgotten and their keys destroyed, or
//! the command refused. A crash in between leaves the mark, and
//! [`CommandHandler::finish_erasures`] (run at start) or the command sent again
//! finishes the job: forgetting is idempotent.

use crm_domain::{AggregateRef, Command, CustomerId};

use crate::error::HandleError;
use crate::handler::{CommandHandler, CommandMeta, CommandOutcome, Loaded};
use crate::keys::KeyError;

fn unavailable(e: KeyError) -> HandleError {
    HandleError::Unavailable {
        message: format!("key store: {e}"),
        maybe_applied: false,
    }
}

/// What finishing an erasure did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finished {
    /// The customer is forgotten: their keys (and their leads') are destroyed.
    pub forgotten: bool,
    /// How many of those subjects still had a key.
    pub keys_destroyed: usize,
}

impl CommandHandler {
    /// Handles `ForgetCustomer`: marks the erasure, appends `customer.forgotten` (or
    /// finds it already there), then destroys the keys and clears the mark.
    pub(crate) async fn forget(
        &self,
        customer: CustomerId,
        command: &Command,
        meta: &CommandMeta,
    ) -> Result<CommandOutcome, HandleError> {
        let Some(keys) = self.keys() else {
            return self.handle_inner(command, meta).await;
        };
        let id = customer.0.into_bytes();
        keys.store().mark_erasure(id).await.map_err(unavailable)?;
        let outcome = self.handle_inner(command, meta).await;
        // A commit that may still land keeps the mark: a retry or a restart decides.
        if !matches!(
            outcome,
            Err(HandleError::Unavailable {
                maybe_applied: true,
                ..
            })
        ) {
            self.finish_erasure(customer).await?;
        }
        outcome
    }

    /// Finishes the erasure of `customer` as the log has it: when they are forgotten,
    /// destroys their data key and those of the leads converted into them, and drops
    /// what the cache holds of those aggregates; then clears the mark.
    ///
    /// # Errors
    /// The log or the key store cannot be read or written (the mark stays).
    pub async fn finish_erasure(&self, customer: CustomerId) -> Result<Finished, HandleError> {
        let Some(keys) = self.keys() else {
            return Ok(Finished {
                forgotten: false,
                keys_destroyed: 0,
            });
        };
        let aggregate = AggregateRef::Customer(customer);
        let subject = self.log().config().subject(aggregate);
        let messages = self
            .log()
            .read_subject(&subject, 0)
            .await
            .map_err(|e| Self::read_failure(e, false))?;
        let key = self
            .subject_key(aggregate, !messages.is_empty())
            .await
            .map_err(|e| Self::read_failure(e, false))?;
        let mut loaded = Loaded::empty(aggregate);
        self.fold_stored(&mut loaded, &messages, key.as_ref())
            .map_err(|(_, e)| HandleError::Store(e))?;
        let mut finished = Finished {
            forgotten: false,
            keys_destroyed: 0,
        };
        if let Some(c) = loaded.customer().filter(|c| c.forgotten) {
            let mut subjects = vec![customer.0.into_bytes()];
            subjects.extend(c.leads.iter().map(|l| l.0.into_bytes()));
            let mut aggregates = vec![aggregate];
            aggregates.extend(c.leads.iter().map(|l| AggregateRef::Lead(*l)));
            self.uncache(&aggregates);
            finished.keys_destroyed = keys.destroy(&subjects).await.map_err(unavailable)?;
            finished.forgotten = true;
            tracing::info!(
                customer = %customer,
                leads = c.leads.len(),
                keys_destroyed = finished.keys_destroyed,
                "customer forgotten: data keys destroyed"
            );
        }
        keys.store()
            .clear_erasure(customer.0.into_bytes())
            .await
            .map_err(unavailable)?;
        Ok(finished)
    }

    /// Finishes every erasure a crash left half done (run at start, before commands are
    /// taken). How many were finished with keys destroyed.
    ///
    /// # Errors
    /// As [`Self::finish_erasure`].
    pub async fn finish_erasures(&self) -> Result<usize, HandleError> {
        let Some(keys) = self.keys() else {
            return Ok(0);
        };
        let pending = keys.store().pending_erasures().await.map_err(unavailable)?;
        let mut n = 0;
        for id in pending {
            let customer = CustomerId(uuid::Uuid::from_bytes(id));
            tracing::warn!(customer = %customer, "finishing an erasure a restart interrupted");
            n += usize::from(self.finish_erasure(customer).await?.forgotten);
        }
        Ok(n)
    }
}
