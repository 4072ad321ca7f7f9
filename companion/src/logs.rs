//! The runtime log: one sequence of entries with monotonic ids, fed by the companion and by
//! rt-core's events and log lines, served by `GET /api/runtime-logs` and written to
//! `logs/runtime.log` (JSON lines, rotated).
//!
//! Logging never waits: the file is written by its own thread and a full queue drops the
//! line (counted) rather than holding up a request handler or the PLC pump.
//!
//! A restarted companion reloads the newest entries from the file and carries on numbering
//! after them: an Editor polling `?id=<last seen + 1>` across the restart neither misses new
//! lines nor sees old ones again.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

/// Entries kept in memory (the Editor keeps at most 1000 itself).
pub const MEMORY_ENTRIES: usize = 2000;
/// Longest message kept; longer ones are cut.
const MAX_MESSAGE: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Level {
    #[serde(rename = "DEBUG")]
    Debug,
    #[serde(rename = "INFO")]
    Info,
    #[serde(rename = "WARNING")]
    Warning,
    #[serde(rename = "ERROR")]
    Error,
}

/// The one mapping from rt-core's (and the port's) levels.
impl From<shared_abi::msg::LogLevel> for Level {
    fn from(level: shared_abi::msg::LogLevel) -> Level {
        use shared_abi::msg::LogLevel;
        match level {
            LogLevel::Debug => Level::Debug,
            LogLevel::Info => Level::Info,
            LogLevel::Warning => Level::Warning,
            LogLevel::Error => Level::Error,
        }
    }
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        match s.to_ascii_uppercase().as_str() {
            "DEBUG" => Some(Level::Debug),
            "INFO" => Some(Level::Info),
            "WARNING" | "WARN" => Some(Level::Warning),
            "ERROR" => Some(Level::Error),
            _ => None,
        }
    }
}

/// One entry as `/api/runtime-logs` returns it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LogEntry {
    pub id: u64,
    pub timestamp: String,
    pub level: Level,
    pub message: String,
}

pub struct LogHub {
    inner: Mutex<Inner>,
    file: Option<SyncSender<String>>,
    dropped: AtomicU64,
}

struct Inner {
    next_id: u64,
    entries: VecDeque<LogEntry>,
}

/// Where and how much the file log keeps.
pub struct FileLog {
    pub path: PathBuf,
    pub max_bytes: u64,
    pub keep: usize,
}

impl LogHub {
    /// A hub that only keeps entries in memory (tests, tools).
    pub fn in_memory() -> LogHub {
        LogHub {
            inner: Mutex::new(Inner { next_id: 1, entries: VecDeque::new() }),
            file: None,
            dropped: AtomicU64::new(0),
        }
    }

    /// A hub that also appends to `file.path`, rotating it at `file.max_bytes`.
    pub fn with_file(file: FileLog) -> std::io::Result<LogHub> {
        if let Some(dir) = file.path.parent() {
            fs::create_dir_all(dir)?;
        }
        let history = read_history(&file);
        let (tx, rx) = sync_channel::<String>(4096);
        let mut writer = RotatingFile::open(file)?;
        std::thread::Builder::new().name("log-writer".into()).spawn(move || {
            while let Ok(line) = rx.recv() {
                writer.write_line(&line);
            }
        })?;
        let mut hub = LogHub::in_memory();
        hub.file = Some(tx);
        {
            let inner = hub.inner.get_mut().unwrap_or_else(|p| p.into_inner());
            inner.next_id = history.back().map_or(1, |e| e.id + 1);
            inner.entries = history;
        }
        Ok(hub)
    }

    /// Adds an entry. Control, formatting and invisible characters other than newlines
    /// and tabs are written as `\u{…}`: a message that embeds someone's input (a plugin's
    /// text, a program's log line) cannot hide, reorder or recolour what follows it.
    pub fn log(&self, level: Level, message: impl Into<String>) {
        let mut message: String = message.into();
        if let std::borrow::Cow::Owned(escaped) = crate::text::escape_hidden(&message, &['\n', '\t']) {
            message = escaped;
        }
        if message.len() > MAX_MESSAGE {
            let mut end = MAX_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        match level {
            Level::Debug => tracing::debug!(target: "runtime", "{message}"),
            Level::Info => tracing::info!(target: "runtime", "{message}"),
            Level::Warning => tracing::warn!(target: "runtime", "{message}"),
            Level::Error => tracing::error!(target: "runtime", "{message}"),
        }
        let entry = {
            let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            let entry = LogEntry {
                id: inner.next_id,
                timestamp: crate::timefmt::iso8601(crate::timefmt::unix_now()),
                level,
                message,
            };
            inner.next_id += 1;
            if inner.entries.len() == MEMORY_ENTRIES {
                inner.entries.pop_front();
            }
            inner.entries.push_back(entry.clone());
            entry
        };
        if let Some(tx) = &self.file {
            let line = serde_json::to_string(&entry).unwrap_or_default();
            if let Err(TrySendError::Full(_)) = tx.try_send(line) {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn debug(&self, m: impl Into<String>) {
        self.log(Level::Debug, m)
    }
    pub fn info(&self, m: impl Into<String>) {
        self.log(Level::Info, m)
    }
    pub fn warn(&self, m: impl Into<String>) {
        self.log(Level::Warning, m)
    }
    pub fn error(&self, m: impl Into<String>) {
        self.log(Level::Error, m)
    }

    /// Entries with `id >= min_id` (upstream's filter; the Editor asks for last seen + 1),
    /// optionally only those of one level.
    pub fn since(&self, min_id: u64, level: Option<Level>) -> Vec<LogEntry> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.entries.iter().filter(|e| e.id >= min_id && level.is_none_or(|l| e.level == l)).cloned().collect()
    }

    /// Lines the file writer could not keep up with.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

struct RotatingFile {
    cfg: FileLog,
    file: Option<File>,
    size: u64,
}

impl RotatingFile {
    fn open(cfg: FileLog) -> std::io::Result<RotatingFile> {
        let file = OpenOptions::new().create(true).append(true).open(&cfg.path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile { cfg, file: Some(file), size })
    }

    fn write_line(&mut self, line: &str) {
        if self.size + line.len() as u64 + 1 > self.cfg.max_bytes && self.size > 0 {
            self.rotate();
        }
        if let Some(f) = &mut self.file
            && writeln!(f, "{line}").is_ok()
        {
            self.size += line.len() as u64 + 1;
        }
    }

    fn rotate(&mut self) {
        self.file = None;
        let numbered = |n: usize| -> PathBuf {
            let mut p = self.cfg.path.as_os_str().to_owned();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        let _ = fs::remove_file(numbered(self.cfg.keep));
        for n in (1..self.cfg.keep).rev() {
            let _ = fs::rename(numbered(n), numbered(n + 1));
        }
        if self.cfg.keep > 0 {
            let _ = fs::rename(&self.cfg.path, numbered(1));
        } else {
            let _ = fs::remove_file(&self.cfg.path);
        }
        self.file = OpenOptions::new().create(true).append(true).open(&self.cfg.path).ok();
        self.size = 0;
    }
}

/// The newest entries (at most [`MEMORY_ENTRIES`]) of the current file and, when it holds
/// fewer, of the rotated ones, oldest first. Lines that do not parse are skipped; ids only
/// ever grow, so a line out of order (a hand-edited file) is dropped too.
fn read_history(file: &FileLog) -> VecDeque<LogEntry> {
    let mut newest_first: Vec<LogEntry> = Vec::new();
    let paths = std::iter::once(file.path.clone()).chain((1..=file.keep).map(|n| {
        let mut p = file.path.as_os_str().to_owned();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    }));
    for path in paths {
        // Rotation bounds each file, so reading one whole is bounded too.
        let Ok(text) = fs::read_to_string(&path) else { continue };
        for line in text.lines().rev() {
            let Ok(entry) = serde_json::from_str::<LogEntry>(line) else { continue };
            if newest_first.last().is_none_or(|newer| entry.id < newer.id) {
                newest_first.push(entry);
            }
            if newest_first.len() == MEMORY_ENTRIES {
                return newest_first.into_iter().rev().collect();
            }
        }
    }
    newest_first.into_iter().rev().collect()
}

/// The runtime log file inside a data directory.
pub fn runtime_log_path(data_dir: &Path) -> PathBuf {
    data_dir.join("logs").join("runtime.log")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_monotonic_and_filter_by_min_id_and_level() {
        let hub = LogHub::in_memory();
        hub.info("one");
        hub.error("two");
        hub.info("three");
        let all = hub.since(0, None);
        assert_eq!(all.iter().map(|e| e.id).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(hub.since(3, None).len(), 1);
        assert!(hub.since(4, None).is_empty());
        let errors = hub.since(0, Some(Level::Error));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].message, "two");
        let json = serde_json::to_value(&all[1]).unwrap();
        assert_eq!(json["level"], "ERROR");
        assert!(json["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn hidden_characters_are_escaped_but_lines_kept() {
        let hub = LogHub::in_memory();
        hub.warn("Failed login for adm\u{202e}nimda\u{1b}[2J\ntraceback line");
        assert_eq!(hub.since(0, None)[0].message, "Failed login for adm\\u{202e}nimda\\u{1b}[2J\ntraceback line");
    }

    #[test]
    fn memory_is_bounded() {
        let hub = LogHub::in_memory();
        for i in 0..(MEMORY_ENTRIES + 5) {
            hub.debug(format!("{i}"));
        }
        let all = hub.since(0, None);
        assert_eq!(all.len(), MEMORY_ENTRIES);
        assert_eq!(all[0].id, 6);
    }

    /// Waits for the writer thread to have put `n` lines into `path`.
    fn await_lines(path: &Path, n: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while fs::read_to_string(path).map_or(0, |t| t.lines().count()) < n {
            assert!(std::time::Instant::now() < deadline, "the log writer wrote fewer than {n} lines");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[test]
    fn a_restarted_hub_continues_the_ids_and_keeps_the_history() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs").join("runtime.log");
        let file = || FileLog { path: path.clone(), max_bytes: 1 << 20, keep: 2 };
        let first = LogHub::with_file(file()).unwrap();
        first.info("one");
        first.error("two");
        first.info("three");
        drop(first);
        await_lines(&path, 3);
        fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"not json\n").unwrap();

        let second = LogHub::with_file(file()).unwrap();
        let kept = second.since(0, None);
        assert_eq!(
            kept.iter().map(|e| (e.id, e.message.as_str())).collect::<Vec<_>>(),
            [(1, "one"), (2, "two"), (3, "three")]
        );
        assert_eq!(kept[1].level, Level::Error);
        second.info("four");
        assert_eq!(second.since(4, None).iter().map(|e| e.id).collect::<Vec<_>>(), [4]);
    }

    #[test]
    fn history_spans_rotated_files_newest_last() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runtime.log");
        let file = || FileLog { path: path.clone(), max_bytes: 400, keep: 3 };
        let first = LogHub::with_file(file()).unwrap();
        for i in 1..=40 {
            first.info(format!("entry {i}"));
        }
        drop(first);
        // The last line written is entry 40, wherever rotation left it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !fs::read_to_string(&path).unwrap_or_default().contains("entry 40\"") {
            assert!(std::time::Instant::now() < deadline);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let second = LogHub::with_file(file()).unwrap();
        let ids: Vec<u64> = second.since(0, None).iter().map(|e| e.id).collect();
        assert!(ids.len() > 3 && ids.len() < 40, "three small files keep some, not all: {ids:?}");
        assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "consecutive, oldest first: {ids:?}");
        assert_eq!(ids.last(), Some(&40));
        second.info("next");
        assert_eq!(second.since(41, None).len(), 1);
    }

    #[test]
    fn file_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runtime.log");
        let mut f = RotatingFile::open(FileLog { path: path.clone(), max_bytes: 100, keep: 2 }).unwrap();
        for i in 0..20 {
            f.write_line(&format!("line number {i:04} padded to some length"));
        }
        assert!(path.exists());
        assert!(dir.path().join("runtime.log.1").exists());
        assert!(dir.path().join("runtime.log.2").exists());
        assert!(!dir.path().join("runtime.log.3").exists());
        assert!(fs::metadata(&path).unwrap().len() <= 100);
    }
}
