//! One memory budget for the write-back caches of several builds.
//!
//! A service hosts a build per projection, and a second one beside a projection that is
//! rebuilt blue/green: with a budget per build, its memory grew with every build it ran.
//! Builds whose [`crate::WriteBack`] is a clone of one value share its [`CacheBudget`]:
//! each counts what its cache holds after every write-back ([`Charge`]), and a build that
//! finds the sum over budget while it holds more than an equal share evicts from its own
//! cache. A busy build may grow into what idle ones leave unused, and is never squeezed
//! below three quarters of an equal share (so a rebuild beside full live caches still
//! caches its working set). An idle build is trimmed at its next write-back: until then
//! the sum may stay over budget by what it holds beyond its share.
//!
//! Eviction only drops clean copies of what sled holds: the budget changes speed and
//! memory, never what a build writes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes the write-back caches of several builds may hold together.
#[derive(Debug)]
pub struct CacheBudget {
    bytes: usize,
    /// What the caches charged to it hold, as last counted.
    used: AtomicUsize,
    /// Caches charged to it.
    caches: AtomicUsize,
}

impl CacheBudget {
    #[must_use]
    pub fn new(bytes: usize) -> Arc<Self> {
        Arc::new(Self {
            bytes,
            used: AtomicUsize::new(0),
            caches: AtomicUsize::new(0),
        })
    }

    /// The budget, bytes.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// What the caches charged to it hold together, as last counted.
    #[must_use]
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// Budgets compare by size (a configuration's equality).
impl PartialEq for CacheBudget {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for CacheBudget {}

/// One cache's part of a [`CacheBudget`]; given back when dropped.
#[derive(Debug)]
pub(crate) struct Charge {
    budget: Arc<CacheBudget>,
    counted: usize,
}

impl Charge {
    pub(crate) fn new(budget: Arc<CacheBudget>) -> Self {
        budget.caches.fetch_add(1, Ordering::Relaxed);
        Self { budget, counted: 0 }
    }

    /// Counts the cache at `bytes` now.
    pub(crate) fn set(&mut self, bytes: usize) {
        if bytes >= self.counted {
            let more = bytes - self.counted;
            self.budget.used.fetch_add(more, Ordering::Relaxed);
        } else {
            let less = self.counted - bytes;
            self.budget.used.fetch_sub(less, Ordering::Relaxed);
        }
        self.counted = bytes;
    }

    /// What this cache (holding `bytes`, counted) should be evicted down to, if the
    /// caches together are over budget and this one holds more than an equal share:
    /// enough to bring them to three quarters of the budget, but not below three quarters
    /// of a share (so that it grows by a quarter of a share, at least, before the next
    /// eviction: each one is a pass over the cache).
    pub(crate) fn trim_target(&self, bytes: usize) -> Option<usize> {
        let b = &self.budget;
        let used = b.used();
        let share = b.bytes / b.caches.load(Ordering::Relaxed).max(1);
        if used <= b.bytes || bytes <= share {
            return None;
        }
        let excess = used - (b.bytes - b.bytes / 4);
        Some(bytes.saturating_sub(excess).max(share - share / 4))
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.set(0);
        self.budget.caches.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_cache_over_budget_is_trimmed_to_three_quarters() {
        let budget = CacheBudget::new(1000);
        let mut c = Charge::new(Arc::clone(&budget));
        c.set(900);
        assert_eq!(c.trim_target(900), None);
        c.set(1200);
        assert_eq!(c.trim_target(1200), Some(750));
        c.set(750);
        assert_eq!(budget.used(), 750);
    }

    #[test]
    fn a_busy_cache_takes_what_idle_ones_leave_but_keeps_its_share() {
        let budget = CacheBudget::new(1000);
        let mut small = Charge::new(Arc::clone(&budget));
        let mut busy = Charge::new(Arc::clone(&budget));
        small.set(100);
        busy.set(850);
        // Under budget together: nobody is trimmed, the busy one uses the room.
        assert_eq!(busy.trim_target(850), None);
        busy.set(1000);
        // 1,100 of 1,000: the busy one gives back enough to reach 750 together.
        assert_eq!(busy.trim_target(1000), Some(650));
        // An idle cache that holds most of the budget cannot squeeze a new build below
        // three quarters of an equal share (500 each).
        small.set(950);
        busy.set(300);
        assert_eq!(busy.trim_target(300), None);
        busy.set(600);
        assert_eq!(busy.trim_target(600), Some(375));
        // The idle one, at its next write-back, gives back the rest.
        assert_eq!(small.trim_target(950), Some(375));
    }

    #[test]
    fn a_dropped_cache_gives_its_part_back() {
        let budget = CacheBudget::new(1000);
        let mut a = Charge::new(Arc::clone(&budget));
        a.set(400);
        {
            let mut b = Charge::new(Arc::clone(&budget));
            b.set(300);
            assert_eq!(budget.used(), 700);
        }
        assert_eq!(budget.used(), 400);
        a.set(0);
        assert_eq!(budget.used(), 0);
    }
}
