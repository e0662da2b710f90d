//! Running a build: a [`Generation`] is the set of processes of one build of one service, each
//! instance supervised by a task of its own.
//!
//! An instance gets the `MICRO_*` environment of BEHAVIOR.md §5 plus a node id of its own
//! (`MICRO_SERVICE_ID`), which is how the runtime knows, by watching the registry, that *this*
//! process has registered. A process that exits is deregistered and restarted after
//! [`restart_delay`]; one that stays up [`STABLE_AFTER`] starts its back-off afresh. Stopping
//! sends SIGTERM (the framework deregisters, then drains), and SIGKILL ten seconds later.

use std::{
    path::PathBuf,
    process::{ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use micro_core::{
    Error, Node, Registry, Service,
    metadata::{
        ENV_AUTH_ID, ENV_AUTH_SECRET, ENV_NAMESPACE, ENV_SERVER_ADDRESS, ENV_SERVICE_ADDRESS,
        ENV_SERVICE_ID, ENV_SERVICE_NAME, ENV_SERVICE_VERSION,
    },
    runtime::{STABLE_AFTER, Spec, restart_delay},
};
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader},
    process::{Child, Command},
    sync::watch,
    task::JoinHandle,
};

use super::{logs::LogFile, raised};

/// How often a starting instance looks for its node in the registry.
const REGISTRATION_POLL: Duration = Duration::from_millis(200);
/// Makes the account a service started by the runtime logs in with (scope `service` in its
/// namespace): its id and a new secret.
#[async_trait::async_trait]
pub trait ServiceAccounts: Send + Sync + std::fmt::Debug {
    /// The credentials of service `name` in `namespace`.
    async fn provision(&self, namespace: &str, name: &str) -> Result<(String, String), Error>;
}

/// How long a stopping process has between SIGTERM and SIGKILL.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(10);

/// What every instance of a generation runs, and where it reports.
pub(crate) struct Launch {
    pub(crate) binary: PathBuf,
    pub(crate) workdir: PathBuf,
    pub(crate) namespace: String,
    pub(crate) spec: Spec,
    /// The crate's directory inside the source tree.
    pub(crate) path: String,
    pub(crate) build: String,
    pub(crate) server_address: String,
    /// Environment every service gets from the server (TLS).
    pub(crate) service_env: Vec<(String, String)>,
    pub(crate) registry: Arc<dyn Registry>,
    pub(crate) log: Arc<LogFile>,
    /// Makes the account the processes log in with; `None` when auth is off.
    pub(crate) accounts: Option<Arc<dyn ServiceAccounts>>,
}

/// Where one instance is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Instance {
    /// Started, not yet registered.
    Starting,
    /// Its node is in the registry.
    Up,
    /// Exited; waiting to be restarted (the reason, in one line).
    Down(String),
    /// Stopped by request.
    Stopped,
}

/// The instances of a generation as a whole.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub(crate) instances: Vec<Instance>,
    pub(crate) restarts: u32,
    pub(crate) changed: SystemTime,
}

impl Report {
    /// How many instances have registered.
    pub(crate) fn up(&self) -> usize {
        self.instances
            .iter()
            .filter(|i| **i == Instance::Up)
            .count()
    }

    /// Why an instance is down, if one is.
    pub(crate) fn down(&self) -> Option<&str> {
        self.instances.iter().find_map(|i| match i {
            Instance::Down(why) => Some(why.as_str()),
            _ => None,
        })
    }
}

/// The processes of one build.
pub(crate) struct Generation {
    /// What it runs (and what to fall back to when an update fails).
    pub(crate) launch: Launch,
    report: watch::Sender<Report>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// The account id and secret its instances log in with, made once per generation.
    credentials: tokio::sync::OnceCell<Option<(String, String)>>,
}

impl Generation {
    /// Starts every instance.
    pub(crate) fn start(launch: Launch) -> Arc<Self> {
        let instances = launch.spec.instances.max(1) as usize;
        let (report, _) = watch::channel(Report {
            instances: vec![Instance::Starting; instances],
            restarts: 0,
            changed: SystemTime::now(),
        });
        let generation = Arc::new(Self {
            launch,
            report,
            stop: watch::channel(false).0,
            tasks: Mutex::new(Vec::new()),
            credentials: tokio::sync::OnceCell::new(),
        });
        let tasks = (0..instances)
            .map(|index| {
                tokio::spawn(supervise(
                    generation.clone(),
                    index,
                    generation.stop.subscribe(),
                ))
            })
            .collect();
        *generation.tasks.lock().unwrap_or_else(|e| e.into_inner()) = tasks;
        generation
    }

    /// The instances now.
    pub(crate) fn report(&self) -> Report {
        self.report.borrow().clone()
    }

    /// Every change of the instances.
    pub(crate) fn watch(&self) -> watch::Receiver<Report> {
        self.report.subscribe()
    }

    /// Stops every instance and waits until their processes have exited.
    pub(crate) async fn stop(&self) {
        let _ = self.stop.send(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            let _ = task.await;
        }
    }

    /// Deletes this build's executable, unless `other` runs the same build.
    pub(crate) fn discard_unless_shared_with(&self, other: &Generation) {
        if self.launch.build != other.launch.build
            && let Some(dir) = self.launch.binary.parent()
        {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    fn set(&self, index: usize, instance: Instance, restarted: bool) {
        self.report.send_modify(|r| {
            r.instances[index] = instance;
            r.restarts += u32::from(restarted);
            r.changed = SystemTime::now();
        });
    }
}

/// Runs instance `index` until told to stop, restarting it whenever it exits.
async fn supervise(generation: Arc<Generation>, index: usize, mut stop: watch::Receiver<bool>) {
    let launch = &generation.launch;
    let prefix = if launch.spec.instances > 1 {
        format!("[{index}] ")
    } else {
        String::new()
    };
    let mut failures = 0u32;
    loop {
        let id = format!(
            "{}-{}-{index}-{}",
            launch.spec.name,
            launch.build,
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let started = Instant::now();
        let credentials = generation
            .credentials
            .get_or_try_init(|| async {
                match &launch.accounts {
                    Some(accounts) => accounts
                        .provision(&launch.namespace, &launch.spec.name)
                        .await
                        .map(Some),
                    None => Ok(None),
                }
            })
            .await
            .map_err(|e| format!("could not get an account to run as: {}", e.detail));
        let exit = match credentials.and_then(|c| {
            spawn(launch, &id, c.as_ref())
                .map_err(|e| format!("could not start {}: {e}", launch.binary.display()))
        }) {
            Ok(mut child) => {
                pump(child.stdout.take(), launch.log.clone(), prefix.clone());
                pump(child.stderr.take(), launch.log.clone(), prefix.clone());
                generation.set(index, Instance::Starting, false);
                let exit =
                    watch_process(launch, &generation, index, &id, &mut child, &mut stop).await;
                if exit.is_none() {
                    terminate(&mut child).await;
                }
                deregister(launch, &id).await;
                match exit {
                    None => {
                        generation.set(index, Instance::Stopped, false);
                        return;
                    }
                    Some(status) => match status {
                        Ok(status) => describe(status),
                        Err(e) => format!("could not be watched: {e}"),
                    },
                }
            }
            Err(why) => why,
        };
        if started.elapsed() >= STABLE_AFTER {
            failures = 0;
        }
        let delay = restart_delay(failures);
        failures = failures.saturating_add(1);
        let why = format!("{exit}; restarting in {}s", delay.as_secs());
        launch
            .log
            .append(&format!("{prefix}[micro] {} {why}", launch.spec.name));
        generation.set(index, Instance::Down(why), true);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = raised(&mut stop) => {
                generation.set(index, Instance::Stopped, false);
                return;
            }
        }
    }
}

fn spawn(
    launch: &Launch,
    id: &str,
    credentials: Option<&(String, String)>,
) -> std::io::Result<Child> {
    let mut command = Command::new(&launch.binary);
    if let Some((account, secret)) = credentials {
        command
            .env(ENV_AUTH_ID, account)
            .env(ENV_AUTH_SECRET, secret);
    }
    command
        .args(&launch.spec.args)
        .current_dir(&launch.workdir)
        .env_remove(ENV_SERVICE_ADDRESS)
        .env("NO_COLOR", "1")
        .envs(&launch.spec.env)
        .envs(launch.service_env.iter().map(|(k, v)| (k, v)))
        .env(ENV_SERVER_ADDRESS, &launch.server_address)
        .env(ENV_NAMESPACE, &launch.namespace)
        .env(ENV_SERVICE_NAME, &launch.spec.name)
        .env(ENV_SERVICE_VERSION, &launch.spec.version)
        .env(ENV_SERVICE_ID, id)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A group of its own: Ctrl-C at the server's terminal does not reach it (the server
        // stops it in order), and stopping it reaches its children too.
        .process_group(0)
        .kill_on_drop(true);
    command.spawn().map_err(|e| {
        if launch.workdir.is_dir() {
            e
        } else {
            std::io::Error::other(format!(
                "its directory {} is gone; update it again",
                launch.workdir.display()
            ))
        }
    })
}

/// Waits for the process to exit (`Some`) or for a stop (`None`), marking the instance up once
/// its node is registered.
async fn watch_process(
    launch: &Launch,
    generation: &Generation,
    index: usize,
    id: &str,
    child: &mut Child,
    stop: &mut watch::Receiver<bool>,
) -> Option<std::io::Result<ExitStatus>> {
    let mut poll = tokio::time::interval(REGISTRATION_POLL);
    let mut registered = false;
    loop {
        tokio::select! {
            status = child.wait() => return Some(status),
            () = raised(stop) => return None,
            _ = poll.tick(), if !registered => {
                if is_registered(launch, id).await {
                    registered = true;
                    generation.set(index, Instance::Up, false);
                }
            }
        }
    }
}

async fn is_registered(launch: &Launch, id: &str) -> bool {
    match launch
        .registry
        .get_service(&launch.namespace, &launch.spec.name)
        .await
    {
        Ok(versions) => versions.iter().any(|v| v.nodes.iter().any(|n| n.id == id)),
        Err(_) => false,
    }
}

async fn deregister(launch: &Launch, id: &str) {
    let record = Service::new(launch.spec.name.clone(), launch.spec.version.clone())
        .with_node(Node::new(id, ""));
    if let Err(e) = launch.registry.deregister(&launch.namespace, &record).await {
        tracing::warn!(node = id, "could not deregister a stopped process: {e}");
    }
}

/// SIGTERM to the process's group, then SIGKILL after the grace period.
async fn terminate(child: &mut Child) {
    use nix::sys::signal::{Signal, killpg};
    if let Some(pid) = child.id() {
        let group = nix::unistd::Pid::from_raw(pid as i32);
        let _ = killpg(group, Signal::SIGTERM);
        if tokio::time::timeout(STOP_GRACE, child.wait())
            .await
            .is_err()
        {
            let _ = killpg(group, Signal::SIGKILL);
        }
    }
    let _ = child.kill().await;
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => format!("exited ({status})"),
    }
}

/// The longest line kept whole; longer ones are split.
const MAX_LINE: u64 = 16 * 1024;

/// Copies a process's output into the log, line by line.
fn pump(
    output: Option<impl AsyncRead + Unpin + Send + 'static>,
    log: Arc<LogFile>,
    prefix: String,
) {
    let Some(output) = output else { return };
    tokio::spawn(async move {
        let mut reader = BufReader::new(output);
        let mut line = Vec::new();
        while let Ok(n) = (&mut reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)
            .await
        {
            if n == 0 {
                break;
            }
            log.append(&format!("{prefix}{}", String::from_utf8_lossy(&line)));
            line.clear();
        }
    });
}
