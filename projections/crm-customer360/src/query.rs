//! Reading the 360 model: one customer, a customer's timeline, lists of customers.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crm_projection::{ProjectionError, ReadModel};

use crate::keys::{self, id_key};
use crate::record::{self, CustomerFacts, CustomerRecord, Id, TimelineEntry};
use crate::view::{self, Lifecycle, LifecyclePolicy, Population, Rfm, ValueClass};

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Storage(#[from] ProjectionError),
    #[error("stored value under {0} does not decode: {1}")]
    Corrupt(String, String),
    #[error(
        "the customer's timeline has {entries} entries, more than the {limit} a query reads; an export reads it whole"
    )]
    TimelineTooLong { entries: u32, limit: u32 },
}

/// Which timeline entries to return.
#[derive(Clone, Debug, Default)]
pub struct TimelineFilter {
    /// Event types or type prefixes (`customer.ticket_`); empty: all.
    pub event_types: Vec<String>,
    /// Business-time range, inclusive, microseconds.
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub newest_first: bool,
}

#[derive(Clone, Debug, Default)]
pub struct TimelinePage {
    pub entries: Vec<TimelineEntry>,
    /// Pass back to continue; `None` at the end.
    pub next_cursor: Option<Vec<u8>>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CustomerSort {
    /// By customer id: stable under concurrent writes.
    #[default]
    Id,
    /// Most recent order first (customers without orders are not listed).
    Recency,
    /// Highest net revenue in the reporting currency first (customers with orders).
    Value,
}

#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    pub tag: Option<String>,
    pub owner: Option<String>,
    pub lifecycle: Option<Lifecycle>,
    pub value_class: Option<ValueClass>,
    pub segment: Option<String>,
}

/// One listed customer with its as-of classification.
#[derive(Clone, Debug)]
pub struct Listed {
    pub record: CustomerRecord,
    pub classes: Classes,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Classes {
    pub lifecycle: Lifecycle,
    pub rfm: Option<Rfm>,
    pub value_class: ValueClass,
    pub segment: &'static str,
}

#[derive(Clone, Debug, Default)]
pub struct ListPage {
    pub customers: Vec<Listed>,
    pub next_cursor: Option<Vec<u8>>,
    /// Candidates examined for this page.
    pub scanned: u64,
}

/// Queries over the 360 model, with a cache of the RFM population.
#[derive(Debug)]
pub struct Queries {
    model: ReadModel,
    policy: LifecyclePolicy,
    /// The population is recomputed when the model moved on and the cached one is older
    /// than `population_ttl`.
    population_ttl: Duration,
    population: Mutex<Option<(u64, Instant, Arc<Population>)>>,
    /// Held by the one caller recomputing the population; the others keep using the
    /// cached one meanwhile (or, before there is one, wait for it) instead of all
    /// scanning the model at once.
    recomputing: Mutex<()>,
    /// A list page examines at most this many candidates and then returns what it has,
    /// with a cursor to continue.
    pub max_scan: u64,
    /// A timeline page reads the customer's whole timeline (its chunks are in stream
    /// order and sorted per query): one longer than this is refused, not read.
    pub max_timeline: u32,
}

impl Queries {
    #[must_use]
    pub fn new(model: ReadModel) -> Self {
        Self {
            model,
            policy: LifecyclePolicy::default(),
            population_ttl: Duration::from_secs(30),
            population: Mutex::new(None),
            recomputing: Mutex::new(()),
            max_scan: 100_000,
            max_timeline: 100_000,
        }
    }

    /// How long a population computed at an older checkpoint is still served.
    #[must_use]
    pub fn with_population_ttl(mut self, ttl: Duration) -> Self {
        self.population_ttl = ttl;
        self
    }

    #[must_use]
    pub fn model(&self) -> &ReadModel {
        &self.model
    }

    #[must_use]
    pub fn policy(&self) -> &LifecyclePolicy {
        &self.policy
    }

    pub fn customer(&self, id: Id) -> Result<Option<CustomerRecord>, QueryError> {
        self.load(&id_key(keys::CUSTOMER, id))
    }

    pub fn facts(&self, id: Id) -> Result<CustomerFacts, QueryError> {
        Ok(self.load(&id_key(keys::FACTS, id))?.unwrap_or_default())
    }

    fn load<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, QueryError> {
        self.model.get(key)?.map(|v| decode(key, &v)).transpose()
    }

    /// The cached RFM population when it needs no recomputation (computed at the current
    /// checkpoint or within `population_ttl`): cheap, so callers on an async runtime try
    /// this first and run [`Self::population`] on a blocking thread only when it is `None`.
    pub fn fresh_population(&self) -> Option<Arc<Population>> {
        let checkpoint = self.model.checkpoint();
        let guard = self
            .population
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard
            .as_ref()
            .filter(|(at, when, _)| *at == checkpoint || when.elapsed() < self.population_ttl)
            .map(|(_, _, p)| Arc::clone(p))
    }

    /// The RFM population (every customer with an order), cached. When it is due for
    /// a refresh, one caller recomputes it and the others answer from the cached one
    /// (at most `population_ttl` behind) rather than all scanning the model together.
    pub fn population(&self) -> Result<Arc<Population>, QueryError> {
        let checkpoint = self.model.checkpoint();
        let cached = |checkpoint: u64| -> (Option<Arc<Population>>, bool) {
            let guard = self
                .population
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match guard.as_ref() {
                Some((at, when, p)) => (
                    Some(Arc::clone(p)),
                    *at == checkpoint || when.elapsed() < self.population_ttl,
                ),
                None => (None, false),
            }
        };
        let (stale, fresh) = cached(checkpoint);
        if fresh && let Some(p) = stale {
            return Ok(p);
        }
        let _recomputing = match (stale, self.recomputing.try_lock()) {
            (_, Ok(guard)) => guard,
            (_, Err(std::sync::TryLockError::Poisoned(e))) => e.into_inner(),
            (Some(p), Err(std::sync::TryLockError::WouldBlock)) => return Ok(p),
            (None, Err(std::sync::TryLockError::WouldBlock)) => {
                let guard = self
                    .recomputing
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                // The caller that held it has most likely just computed it.
                if let (Some(p), _) = cached(checkpoint) {
                    return Ok(p);
                }
                guard
            }
        };
        let mut p = Population::default();
        for entry in self.model.scan(&[keys::FACTS], None, false) {
            let (k, v) = entry?;
            p.push(&decode::<CustomerFacts>(&k, &v)?);
        }
        let p = Arc::new(p.finish());
        if let Ok(mut guard) = self.population.lock() {
            *guard = Some((checkpoint, Instant::now(), Arc::clone(&p)));
        }
        Ok(p)
    }

    /// Lifecycle, RFM scores, value class and segment of a customer at `as_of`.
    pub fn classify(
        &self,
        record: &CustomerRecord,
        facts: &CustomerFacts,
        population: &Population,
        as_of: i64,
    ) -> Classes {
        let lifecycle = view::lifecycle(facts, record.commerce.first_order_at, as_of, &self.policy);
        let rfm = population.score(facts);
        Classes {
            lifecycle,
            rfm,
            value_class: view::value_class(rfm, lifecycle),
            segment: view::segment(rfm),
        }
    }

    pub fn timeline(
        &self,
        id: Id,
        filter: &TimelineFilter,
        cursor: Option<&[u8]>,
        limit: usize,
    ) -> Result<TimelinePage, QueryError> {
        let limit = limit.max(1);
        if let Some(r) = self.customer(id)?
            && r.timeline_len > self.max_timeline
        {
            return Err(QueryError::TimelineTooLong {
                entries: r.timeline_len,
                limit: self.max_timeline,
            });
        }
        let prefix = id_key(keys::TIMELINE, id);
        let mut entries = Vec::new();
        for chunk in self.model.scan(&prefix, None, false) {
            let (k, v) = chunk?;
            record::decode_chunk(&v, &mut entries).map_err(|e| {
                QueryError::Corrupt(String::from_utf8_lossy(&k).into_owned(), e.to_string())
            })?;
        }
        record::sort_timeline(&mut entries);
        if filter.newest_first {
            entries.reverse();
        }
        let position = |e: &TimelineEntry| keys::timeline_key(id, e.occurred_at, e.seq, e.index);
        let mut page = TimelinePage::default();
        for e in entries {
            if let Some(c) = cursor {
                let p = position(&e);
                if (!filter.newest_first && p.as_slice() <= c)
                    || (filter.newest_first && p.as_slice() >= c)
                {
                    continue;
                }
            }
            if filter.newest_first && filter.from.is_some_and(|f| e.occurred_at < f)
                || !filter.newest_first && filter.to.is_some_and(|t| e.occurred_at > t)
            {
                break;
            }
            let in_range = filter.from.is_none_or(|f| e.occurred_at >= f)
                && filter.to.is_none_or(|t| e.occurred_at <= t);
            let type_ok = filter.event_types.is_empty()
                || filter
                    .event_types
                    .iter()
                    .any(|t| e.event_type.starts_with(t.as_str()));
            if in_range && type_ok {
                if page.entries.len() == limit {
                    page.next_cursor = page.entries.last().map(position);
                    break;
                }
                page.entries.push(e);
            }
        }
        Ok(page)
    }

    pub fn list(
        &self,
        filter: &ListFilter,
        sort: CustomerSort,
        cursor: Option<&[u8]>,
        limit: usize,
        as_of: i64,
    ) -> Result<ListPage, QueryError> {
        let prefix = match (sort, &filter.tag, &filter.owner) {
            (CustomerSort::Recency, _, _) => keys::BY_RECENCY.to_vec(),
            (CustomerSort::Value, _, _) => keys::BY_VALUE.to_vec(),
            (CustomerSort::Id, Some(tag), _) => keys::text_prefix(keys::BY_TAG, tag),
            (CustomerSort::Id, None, Some(owner)) => keys::text_prefix(keys::BY_OWNER, owner),
            (CustomerSort::Id, None, None) => vec![keys::CUSTOMER],
        };
        let needs_classes =
            filter.lifecycle.is_some() || filter.value_class.is_some() || filter.segment.is_some();
        let population = self.population()?;
        let limit = limit.max(1);
        let mut page = ListPage::default();
        let mut last: Option<Vec<u8>> = None;
        for entry in self.model.scan(&prefix, cursor, false) {
            let (k, v) = entry?;
            if page.customers.len() == limit || page.scanned == self.max_scan {
                page.next_cursor = last;
                break;
            }
            page.scanned += 1;
            last = Some(k.clone());
            let id: Id = match k.get(k.len() - 16..).and_then(|s| s.try_into().ok()) {
                Some(id) => id,
                None => continue,
            };
            let record: CustomerRecord = if prefix == [keys::CUSTOMER] {
                decode(&k, &v)?
            } else {
                match self.customer(id)? {
                    Some(r) => r,
                    None => continue,
                }
            };
            if filter
                .tag
                .as_ref()
                .is_some_and(|t| !record.tags.contains(t))
                || filter
                    .owner
                    .as_ref()
                    .is_some_and(|o| record.owner.as_ref() != Some(o))
            {
                continue;
            }
            let facts = self.facts(id)?;
            let classes = self.classify(&record, &facts, &population, as_of);
            if needs_classes
                && (filter.lifecycle.is_some_and(|l| l != classes.lifecycle)
                    || filter.value_class.is_some_and(|v| v != classes.value_class)
                    || filter
                        .segment
                        .as_deref()
                        .is_some_and(|s| s != classes.segment))
            {
                continue;
            }
            page.customers.push(Listed { record, classes });
        }
        Ok(page)
    }
}

fn decode<T: serde::de::DeserializeOwned>(key: &[u8], value: &[u8]) -> Result<T, QueryError> {
    postcard::from_bytes(value)
        .map_err(|e| QueryError::Corrupt(String::from_utf8_lossy(key).into_owned(), e.to_string()))
}
