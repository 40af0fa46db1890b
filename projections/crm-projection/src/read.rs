//! The query side of a projection: [`ReadModel`] reads whichever build is served.
//!
//! A hosted projection may have two builds (the live one and a blue/green rebuild beside
//! it); queries only ever see the served one. The switch replaces it whole, and the served
//! position never goes back (a build is served only once it reached the position of the
//! one it replaces).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use crate::store::{DEAD, data_key};
use crate::{DeadLetter, ProjectionError};

/// One build as queries see it.
#[derive(Debug)]
pub(crate) struct Build {
    pub name: String,
    pub tree: sled::Tree,
    pub checkpoint: watch::Receiver<u64>,
}

/// Which build of a projection queries read.
#[derive(Debug)]
pub(crate) struct Served {
    current: RwLock<Option<Arc<Build>>>,
    /// Bumped at every switch, so waiters move on to the new build.
    switched: watch::Sender<u64>,
}

impl Served {
    pub fn new(current: Option<Arc<Build>>) -> Self {
        Self {
            current: RwLock::new(current),
            switched: watch::Sender::new(0),
        }
    }

    pub fn current(&self) -> Option<Arc<Build>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn switch(&self, build: Option<Arc<Build>>) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = build;
        self.switched.send_modify(|n| *n += 1);
    }
}

/// A read-only handle on a projection's served build, for queries.
#[derive(Clone, Debug)]
pub struct ReadModel {
    projection: &'static str,
    served: Arc<Served>,
}

impl ReadModel {
    pub(crate) fn new(projection: &'static str, served: Arc<Served>) -> Self {
        Self { projection, served }
    }

    pub(crate) fn fixed(projection: &'static str, build: Arc<Build>) -> Self {
        Self::new(projection, Arc::new(Served::new(Some(build))))
    }

    /// The projection's name.
    pub fn projection(&self) -> &'static str {
        self.projection
    }

    /// The served build's tree (`None` while no build can be served).
    pub fn serving(&self) -> Option<String> {
        self.served.current().map(|b| b.name.clone())
    }

    fn build(&self) -> Result<Arc<Build>, ProjectionError> {
        self.served
            .current()
            .ok_or_else(|| ProjectionError::NotServing(self.projection.to_owned()))
    }

    /// The last stream sequence applied in the served build (0 while none is served).
    pub fn checkpoint(&self) -> u64 {
        self.served.current().map_or(0, |b| *b.checkpoint.borrow())
    }

    /// Waits until a build is served whose checkpoint reaches `seq`; `false` if `timeout`
    /// passed first.
    pub async fn wait_for(&self, seq: u64, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, async {
            let mut switched = self.served.switched.subscribe();
            loop {
                switched.mark_unchanged();
                if let Some(build) = self.served.current() {
                    let mut checkpoint = build.checkpoint.clone();
                    tokio::select! {
                        r = checkpoint.wait_for(|c| *c >= seq) => if r.is_ok() { return },
                        _ = switched.changed() => continue,
                    }
                }
                // No build, or its writer is gone: wait for the next switch.
                if switched.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        })
        .await
        .is_ok()
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<sled::IVec>, ProjectionError> {
        Ok(self.build()?.tree.get(data_key(key))?)
    }

    /// The fold's entries whose key starts with `prefix`, in key order (or reversed),
    /// strictly after (before, when reversed) the fold key `cursor`; keys are returned
    /// without the runtime's prefix.
    pub fn scan(&self, prefix: &[u8], cursor: Option<&[u8]>, reverse: bool) -> Entries {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        // The iterator keeps the build alive: a replaced build's tree is dropped only when
        // no query holds it (see `host`).
        let build = match self.build() {
            Ok(b) => b,
            Err(e) => return Box::new(std::iter::once(Err(e))),
        };
        let tree = build.tree.clone();
        let full_prefix = data_key(prefix);
        let iter: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>> + Send> =
            match (cursor, reverse) {
                (None, false) => Box::new(tree.scan_prefix(&full_prefix)),
                (None, true) => Box::new(tree.scan_prefix(&full_prefix).rev()),
                (Some(c), false) => {
                    Box::new(tree.range::<Vec<u8>, _>((Excluded(data_key(c)), Unbounded)))
                }
                (Some(c), true) => Box::new(
                    tree.range::<Vec<u8>, _>((
                        Included(full_prefix.clone()),
                        Excluded(data_key(c)),
                    ))
                    .rev(),
                ),
            };
        Box::new(
            iter.take_while(move |r| {
                r.as_ref().is_err() || r.as_ref().is_ok_and(|(k, _)| k.starts_with(&full_prefix))
            })
            .map(move |r| {
                let _held = &build;
                let (k, v) = r?;
                Ok((k[1..].to_vec(), v))
            }),
        )
    }

    /// Dead letters of the served build in stream order.
    pub fn dead_letters(
        &self,
    ) -> impl Iterator<Item = Result<DeadLetter, ProjectionError>> + use<> {
        let (build, err) = match self.build() {
            Ok(b) => (Some(b), None),
            Err(e) => (None, Some(Err(e))),
        };
        err.into_iter().chain(build.into_iter().flat_map(|b| {
            let tree = b.tree.clone();
            tree.scan_prefix([DEAD]).map(move |r| {
                let _held = &b;
                let (_, v) = r?;
                postcard::from_bytes(&v).map_err(|e| ProjectionError::Meta(e.to_string()))
            })
        }))
    }

    /// Every stored key and value of the served build, metadata included, in key order:
    /// two builds of the same stream give identical contents.
    pub fn contents(
        &self,
    ) -> impl Iterator<Item = Result<(sled::IVec, sled::IVec), ProjectionError>> + use<> {
        let (build, err) = match self.build() {
            Ok(b) => (Some(b), None),
            Err(e) => (None, Some(Err(e))),
        };
        err.into_iter().chain(build.into_iter().flat_map(|b| {
            let tree = b.tree.clone();
            tree.iter().map(move |r| {
                let _held = &b;
                r.map_err(ProjectionError::from)
            })
        }))
    }
}

/// Entries of a [`ReadModel::scan`]: fold key and value.
pub type Entries = Box<dyn Iterator<Item = Result<(Vec<u8>, sled::IVec), ProjectionError>> + Send>;
