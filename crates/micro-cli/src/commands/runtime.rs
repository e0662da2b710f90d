//! `micro run`, `update`, `kill`, `status` and `logs`: the runtime service from the CLI
//! (BEHAVIOR.md §5).
//!
//! `run` and `update` pack the source here and upload it over gRPC, so they work the same
//! against a server on another machine. Then they watch the service's status, with a spinner on
//! a terminal, until it runs or fails (`--detach` returns at once).

use std::{
    collections::HashMap,
    path::Path,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use futures::StreamExt;
use micro_proto::runtime::{self as pb, runtime_client::RuntimeClient};
use tonic::transport::Channel;

use crate::{
    cli::{LogsArgs, RunArgs},
    commands::services::table,
    context::Context,
    failure::Failure,
    pack::{Packed, pack},
};

const ID: &str = "micro.runtime";
/// Archive chunks sent per message.
const CHUNK: usize = 1 << 20;
/// How long `run` and `update` wait for a started service to register.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(120);
/// How often `run` and `update` look at the status while they wait.
const POLL: Duration = Duration::from_millis(250);

struct Runtime<'a> {
    ctx: &'a Context,
    client: RuntimeClient<Channel>,
}

impl<'a> Runtime<'a> {
    async fn connect(ctx: &'a Context) -> Result<Self, Failure> {
        Ok(Self {
            ctx,
            client: RuntimeClient::new(ctx.connect().await?),
        })
    }

    fn failed(&self, status: &tonic::Status) -> Failure {
        micro::status::from_status(ID, status).into()
    }

    async fn upload(&mut self, packed: &Packed) -> Result<String, Failure> {
        let chunks: Vec<pb::UploadRequest> = packed
            .archive
            .chunks(CHUNK)
            .map(|c| pb::UploadRequest { chunk: c.to_vec() })
            .collect();
        let request = self.ctx.request(futures::stream::iter(chunks))?;
        let response = self
            .client
            .upload(request)
            .await
            .map_err(|s| self.failed(&s))?;
        Ok(response.into_inner().id)
    }

    async fn read(&mut self, name: &str) -> Result<Vec<pb::Deployment>, Failure> {
        let request = self.ctx.request(pb::ReadRequest {
            name: name.to_owned(),
        })?;
        let response = self
            .client
            .read(request)
            .await
            .map_err(|s| self.failed(&s))?;
        Ok(response.into_inner().services)
    }

    /// Waits until the roll-out of `name` ends: running with no error, or failed.
    async fn wait(&mut self, name: &str) -> Result<(), Failure> {
        let spinner = indicatif::ProgressBar::new_spinner();
        let mut starting_since: Option<std::time::Instant> = None;
        spinner.enable_steady_tick(Duration::from_millis(120));
        let outcome = loop {
            let Some(d) = self.read(name).await?.into_iter().next() else {
                break Err(Failure::new(format!("{name} was removed while starting")));
            };
            match (d.status.as_str(), d.error.is_empty()) {
                ("running", true) => break Ok(d),
                ("running", false) | ("error", _) => {
                    break Err(Failure::new(format!(
                        "{name} failed: {}\nSee its output with: micro logs {name}",
                        d.error
                    )));
                }
                ("starting", _)
                    if starting_since
                        .get_or_insert_with(std::time::Instant::now)
                        .elapsed()
                        > REGISTER_TIMEOUT =>
                {
                    break Err(Failure::new(format!(
                        "{name} started but has not registered after {}s; a service must use the micro framework (or register itself)\nSee its output with: micro logs {name}",
                        REGISTER_TIMEOUT.as_secs()
                    )));
                }
                (status, _) => {
                    let stage = if d.stage.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", d.stage)
                    };
                    spinner.set_message(format!("{name} {status}{stage}"));
                }
            }
            tokio::time::sleep(POLL).await;
        };
        spinner.finish_and_clear();
        let d = outcome?;
        println!("{name} is running (build {})", d.build);
        Ok(())
    }
}

fn spec(args: &RunArgs, name: String, source: String) -> Result<pb::Spec, Failure> {
    let mut env = HashMap::new();
    for pair in &args.env_vars {
        let (k, v) = pair.split_once('=').ok_or_else(|| {
            Failure::new(format!(
                "Invalid --env-vars {pair:?}: write it as KEY=value"
            ))
        })?;
        env.insert(k.trim().to_owned(), v.to_owned());
    }
    Ok(pb::Spec {
        name,
        version: String::new(),
        source,
        env,
        instances: args.instances.unwrap_or(0),
        args: args
            .args
            .as_deref()
            .map(|a| a.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
    })
}

/// Packs a directory and says what went in.
fn packed(dir: &Path) -> Result<Packed, Failure> {
    let packed = pack(dir)?;
    eprintln!(
        "packed {} files ({} KiB) from {}",
        packed.files,
        packed.archive.len().div_ceil(1024),
        packed.source
    );
    Ok(packed)
}

/// `micro run PATH`.
pub(crate) async fn run(ctx: &Context, args: &RunArgs) -> Result<(), Failure> {
    let code = packed(Path::new(&args.source))?;
    let name = args.name.clone().unwrap_or_else(|| code.dir_name.clone());
    let mut runtime = Runtime::connect(ctx).await?;
    let upload = runtime.upload(&code).await?;
    let request = ctx.request(pb::CreateRequest {
        spec: Some(spec(args, name.clone(), code.source.clone())?),
        upload,
        path: code.path.clone(),
    })?;
    runtime
        .client
        .create(request)
        .await
        .map_err(|s| runtime.failed(&s))?;
    if args.detach {
        println!("{name} is building; follow it with: micro status {name}");
        return Ok(());
    }
    runtime.wait(&name).await
}

/// `micro update PATH|NAME`.
pub(crate) async fn update(ctx: &Context, args: &RunArgs) -> Result<(), Failure> {
    let dir = Path::new(&args.source);
    if !dir.is_dir() && (args.source.contains(['/', '\\']) || args.source == ".") {
        return Err(Failure::new(format!(
            "No directory {}: micro update takes the directory of a running service, or its name",
            args.source
        )));
    }
    let code = if dir.is_dir() {
        Some(packed(dir)?)
    } else {
        None
    };
    let mut runtime = Runtime::connect(ctx).await?;
    let (name, upload, path, source) = if let Some(code) = code {
        let name = args.name.clone().unwrap_or_else(|| code.dir_name.clone());
        let upload = runtime.upload(&code).await?;
        (name, upload, code.path, code.source)
    } else {
        // A name: the server rebuilds the code it has.
        (
            args.name.clone().unwrap_or_else(|| args.source.clone()),
            String::new(),
            String::new(),
            String::new(),
        )
    };
    let request = ctx.request(pb::UpdateRequest {
        spec: Some(spec(args, name.clone(), source)?),
        upload,
        path,
    })?;
    runtime
        .client
        .update(request)
        .await
        .map_err(|s| runtime.failed(&s))?;
    if args.detach {
        println!("{name} is updating; follow it with: micro status {name}");
        return Ok(());
    }
    runtime.wait(&name).await
}

/// `micro kill NAME`.
pub(crate) async fn kill(ctx: &Context, name: &str) -> Result<(), Failure> {
    let mut runtime = Runtime::connect(ctx).await?;
    let request = ctx.request(pb::DeleteRequest {
        name: name.to_owned(),
    })?;
    runtime
        .client
        .delete(request)
        .await
        .map_err(|s| runtime.failed(&s))?;
    Ok(())
}

/// `micro status [NAME]`.
pub(crate) async fn status(ctx: &Context, name: Option<&str>) -> Result<(), Failure> {
    let mut runtime = Runtime::connect(ctx).await?;
    let mut services = runtime.read(name.unwrap_or_default()).await?;
    if services.is_empty() {
        eprintln!(
            "No services run in namespace {}. Start one with: micro run PATH",
            ctx.namespace
        );
        return Ok(());
    }
    services.sort_by(|a, b| name_of(a).cmp(name_of(b)));
    let now = SystemTime::now();
    let rows: Vec<[String; 7]> = services
        .iter()
        .map(|d| {
            let spec = d.spec.clone().unwrap_or_default();
            [
                spec.name,
                spec.version,
                spec.source,
                d.status.clone(),
                d.build.clone(),
                age(now, d.updated_ms),
                metadata(d, spec.instances),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            [
                "NAME", "VERSION", "SOURCE", "STATUS", "BUILD", "UPDATED", "METADATA"
            ],
            &rows
        )
    );
    Ok(())
}

fn name_of(d: &pb::Deployment) -> &str {
    d.spec.as_ref().map_or("", |s| s.name.as_str())
}

/// `12s ago`, `3m ago`, `2h ago`, `4d ago`.
fn age(now: SystemTime, updated_ms: i64) -> String {
    let then = UNIX_EPOCH + Duration::from_millis(u64::try_from(updated_ms).unwrap_or(0));
    let secs = now.duration_since(then).map_or(0, |d| d.as_secs());
    match secs {
        0..60 => format!("{secs}s ago"),
        60..3600 => format!("{}m ago", secs / 60),
        3600..86400 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86400),
    }
}

/// `instances=1/2 restarts=3 stage="Compiling …" error="…"`, leaving out what is unremarkable.
fn metadata(d: &pb::Deployment, instances: u32) -> String {
    let mut parts = Vec::new();
    if instances > 1 {
        parts.push(format!("instances={}/{instances}", d.running));
    }
    if d.restarts > 0 {
        parts.push(format!("restarts={}", d.restarts));
    }
    if !d.stage.is_empty() && d.status == "building" {
        parts.push(format!("stage={:?}", d.stage));
    }
    if !d.error.is_empty() {
        parts.push(format!("error={:?}", d.error));
    }
    parts.join(" ")
}

/// `micro logs NAME [-n N] [-f] [--build]`.
pub(crate) async fn logs(ctx: &Context, args: &LogsArgs) -> Result<(), Failure> {
    let mut runtime = Runtime::connect(ctx).await?;
    let request = ctx.request(pb::LogsRequest {
        name: args.name.clone(),
        count: args.lines,
        follow: args.follow,
        build: args.build,
    })?;
    let mut lines = runtime
        .client
        .logs(request)
        .await
        .map_err(|s| runtime.failed(&s))?
        .into_inner();
    let stop = micro::service::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            line = lines.next() => match line {
                Some(Ok(record)) => println!("{}", record.text),
                Some(Err(status)) => return Err(runtime.failed(&status)),
                None => return Ok(()),
            },
            () = &mut stop => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_a_person_would_say_them() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let ms = |secs_ago: u64| ((1_000_000 - secs_ago) * 1000) as i64;
        assert_eq!(age(now, ms(5)), "5s ago");
        assert_eq!(age(now, ms(150)), "2m ago");
        assert_eq!(age(now, ms(7200)), "2h ago");
        assert_eq!(age(now, ms(200_000)), "2d ago");
    }

    #[test]
    fn metadata_shows_only_what_is_remarkable() {
        let mut d = pb::Deployment {
            status: "running".into(),
            running: 1,
            ..Default::default()
        };
        assert_eq!(metadata(&d, 1), "");
        d.restarts = 3;
        d.error = "exited with code 101; restarting in 8s".into();
        assert_eq!(
            metadata(&d, 2),
            r#"instances=1/2 restarts=3 error="exited with code 101; restarting in 8s""#
        );
    }
}
