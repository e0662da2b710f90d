//! The runtime: builds and runs services from their source (BEHAVIOR.md §5).
//!
//! `micro run` hands the platform a packed source tree ([`Code`]) and a [`Spec`] (name, version,
//! environment, instances); the runtime builds it, runs it, restarts it when it exits, and keeps
//! its output. [`Runtime`] is the trait a runtime implements — the server's local process
//! runtime first, a Kubernetes runtime later — and the types here are what callers see of a
//! deployment: its [`Status`], restarts and the error that stopped it.

use std::{collections::BTreeMap, path::PathBuf, time::Duration, time::SystemTime};

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::Error;

const ID: &str = "micro.runtime";

/// What to run: everything `micro run` says about a service except its code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    /// The service name (`--name`, else the source directory's name).
    pub name: String,
    /// The version it registers with (`latest` unless given).
    pub version: String,
    /// Where the code came from, as the user named it (shown as SOURCE).
    pub source: String,
    /// Extra environment (`--env-vars k=v`).
    pub env: BTreeMap<String, String>,
    /// How many copies run (`--instances`, at least 1).
    pub instances: u32,
    /// Arguments passed to the binary (`--args`).
    pub args: Vec<String>,
}

impl Spec {
    /// A spec with the defaults: version `latest`, one instance.
    pub fn new(name: impl Into<String>, source: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: "latest".to_owned(),
            source: source.into(),
            env: BTreeMap::new(),
            instances: 1,
            args: Vec::new(),
        }
    }

    /// Refuses names that cannot be a service or a directory name, and zero instances.
    pub fn check(&self) -> Result<(), Error> {
        check_name("service name", &self.name)?;
        if self.version.trim().is_empty() {
            return Err(Error::bad_request(ID, "the version is empty"));
        }
        if self.instances == 0 || self.instances > MAX_INSTANCES {
            return Err(Error::bad_request(
                ID,
                format!(
                    "--instances must be between 1 and {MAX_INSTANCES}, not {}",
                    self.instances
                ),
            ));
        }
        if self
            .args
            .iter()
            .chain(self.env.values())
            .any(|v| v.contains('\0'))
        {
            return Err(Error::bad_request(
                ID,
                "arguments and environment values cannot hold NUL",
            ));
        }
        for key in self.env.keys() {
            if key.is_empty() || key.contains(['=', '\0']) {
                return Err(Error::bad_request(
                    ID,
                    format!(
                        "invalid environment variable name {key:?}: write --env-vars KEY=value"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The most copies of one service a runtime starts.
pub const MAX_INSTANCES: u32 = 64;

/// Refuses a name that could not be a file name of its own: lower-case letters, digits, `-` and
/// `_`, starting with a letter or digit (no `.`, so `NAME.log` and `NAME.old` never collide
/// with another service's files).
pub fn check_name(what: &str, name: &str) -> Result<(), Error> {
    let valid = name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_'));
    if valid {
        Ok(())
    } else {
        Err(Error::bad_request(
            ID,
            format!(
                "invalid {what} {name:?}: use up to 63 lower-case letters, digits, '-' or '_', starting with a letter or digit"
            ),
        ))
    }
}

/// The code of a service: a gzipped tar of a source tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code {
    /// The archive on the runtime's disk.
    pub archive: PathBuf,
    /// The crate's directory inside the archive (`""` for its root). A crate that belongs to a
    /// Cargo workspace travels with the whole workspace and names its directory here.
    pub path: String,
}

/// Where a deployment is in its life (BEHAVIOR.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Accepted, not yet building.
    Pending,
    /// The code is being built.
    Building,
    /// Built; its processes have started but not all have registered.
    Starting,
    /// Every instance has registered.
    Running,
    /// Being stopped.
    Stopping,
    /// Not running, by request.
    Stopped,
    /// The build failed, or the service keeps exiting (see [`Deployment::error`]).
    Error,
}

impl Status {
    /// The lower-case word shown in `micro status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Building => "building",
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Error => "error",
        }
    }

    /// Parses [`Status::as_str`].
    pub fn parse(word: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Building,
            Self::Starting,
            Self::Running,
            Self::Stopping,
            Self::Stopped,
            Self::Error,
        ]
        .into_iter()
        .find(|s| s.as_str() == word)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a runtime reports about one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// What was asked for.
    pub spec: Spec,
    /// Where it is.
    pub status: Status,
    /// The build running (or being built): a short hash of the code.
    pub build: String,
    /// When the deployment last changed status.
    pub updated: SystemTime,
    /// How many times its processes were restarted after exiting.
    pub restarts: u32,
    /// How many instances have registered.
    pub running: u32,
    /// Why it is in `error` (or why the last update failed), in one line.
    pub error: Option<String>,
    /// While building: what the build is doing (`Compiling tonic v0.14.2`).
    pub stage: Option<String>,
}

/// A line a service (or its build) printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// When the runtime read it.
    pub timestamp: SystemTime,
    /// The line, without its newline.
    pub text: String,
}

/// Which lines [`Runtime::logs`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOptions {
    /// The last `count` lines (0: none, only new ones when following).
    pub count: usize,
    /// Keep the stream open and send lines as they are written.
    pub follow: bool,
    /// The build's output instead of the service's.
    pub build: bool,
}

/// Lines of output, oldest first.
pub type LogStream = BoxStream<'static, Result<LogLine, Error>>;

/// Builds and runs services, one set per namespace.
#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// Accepts a new service and starts building it; returns before the build ends. A name
    /// already deployed in the namespace is a conflict (use [`Runtime::update`]).
    async fn create(&self, namespace: &str, spec: Spec, code: Code) -> Result<(), Error>;

    /// Replaces a service's spec and, when given, its code: builds, starts the new processes,
    /// waits until they have registered, then stops the old ones. Without new code it rebuilds
    /// the code it has.
    async fn update(&self, namespace: &str, spec: Spec, code: Option<Code>) -> Result<(), Error>;

    /// The namespace's services, or the one named.
    async fn read(&self, namespace: &str, name: Option<&str>) -> Result<Vec<Deployment>, Error>;

    /// Stops a service, deregisters its nodes and forgets it.
    async fn delete(&self, namespace: &str, name: &str) -> Result<(), Error>;

    /// A service's output (or its build's).
    async fn logs(
        &self,
        namespace: &str,
        name: &str,
        options: LogOptions,
    ) -> Result<LogStream, Error>;
}

/// How long to wait before restarting a process that exited for the `restarts`-th time in a row:
/// 1 s, doubling, at most a minute.
pub fn restart_delay(restarts: u32) -> Duration {
    const FIRST: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(60);
    FIRST
        .checked_mul(1u32 << restarts.min(16))
        .map_or(MAX, |d| d.min(MAX))
}

/// How long a process must stay up for its next exit to count as the first in a row again.
pub const STABLE_AFTER: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_back_off_doubling_up_to_a_minute() {
        let delays: Vec<u64> = (0..9).map(|n| restart_delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(restart_delay(u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn names_must_be_file_names() {
        for good in ["hello-rt", "a", "x1-v2", "foo_bar"] {
            check_name("service name", good).unwrap();
        }
        for bad in [
            "",
            "Hello",
            "../x",
            "a/b",
            ".hidden",
            "api.old",
            "-x",
            &"a".repeat(64),
        ] {
            let err = check_name("service name", bad).unwrap_err();
            assert!(err.detail.contains("lower-case"), "{bad}: {err}");
        }
    }

    #[test]
    fn specs_need_at_least_one_instance_and_clean_env_names() {
        let mut spec = Spec::new("hello", "./hello");
        spec.check().unwrap();
        spec.instances = 0;
        assert!(spec.check().unwrap_err().detail.contains("--instances"));
        spec.instances = 2;
        spec.env.insert("A=B".into(), "c".into());
        assert!(spec.check().unwrap_err().detail.contains("KEY=value"));
    }

    #[test]
    fn statuses_round_trip_their_words() {
        for word in [
            "pending", "building", "starting", "running", "stopping", "stopped", "error",
        ] {
            assert_eq!(Status::parse(word).unwrap().as_str(), word);
        }
        assert_eq!(Status::parse("frob"), None);
    }
}
