//! Hosting projections: builds, blue/green rebuilds and the read side.
//!
//! A hosted projection has a **live** build (the one queries read) and at most one
//! **building** build beside it, each a sled tree of its own (`<name>.<n>`) fed by its own
//! runner. A new build starts when the projection's code version or configuration
//! fingerprint differs from the live build's, when the stream is not the one the live
//! build was made from, or on request ([`HostedProjection::rebuild`]). Queries keep
//! reading the live build (a live build of another fingerprint stays served, frozen at its
//! checkpoint; one of another version cannot be read and is not served) until the new
//! build has caught up with the stream and reached the live build's position; then the
//! switch is atomic and the old tree is dropped once no query holds it. Which build is
//! live and which is building is stored (tree `crm-projection.builds`), so a build
//! interrupted by a crash resumes where it stopped.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use crm_events::SubjectScheme;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::read::{Build, ReadModel, Served};
use crate::store::current_info;
use crate::{Projection, ProjectionError, ProjectionStats, ProjectionStore, RunnerConfig};

/// The tree that records each projection's builds.
const REGISTRY: &str = "crm-projection.builds";
/// How often the supervisor looks at its builds.
const TICK: Duration = Duration::from_millis(200);
/// How often a build in progress is reported in the log.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// The builds of one projection, as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Registry {
    live: Option<String>,
    building: Option<String>,
    /// Number of the next build's tree.
    next: u64,
}

/// The tree of a projection's live build in `db`, as recorded (for tools and tests that
/// read a read-model directory offline).
pub fn live_tree(db: &sled::Db, projection: &str) -> Result<Option<String>, ProjectionError> {
    let registry: Option<Registry> = db
        .open_tree(REGISTRY)?
        .get(projection)?
        .map(|b| postcard::from_bytes(&b).map_err(|e| ProjectionError::Meta(e.to_string())))
        .transpose()?;
    Ok(registry.and_then(|r| r.live))
}

/// Where a build stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildState {
    /// Served to queries and following the stream.
    Live,
    /// Served to queries but not advancing: built with another configuration, kept until
    /// the build beside it has caught up.
    Frozen,
    /// Being built beside the live one; not served.
    Building,
    /// Built and caught up with the stream; served at the next switch.
    CaughtUp,
}

impl fmt::Display for BuildState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Live => "live",
            Self::Frozen => "frozen",
            Self::Building => "building",
            Self::CaughtUp => "caught up",
        })
    }
}

/// One build of a projection, for the admin API, metrics and logs.
#[derive(Clone, Debug)]
pub struct BuildStatus {
    pub tree: String,
    pub state: BuildState,
    pub version: u32,
    pub fingerprint: String,
    pub checkpoint: u64,
    /// The stream's last sequence as last seen.
    pub head: u64,
    pub events_applied: u64,
    pub dead_lettered: u64,
    /// Messages per second since this process started the build's runner.
    pub rate: f64,
    /// Seconds to reach the head at `rate` (`None` while the rate is unknown).
    pub eta_seconds: Option<f64>,
    pub stats: Arc<ProjectionStats>,
}

/// A projection with its builds.
#[derive(Clone, Debug)]
pub struct ProjectionStatus {
    pub name: &'static str,
    pub version: u32,
    pub fingerprint: String,
    /// Live (or frozen) build first, then the one building.
    pub builds: Vec<BuildStatus>,
}

/// What the read side needs of a hosted projection, whatever its fold.
pub trait HostedProjection: Send + Sync + fmt::Debug {
    fn name(&self) -> &'static str;
    fn status(&self) -> ProjectionStatus;
    /// Starts a full rebuild beside the live build (same version and configuration, e.g.
    /// after a fold fix); refused while a build is in progress.
    fn rebuild(&self) -> Result<BuildStatus, ProjectionError>;
    /// Runs the builds' runners and switches builds until `shutdown` turns true.
    fn supervise(
        self: Arc<Self>,
        js: jetstream::Context,
        shutdown: watch::Receiver<bool>,
    ) -> JoinHandle<Result<(), ProjectionError>>;
}

/// One build and its runner.
struct Slot<P> {
    store: Arc<ProjectionStore<P>>,
    /// The handle queries get when this build is served.
    build: Arc<Build>,
    runner: Option<Runner>,
    /// When this process started the runner, and the checkpoint then (for the rate).
    started: Option<(Instant, u64)>,
}

struct Runner {
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), ProjectionError>>,
}

struct Builds<P> {
    registry: Registry,
    live: Option<Slot<P>>,
    building: Option<Slot<P>>,
    /// Replaced builds waiting for their runner to stop and their readers to let go.
    retired: Vec<Slot<P>>,
    last_progress: Instant,
}

/// A projection hosted on a read side.
pub struct Hosted<P: Projection> {
    db: sled::Db,
    projection: Arc<P>,
    scheme: SubjectScheme,
    runner: RunnerConfig,
    served: Arc<Served>,
    builds: Mutex<Builds<P>>,
    wake: Notify,
}

impl<P: Projection> fmt::Debug for Hosted<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hosted")
            .field("name", &P::NAME)
            .finish_non_exhaustive()
    }
}

impl<P: Projection> Hosted<P> {
    /// Opens the projection's builds in `db` (adopting a tree `P::NAME` written before
    /// builds existed) and decides which is served and what must be built.
    pub fn open(
        db: &sled::Db,
        projection: P,
        scheme: SubjectScheme,
        runner: RunnerConfig,
    ) -> Result<Arc<Self>, ProjectionError> {
        let projection = Arc::new(projection);
        let registry_tree = db.open_tree(REGISTRY)?;
        let mut registry: Registry = match registry_tree.get(P::NAME)? {
            Some(b) => {
                postcard::from_bytes(&b).map_err(|e| ProjectionError::Meta(e.to_string()))?
            }
            None if db
                .tree_names()
                .iter()
                .any(|n| n.as_ref() == P::NAME.as_bytes()) =>
            {
                Registry {
                    live: Some(P::NAME.to_owned()),
                    ..Registry::default()
                }
            }
            None => Registry::default(),
        };
        let current = current_info(&*projection);
        let open = |tree: &str| {
            ProjectionStore::open_tree(db, tree, Arc::clone(&projection), scheme.clone(), false)
        };
        let mut live = match &registry.live {
            Some(tree) => Some(open(tree)?),
            None => None,
        };
        // A live build of another version cannot be read by this code: not served.
        if let Some(store) = &live
            && store.info()?.is_none_or(|i| i.version != P::VERSION)
        {
            tracing::warn!(
                projection = P::NAME,
                tree = store.tree_name(),
                "the live build is of another version: not served until the new build is ready"
            );
            let tree = store.tree_name().to_owned();
            live = None;
            registry.live = None;
            db.drop_tree(tree)?;
        }
        let mut building = match &registry.building {
            Some(tree) => Some(open(tree)?),
            None => None,
        };
        if let Some(store) = &building
            && store.info()?.as_ref() != Some(&current)
        {
            let tree = store.tree_name().to_owned();
            building = None;
            registry.building = None;
            db.drop_tree(tree)?;
        }
        let live_current = match &live {
            Some(store) => store.is_current()?,
            None => false,
        };
        if !live_current && building.is_none() {
            let tree = format!("{}.{}", P::NAME, registry.next);
            registry.next += 1;
            registry.building = Some(tree.clone());
            building = Some(open(&tree)?);
        }
        // Trees of this projection that are neither live nor building (a process stopped
        // between a switch and dropping the replaced build) are dropped now.
        for name in db.tree_names() {
            let name = String::from_utf8_lossy(&name).into_owned();
            let ours = name == P::NAME
                || name
                    .strip_prefix(P::NAME)
                    .and_then(|rest| rest.strip_prefix('.'))
                    .is_some_and(|n| n.parse::<u64>().is_ok());
            let kept = [&registry.live, &registry.building]
                .into_iter()
                .any(|t| t.as_deref() == Some(name.as_str()));
            if ours && !kept {
                tracing::info!(
                    projection = P::NAME,
                    tree = name,
                    "dropping a replaced build left behind"
                );
                db.drop_tree(&name)?;
            }
        }
        let slot = |store: ProjectionStore<P>| {
            let store = Arc::new(store);
            Slot {
                build: store.build(),
                store,
                runner: None,
                started: None,
            }
        };
        let live = live.map(slot);
        let building = building.map(slot);
        let served = Arc::new(Served::new(live.as_ref().map(|s| Arc::clone(&s.build))));
        let hosted = Arc::new(Self {
            db: db.clone(),
            projection,
            scheme,
            runner,
            served,
            builds: Mutex::new(Builds {
                registry,
                live,
                building,
                retired: Vec::new(),
                last_progress: Instant::now(),
            }),
            wake: Notify::new(),
        });
        hosted.save_registry()?;
        let status = hosted.status();
        for b in &status.builds {
            tracing::info!(projection = P::NAME, tree = %b.tree, state = %b.state, checkpoint = b.checkpoint, "read model opened");
        }
        Ok(hosted)
    }

    /// The query handle: always reads the served build.
    pub fn reader(&self) -> ReadModel {
        ReadModel::new(P::NAME, Arc::clone(&self.served))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Builds<P>> {
        self.builds.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save_registry(&self) -> Result<(), ProjectionError> {
        let registry = self.lock().registry.clone();
        let tree = self.db.open_tree(REGISTRY)?;
        tree.insert(P::NAME, postcard::to_stdvec(&registry).unwrap_or_default())?;
        tree.flush()?;
        Ok(())
    }

    fn new_build(&self, builds: &mut Builds<P>) -> Result<(), ProjectionError> {
        let tree = format!("{}.{}", P::NAME, builds.registry.next);
        builds.registry.next += 1;
        let store = Arc::new(ProjectionStore::open_tree(
            &self.db,
            &tree,
            Arc::clone(&self.projection),
            self.scheme.clone(),
            true,
        )?);
        builds.registry.building = Some(tree.clone());
        builds.building = Some(Slot {
            build: store.build(),
            store,
            runner: None,
            started: None,
        });
        tracing::info!(
            projection = P::NAME,
            tree,
            "build started beside the live one"
        );
        Ok(())
    }

    /// Starts the runner of every build that should follow the stream and has none.
    fn start_runners(&self, js: &jetstream::Context) -> Result<(), ProjectionError> {
        let mut builds = self.lock();
        let Builds { live, building, .. } = &mut *builds;
        for slot in [live.as_mut(), building.as_mut()].into_iter().flatten() {
            if slot.runner.is_some() || !slot.store.is_current()? {
                continue;
            }
            let (stop, stopped) = watch::channel(false);
            let task = tokio::spawn(crate::run(
                Arc::clone(&slot.store),
                js.clone(),
                self.runner.clone(),
                stopped,
            ));
            slot.started = Some((Instant::now(), slot.store.checkpoint()));
            slot.runner = Some(Runner { stop, task });
        }
        Ok(())
    }

    /// Collects runners that ended. A build whose stream changed is replaced; a storage
    /// failure ends the supervisor.
    async fn reap(&self) -> Result<(), ProjectionError> {
        let finished: Vec<(bool, JoinHandle<_>)> = {
            let mut builds = self.lock();
            let Builds { live, building, .. } = &mut *builds;
            let mut out = Vec::new();
            for (is_live, slot) in [(true, live.as_mut()), (false, building.as_mut())] {
                let Some(slot) = slot else { continue };
                if slot.runner.as_ref().is_some_and(|r| r.task.is_finished())
                    && let Some(r) = slot.runner.take()
                {
                    out.push((is_live, r.task));
                }
            }
            out
        };
        for (is_live, task) in finished {
            match task
                .await
                .map_err(|e| ProjectionError::Task(e.to_string()))?
            {
                Ok(()) => {}
                Err(ProjectionError::StreamChanged { build, reason }) => {
                    tracing::error!(
                        projection = P::NAME,
                        tree = build,
                        reason,
                        "the build does not belong to this stream: replacing it"
                    );
                    self.discard(is_live)?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// A build that passed a position before it was quarantined holds what that message
    /// did: a building one is discarded and started again; for the live one a rebuild
    /// starts beside it (it is served until the rebuild has caught up).
    fn replace_quarantined(&self) -> Result<(), ProjectionError> {
        let (building, live) = {
            let builds = self.lock();
            let marked = |s: &Option<Slot<P>>| {
                s.as_ref()
                    .and_then(|s| s.store.quarantine_rebuild())
                    .is_some()
            };
            (
                marked(&builds.building),
                marked(&builds.live) && builds.building.is_none(),
            )
        };
        if building {
            tracing::warn!(
                projection = P::NAME,
                "the build passed a position quarantined since: starting it again"
            );
            self.discard(false)?;
        } else if live {
            tracing::warn!(
                projection = P::NAME,
                "the live build passed a position quarantined since: rebuilding beside it"
            );
            self.new_build(&mut self.lock())?;
            self.save_registry()?;
        }
        Ok(())
    }

    /// Stops serving (if live) and drops a build, and starts a new one.
    fn discard(&self, live: bool) -> Result<(), ProjectionError> {
        {
            let mut builds = self.lock();
            let slot = if live {
                self.served.switch(None);
                builds.registry.live = None;
                builds.live.take()
            } else {
                builds.registry.building = None;
                builds.building.take()
            };
            if let Some(slot) = slot {
                slot.store.retire_if(|_| true);
                builds.retired.push(slot);
            }
            if builds.building.is_none() {
                self.new_build(&mut builds)?;
            }
        }
        self.save_registry()
    }

    /// Serves the building build once it caught up with the stream and reached the live
    /// build's position (checked with the live build's batches held off).
    async fn switch_if_ready(&self) -> Result<(), ProjectionError> {
        let (candidate, live) = {
            let builds = self.lock();
            let Some(b) = &builds.building else {
                return Ok(());
            };
            if !b.store.stats().caught_up() {
                return Ok(());
            }
            (
                Arc::clone(&b.store),
                builds.live.as_ref().map(|l| Arc::clone(&l.store)),
            )
        };
        let ready = {
            let candidate = Arc::clone(&candidate);
            tokio::task::spawn_blocking(move || match live {
                Some(live) => live.retire_if(|at| candidate.checkpoint() >= at),
                None => true,
            })
            .await
            .map_err(|e| ProjectionError::Task(e.to_string()))?
        };
        if !ready {
            return Ok(());
        }
        {
            let mut builds = self.lock();
            let Some(new) = builds.building.take() else {
                return Ok(());
            };
            self.served.switch(Some(Arc::clone(&new.build)));
            tracing::info!(
                projection = P::NAME,
                tree = new.store.tree_name(),
                checkpoint = new.store.checkpoint(),
                "build caught up: now serving it"
            );
            builds.registry.live = Some(new.store.tree_name().to_owned());
            builds.registry.building = None;
            if let Some(old) = builds.live.replace(new) {
                builds.retired.push(old);
            }
        }
        self.save_registry()
    }

    /// Drops the trees of replaced builds whose runner stopped and that no query holds.
    async fn drop_retired(&self) -> Result<(), ProjectionError> {
        let done: Vec<Slot<P>> = {
            let mut builds = self.lock();
            let (done, keep) = std::mem::take(&mut builds.retired)
                .into_iter()
                .partition(|s| {
                    s.runner.as_ref().is_none_or(|r| r.task.is_finished())
                        && Arc::strong_count(&s.build) == 1
                });
            builds.retired = keep;
            for s in &builds.retired {
                if let Some(r) = &s.runner {
                    let _ = r.stop.send(true);
                }
            }
            done
        };
        for mut slot in done {
            if let Some(r) = slot.runner.take() {
                match r.task.await {
                    Ok(Err(e @ ProjectionError::Storage(_))) => return Err(e),
                    Ok(_) => {}
                    Err(e) => return Err(ProjectionError::Task(e.to_string())),
                }
            }
            let tree = slot.store.tree_name().to_owned();
            drop(slot);
            self.db.drop_tree(&tree)?;
            tracing::info!(projection = P::NAME, tree, "replaced build dropped");
        }
        Ok(())
    }

    fn log_progress(&self) {
        let mut builds = self.lock();
        if builds.last_progress.elapsed() < PROGRESS_EVERY {
            return;
        }
        builds.last_progress = Instant::now();
        if let Some(b) = &builds.building {
            let s = status_of(b, BuildState::Building);
            tracing::info!(
                projection = P::NAME,
                tree = %s.tree,
                checkpoint = s.checkpoint,
                head = s.head,
                rate = format!("{:.0}/s", s.rate),
                eta_seconds = s.eta_seconds.map(|e| e.round()),
                "building"
            );
        }
    }

    async fn stop_all(&self) -> Result<(), ProjectionError> {
        let runners: Vec<Runner> = {
            let mut builds = self.lock();
            let Builds {
                live,
                building,
                retired,
                ..
            } = &mut *builds;
            live.iter_mut()
                .chain(building.iter_mut())
                .chain(retired.iter_mut())
                .filter_map(|s| s.runner.take())
                .collect()
        };
        for r in &runners {
            let _ = r.stop.send(true);
        }
        let mut result = Ok(());
        for r in runners {
            match r.task.await {
                Ok(
                    Ok(())
                    | Err(ProjectionError::Retired(_) | ProjectionError::StreamChanged { .. }),
                ) => {}
                Ok(Err(e)) => result = Err(e),
                Err(e) => result = Err(ProjectionError::Task(e.to_string())),
            }
        }
        result
    }
}

fn status_of<P: Projection>(slot: &Slot<P>, state: BuildState) -> BuildStatus {
    let stats = Arc::clone(slot.store.stats());
    let checkpoint = slot.store.checkpoint();
    let head = stats.stream_head.load(Ordering::Relaxed).max(checkpoint);
    let rate = slot.started.map_or(0.0, |(at, from)| {
        let secs = at.elapsed().as_secs_f64();
        if secs > 0.0 {
            checkpoint.saturating_sub(from) as f64 / secs
        } else {
            0.0
        }
    });
    let info = slot.store.info().ok().flatten();
    BuildStatus {
        tree: slot.store.tree_name().to_owned(),
        state,
        version: info.as_ref().map_or(0, |i| i.version),
        fingerprint: info.map(|i| i.fingerprint).unwrap_or_default(),
        checkpoint,
        head,
        events_applied: stats.events_applied.load(Ordering::Relaxed),
        dead_lettered: stats.dead_lettered.load(Ordering::Relaxed),
        rate,
        eta_seconds: (rate > 0.0).then(|| (head - checkpoint) as f64 / rate),
        stats,
    }
}

impl<P: Projection> HostedProjection for Hosted<P> {
    fn name(&self) -> &'static str {
        P::NAME
    }

    fn status(&self) -> ProjectionStatus {
        let builds = self.lock();
        let mut out = Vec::new();
        if let Some(l) = &builds.live {
            let current = l.store.is_current().unwrap_or(false);
            out.push(status_of(
                l,
                if current {
                    BuildState::Live
                } else {
                    BuildState::Frozen
                },
            ));
        }
        if let Some(b) = &builds.building {
            let state = if b.store.stats().caught_up() {
                BuildState::CaughtUp
            } else {
                BuildState::Building
            };
            out.push(status_of(b, state));
        }
        ProjectionStatus {
            name: P::NAME,
            version: P::VERSION,
            fingerprint: self.projection.fingerprint(),
            builds: out,
        }
    }

    fn rebuild(&self) -> Result<BuildStatus, ProjectionError> {
        let status = {
            let mut builds = self.lock();
            if let Some(b) = &builds.building {
                return Err(ProjectionError::AlreadyBuilding {
                    projection: P::NAME.to_owned(),
                    build: b.store.tree_name().to_owned(),
                });
            }
            self.new_build(&mut builds)?;
            status_of(
                builds.building.as_ref().expect("just started"),
                BuildState::Building,
            )
        };
        self.save_registry()?;
        self.wake.notify_one();
        Ok(status)
    }

    fn supervise(
        self: Arc<Self>,
        js: jetstream::Context,
        mut shutdown: watch::Receiver<bool>,
    ) -> JoinHandle<Result<(), ProjectionError>> {
        tokio::spawn(async move {
            let result = async {
                loop {
                    if *shutdown.borrow() {
                        return Ok(());
                    }
                    self.start_runners(&js)?;
                    tokio::select! {
                        () = tokio::time::sleep(TICK) => {}
                        () = self.wake.notified() => {}
                        _ = shutdown.changed() => {}
                    }
                    self.reap().await?;
                    self.replace_quarantined()?;
                    self.switch_if_ready().await?;
                    self.drop_retired().await?;
                    self.log_progress();
                }
            }
            .await;
            let stopped = self.stop_all().await;
            self.db.flush()?;
            result.and(stopped)
        })
    }
}

/// Every projection of one process's read side, over one sled database.
#[derive(Debug)]
pub struct ReadSide {
    db: sled::Db,
    scheme: SubjectScheme,
    runner: RunnerConfig,
    projections: Vec<Arc<dyn HostedProjection>>,
}

impl ReadSide {
    #[must_use]
    pub fn new(db: sled::Db, scheme: SubjectScheme, runner: RunnerConfig) -> Self {
        Self {
            db,
            scheme,
            runner,
            projections: Vec::new(),
        }
    }

    /// Hosts a projection; the returned handle gives its query handle.
    pub fn add<P: Projection>(&mut self, projection: P) -> Result<Arc<Hosted<P>>, ProjectionError> {
        let hosted = Hosted::open(
            &self.db,
            projection,
            self.scheme.clone(),
            self.runner.clone(),
        )?;
        self.projections
            .push(Arc::clone(&hosted) as Arc<dyn HostedProjection>);
        Ok(hosted)
    }

    pub fn projections(&self) -> &[Arc<dyn HostedProjection>] {
        &self.projections
    }

    /// The hosted projection called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn HostedProjection>> {
        self.projections.iter().find(|p| p.name() == name)
    }

    /// Starts every projection's supervisor; they stop when `shutdown` turns true.
    pub fn start(
        &self,
        js: &jetstream::Context,
        shutdown: &watch::Receiver<bool>,
    ) -> Vec<(&'static str, JoinHandle<Result<(), ProjectionError>>)> {
        self.projections
            .iter()
            .map(|p| {
                (
                    p.name(),
                    Arc::clone(p).supervise(js.clone(), shutdown.clone()),
                )
            })
            .collect()
    }

    /// Flushes every tree to disk.
    pub fn flush(&self) -> Result<(), ProjectionError> {
        self.db.flush()?;
        Ok(())
    }
}
