//! The command handler: load the aggregates a command touches, decide, append the
//! events as one atomic commit, and on a concurrent write reload and decide again.
//!
//! Guarantees:
//! - **Optimistic concurrency per aggregate**: every message carries the stream sequence
//!   of the aggregate state it was decided against; a commit that lost a race stores
//!   nothing and is re-decided on fresh state (up to `max_attempts` times).
//! - **Atomic commits**: a command's events, even across two aggregates, land together
//!   or not at all. Consecutive events on one aggregate travel as one grouped message,
//!   so a command writing one aggregate is a single publish; only commands writing two
//!   aggregates (lead conversion, linking customers) need a JetStream atomic batch.
//! - **Durable idempotency**: every event records its command id, and loading an
//!   aggregate indexes them, so the same command id (minutes or months later) returns
//!   the original outcome and appends nothing.
//! - **No double append after an ambiguous failure**: the handler re-reads the
//!   aggregate to learn whether its commit landed; a late landing makes a retry fail its
//!   sequence check instead of writing twice.
//! - **Cheap loads**: aggregates stay in a bounded LRU cache with their last sequence;
//!   misses and refreshes read only the missing tail of the subject with batched direct
//!   get (no consumer per load). In one process, commands on the same aggregate queue
//!   on its slot instead of conflicting.
//! - **No decision on a lagging replica**: on a replicated stream any replica may answer
//!   a direct get, and a follower can be behind the leader. Appends are guarded by the
//!   expected-sequence check on the leader; everything else a command decides (a
//!   rejection, a no-op, a version mismatch, and what it read of an aggregate it does
//!   not write) is confirmed against the leader's last sequence of each subject first,
//!   and decided again on a re-read that reaches it.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crm_domain::{
    Actor, AggregateRef, Campaign, Command, CommandId, Customer, DecideContext, DomainConfig,
    DomainEvent, Lead, Rejection, RejectionKind, Timestamp, World, decide,
};
use crm_events::seal::is_sealed_type;
use crm_events::{
    EncodedEvent, EventHash, EventMeta, decode_message, encode, encode_message, encode_sealed,
};
use lru::LruCache;
use tokio::sync::OwnedMutexGuard;
use tracing::Instrument;
use uuid::Uuid;

use crate::error::{AppendError, HandleError, StoreError};
use crate::keys::{DataKey, KeyError, KeyRing};
use crate::log::{AppendAck, EventLog, MAX_BATCH, OutgoingMessage, StoredMessage};
use crate::quarantine::QuarantineLog;

/// Who sent a command and how it should be recorded.
#[derive(Clone, Debug)]
pub struct CommandMeta {
    /// The idempotency key.
    pub command_id: CommandId,
    /// The authenticated principal (never a client-supplied field).
    pub actor: Actor,
    /// Business time; the time of receipt when `None`.
    pub occurred_at: Option<Timestamp>,
    /// Defaults to the command id.
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
    /// Reject (without retrying) unless the command's primary aggregate is at this
    /// version (0: does not exist yet).
    pub expected_version: Option<u64>,
}

impl CommandMeta {
    /// Metadata with a fresh command id and no options.
    #[must_use]
    pub fn new(actor: Actor) -> Self {
        Self {
            command_id: CommandId::new_v7(),
            actor,
            occurred_at: None,
            correlation_id: None,
            causation_id: None,
            expected_version: None,
        }
    }
}

/// What a handled command did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandOutcome {
    pub command_id: CommandId,
    /// Every aggregate the command writes to, with its version after the command.
    pub aggregates: Vec<(AggregateRef, u64)>,
    /// Stream sequence of the commit's last event (for a no-op: of the newest event of
    /// the aggregates): a consistency token for the read side.
    pub position: u64,
    /// Events appended by this call (0 for a no-op or a repeated command).
    pub appended: usize,
    /// The command id had been handled before: this is the original outcome.
    pub repeated: bool,
    /// The events this call appended (empty for a no-op or a repeated command).
    pub events: Vec<DomainEvent>,
}

/// Tuning of the command handler.
#[derive(Clone, Debug)]
pub struct HandlerConfig {
    /// How many times a command is decided before a conflict is reported.
    pub max_attempts: u32,
    /// How many aggregates the cache keeps.
    pub cache_capacity: NonZeroUsize,
    pub domain: DomainConfig,
}

impl Default for HandlerConfig {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            cache_capacity: NonZeroUsize::new(100_000).expect("non-zero"),
            domain: DomainConfig::default(),
        }
    }
}

/// Counters since start (for metrics).
#[derive(Debug, Default)]
pub struct HandlerStats {
    pub commands_applied: AtomicU64,
    pub commands_noop: AtomicU64,
    pub commands_repeated: AtomicU64,
    pub commands_rejected: AtomicU64,
    pub events_appended: AtomicU64,
    pub conflicts: AtomicU64,
    /// Appends refused because the stream had too many atomic batches open (or one was
    /// broken by a reconnect): re-decided after a pause, like conflicts.
    pub busy: AtomicU64,
    pub ambiguous_appends: AtomicU64,
    pub aggregate_loads: AtomicU64,
    pub messages_read: AtomicU64,
    /// Decisions taken again because a read came from a replica behind the stream's
    /// leader.
    pub stale_reads: AtomicU64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Applied {
    version: u64,
    seq: u64,
}

// One per cached aggregate; moved, not copied, into the decide world.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
enum AggState {
    Customer(Option<Customer>),
    Lead(Option<Lead>),
    Campaign(Option<Campaign>),
}

/// An aggregate as loaded from the log.
#[derive(Clone, Debug)]
pub(crate) struct Loaded {
    aggregate: AggregateRef,
    pub(crate) version: u64,
    pub(crate) last_seq: u64,
    last_hash: EventHash,
    state: AggState,
    /// Command ids recorded in this aggregate's events: durable idempotency.
    commands: BTreeMap<CommandId, Applied>,
}

impl Loaded {
    pub(crate) fn empty(aggregate: AggregateRef) -> Self {
        let state = match aggregate {
            AggregateRef::Customer(_) => AggState::Customer(None),
            AggregateRef::Lead(_) => AggState::Lead(None),
            AggregateRef::Campaign(_) => AggState::Campaign(None),
        };
        Self {
            aggregate,
            version: 0,
            last_seq: 0,
            last_hash: EventHash::GENESIS,
            state,
            commands: BTreeMap::new(),
        }
    }

    /// Folds one stored message (one event or a group), checking it continues the hash
    /// chain.
    /// `key` is the aggregate's data key (for a customer or lead that has one): it opens
    /// the personal text the command side decides on (a lead's names become its
    /// customer's); without it sealed text reads as erased.
    pub(crate) fn apply_stored(
        &mut self,
        m: &StoredMessage,
        key: Option<&DataKey>,
    ) -> Result<(), StoreError> {
        let aggregate = self.aggregate;
        let corrupt = |reason: String| StoreError::Corrupt {
            aggregate,
            seq: m.seq,
            reason,
        };
        let envelopes = decode_message(&m.payload).map_err(|e| corrupt(e.to_string()))?;
        for mut env in envelopes {
            env.unseal(key.map(|k| &k.0))
                .map_err(|e| corrupt(e.to_string()))?;
            if env.aggregate != self.aggregate {
                return Err(corrupt(format!(
                    "event of {} stored on this subject",
                    env.aggregate
                )));
            }
            if env.meta.version != self.version + 1 {
                return Err(corrupt(format!(
                    "version {} follows version {}",
                    env.meta.version, self.version
                )));
            }
            if env.meta.prev_hash != self.last_hash {
                return Err(corrupt(format!(
                    "hash chain broken: prev_hash {} but the previous event hashes to {}",
                    env.meta.prev_hash, self.last_hash
                )));
            }
            let mut world = World::default();
            self.move_into(&mut world);
            let applied = world.apply(&env.event);
            self.move_back(&mut world);
            applied.map_err(|e| corrupt(e.to_string()))?;
            self.version = env.meta.version;
            self.last_seq = m.seq;
            self.last_hash = env.hash;
            self.commands.insert(
                env.meta.command_id,
                Applied {
                    version: self.version,
                    seq: m.seq,
                },
            );
        }
        Ok(())
    }

    /// The customer's command-side state, for a customer aggregate that exists.
    pub(crate) const fn customer(&self) -> Option<&Customer> {
        match &self.state {
            AggState::Customer(c) => c.as_ref(),
            _ => None,
        }
    }

    fn move_into(&mut self, world: &mut World) {
        match (&mut self.state, self.aggregate) {
            (AggState::Customer(s), AggregateRef::Customer(id)) => {
                if let Some(c) = s.take() {
                    world.customers.insert(id, c);
                }
            }
            (AggState::Lead(s), AggregateRef::Lead(id)) => {
                if let Some(l) = s.take() {
                    world.leads.insert(id, l);
                }
            }
            (AggState::Campaign(s), AggregateRef::Campaign(id)) => {
                if let Some(c) = s.take() {
                    world.campaigns.insert(id, c);
                }
            }
            _ => unreachable!("state kind matches the aggregate kind"),
        }
    }

    fn move_back(&mut self, world: &mut World) {
        self.state = match self.aggregate {
            AggregateRef::Customer(id) => AggState::Customer(world.customers.remove(&id)),
            AggregateRef::Lead(id) => AggState::Lead(world.leads.remove(&id)),
            AggregateRef::Campaign(id) => AggState::Campaign(world.campaigns.remove(&id)),
        };
    }
}

#[derive(Debug, Default)]
struct Slot {
    loaded: Option<Loaded>,
}

type SlotGuard = OwnedMutexGuard<Slot>;

/// Handles commands against the event log. Cheap to clone; clones share the cache.
#[derive(Clone, Debug)]
pub struct CommandHandler {
    log: EventLog,
    /// The data subjects' keys: personal text is sealed under them. Without, events are
    /// written in the clear (tools and tests that need no shredding).
    keys: Option<Arc<KeyRing>>,
    cfg: Arc<HandlerConfig>,
    cache: Arc<Mutex<LruCache<AggregateRef, Arc<tokio::sync::Mutex<Slot>>>>>,
    stats: Arc<HandlerStats>,
    /// The quarantine log as last read (see [`crate::quarantine`]).
    pub(crate) quarantine: Arc<Mutex<QuarantineLog>>,
}

/// A group's encoded size beyond which a run of events on one aggregate is split into
/// several messages (NATS refuses messages over its `max_payload`, 1 MiB by default).
const MAX_GROUP_BYTES: usize = 256 * 1024;

/// A command's events, encoded and packed into messages.
struct EncodedCommit {
    messages: Vec<OutgoingMessage>,
    encoded: Vec<EncodedEvent>,
    /// For each event, the index of the message that holds it.
    message_of: Vec<u64>,
}

struct Target {
    aggregate: AggregateRef,
    write: bool,
    subject: String,
    /// The slot, locked for the whole command for a written aggregate. A read-only
    /// reference does not hold it: its state is copied out, re-read from the log on
    /// every attempt anyway, and offered back to the cache afterwards, so commands that
    /// only read an aggregate (every response to one campaign) do not queue behind
    /// each other.
    guard: Option<SlotGuard>,
    slot: Arc<tokio::sync::Mutex<Slot>>,
    /// Taken out of the slot for the duration of the command and put back only when the
    /// command ends cleanly: a dropped (cancelled) command leaves the slot empty, so the
    /// aggregate is re-read instead of trusting a half-updated cache entry.
    loaded: Option<Loaded>,
    /// Read from the log during the current attempt.
    fresh: bool,
    /// The stream leader's last sequence on the subject, when a read was found behind
    /// it: the next read must reach it.
    want: u64,
}

fn key_store_unavailable(e: KeyError) -> StoreError {
    StoreError::Unavailable {
        context: "key store",
        message: e.to_string(),
    }
}

pub(crate) fn now() -> Timestamp {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    Timestamp::from_micros(micros)
}

impl CommandHandler {
    #[must_use]
    pub fn new(log: EventLog, cfg: HandlerConfig) -> Self {
        let cache = LruCache::new(cfg.cache_capacity);
        Self {
            log,
            keys: None,
            cfg: Arc::new(cfg),
            cache: Arc::new(Mutex::new(cache)),
            stats: Arc::new(HandlerStats::default()),
            quarantine: Arc::default(),
        }
    }

    /// Seals personal text under the data subjects' keys from `keys` from now on.
    #[must_use]
    pub fn with_keys(mut self, keys: Arc<KeyRing>) -> Self {
        self.keys = Some(keys);
        self
    }

    /// The key ring, when personal text is sealed.
    #[must_use]
    pub fn keys(&self) -> Option<&Arc<KeyRing>> {
        self.keys.as_ref()
    }

    #[must_use]
    pub fn log(&self) -> &EventLog {
        &self.log
    }

    #[must_use]
    pub fn stats(&self) -> &Arc<HandlerStats> {
        &self.stats
    }

    fn slot(&self, aggregate: AggregateRef) -> Arc<tokio::sync::Mutex<Slot>> {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(slot) = cache.get(&aggregate) {
            return slot.clone();
        }
        // Make room without evicting a slot a command holds (that would let a second
        // command on the same aggregate run beside it instead of queueing).
        let mut tries = cache.len();
        while cache.len() >= cache.cap().get() && tries > 0 {
            tries -= 1;
            let in_use = cache
                .peek_lru()
                .is_some_and(|(_, s)| Arc::strong_count(s) > 1);
            if in_use {
                if let Some(k) = cache.peek_lru().map(|(k, _)| *k) {
                    cache.promote(&k);
                }
            } else {
                cache.pop_lru();
            }
        }
        if cache.len() >= cache.cap().get() {
            // Every cached slot is in use: grow rather than evict one.
            let grown = cache.cap().saturating_add(1);
            cache.resize(grown);
        }
        let slot = Arc::new(tokio::sync::Mutex::new(Slot::default()));
        cache.put(aggregate, slot.clone());
        slot
    }

    /// Handles one command. See the module documentation for the guarantees.
    pub async fn handle(
        &self,
        command: &Command,
        meta: &CommandMeta,
    ) -> Result<CommandOutcome, HandleError> {
        let span = tracing::info_span!(
            "command",
            name = command.name(),
            command_id = %meta.command_id,
        );
        if let Command::ForgetCustomer { customer_id, .. } = command {
            return self
                .forget(*customer_id, command, meta)
                .instrument(span)
                .await;
        }
        self.handle_inner(command, meta).instrument(span).await
    }

    /// Drops aggregates from the cache (what it holds of a forgotten subject).
    pub(crate) fn uncache(&self, aggregates: &[AggregateRef]) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        for a in aggregates {
            cache.pop(a);
        }
    }

    /// Reads what the log holds for a target after what the slot already has, until
    /// the read reaches `t.want` (a replica behind the leader catches up in
    /// milliseconds; after a pause it may take longer, up to the request timeout).
    async fn refresh(&self, t: &mut Target) -> Result<(), StoreError> {
        let deadline = tokio::time::Instant::now() + self.log.config().request_timeout;
        let mut pause = Duration::from_millis(5);
        loop {
            self.read_tail(t).await?;
            let have = t.loaded.as_ref().map_or(0, |l| l.last_seq);
            if have >= t.want {
                return Ok(());
            }
            if tokio::time::Instant::now() + pause > deadline {
                return Err(StoreError::Unavailable {
                    context: "direct get",
                    message: format!(
                        "the replica answering reads stays behind the stream leader on {} (at {have}, the leader at {})",
                        t.subject, t.want
                    ),
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// Whether the selected targets, as read, are what the stream's leader holds. On a
    /// replicated stream a direct get may be answered by a follower that has not
    /// applied the newest messages; an outcome no sequence check guards is confirmed
    /// here before it is returned. A target found behind gets the leader's sequence as
    /// the one its next read must reach.
    async fn current_on_leader(
        &self,
        targets: &mut [Target],
        select: impl Fn(&Target) -> bool,
    ) -> Result<bool, StoreError> {
        if !self.log.replicated() {
            return Ok(true);
        }
        let selected: Vec<usize> = (0..targets.len())
            .filter(|&i| select(&targets[i]))
            .collect();
        let seqs = futures::future::try_join_all(
            selected
                .iter()
                .map(|&i| self.log.leader_last_seq(&targets[i].subject)),
        )
        .await?;
        let mut current = true;
        for (i, leader) in selected.into_iter().zip(seqs) {
            let t = &mut targets[i];
            let have = t.loaded.as_ref().map_or(0, |l| l.last_seq);
            if leader > have {
                tracing::debug!(subject = %t.subject, have, leader, "read behind the stream leader");
                t.want = leader;
                current = false;
            }
        }
        if !current {
            self.stats.stale_reads.fetch_add(1, Ordering::Relaxed);
        }
        Ok(current)
    }

    /// [`current_on_leader`](Self::current_on_leader) for `decide_and_append`: false
    /// when the decision must be taken again on a re-read.
    async fn confirm(
        &self,
        targets: &mut [Target],
        select: impl Fn(&Target) -> bool,
        unanswered_commit: &Option<usize>,
    ) -> Result<bool, HandleError> {
        self.current_on_leader(targets, select)
            .await
            .map_err(|e| Self::read_failure(e, unanswered_commit.is_some()))
    }

    /// One read of the subject's tail after what the slot already has.
    async fn read_tail(&self, t: &mut Target) -> Result<(), StoreError> {
        let mut loaded = t
            .loaded
            .take()
            .unwrap_or_else(|| Loaded::empty(t.aggregate));
        let read = self.log.read_subject(&t.subject, loaded.last_seq).await;
        let messages = match read {
            Ok(m) => m,
            Err(e) => {
                if loaded.version > 0 {
                    t.loaded = Some(loaded);
                }
                return Err(e);
            }
        };
        self.stats.aggregate_loads.fetch_add(1, Ordering::Relaxed);
        self.stats
            .messages_read
            .fetch_add(messages.len() as u64, Ordering::Relaxed);
        let key = match self.subject_key(t.aggregate, !messages.is_empty()).await {
            Ok(k) => k,
            Err(e) => {
                if loaded.version > 0 {
                    t.loaded = Some(loaded);
                }
                return Err(e);
            }
        };
        match self.fold_stored(&mut loaded, &messages, key.as_ref()) {
            Ok(()) => {
                t.loaded = Some(loaded);
                t.fresh = true;
                Ok(())
            }
            // A corrupt aggregate is not cached: every command on it fails loudly, until
            // the message that breaks it is quarantined; then it is read again from the
            // start without it.
            Err((seq, e)) => {
                self.refresh_quarantine().await?;
                if !self.is_quarantined(seq) {
                    return Err(e);
                }
                tracing::info!(subject = %t.subject, seq, "skipping a quarantined message");
                Box::pin(self.read_tail(t)).await
            }
        }
    }

    /// Folds stored messages into `loaded`, skipping quarantined positions; on failure,
    /// the position that broke the history.
    pub(crate) fn fold_stored(
        &self,
        loaded: &mut Loaded,
        messages: &[StoredMessage],
        key: Option<&DataKey>,
    ) -> Result<(), (u64, StoreError)> {
        for m in messages {
            if self.is_quarantined(m.seq) {
                // Not ours: not applied, but it is the subject's last sequence for the
                // next append's check.
                loaded.last_seq = m.seq;
                continue;
            }
            loaded.apply_stored(m, key).map_err(|e| (m.seq, e))?;
        }
        Ok(())
    }

    /// The data key of an aggregate's subject when messages of it are to be read (and
    /// personal text is sealed at all).
    pub(crate) async fn subject_key(
        &self,
        aggregate: AggregateRef,
        reading: bool,
    ) -> Result<Option<DataKey>, StoreError> {
        let (Some(keys), true) = (&self.keys, reading) else {
            return Ok(None);
        };
        match aggregate {
            AggregateRef::Customer(_) | AggregateRef::Lead(_) => keys
                .key(*aggregate.uuid().as_bytes())
                .await
                .map_err(key_store_unavailable),
            AggregateRef::Campaign(_) => Ok(None),
        }
    }

    /// The keys to seal a commit's personal text with, by data subject (made for a
    /// subject that has none yet, before anything is appended).
    async fn sealing_keys(
        &self,
        events: &[DomainEvent],
    ) -> Result<BTreeMap<Uuid, DataKey>, StoreError> {
        let mut out = BTreeMap::new();
        let Some(keys) = &self.keys else {
            return Ok(out);
        };
        for e in events.iter().filter(|e| is_sealed_type(e.event_type())) {
            let subject = e.aggregate().uuid();
            if let std::collections::btree_map::Entry::Vacant(slot) = out.entry(subject) {
                let key = keys
                    .key_for_sealing(*subject.as_bytes())
                    .await
                    .map_err(key_store_unavailable)?;
                slot.insert(key);
            }
        }
        Ok(out)
    }

    pub(crate) async fn handle_inner(
        &self,
        command: &Command,
        meta: &CommandMeta,
    ) -> Result<CommandOutcome, HandleError> {
        if let Some(at) = meta.occurred_at {
            // Before any aggregate is locked or read: a business time out of bounds is
            // the request's fault whatever the state.
            if let Err(r) = self.cfg.domain.business_time.check(at, now()) {
                self.stats.commands_rejected.fetch_add(1, Ordering::Relaxed);
                return Err(HandleError::Rejected(r));
            }
        }
        let declared = command.targets();
        // Lock slots in a global order (sorted by aggregate) so commands touching two
        // aggregates cannot deadlock.
        let mut order: Vec<crm_domain::Target> = declared.clone();
        // Writes sort before reads of the same aggregate, so dedup keeps the write.
        order.sort_by_key(|t| (t.aggregate, !t.write));
        order.dedup_by_key(|t| t.aggregate);
        let mut targets = Vec::with_capacity(order.len());
        for t in order {
            let slot = self.slot(t.aggregate);
            let mut guard = slot.clone().lock_owned().await;
            let (guard, loaded) = if t.write {
                let loaded = guard.loaded.take();
                (Some(guard), loaded)
            } else {
                (None, guard.loaded.clone())
            };
            targets.push(Target {
                aggregate: t.aggregate,
                write: t.write,
                subject: self.log.config().subject(t.aggregate),
                guard,
                slot,
                loaded,
                fresh: false,
                want: 0,
            });
        }
        let mut unanswered_commit = None;
        let result = self
            .decide_and_append(&mut targets, command, meta, &mut unanswered_commit)
            .await;
        // Put the loaded aggregates back only when they are known to be consistent with
        // the log; otherwise the slot stays empty and the next command re-reads.
        if matches!(
            result,
            Ok(_)
                | Err(HandleError::Rejected(_)
                    | HandleError::VersionMismatch { .. }
                    | HandleError::Conflict { .. })
        ) {
            for t in targets.iter_mut() {
                let loaded = t.loaded.take();
                if let Some(guard) = t.guard.as_mut() {
                    guard.loaded = loaded;
                } else if let (Some(loaded), Ok(mut cached)) = (loaded, t.slot.try_lock()) {
                    // A read-only copy goes back only if it is newer than what the
                    // cache holds; a busy slot is left alone (never wait while
                    // holding other slots).
                    if cached
                        .loaded
                        .as_ref()
                        .is_none_or(|c| c.last_seq < loaded.last_seq)
                    {
                        cached.loaded = Some(loaded);
                    }
                }
            }
        }
        match result {
            Err(e)
                if unanswered_commit.is_some() && !matches!(e, HandleError::Unavailable { .. }) =>
            {
                // An earlier attempt's commit went unanswered and was not found when we
                // looked; a request buffered by the client may still land. The outcome is
                // unknown: the caller must retry with the same command id.
                Err(HandleError::Unavailable {
                    message: format!(
                        "a commit of this command went unanswered and may still land; the retry then failed: {e}"
                    ),
                    maybe_applied: true,
                })
            }
            other => other,
        }
    }

    async fn decide_and_append(
        &self,
        targets: &mut [Target],
        command: &Command,
        meta: &CommandMeta,
        unanswered_commit: &mut Option<usize>,
    ) -> Result<CommandOutcome, HandleError> {
        let primary = command.targets()[0].aggregate;
        let occurred_at = meta.occurred_at.unwrap_or_else(now);
        let ctx = DecideContext {
            config: &self.cfg.domain,
            occurred_at,
        };
        let mut stale = false;
        // The last append was refused because the stream had too many atomic batches
        // open (not because the aggregate moved on).
        let mut busy = false;
        // JetStream called a commit of this command a duplicate (its message id, derived
        // from the command id, was seen within the dedupe window): where it landed.
        let mut duplicate_of: Option<String> = None;
        let mut attempt = 0;
        while attempt < self.cfg.max_attempts {
            attempt += 1;
            for t in targets.iter_mut() {
                t.fresh = false;
                // Read-only references are always re-read: a cached "does not exist"
                // must not reject a command. Written aggregates are checked by the
                // expected-sequence header instead.
                if stale || t.loaded.is_none() || !t.write {
                    self.refresh(t)
                        .await
                        .map_err(|e| Self::read_failure(e, unanswered_commit.is_some()))?;
                }
            }
            stale = false;
            if let Some(mut outcome) = Self::recorded_outcome(targets, meta.command_id) {
                if let Some(appended) = *unanswered_commit {
                    // Our own commit whose answer was lost: it did land, once.
                    outcome.repeated = false;
                    outcome.appended = appended;
                    self.stats.commands_applied.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .events_appended
                        .fetch_add(appended as u64, Ordering::Relaxed);
                    tracing::info!(
                        position = outcome.position,
                        "the unanswered commit had landed"
                    );
                    return Ok(outcome);
                }
                self.stats.commands_repeated.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    position = outcome.position,
                    "repeated command id: original outcome"
                );
                return Ok(outcome);
            }
            if let Some(original) = duplicate_of.take() {
                // The id's earlier commit is not on this command's aggregates: the id was
                // used for a different command. Never append under a reused id.
                self.stats.commands_rejected.fetch_add(1, Ordering::Relaxed);
                return Err(HandleError::Rejected(Rejection::new(
                    RejectionKind::Invalid,
                    "options.command_id",
                    "reused",
                    format!(
                        "command id {} was already used for a different command ({original}); a new command needs a new command id",
                        meta.command_id
                    ),
                )));
            }
            if let Some(expected) = meta.expected_version {
                let actual = Self::loaded(targets, primary).version;
                if actual != expected {
                    if targets.iter().any(|t| !t.fresh) {
                        // The cache may be behind the log: compare with the log itself.
                        stale = true;
                        attempt -= 1;
                        continue;
                    }
                    if !self.confirm(targets, |_| true, unanswered_commit).await? {
                        stale = true;
                        continue;
                    }
                    return Err(HandleError::VersionMismatch {
                        aggregate: primary,
                        expected,
                        actual,
                    });
                }
            }
            let mut world = World::default();
            for t in targets.iter_mut() {
                t.loaded.as_mut().expect("loaded").move_into(&mut world);
            }
            let decided = decide(&world, command, &ctx);
            let events = match decided {
                Err(rejection) => {
                    Self::move_back(targets, &mut world);
                    if targets.iter().any(|t| !t.fresh) {
                        // Decided on cached state: make sure it was not stale before
                        // rejecting (a rejection is not guarded by a sequence check).
                        stale = true;
                        attempt -= 1;
                        continue;
                    }
                    if !self.confirm(targets, |_| true, unanswered_commit).await? {
                        stale = true;
                        continue;
                    }
                    self.stats.commands_rejected.fetch_add(1, Ordering::Relaxed);
                    return Err(HandleError::Rejected(rejection));
                }
                Ok(events) => events,
            };
            if events.is_empty() {
                Self::move_back(targets, &mut world);
                if targets.iter().any(|t| !t.fresh) {
                    // A no-op is not guarded by a sequence check either: a stale cache
                    // could hide a concurrent change that makes the command meaningful.
                    stale = true;
                    attempt -= 1;
                    continue;
                }
                if !self.confirm(targets, |_| true, unanswered_commit).await? {
                    stale = true;
                    continue;
                }
                self.stats.commands_noop.fetch_add(1, Ordering::Relaxed);
                return Ok(self.outcome(targets, meta.command_id, Vec::new()));
            }
            // The aggregates only read are not guarded by the append's sequence checks.
            if targets.iter().any(|t| !t.write)
                && !self
                    .confirm(targets, |t| !t.write, unanswered_commit)
                    .await?
            {
                Self::move_back(targets, &mut world);
                stale = true;
                continue;
            }
            let sealing = match self.sealing_keys(&events).await {
                Ok(k) => k,
                Err(e) => {
                    Self::move_back(targets, &mut world);
                    return Err(Self::read_failure(e, unanswered_commit.is_some()));
                }
            };
            let commit = match self.encode_commit(targets, &events, meta, occurred_at, &sealing) {
                Ok(c) => c,
                Err(e) => {
                    Self::move_back(targets, &mut world);
                    return Err(e);
                }
            };
            match self.log.append(&commit.messages).await {
                Ok(AppendAck {
                    duplicate: false,
                    first_seq,
                    ..
                }) => {
                    for e in &events {
                        world.apply(e).map_err(StoreError::from)?;
                    }
                    Self::move_back(targets, &mut world);
                    Self::advance(targets, &events, &commit, meta.command_id, first_seq);
                    self.stats.commands_applied.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .events_appended
                        .fetch_add(events.len() as u64, Ordering::Relaxed);
                    let appended = events.len();
                    let outcome = self.outcome(targets, meta.command_id, events);
                    tracing::debug!(
                        position = outcome.position,
                        events = appended,
                        attempt,
                        "appended"
                    );
                    return Ok(outcome);
                }
                Ok(AppendAck {
                    duplicate: true,
                    last_seq,
                    ..
                }) => {
                    // Landed before (a retry inside the dedupe window): re-read, and the
                    // idempotency check above returns the original outcome.
                    Self::move_back(targets, &mut world);
                    stale = true;
                    // Ours (a lost answer), and the re-read will find it; or another
                    // command's, elsewhere: the id was reused.
                    let subject = self
                        .log
                        .subject_at(last_seq)
                        .await
                        .map_err(|e| Self::read_failure(e, unanswered_commit.is_some()))?;
                    duplicate_of = (!targets.iter().any(|t| t.write && t.subject == subject))
                        .then(|| format!("stream position {last_seq}, on {subject}"));
                }
                Err(AppendError::Duplicate(_)) => {
                    // A batch refused as a duplicate: re-read, and the idempotency check
                    // above returns the original outcome.
                    Self::move_back(targets, &mut world);
                    stale = true;
                }
                Err(
                    ref e @ (AppendError::Conflict {
                        code,
                        ref description,
                    }
                    | AppendError::Busy {
                        code,
                        ref description,
                    }),
                ) => {
                    Self::move_back(targets, &mut world);
                    busy = matches!(e, AppendError::Busy { .. });
                    let counter = if busy {
                        &self.stats.busy
                    } else {
                        &self.stats.conflicts
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(code, %description, attempt, "conflict: re-deciding on fresh state");
                    stale = true;
                    Self::backoff(attempt).await;
                }
                Err(AppendError::Ambiguous(message)) => {
                    Self::move_back(targets, &mut world);
                    *unanswered_commit = Some(events.len());
                    self.stats.ambiguous_appends.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%message, "no answer to a commit: checking whether it landed");
                    // Re-read before anything else; if the log cannot be read, the
                    // caller must retry with the same command id.
                    for t in targets.iter_mut().filter(|t| t.write) {
                        if let Err(e) = self.refresh(t).await {
                            return Err(Self::read_failure(e, true));
                        }
                    }
                }
                Err(AppendError::Unavailable(message)) => {
                    Self::move_back(targets, &mut world);
                    return Err(HandleError::Unavailable {
                        message,
                        // An earlier unanswered commit of this call may still land.
                        maybe_applied: unanswered_commit.is_some(),
                    });
                }
                Err(AppendError::Refused { code, description }) => {
                    Self::move_back(targets, &mut world);
                    return Err(if matches!(code, 0 | 10199) {
                        HandleError::TooLarge(description)
                    } else {
                        HandleError::Store(StoreError::Unavailable {
                            context: "append refused",
                            message: format!("JetStream error {code}: {description}"),
                        })
                    });
                }
            }
        }
        if busy {
            // Not a race on the aggregate: the stream is full of open batches (other
            // writers', or ones abandoned mid-way, which the server drops after a while).
            return Err(HandleError::Unavailable {
                message: format!(
                    "the event log had too many atomic batches open for {} attempts; nothing was written",
                    self.cfg.max_attempts
                ),
                maybe_applied: unanswered_commit.is_some(),
            });
        }
        Err(HandleError::Conflict {
            aggregate: primary,
            attempts: self.cfg.max_attempts,
        })
    }

    /// A failed read of the log: unavailability is reported as such (with whether a
    /// commit of this call may have landed); anything else is a store error.
    pub(crate) fn read_failure(e: StoreError, maybe_applied: bool) -> HandleError {
        match e {
            StoreError::Unavailable { context, message } => HandleError::Unavailable {
                message: format!("{context}: {message}"),
                maybe_applied,
            },
            other => HandleError::Store(other),
        }
    }

    async fn backoff(attempt: u32) {
        // Full jitter (a random pause up to an exponentially growing cap, 1 ms to 64 ms)
        // so that writers racing for one aggregate spread out instead of colliding again.
        let cap_us = 1_000u64 << attempt.min(6);
        let jitter = u64::try_from(Uuid::new_v4().as_u128() % u128::from(cap_us)).unwrap_or(cap_us);
        tokio::time::sleep(Duration::from_micros(jitter)).await;
    }

    fn loaded(targets: &[Target], aggregate: AggregateRef) -> &Loaded {
        targets
            .iter()
            .find(|t| t.aggregate == aggregate)
            .and_then(|t| t.loaded.as_ref())
            .expect("target loaded")
    }

    fn move_back(targets: &mut [Target], world: &mut World) {
        for t in targets {
            t.loaded.as_mut().expect("loaded").move_back(world);
        }
    }

    /// Encodes the events of a commit into messages: each run of consecutive events on
    /// one aggregate becomes one message (a group when it holds several), so a command
    /// that writes one aggregate is always a single message and needs no JetStream
    /// batch.
    fn encode_commit(
        &self,
        targets: &[Target],
        events: &[DomainEvent],
        meta: &CommandMeta,
        occurred_at: Timestamp,
        sealing: &BTreeMap<Uuid, DataKey>,
    ) -> Result<EncodedCommit, HandleError> {
        if events.len() > MAX_BATCH {
            return Err(HandleError::TooLarge(format!(
                "the command produces {} events; one commit holds at most {MAX_BATCH}",
                events.len()
            )));
        }
        let commit_size = u16::try_from(events.len()).expect("bounded by MAX_BATCH");
        let recorded_at = now();
        let mut heads: BTreeMap<AggregateRef, (u64, EventHash)> = targets
            .iter()
            .filter(|t| t.write)
            .map(|t| {
                let l = t.loaded.as_ref().expect("loaded");
                (t.aggregate, (l.version, l.last_hash))
            })
            .collect();
        let mut encoded = Vec::with_capacity(events.len());
        // Runs of consecutive events on one aggregate: (aggregate, first event, bytes).
        let mut runs: Vec<(AggregateRef, usize, usize)> = Vec::new();
        for (i, event) in events.iter().enumerate() {
            let aggregate = event.aggregate();
            let Some((version, prev_hash)) = heads.get_mut(&aggregate) else {
                return Err(HandleError::Store(StoreError::Corrupt {
                    aggregate,
                    seq: 0,
                    reason: "decide wrote to an aggregate the command does not declare".into(),
                }));
            };
            *version += 1;
            let em = EventMeta {
                event_id: Uuid::now_v7(),
                version: *version,
                occurred_at,
                recorded_at,
                actor: meta.actor.clone(),
                command_id: meta.command_id,
                correlation_id: meta.correlation_id.unwrap_or(meta.command_id.0),
                causation_id: meta.causation_id,
                commit_index: u16::try_from(i).expect("bounded by MAX_BATCH"),
                commit_size,
                prev_hash: *prev_hash,
            };
            let enc = match sealing.get(&aggregate.uuid()) {
                Some(key) if is_sealed_type(event.event_type()) => {
                    encode_sealed(&em, event, &key.0).map_err(|e| {
                        HandleError::Store(StoreError::Unavailable {
                            context: "sealing personal data",
                            message: e.to_string(),
                        })
                    })?
                }
                _ => encode(&em, event),
            };
            *prev_hash = enc.hash;
            match runs.last_mut() {
                Some((a, _, bytes))
                    if *a == aggregate && *bytes + enc.bytes.len() <= MAX_GROUP_BYTES =>
                {
                    *bytes += enc.bytes.len();
                }
                _ => runs.push((aggregate, i, enc.bytes.len())),
            }
            encoded.push(enc);
        }
        let mut messages = Vec::with_capacity(runs.len());
        let mut message_of = Vec::with_capacity(events.len());
        let mut seen = std::collections::BTreeSet::new();
        for (m, &(aggregate, first, _)) in runs.iter().enumerate() {
            let end = runs.get(m + 1).map_or(events.len(), |r| r.1);
            message_of.extend(std::iter::repeat_n(m as u64, end - first));
            // The first message of each aggregate carries the sequence it was decided at.
            let expected = seen
                .insert(aggregate)
                .then(|| Self::loaded(targets, aggregate).last_seq);
            messages.push(OutgoingMessage {
                subject: self.log.config().subject(aggregate),
                payload: encode_message(&encoded[first..end]).into(),
                msg_id: format!("{}:{m}", meta.command_id.0.as_simple()),
                expected_last_subject_seq: expected,
            });
        }
        Ok(EncodedCommit {
            messages,
            encoded,
            message_of,
        })
    }

    /// Records a successful commit in the loaded aggregates (states were already
    /// evolved).
    fn advance(
        targets: &mut [Target],
        events: &[DomainEvent],
        commit: &EncodedCommit,
        command_id: CommandId,
        first_seq: u64,
    ) {
        for ((event, enc), m) in events.iter().zip(&commit.encoded).zip(&commit.message_of) {
            let seq = first_seq + m;
            let t = targets
                .iter_mut()
                .find(|t| t.aggregate == event.aggregate())
                .expect("declared target");
            let l = t.loaded.as_mut().expect("loaded");
            l.version += 1;
            l.last_seq = seq;
            l.last_hash = enc.hash;
            l.commands.insert(
                command_id,
                Applied {
                    version: l.version,
                    seq,
                },
            );
        }
    }

    fn outcome(
        &self,
        targets: &[Target],
        command_id: CommandId,
        events: Vec<DomainEvent>,
    ) -> CommandOutcome {
        let _ = self;
        let mut aggregates = Vec::new();
        let mut position = 0;
        for t in targets.iter().filter(|t| t.write) {
            let l = t.loaded.as_ref().expect("loaded");
            aggregates.push((t.aggregate, l.version));
            position = position.max(l.last_seq);
        }
        CommandOutcome {
            command_id,
            aggregates,
            position,
            appended: events.len(),
            repeated: false,
            events,
        }
    }

    /// The original outcome, if a written aggregate already records this command id.
    fn recorded_outcome(targets: &[Target], command_id: CommandId) -> Option<CommandOutcome> {
        let mut found = false;
        let mut aggregates = Vec::new();
        let mut position = 0;
        for t in targets.iter().filter(|t| t.write) {
            let l = t.loaded.as_ref().expect("loaded");
            match l.commands.get(&command_id) {
                Some(a) => {
                    found = true;
                    aggregates.push((t.aggregate, a.version));
                    position = position.max(a.seq);
                }
                None => aggregates.push((t.aggregate, l.version)),
            }
        }
        found.then_some(CommandOutcome {
            command_id,
            aggregates,
            position,
            appended: 0,
            repeated: true,
            events: Vec::new(),
        })
    }
}
