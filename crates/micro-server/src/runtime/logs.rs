//! A service's output on disk: one file of timestamped lines, rotated into `NAME.log.1` when it
//! passes its size limit (so a chatty service holds at most twice the limit), with a broadcast
//! channel for `micro logs -f`.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
    sync::Mutex,
    time::SystemTime,
};

use micro_core::runtime::LogLine;
use tokio::sync::broadcast;

/// How many lines a slow follower may fall behind before it skips ahead.
const FOLLOW_BUFFER: usize = 1024;

/// An append-only log file with a size bound.
pub(crate) struct LogFile {
    path: PathBuf,
    limit: u64,
    file: Mutex<Option<(File, u64)>>,
    lines: broadcast::Sender<LogLine>,
}

impl LogFile {
    /// A log at `path` that rotates once it holds `limit` bytes.
    pub(crate) fn new(path: PathBuf, limit: u64) -> Self {
        Self {
            path,
            limit,
            file: Mutex::new(None),
            lines: broadcast::channel(FOLLOW_BUFFER).0,
        }
    }

    fn rotated(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".1");
        PathBuf::from(name)
    }

    /// Appends one line (stamped now) and tells followers. A write that fails is reported once
    /// in the server's own log and otherwise dropped: a full disk must not stop the service.
    pub(crate) fn append(&self, text: &str) {
        let line = LogLine {
            timestamp: SystemTime::now(),
            text: text.trim_end_matches(['\n', '\r']).to_owned(),
        };
        let mut guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = self.write(&mut guard, &line) {
            *guard = None;
            tracing::warn!(log = %self.path.display(), "cannot write the service log: {e}");
        }
        let _ = self.lines.send(line);
    }

    fn write(&self, slot: &mut Option<(File, u64)>, line: &LogLine) -> std::io::Result<()> {
        if slot.as_ref().is_some_and(|(_, size)| *size >= self.limit) {
            *slot = None;
            std::fs::rename(&self.path, self.rotated())?;
        }
        if slot.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut options = OpenOptions::new();
            options.create(true).append(true);
            // A service's output is its own business: private to the server's user.
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let file = options.open(&self.path)?;
            let size = file.metadata()?.len();
            *slot = Some((file, size));
        }
        let (file, size) = slot.as_mut().expect("opened above");
        let stamp = humantime::format_rfc3339_millis(line.timestamp);
        let record = format!("{stamp} {}\n", line.text);
        file.write_all(record.as_bytes())?;
        *size += record.len() as u64;
        Ok(())
    }

    /// Empties the log (a new build starts its build log afresh).
    pub(crate) fn clear(&self) {
        let mut guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
        *guard = None;
        let _ = std::fs::remove_file(self.rotated());
        let _ = std::fs::remove_file(&self.path);
    }

    /// The last `count` lines, and (when `follow`) a receiver of every later one, taken under
    /// the writer's lock so that no line is missed or repeated between the two.
    pub(crate) fn tail(&self, count: usize) -> (Vec<LogLine>, broadcast::Receiver<LogLine>) {
        let _guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let mut lines = Vec::new();
        if count > 0 {
            lines = read_lines(&self.path);
            if lines.len() < count {
                let mut older = read_lines(&self.rotated());
                older.append(&mut lines);
                lines = older;
            }
            let skip = lines.len().saturating_sub(count);
            lines.drain(..skip);
        }
        (lines, self.lines.subscribe())
    }

    /// Where the log is.
    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// The lines of a log file; a missing file has none.
fn read_lines(path: &Path) -> Vec<LogLine> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    String::from_utf8_lossy(&bytes)
        .lines()
        .map(|record| match record.split_once(' ') {
            Some((stamp, text)) => match humantime::parse_rfc3339(stamp) {
                Ok(timestamp) => LogLine {
                    timestamp,
                    text: text.to_owned(),
                },
                Err(_) => unstamped(record),
            },
            None => unstamped(record),
        })
        .collect()
}

fn unstamped(record: &str) -> LogLine {
    LogLine {
        timestamp: SystemTime::UNIX_EPOCH,
        text: record.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(lines: &[LogLine]) -> Vec<&str> {
        lines.iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn tails_the_last_lines_across_a_rotation_and_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogFile::new(dir.path().join("svc.log"), 200);
        for i in 0..100 {
            log.append(&format!("line {i}\n"));
        }
        let (lines, _) = log.tail(3);
        assert_eq!(texts(&lines), ["line 97", "line 98", "line 99"]);
        let on_disk = std::fs::metadata(log.path()).unwrap().len()
            + std::fs::metadata(log.rotated()).unwrap().len();
        assert!(on_disk < 3 * 200, "{on_disk} bytes kept");
        // Asking for more than the current file holds reaches into the rotated one.
        let (lines, _) = log.tail(8);
        assert_eq!(texts(&lines).last(), Some(&"line 99"));
        assert_eq!(lines.len(), 8);
    }

    #[tokio::test]
    async fn followers_get_only_lines_written_after_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogFile::new(dir.path().join("svc.log"), 1 << 20);
        log.append("before");
        let (lines, mut rx) = log.tail(10);
        assert_eq!(texts(&lines), ["before"]);
        log.append("after");
        assert_eq!(rx.recv().await.unwrap().text, "after");
        log.clear();
        assert!(log.tail(10).0.is_empty());
    }
}
