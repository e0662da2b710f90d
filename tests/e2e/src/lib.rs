//! Harness for end-to-end tests: starts `micro server` and services as child processes on
//! 127.0.0.1 with free ports, runs `micro` commands against them, and cleans up (processes are
//! killed on drop; every test gets its own `MICRO_HOME`).
//!
//! The binaries come from the workspace's target directory; `scripts/test` builds them first
//! (`cargo build --workspace --bins`).

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// A plain tonic client for helloworld, generated from the example's proto.
pub mod helloworld {
    #![expect(missing_docs, reason = "generated code")]
    tonic::include_proto!("helloworld");

    /// The encoded descriptor set of `helloworld.proto`.
    pub const DESCRIPTORS: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/helloworld_descriptors.bin"));
}

pub mod engines;
pub mod gateway_client;
pub mod in_process;
pub mod load;

/// One `Helloworld.Call` of the benches, on any client stack (bare tonic or `micro::Client`),
/// checking the answer; a [`load::Call`].
pub fn call_hello<C>(
    client: &mut helloworld::helloworld_client::HelloworldClient<C>,
) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>>
where
    C: tonic::client::GrpcService<tonic::body::Body> + Send + 'static,
    C::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <C::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
    C::Error: Into<tonic::codegen::StdError>,
    C::Future: Send,
{
    Box::pin(hello(client, None))
}

/// [`call_hello`] with a deadline, as `micro::Client` gives every call by default (its 5 s
/// timeout, sent as `grpc-timeout`): what a bare client pays for deadlines alone.
pub fn call_hello_with_deadline<C>(
    client: &mut helloworld::helloworld_client::HelloworldClient<C>,
) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>>
where
    C: tonic::client::GrpcService<tonic::body::Body> + Send + 'static,
    C::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <C::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
    C::Error: Into<tonic::codegen::StdError>,
    C::Future: Send,
{
    Box::pin(hello(client, Some(Duration::from_secs(5))))
}

/// `Helloworld.Call` with `deadline` (none: no `grpc-timeout`), its answer checked.
async fn hello<C>(
    client: &mut helloworld::helloworld_client::HelloworldClient<C>,
    deadline: Option<Duration>,
) where
    C: tonic::client::GrpcService<tonic::body::Body> + Send + 'static,
    C::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <C::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
    C::Error: Into<tonic::codegen::StdError>,
    C::Future: Send,
{
    let mut request = tonic::Request::new(helloworld::Request {
        name: "bench".into(),
    });
    if let Some(deadline) = deadline {
        request.set_timeout(deadline);
    }
    let rsp = client.call(request).await.expect("call");
    assert_eq!(rsp.get_ref().msg, "Hello bench");
}

/// A minimal in-process helloworld handler for the benches: `Call` answers `Hello <name>`; the
/// streams are empty.
pub struct Hello;

#[tonic::async_trait]
impl helloworld::helloworld_server::Helloworld for Hello {
    async fn call(
        &self,
        r: tonic::Request<helloworld::Request>,
    ) -> Result<tonic::Response<helloworld::Response>, tonic::Status> {
        Ok(tonic::Response::new(helloworld::Response {
            msg: format!("Hello {}", r.into_inner().name),
        }))
    }
    type StreamStream =
        tonic::codegen::tokio_stream::Empty<Result<helloworld::StreamingResponse, tonic::Status>>;
    async fn stream(
        &self,
        _: tonic::Request<helloworld::StreamingRequest>,
    ) -> Result<tonic::Response<Self::StreamStream>, tonic::Status> {
        Ok(tonic::Response::new(tonic::codegen::tokio_stream::empty()))
    }
    type PingPongStream =
        tonic::codegen::tokio_stream::Empty<Result<helloworld::Pong, tonic::Status>>;
    async fn ping_pong(
        &self,
        _: tonic::Request<tonic::Streaming<helloworld::Ping>>,
    ) -> Result<tonic::Response<Self::PingPongStream>, tonic::Status> {
        Ok(tonic::Response::new(tonic::codegen::tokio_stream::empty()))
    }
}

/// What a [`CallOnly`] handler's `Call` answers.
pub type CallAnswer = Result<tonic::Response<helloworld::Response>, tonic::Status>;

/// A helloworld handler whose `Call` is the function it holds and whose streams are not served:
/// for tests that look at what a handler receives (its caller, its token) or how it behaves.
/// Made by [`call_only`].
pub struct CallOnly<F>(F);

/// The boxed answer a [`CallOnly`] holds.
pub type CallFuture = std::pin::Pin<Box<dyn Future<Output = CallAnswer> + Send>>;

/// A handler whose `Call` is `call` (see [`CallOnly`]).
pub fn call_only<G, Fut>(
    call: G,
) -> CallOnly<impl Fn(tonic::Request<helloworld::Request>) -> CallFuture + Send + Sync + 'static>
where
    G: Fn(tonic::Request<helloworld::Request>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = CallAnswer> + Send + 'static,
{
    CallOnly(move |r| Box::pin(call(r)) as CallFuture)
}

#[tonic::async_trait]
impl<F> helloworld::helloworld_server::Helloworld for CallOnly<F>
where
    F: Fn(tonic::Request<helloworld::Request>) -> CallFuture + Send + Sync + 'static,
{
    async fn call(&self, r: tonic::Request<helloworld::Request>) -> CallAnswer {
        (self.0)(r).await
    }
    type StreamStream =
        tonic::codegen::tokio_stream::Empty<Result<helloworld::StreamingResponse, tonic::Status>>;
    async fn stream(
        &self,
        _: tonic::Request<helloworld::StreamingRequest>,
    ) -> Result<tonic::Response<Self::StreamStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("not here"))
    }
    type PingPongStream =
        tonic::codegen::tokio_stream::Empty<Result<helloworld::Pong, tonic::Status>>;
    async fn ping_pong(
        &self,
        _: tonic::Request<tonic::Streaming<helloworld::Ping>>,
    ) -> Result<tonic::Response<Self::PingPongStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("not here"))
    }
}

/// The path of a workspace binary.
pub fn bin(name: &str) -> PathBuf {
    let path = profile_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first with `cargo build --workspace --bins` (scripts/test does)",
        path.display()
    );
    path
}

/// `target/<profile>`, where the workspace's binaries are.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>/deps/<test>")
        .to_path_buf()
}

/// Polls `check` every 50ms until it returns `Some`, or panics after `limit` saying `what`.
pub fn wait_for<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process whose output lines are collected; killed on drop.
pub struct Proc {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    /// Spawns `cmd` with stdout and stderr collected.
    pub fn spawn(mut cmd: Command) -> Self {
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let mut child = cmd.spawn().expect("spawn");
        let lines = Arc::new(Mutex::new(Vec::new()));
        for pipe in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        Self { child, lines }
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// How many lines so far contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Waits for a line containing `needle` and returns it.
    pub fn wait_line(&mut self, needle: &str) -> String {
        let name = format!("a line containing {needle:?}");
        wait_for(Duration::from_secs(30), &name, || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "process exited ({status}) before printing {needle:?}; output:\n{}",
                    self.lines().join("\n")
                );
            }
            self.lines().into_iter().find(|l| l.contains(needle))
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`-9`, `-TERM`) and waits for the process to exit.
    pub fn signal(&mut self, signal: &str) {
        self.send(signal);
        let _ = self.child.wait();
    }

    /// Sends `signal` (e.g. `-STOP`, `-CONT`) and does not wait for anything.
    pub fn send(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(signal)
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal} failed");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The output of a finished `micro` command.
#[derive(Debug)]
pub struct Output {
    /// Exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// A sandbox: its own `MICRO_HOME`, optionally a running server.
pub struct Sandbox {
    /// The `MICRO_HOME` of everything started here.
    pub home: tempfile::TempDir,
    /// The server's gRPC address, once started.
    pub address: Option<String>,
    /// The server's HTTP gateway address, once started.
    pub api: Option<String>,
    /// The server's dashboard address, once started.
    pub web: Option<String>,
    server: Option<Proc>,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    /// An empty sandbox, no server.
    pub fn new() -> Self {
        Self {
            home: tempfile::tempdir().expect("tempdir"),
            address: None,
            api: None,
            web: None,
            server: None,
        }
    }

    /// A sandbox with `micro server` running on a free port, and the CLI logged in as the
    /// default admin (`micro login --username admin --password micro`).
    pub fn with_server() -> Self {
        let mut sb = Self::new();
        sb.start_server();
        sb.login("admin", "micro");
        sb
    }

    /// `micro login` as `user`; panics if it fails.
    pub fn login(&self, user: &str, password: &str) {
        let out = self.micro(&["login", "--username", user, "--password", password]);
        assert_eq!(out.code, 0, "login as {user}: {}", out.stderr);
    }

    /// Makes account `id` with scope `service` (as the runtime does for the services it starts)
    /// and answers the environment a service started by hand logs in with.
    pub fn service_account(&self, id: &str) -> [(&'static str, String); 2] {
        let secret = format!("{id}-secret");
        let out = self.micro(&[
            "auth", "create", "account", id, "--secret", &secret, "--scopes", "service", "--type",
            "service",
        ]);
        assert_eq!(out.code, 0, "create account {id}: {}", out.stderr);
        [
            ("MICRO_AUTH_ID", id.to_owned()),
            ("MICRO_AUTH_SECRET", secret),
        ]
    }

    /// The saved access token of the current login (`micro user token`).
    pub fn token(&self) -> String {
        let out = self.micro(&["user", "token"]);
        assert_eq!(out.code, 0, "micro user token: {}", out.stderr);
        out.stdout.trim().to_owned()
    }

    /// Starts `micro server` on free ports with this sandbox's `MICRO_HOME` (again, after
    /// [`kill_server`](Self::kill_server): same data, new ports).
    pub fn start_server(&mut self) {
        self.start_server_with(&[]);
    }

    /// [`start_server`](Self::start_server) with more `micro server` flags.
    pub fn start_server_with(&mut self, flags: &[&str]) {
        self.start_server_with_env(flags, &[]);
    }

    /// [`start_server_with`](Self::start_server_with), with `env` in the server's environment.
    pub fn start_server_with_env(&mut self, flags: &[&str], env: &[(&str, &str)]) {
        let mut cmd = Command::new(bin("micro"));
        cmd.envs(env.iter().copied());
        cmd.args([
            "server",
            "--address",
            "127.0.0.1:0",
            "--api-address",
            "127.0.0.1:0",
            "--web-address",
            "127.0.0.1:0",
        ])
        .args(flags)
        .env("MICRO_HOME", self.home.path())
        .env("MICRO_BUILD_DIR", build_dir());
        let mut server = Proc::spawn(cmd);
        let mut address_of = |what: &str| {
            let line = server.wait_line(&format!("{what} listening on "));
            line.rsplit(' ').next().unwrap().to_owned()
        };
        self.address = Some(address_of("grpc"));
        self.api = Some(address_of("api"));
        self.web = Some(address_of("web"));
        self.server = Some(server);
    }

    /// Kills the server with SIGKILL: no chance to flush or clean up.
    pub fn kill_server(&mut self) {
        if let Some(mut server) = self.server.take() {
            server.signal("-9");
        }
    }

    /// Waits for a line of the running server's output containing `needle` (panics without
    /// a server).
    pub fn wait_server_line(&mut self, needle: &str) -> String {
        self.server
            .as_mut()
            .expect("a sandbox with a server")
            .wait_line(needle)
    }

    /// How many lines of the running server's output so far contain `needle`.
    pub fn server_log_count(&self, needle: &str) -> usize {
        self.server.as_ref().map_or(0, |s| s.count(needle))
    }

    /// The server address (panics without a server).
    pub fn address(&self) -> &str {
        self.address.as_deref().expect("a sandbox with a server")
    }

    /// Starts helloworld against this sandbox's server with `env` set, and waits until it serves.
    pub fn helloworld(&self, env: &[(&str, &str)]) -> Service {
        self.service(&bin("helloworld"), env)
    }

    /// Starts the service binary `program` against this sandbox's server with `env` set, and
    /// waits until it serves.
    pub fn service(&self, program: &std::path::Path, env: &[(&str, &str)]) -> Service {
        let mut cmd = Command::new(program);
        cmd.env("MICRO_HOME", self.home.path())
            .env("MICRO_SERVER_ADDRESS", self.address())
            .env("RUST_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut proc = Proc::spawn(cmd);
        let line = proc.wait_line("serving;");
        let address = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("address="))
            .expect("the serving line names the address")
            .to_owned();
        Service { proc, address }
    }

    /// Runs `micro ARGS` against this sandbox and waits for it.
    pub fn micro(&self, args: &[&str]) -> Output {
        run(self.micro_command(args))
    }

    /// `micro ARGS` against this sandbox, ready to run (in another directory, say).
    pub fn micro_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("micro"));
        cmd.args(args)
            .env("MICRO_HOME", self.home.path())
            .env_remove("MICRO_ENV")
            .env_remove("MICRO_NAMESPACE");
        match &self.address {
            Some(a) => cmd.env("MICRO_SERVER_ADDRESS", a),
            None => cmd.env_remove("MICRO_SERVER_ADDRESS"),
        };
        cmd
    }
}

impl Drop for Sandbox {
    /// Stops the server with SIGTERM, so that it stops the services its runtime started.
    fn drop(&mut self) {
        if let Some(server) = &mut self.server {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(server.pid().to_string())
                .status();
            let _ = server.child.wait();
        }
    }
}

/// The Cargo target directory the servers' runtimes share across tests (beside the workspace's
/// own builds), so a service is compiled from scratch once, not once per test.
pub fn build_dir() -> PathBuf {
    profile_dir()
        .parent()
        .expect("target/<profile>")
        .join("micro-runtime")
}

/// An HTTP/1.1 response.
#[derive(Debug)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header lines, lower-cased names.
    pub headers: Vec<(String, String)>,
    /// Body text.
    pub body: String,
}

impl HttpResponse {
    /// The first header called `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request over a fresh connection (`Connection: close`).
pub fn http(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> HttpResponse {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    // A server refusing a body it finds too big may answer and close before the body is all
    // sent: the write then fails, and the answer is still there to read.
    if let Err(e) = stream.write_all(req.as_bytes()) {
        assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            ),
            "write: {e}"
        );
    }
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            // A reset after the answer (the unread body) ends it like a close.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !bytes.is_empty() => break,
            Err(e) => panic!("read: {e}"),
        }
    }
    let raw = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect::<Vec<_>>();
    let body = if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v == "chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

/// Runs a command to completion.
pub fn run(mut cmd: Command) -> Output {
    let out = cmd.stdin(Stdio::null()).output().expect("run command");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A running service process and the address it serves on.
pub struct Service {
    /// The process.
    pub proc: Proc,
    /// Its registered address.
    pub address: String,
}
