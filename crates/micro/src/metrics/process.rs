//! [`Process`]: the process's and its tokio runtime's figures, read at each scrape — what a
//! dashboard needs to tell a busy service from a leaking or starved one. Every service and
//! `micro server` export them beside their call metrics.
//!
//! - `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_open_fds` and
//!   `process_start_time_seconds`, Prometheus's standard process metrics, read from `/proc`
//!   (Linux; elsewhere they are left out);
//! - `tokio_runtime_workers`, `tokio_runtime_alive_tasks` and
//!   `tokio_runtime_global_queue_depth`: the runtime's threads, the tasks alive on it, and the
//!   tasks waiting for a worker (a queue that grows means the service is CPU-bound).

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
};

/// The clock ticks `/proc` counts CPU time and start times in (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// Collects the process and runtime gauges at each scrape.
#[derive(Debug, Default)]
pub struct Process;

/// What `/proc` says of this process.
#[derive(Debug, Default, PartialEq)]
struct ProcFigures {
    cpu_seconds: f64,
    resident_bytes: f64,
    open_fds: f64,
    start_time_seconds: f64,
}

impl ProcFigures {
    /// Reads `/proc/self`; `None` where there is no `/proc`.
    fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let boot = std::fs::read_to_string("/proc/stat").ok()?;
        let open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count);
        Self::parse(&stat, &status, &boot, open_fds)
    }

    /// The figures in the texts of `/proc/self/stat`, `/proc/self/status` and `/proc/stat`.
    fn parse(stat: &str, status: &str, boot: &str, open_fds: usize) -> Option<Self> {
        // The command name (field 2) may hold spaces and parentheses: fields are counted
        // after its closing parenthesis, which starts with field 3.
        let after_name = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let field = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse().ok() };
        let (utime, stime, start_ticks) = (field(14)?, field(15)?, field(22)?);
        let rss_kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        let boot_time: f64 = boot
            .lines()
            .find_map(|l| l.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()?;
        Some(Self {
            cpu_seconds: (utime + stime) / TICKS_PER_SECOND,
            resident_bytes: rss_kib * 1024.0,
            open_fds: open_fds as f64,
            start_time_seconds: boot_time + start_ticks / TICKS_PER_SECOND,
        })
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(value).encode(metric)
}

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(proc) = ProcFigures::read() {
            let metric = encoder.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time spent, in seconds",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(proc.cpu_seconds).encode(metric)?;
            gauge(
                &mut encoder,
                "process_resident_memory_bytes",
                "Resident memory size, in bytes",
                proc.resident_bytes,
            )?;
            gauge(
                &mut encoder,
                "process_open_fds",
                "Open file descriptors",
                proc.open_fds,
            )?;
            gauge(
                &mut encoder,
                "process_start_time_seconds",
                "When the process started, in seconds since the Unix epoch",
                proc.start_time_seconds,
            )?;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let metrics = runtime.metrics();
            gauge(
                &mut encoder,
                "tokio_runtime_workers",
                "Worker threads of the tokio runtime",
                metrics.num_workers() as f64,
            )?;
            gauge(
                &mut encoder,
                "tokio_runtime_alive_tasks",
                "Tasks alive on the tokio runtime",
                metrics.num_alive_tasks() as f64,
            )?;
            gauge(
                &mut encoder,
                "tokio_runtime_global_queue_depth",
                "Tasks waiting in the runtime's global queue for a worker",
                metrics.global_queue_depth() as f64,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_texts_are_read_past_an_odd_command_name() {
        let stat = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 12345 1000 200";
        let status = "Name:\tx\nVmRSS:\t    2048 kB\nThreads:\t3\n";
        let boot = "cpu  1 2 3\nbtime 1700000000\nprocesses 9\n";
        let figures = ProcFigures::parse(stat, status, boot, 7).expect("parsed");
        assert_eq!(
            figures,
            ProcFigures {
                cpu_seconds: 3.0,
                resident_bytes: 2048.0 * 1024.0,
                open_fds: 7.0,
                start_time_seconds: 1_700_000_000.0 + 123.45,
            }
        );
        assert_eq!(ProcFigures::parse("garbage", status, boot, 0), None);
    }

    #[tokio::test]
    async fn a_scrape_has_the_process_and_runtime_figures() {
        let text = super::super::render(&super::super::registry());
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "process_start_time_seconds ",
            "tokio_runtime_workers ",
            "tokio_runtime_alive_tasks ",
        ] {
            assert!(text.contains(name), "{name} in {text}");
        }
    }
}
