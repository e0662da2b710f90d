//! The local runtime: builds uploaded services with cargo and runs them as processes of this
//! machine (BEHAVIOR.md §5), behind the [`Runtime`] trait so that a Kubernetes runtime can
//! take its place.
//!
//! Everything lives under one root (`MICRO_HOME/server/runtime/`):
//!
//! ```text
//! uploads/ID.tar.gz            archives between Upload and Create/Update
//! sources/NS/NAME/             the service's source, replaced on each update
//! builds/NS/NAME/BUILD/BIN     the executable of each build, copied out of the target dir
//! logs/NS/NAME.log             its output (rotated at a size limit), NAME.build.log: cargo's
//! services.json                what runs, so a restarted server starts it again
//! ```
//!
//! Builds share one Cargo target directory and run one at a time. A roll-out (create or update)
//! is a task holding the deployment's lock: build, start a new `Generation` of processes,
//! and — when replacing one — wait until all of them have registered before stopping the old,
//! so the name never goes without a node.

mod cargo;
mod logs;
mod process;
mod shared;
mod source;

pub(crate) use shared::SharedRecords;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use futures::StreamExt;
use micro_core::{
    Error, Registry,
    runtime::{Code, Deployment, LogOptions, LogStream, Runtime, Spec, Status, check_name},
};
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedMutexGuard, watch};
use tokio_stream::wrappers::BroadcastStream;

use logs::LogFile;
pub use process::ServiceAccounts;
use process::{Generation, Launch};

const ID: &str = "micro.runtime";

/// How long an update waits for the new processes to register before giving up on them.
const SWITCH_TIMEOUT: Duration = Duration::from_secs(120);
/// A service log's size before it rotates (two files are kept).
const LOG_LIMIT: u64 = 4 << 20;

/// Where the local runtime keeps its files and how its services reach the platform.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// The runtime's directory (`MICRO_HOME/server/runtime`).
    pub root: PathBuf,
    /// The Cargo target directory every build shares (default `root/target`).
    pub target_dir: Option<PathBuf>,
    /// What services get as `MICRO_SERVER_ADDRESS`.
    pub server_address: String,
    /// Makes the accounts services run as (`None`: they get no credentials).
    pub accounts: Option<Arc<dyn ServiceAccounts>>,
    /// More environment every service gets (`MICRO_TLS`, `MICRO_TLS_CA` when the server serves
    /// TLS).
    pub service_env: Vec<(String, String)>,
}

/// Builds services with cargo and supervises their processes.
#[derive(Clone)]
pub struct LocalRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    target_dir: PathBuf,
    server_address: String,
    accounts: Option<Arc<dyn ServiceAccounts>>,
    service_env: Vec<(String, String)>,
    registry: Arc<dyn Registry>,
    deployments: Mutex<BTreeMap<(String, String), Arc<Deployed>>>,
    /// One cargo at a time: builds share the target directory and the machine's cores.
    builds: tokio::sync::Mutex<()>,
    /// Serialises writes of `services.json`.
    saving: Mutex<()>,
    /// Set by shutdown: no roll-out starts processes after it.
    closed: AtomicBool,
    /// With servers sharing a store: every server's deployments.
    shared: std::sync::OnceLock<SharedRecords>,
}

/// One service of one namespace.
struct Deployed {
    namespace: String,
    name: String,
    state: Mutex<State>,
    log: Arc<LogFile>,
    build_log: Arc<LogFile>,
    /// Held by the roll-out or removal under way.
    busy: Arc<tokio::sync::Mutex<()>>,
    /// `true` asks the roll-out under way to give up (an update or kill arrived).
    cancel: watch::Sender<bool>,
    /// Set (holding `busy`) by a kill: whoever takes `busy` next finds it gone.
    removed: AtomicBool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Pending,
    Building,
    /// The new build has started; the old one still serves until it has registered.
    Switching,
    /// The current generation (if any) is what runs.
    Serving,
    Stopping,
    /// The build failed and nothing runs.
    Failed,
}

struct State {
    spec: Spec,
    /// The crate's directory inside the source tree.
    path: String,
    build: String,
    phase: Phase,
    error: Option<String>,
    stage: Option<String>,
    updated: SystemTime,
    current: Option<Arc<Generation>>,
}

/// The format of `services.json` this build writes: `{"format": 1, "services": [...]}`. The
/// first servers wrote the bare list (format 0), which is still read.
const SERVICES_FORMAT: u64 = 1;

/// `services.json`.
#[derive(Serialize, Deserialize)]
struct SavedFile {
    format: u64,
    services: Vec<Saved>,
}

/// The services a `services.json` holds, in any format this build reads.
fn parse_saved(bytes: &[u8]) -> Result<Vec<Saved>, String> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if value.is_array() {
        return serde_json::from_value(value).map_err(|e| e.to_string());
    }
    let format = value
        .get("format")
        .and_then(serde_json::Value::as_u64)
        .ok_or("it names no format")?;
    if format > SERVICES_FORMAT {
        return Err(format!(
            "it has format {format}, newer than this micro's {SERVICES_FORMAT}: use the micro that wrote it, or a newer one"
        ));
    }
    serde_json::from_value::<SavedFile>(value)
        .map(|file| file.services)
        .map_err(|e| e.to_string())
}

/// A line of `services.json`.
#[derive(Serialize, Deserialize)]
struct Saved {
    namespace: String,
    spec: Spec,
    path: String,
    build: String,
    binary: Option<PathBuf>,
}

impl std::fmt::Debug for LocalRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRuntime")
            .field("root", &self.inner.root)
            .finish_non_exhaustive()
    }
}

impl LocalRuntime {
    /// Opens the runtime's directory, stopping processes a crashed server left behind.
    /// Services it was running start again with [`LocalRuntime::resume`].
    pub fn open(options: RuntimeOptions, registry: Arc<dyn Registry>) -> Result<Self, Error> {
        let root = options.root;
        for dir in ["", "uploads", "sources", "builds", "logs"] {
            micro_backends::private_dir(&root.join(dir)).map_err(|e| {
                Error::internal(
                    ID,
                    format!("cannot create {}: {e}", root.join(dir).display()),
                )
            })?;
        }
        // Uploads never consumed belong to calls that are over.
        if let Ok(entries) = std::fs::read_dir(root.join("uploads")) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        stop_orphans(&root.join("builds"));
        Ok(Self {
            inner: Arc::new(Inner {
                target_dir: options.target_dir.unwrap_or_else(|| root.join("target")),
                root,
                server_address: options.server_address,
                accounts: options.accounts,
                service_env: options.service_env,
                registry,
                deployments: Mutex::new(BTreeMap::new()),
                builds: tokio::sync::Mutex::new(()),
                saving: Mutex::new(()),
                closed: AtomicBool::new(false),
                shared: std::sync::OnceLock::new(),
            }),
        })
    }

    /// Shares this runtime's deployments with the servers sharing `records`' store, and shows
    /// theirs: publishes every [`shared::PUBLISH_EVERY`] until the task is aborted.
    pub(crate) fn share(&self, records: SharedRecords) -> tokio::task::JoinHandle<()> {
        let _ = self.inner.shared.set(records.clone());
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(shared::PUBLISH_EVERY);
            loop {
                tick.tick().await;
                if inner.closed.load(Ordering::SeqCst) {
                    return;
                }
                let mut by_namespace: BTreeMap<String, Vec<Deployment>> = BTreeMap::new();
                // A service killed meanwhile is not published again after its record is gone.
                for d in inner
                    .all()
                    .into_iter()
                    .filter(|d| !d.removed.load(Ordering::SeqCst))
                {
                    by_namespace
                        .entry(d.namespace.clone())
                        .or_default()
                        .push(d.snapshot());
                }
                for (namespace, deployments) in by_namespace {
                    records.publish(&namespace, &deployments).await;
                }
            }
        })
    }

    /// The gRPC address of another server sharing this one's engines that runs `name` in
    /// `namespace`, if this server does not and another does (its published record says so).
    pub(crate) async fn owner(&self, namespace: &str, name: &str) -> Result<Option<String>, Error> {
        if self.inner.find(namespace, name).is_ok() {
            return Ok(None);
        }
        match self.inner.shared.get() {
            Some(shared) => shared.owner(namespace, name).await,
            None => Ok(None),
        }
    }

    /// Starts again what `services.json` says was running: from its built executable when that
    /// is still there, else by building its source again. On shared engines each name is
    /// claimed first; one another server took while this one was down is left to it (logged)
    /// and forgotten here.
    pub async fn resume(&self) -> Result<(), Error> {
        let path = self.inner.root.join("services.json");
        let saved: Vec<Saved> = match std::fs::read(&path) {
            Ok(bytes) => parse_saved(&bytes).map_err(|e| {
                Error::internal(
                    ID,
                    format!(
                        "{} is damaged ({e}); move it away to start with no services",
                        path.display()
                    ),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(Error::internal(
                    ID,
                    format!("cannot read {}: {e}", path.display()),
                ));
            }
        };
        for entry in saved {
            // On shared engines the name is claimed again first: another server may have taken
            // it while this one was down, and then it runs there, not here too.
            if let Some(shared) = self.inner.shared.get()
                && let Err(e) = shared.claim(&entry.namespace, &entry.spec).await
            {
                if e.code != 409 {
                    // Undecided (the store did not answer): run it, as before claims; the next
                    // publish settles which server holds the name.
                    tracing::warn!(
                        namespace = %entry.namespace,
                        service = %entry.spec.name,
                        "resumed without a claim: {e}"
                    );
                } else {
                    tracing::warn!(
                    namespace = %entry.namespace,
                    service = %entry.spec.name,
                    "not resumed here: {e}"
                    );
                    continue;
                }
            }
            let deployed =
                self.inner
                    .deployed(&entry.namespace, entry.spec, entry.path, entry.build);
            self.inner.insert(&deployed);
            match entry.binary.filter(|b| b.is_file()) {
                Some(binary) => {
                    let generation = self.inner.launch(&deployed, binary);
                    let mut state = deployed.lock();
                    state.current = Some(generation);
                    state.phase = Phase::Serving;
                }
                None => {
                    let busy = deployed.busy.clone().try_lock_owned().map_err(|_| {
                        Error::internal(ID, "a service being resumed is already busy")
                    })?;
                    tokio::spawn(self.inner.clone().roll_out(deployed, busy));
                }
            }
        }
        Ok(())
    }

    /// A path for a new upload and its id. Uploads no call used within [`UPLOAD_KEPT`] go first.
    pub(crate) fn new_upload(&self) -> (String, PathBuf) {
        // Off the async workers: removing a 512 MiB file is blocking work.
        let uploads = self.inner.root.join("uploads");
        let now = SystemTime::now();
        tokio::task::spawn_blocking(move || sweep_uploads(&uploads, now));
        let id = uuid::Uuid::new_v4().simple().to_string();
        let path = self.upload_path(&id);
        (id, path)
    }

    /// The archive of upload `id` (which must be one of ours).
    pub(crate) fn upload_path(&self, id: &str) -> PathBuf {
        self.inner.root.join("uploads").join(format!("{id}.tar.gz"))
    }

    /// Stops every process, keeping the record of what runs so a restart starts it again.
    pub async fn shutdown(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        let all = self.inner.all();
        for deployed in &all {
            let _ = deployed.cancel.send(true);
        }
        // All at once: each may take its grace period.
        futures::future::join_all(all.iter().map(|deployed| async move {
            let _busy = deployed.busy.lock().await;
            let current = deployed.lock().current.clone();
            if let Some(generation) = current {
                generation.stop().await;
            }
        }))
        .await;
        // Other servers stop listing what no longer runs here (the publisher is closed).
        if let Some(shared) = self.inner.shared.get() {
            for deployed in &all {
                shared.forget(&deployed.namespace, &deployed.name).await;
            }
        }
    }
}

impl Inner {
    fn deployed(&self, namespace: &str, spec: Spec, path: String, build: String) -> Arc<Deployed> {
        let logs = self.root.join("logs").join(namespace);
        Arc::new(Deployed {
            namespace: namespace.to_owned(),
            name: spec.name.clone(),
            log: Arc::new(LogFile::new(
                logs.join(format!("{}.log", spec.name)),
                LOG_LIMIT,
            )),
            build_log: Arc::new(LogFile::new(
                logs.join(format!("{}.build.log", spec.name)),
                LOG_LIMIT,
            )),
            state: Mutex::new(State {
                spec,
                path,
                build,
                phase: Phase::Pending,
                error: None,
                stage: None,
                updated: SystemTime::now(),
                current: None,
            }),
            busy: Arc::new(tokio::sync::Mutex::new(())),
            cancel: watch::channel(false).0,
            removed: AtomicBool::new(false),
        })
    }

    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), Arc<Deployed>>> {
        self.deployments.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn insert(&self, deployed: &Arc<Deployed>) {
        self.map().insert(
            (deployed.namespace.clone(), deployed.name.clone()),
            deployed.clone(),
        );
    }

    fn all(&self) -> Vec<Arc<Deployed>> {
        self.map().values().cloned().collect()
    }

    fn find(&self, namespace: &str, name: &str) -> Result<Arc<Deployed>, Error> {
        self.map()
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
            .ok_or_else(|| {
                Error::not_found(
                    ID,
                    format!("no service {name:?} runs in namespace {namespace}; see micro status"),
                )
            })
    }

    fn source_dir(&self, namespace: &str, name: &str) -> PathBuf {
        self.root.join("sources").join(namespace).join(name)
    }

    fn builds_dir(&self, namespace: &str, name: &str) -> PathBuf {
        self.root.join("builds").join(namespace).join(name)
    }

    /// Unpacks `code` as the source of `name`, then deletes the upload.
    async fn unpack(&self, namespace: &str, name: &str, code: &Code) -> Result<String, Error> {
        source::check_path(&code.path)?;
        let dir = self.source_dir(namespace, name);
        let code = code.clone();

        tokio::task::spawn_blocking(move || {
            let build = source::build_id(&code.archive)?;
            let result = source::unpack(&code.archive, &dir, &code.path);
            let _ = std::fs::remove_file(&code.archive);
            result.map(|()| build)
        })
        .await
        .map_err(|e| Error::internal(ID, format!("unpacking failed: {e}")))?
    }

    /// Starts the processes of a build.
    fn launch(&self, deployed: &Deployed, binary: PathBuf) -> Arc<Generation> {
        let state = deployed.lock();
        Generation::start(Launch {
            binary,
            workdir: self
                .source_dir(&deployed.namespace, &deployed.name)
                .join(&state.path),
            namespace: deployed.namespace.clone(),
            spec: state.spec.clone(),
            path: state.path.clone(),
            build: state.build.clone(),
            server_address: self.server_address.clone(),
            service_env: self.service_env.clone(),
            registry: self.registry.clone(),
            log: deployed.log.clone(),
            accounts: self.accounts.clone(),
        })
    }

    /// Builds the service's source, starts it, and replaces what ran before once the new
    /// processes have registered. Runs holding the deployment's `busy` lock.
    async fn roll_out(self: Arc<Self>, deployed: Arc<Deployed>, _busy: OwnedMutexGuard<()>) {
        let cancel = deployed.cancel.subscribe();
        deployed.set_phase(Phase::Building);
        deployed.build_log.clear();
        let built = self.build(&deployed, cancel.clone()).await;
        if *cancel.borrow() {
            return;
        }
        let binary = match built {
            Ok(binary) => binary,
            Err(why) => {
                deployed.build_log.append(&format!("[micro] {why}"));
                deployed.fall_back(why);
                self.save();
                return;
            }
        };

        if self.closed.load(Ordering::SeqCst) {
            return;
        }
        let generation = self.launch(&deployed, binary);
        let old = deployed.lock().current.clone();
        let Some(old) = old else {
            deployed.serve(generation);
            self.save();
            return;
        };
        deployed.set_phase(Phase::Switching);
        match wait_until_up(&generation, cancel).await {
            Ok(()) => {
                deployed.serve(generation.clone());
                self.save();
                old.stop().await;
                old.discard_unless_shared_with(&generation);
            }
            Err(why) => {
                generation.stop().await;
                generation.discard_unless_shared_with(&old);
                deployed.fall_back(format!("the new build {why}"));
                self.save();
            }
        }
    }

    /// Runs cargo (one build at a time) and copies the executable out of the target directory.
    async fn build(
        &self,
        deployed: &Deployed,
        cancel: watch::Receiver<bool>,
    ) -> Result<PathBuf, String> {
        let (crate_dir, build) = {
            let mut state = deployed.lock();
            state.stage = Some("waiting for another build to finish".to_owned());
            (
                self.source_dir(&deployed.namespace, &deployed.name)
                    .join(&state.path),
                state.build.clone(),
            )
        };
        let mut cancelled = cancel.clone();
        let _one_at_a_time = tokio::select! {
            guard = self.builds.lock() => guard,
            () = raised(&mut cancelled) => return Err("the build was cancelled".to_owned()),
        };
        let stage = |what: &str| deployed.lock().stage = Some(what.to_owned());
        let executable = cargo::build(
            cargo::Build {
                crate_dir: &crate_dir,
                target_dir: &self.target_dir,
                name: &deployed.name,
                log: &deployed.build_log,
            },
            stage,
            cancel,
        )
        .await?;
        let file = executable
            .file_name()
            .ok_or_else(|| "cargo named an executable without a file name".to_owned())?;
        let dir = self
            .builds_dir(&deployed.namespace, &deployed.name)
            .join(&build);
        let binary = dir.join(file);
        // Copied beside, then renamed over: the same build may be running from that path.
        let keep = || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            let copy = tempfile::NamedTempFile::new_in(&dir)?;
            std::fs::copy(&executable, copy.path())?;
            copy.persist(&binary)?;
            Ok(())
        };
        keep()
            .map_err(|e| format!("cannot keep the built executable in {}: {e}", dir.display()))?;
        Ok(binary)
    }

    /// Writes `services.json` (atomically: a crash leaves the old or the new file, never half).
    fn save(&self) {
        let _one = self.saving.lock().unwrap_or_else(|e| e.into_inner());
        let saved: Vec<Saved> = self
            .all()
            .iter()
            .map(|d| {
                let state = d.lock();
                Saved {
                    namespace: d.namespace.clone(),
                    spec: state.spec.clone(),
                    path: state.path.clone(),
                    build: state.build.clone(),
                    binary: state.current.as_ref().map(|g| g.launch.binary.clone()),
                }
            })
            .collect();
        let path = self.root.join("services.json");
        let write = || -> std::io::Result<()> {
            let mut file = tempfile::NamedTempFile::new_in(&self.root)?;
            let saved = SavedFile {
                format: SERVICES_FORMAT,
                services: saved,
            };
            serde_json::to_writer_pretty(&mut file, &saved)?;
            file.as_file().sync_all()?;
            file.persist(&path)?;
            Ok(())
        };
        if let Err(e) = write() {
            tracing::error!(
                "cannot save {}: {e}; a restart may not start every service",
                path.display()
            );
        }
    }
}

impl Deployed {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_phase(&self, phase: Phase) {
        let mut state = self.lock();
        state.phase = phase;
        state.updated = SystemTime::now();
        if phase == Phase::Building {
            state.stage = None;
            state.error = None;
        }
    }

    /// After a failed roll-out: back to what still runs, if anything, saying why.
    fn fall_back(&self, why: String) {
        let mut state = self.lock();
        state.stage = None;
        state.updated = SystemTime::now();
        match state.current.clone() {
            Some(serving) => {
                state.error = Some(format!(
                    "update failed: {why}; build {} still serves",
                    serving.launch.build
                ));
                state.build = serving.launch.build.clone();
                state.spec = serving.launch.spec.clone();
                state.path = serving.launch.path.clone();
                state.phase = Phase::Serving;
            }
            None => {
                state.error = Some(why);
                state.phase = Phase::Failed;
            }
        }
    }

    /// Fails with not-found when a kill removed this deployment while the caller waited.
    fn check_present(&self) -> Result<(), Error> {
        if self.removed.load(Ordering::SeqCst) {
            return Err(Error::not_found(
                ID,
                format!("{} was removed (micro kill) meanwhile", self.name),
            ));
        }
        Ok(())
    }

    /// Makes `generation` the one that runs.
    fn serve(&self, generation: Arc<Generation>) {
        let mut state = self.lock();
        state.build = generation.launch.build.clone();
        state.current = Some(generation);
        state.phase = Phase::Serving;
        state.error = None;
        state.stage = None;
        state.updated = SystemTime::now();
    }

    fn snapshot(&self) -> Deployment {
        let state = self.lock();
        let report = state.current.as_ref().map(|g| g.report());
        let status = match state.phase {
            Phase::Pending => Status::Pending,
            Phase::Building => Status::Building,
            Phase::Switching => Status::Starting,
            Phase::Stopping => Status::Stopping,
            Phase::Failed => Status::Error,
            Phase::Serving => match &report {
                None => Status::Stopped,
                Some(r) if r.up() == r.instances.len() => Status::Running,
                Some(r) if r.down().is_some() => Status::Error,
                Some(_) => Status::Starting,
            },
        };
        let updated = match &report {
            Some(r) if r.changed > state.updated => r.changed,
            _ => state.updated,
        };
        Deployment {
            spec: state.spec.clone(),
            status,
            build: state.build.clone(),
            updated,
            restarts: report.as_ref().map_or(0, |r| r.restarts),
            running: report.as_ref().map_or(0, |r| r.up() as u32),
            error: state
                .error
                .clone()
                .or_else(|| report.as_ref().and_then(|r| r.down().map(str::to_owned))),
            stage: state.stage.clone(),
        }
    }
}

/// Waits until `flag` is `true` (or its sender is gone).
pub(crate) async fn raised(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|raised| *raised).await;
}

/// Waits until every instance of `generation` has registered; fails as soon as one exits.
async fn wait_until_up(
    generation: &Generation,
    mut cancel: watch::Receiver<bool>,
) -> Result<(), String> {
    let mut reports = generation.watch();
    let wait = async {
        loop {
            {
                let report = reports.borrow_and_update();
                if let Some(why) = report.down() {
                    return Err(why.to_owned());
                }
                if report.up() == report.instances.len() {
                    return Ok(());
                }
            }
            if reports.changed().await.is_err() {
                return Err("stopped".to_owned());
            }
        }
    };
    tokio::select! {
        result = tokio::time::timeout(SWITCH_TIMEOUT, wait) => result.unwrap_or_else(|_| {
            Err(format!("did not register within {}s", SWITCH_TIMEOUT.as_secs()))
        }),
        () = raised(&mut cancel) => Err("was cancelled".to_owned()),
    }
}

#[async_trait]
impl Runtime for LocalRuntime {
    async fn create(&self, namespace: &str, spec: Spec, code: Code) -> Result<(), Error> {
        spec.check()?;
        check_name("namespace", namespace)?;
        if let Some(shared) = self.inner.shared.get() {
            shared.claim(namespace, &spec).await?;
        }
        let deployed =
            self.inner
                .deployed(namespace, spec.clone(), code.path.clone(), String::new());
        let busy = deployed
            .busy
            .clone()
            .try_lock_owned()
            .map_err(|_| Error::internal(ID, "a new deployment is busy"))?;
        {
            let mut map = self.inner.map();
            let key = (namespace.to_owned(), spec.name.clone());
            if map.contains_key(&key) {
                return Err(Error::conflict(
                    ID,
                    format!(
                        "{} already runs in namespace {namespace}; use micro update to replace it",
                        spec.name
                    ),
                ));
            }
            map.insert(key, deployed.clone());
        }
        match self.inner.unpack(namespace, &spec.name, &code).await {
            Ok(build) => deployed.lock().build = build,
            Err(e) => {
                self.inner
                    .map()
                    .remove(&(namespace.to_owned(), spec.name.clone()));
                if let Some(shared) = self.inner.shared.get() {
                    shared.forget(namespace, &spec.name).await;
                }
                return Err(e);
            }
        }
        deployed.log.clear();
        self.inner.save();
        tokio::spawn(self.inner.clone().roll_out(deployed, busy));
        Ok(())
    }

    async fn update(&self, namespace: &str, spec: Spec, code: Option<Code>) -> Result<(), Error> {
        spec.check()?;
        let deployed = self.inner.find(namespace, &spec.name)?;
        // A roll-out still under way gives up for this newer one.
        let _ = deployed.cancel.send(true);
        let busy = deployed.busy.clone().lock_owned().await;
        deployed.check_present()?;
        let _ = deployed.cancel.send(false);
        if let Some(code) = &code {
            let build = match self.inner.unpack(namespace, &spec.name, code).await {
                Ok(build) => build,
                Err(e) => {
                    // The roll-out this one cancelled left it mid-way: settle it.
                    if deployed.lock().phase == Phase::Building {
                        deployed.fall_back(format!("the new source was refused: {}", e.detail));
                    }
                    return Err(e);
                }
            };
            let mut state = deployed.lock();
            state.build = build;
            state.path = code.path.clone();
        }
        deployed.lock().spec = spec;
        // Before answering, so a caller reading the status next sees the update under way.
        deployed.set_phase(Phase::Building);
        self.inner.save();
        tokio::spawn(self.inner.clone().roll_out(deployed, busy));
        Ok(())
    }

    async fn read(&self, namespace: &str, name: Option<&str>) -> Result<Vec<Deployment>, Error> {
        if let Some(name) = name {
            return match (self.inner.find(namespace, name), self.inner.shared.get()) {
                (Ok(found), _) => Ok(vec![found.snapshot()]),
                (Err(e), Some(shared)) if e.code == 404 => {
                    let others = shared.others(namespace, Some(name)).await?;
                    if others.is_empty() {
                        return Err(e);
                    }
                    Ok(others.into_iter().map(|(_, d)| d).collect())
                }
                (Err(e), _) => Err(e),
            };
        }
        let mut all: Vec<Deployment> = self
            .inner
            .all()
            .iter()
            .filter(|d| d.namespace == namespace)
            .map(|d| d.snapshot())
            .collect();
        if let Some(shared) = self.inner.shared.get() {
            let mine: Vec<String> = all.iter().map(|d| d.spec.name.clone()).collect();
            all.extend(
                shared
                    .others(namespace, None)
                    .await?
                    .into_iter()
                    .map(|(_, d)| d)
                    .filter(|d| !mine.contains(&d.spec.name)),
            );
            all.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        }
        Ok(all)
    }

    async fn delete(&self, namespace: &str, name: &str) -> Result<(), Error> {
        let deployed = self.inner.find(namespace, name)?;
        let _ = deployed.cancel.send(true);
        let _busy = deployed.busy.clone().lock_owned().await;
        deployed.check_present()?;
        deployed.removed.store(true, Ordering::SeqCst);
        deployed.set_phase(Phase::Stopping);
        let current = deployed.lock().current.take();
        if let Some(generation) = current {
            generation.stop().await;
        }
        // Files first, then the entry: a `micro run` of the same name waits for the entry.
        let _ = std::fs::remove_dir_all(self.inner.source_dir(namespace, name));
        let _ = std::fs::remove_dir_all(self.inner.builds_dir(namespace, name));
        deployed.log.clear();
        deployed.build_log.clear();
        {
            let mut map = self.inner.map();
            let key = (namespace.to_owned(), name.to_owned());
            if map.get(&key).is_some_and(|d| Arc::ptr_eq(d, &deployed)) {
                map.remove(&key);
            }
        }
        self.inner.save();
        if let Some(shared) = self.inner.shared.get() {
            shared.forget(namespace, name).await;
        }
        Ok(())
    }

    async fn logs(
        &self,
        namespace: &str,
        name: &str,
        options: LogOptions,
    ) -> Result<LogStream, Error> {
        let deployed = self.inner.find(namespace, name)?;
        let failed_build = deployed.lock().phase == Phase::Failed;
        let log = if options.build || failed_build {
            &deployed.build_log
        } else {
            &deployed.log
        };
        let (lines, follow) = log.tail(options.count);
        let past = futures::stream::iter(lines.into_iter().map(Ok));
        if !options.follow {
            return Ok(past.boxed());
        }
        let new = BroadcastStream::new(follow).filter_map(|line| async move { line.ok().map(Ok) });
        Ok(past.chain(new).boxed())
    }
}

/// Stops processes still running from our builds directory: a server killed with SIGKILL
/// leaves its services behind, and a restart would otherwise run them twice. (Linux: reads
/// `/proc`; elsewhere nothing is found.)
fn stop_orphans(builds: &Path) {
    let Ok(builds) = builds.canonicalize() else {
        return;
    };
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return;
    };
    use nix::{
        sys::signal::{Signal, kill},
        unistd::Pid,
    };
    let mut orphans = Vec::new();
    for process in processes.flatten() {
        let Some(pid) = process
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(exe) = std::fs::read_link(process.path().join("exe")) else {
            continue;
        };
        if exe.starts_with(&builds) {
            tracing::warn!(pid, exe = %exe.display(), "stopping a service left running by a previous server");
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            orphans.push(pid);
        }
    }
    // The grace a stop gets, then SIGKILL for what is left.
    let deadline = std::time::Instant::now() + process::STOP_GRACE;
    while !orphans.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        orphans.retain(|pid| Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(*pid));
    }
    for pid in orphans {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// Whether a process has exited and waits only to be reaped (its parent is gone, so `init` will).
fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// How long an upload waits for the `Create` or `Update` that uses it (the CLI sends that at
/// once): each may be 512 MiB, so one never used must not stay until the server restarts.
const UPLOAD_KEPT: Duration = Duration::from_secs(60 * 60);

/// Removes the uploads in `dir` last written more than [`UPLOAD_KEPT`] before `now`.
fn sweep_uploads(dir: &Path, now: SystemTime) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|at| now.duration_since(at).is_ok_and(|age| age > UPLOAD_KEPT));
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_nobody_used_within_the_hour_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.tar.gz");
        let fresh = dir.path().join("fresh.tar.gz");
        std::fs::write(&old, b"x").unwrap();
        std::fs::write(&fresh, b"x").unwrap();
        let now = SystemTime::now();
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(now - UPLOAD_KEPT - Duration::from_secs(1))
            .unwrap();
        sweep_uploads(dir.path(), now);
        assert!(!old.exists(), "an upload past the hour is gone");
        assert!(fresh.exists(), "one under way stays");
    }

    const ENTRY: &str = r#"{"namespace":"micro","spec":{"name":"hw","version":"latest","source":".","env":{},"instances":1,"args":[]},"path":"","build":"abc","binary":null}"#;

    #[test]
    fn services_json_of_the_first_format_is_read_and_a_newer_one_refused() {
        // Format 0: the bare list the first servers wrote.
        let legacy = format!("[{ENTRY}]");
        let read = parse_saved(legacy.as_bytes()).expect("format 0 is read");
        assert_eq!(read[0].spec.name, "hw");
        assert_eq!(read[0].build, "abc");

        let current = format!(r#"{{"format":1,"services":[{ENTRY}]}}"#);
        assert_eq!(parse_saved(current.as_bytes()).unwrap().len(), 1);

        let newer = format!(r#"{{"format":2,"services":[{ENTRY}]}}"#);
        let err = parse_saved(newer.as_bytes()).err().expect("refused");
        assert!(err.contains("newer"), "{err}");
        assert!(parse_saved(b"{}").is_err());
    }

    #[test]
    fn services_json_is_written_with_its_format() {
        let file = SavedFile {
            format: SERVICES_FORMAT,
            services: parse_saved(format!("[{ENTRY}]").as_bytes()).unwrap(),
        };
        let written = serde_json::to_vec(&file).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&written).unwrap();
        assert_eq!(value["format"], 1);
        assert_eq!(parse_saved(&written).unwrap()[0].spec.name, "hw");
    }
}
