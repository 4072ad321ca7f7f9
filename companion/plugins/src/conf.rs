//! `plugins.conf`, upstream's plugin list, and the per-upload rule that enables plugins.
//!
//! Format, one plugin per line: `name,path,enabled,type,config_path,venv_path`.
//! `enabled` is 1 or 0, `type` 0 for Python and 1 for native; the last two fields are
//! optional. Lines starting with `#` are comments; blank lines are ignored. Limits as
//! upstream: 16 plugins, 512 characters a line, 63 a name, 255 a path. Relative paths are
//! taken relative to the directory holding `plugins.conf` (the data directory).
//!
//! Comments and blank lines are kept when the file is written back.

use serde::Serialize;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const MAX_PLUGINS: usize = 16;
pub const MAX_LINE: usize = 512;
pub const MAX_NAME: usize = 63;
pub const MAX_PATH: usize = 255;

/// Where `apply_upload` keeps the configuration files it copies, inside the data directory.
pub const CONF_DIR: &str = "conf";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    Python,
    Native,
}

/// One line of `plugins.conf`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PluginEntry {
    pub name: String,
    pub path: String,
    pub enabled: bool,
    pub kind: PluginKind,
    /// Empty when none.
    pub config_path: String,
    /// Empty when none (Python plugins only).
    pub venv_path: String,
}

impl PluginEntry {
    fn to_line(&self) -> String {
        let kind = match self.kind {
            PluginKind::Python => 0,
            PluginKind::Native => 1,
        };
        let mut line = format!("{},{},{},{}", self.name, self.path, self.enabled as u8, kind);
        if !self.config_path.is_empty() || !self.venv_path.is_empty() {
            line.push(',');
            line.push_str(&self.config_path);
        }
        if !self.venv_path.is_empty() {
            line.push(',');
            line.push_str(&self.venv_path);
        }
        line
    }
}

/// Why `plugins.conf` (or an upload) could not be used.
#[derive(Debug)]
pub struct ConfError {
    pub file: PathBuf,
    /// 1-based line number, when the problem is on one line.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(n) => write!(f, "{} line {n}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for ConfError {}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Line {
    /// A comment or blank line, kept verbatim.
    Text(String),
    Entry(PluginEntry),
}

/// The parsed file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PluginsConf {
    lines: Vec<Line>,
}

/// The upload rule's answer for one `conf/<name>.json` of the bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UploadedConfig {
    pub name: String,
    /// The copy in the data directory, which the plugin (or built-in) is configured with.
    pub config_path: PathBuf,
    /// Whether `plugins.conf` lists a plugin of that name. First-party plugins built into
    /// the companion are usually not listed; the companion starts those itself.
    pub listed: bool,
}

impl PluginsConf {
    /// Parses the text of `plugins.conf`; `file` is only used in error messages.
    pub fn parse(text: &str, file: &Path) -> Result<Self, ConfError> {
        let err = |line: usize, message: String| ConfError { file: file.to_path_buf(), line: Some(line), message };
        let mut lines = Vec::new();
        let mut count = 0;
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            if raw.chars().count() > MAX_LINE {
                return Err(err(
                    n,
                    format!("the line is {} characters long; at most {MAX_LINE} are allowed", raw.chars().count()),
                ));
            }
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                // Without the carriage returns `lines` leaves at the end (a file edited on
                // Windows): written back with '\n', they would be read as part of the line
                // ending, and each save would change the comment.
                lines.push(Line::Text(raw.trim_end_matches('\r').to_string()));
                continue;
            }
            let entry = parse_entry(trimmed).map_err(|m| err(n, m))?;
            count += 1;
            if count > MAX_PLUGINS {
                return Err(err(n, format!("more than {MAX_PLUGINS} plugins; remove or comment out some")));
            }
            let duplicate = lines.iter().any(|l| matches!(l, Line::Entry(e) if e.name == entry.name));
            if duplicate {
                return Err(err(n, format!("plugin {:?} is listed twice", entry.name)));
            }
            lines.push(Line::Entry(entry));
        }
        Ok(PluginsConf { lines })
    }

    /// Reads `path`; a missing file is an empty list.
    pub fn load(path: &Path) -> Result<Self, ConfError> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let text = String::from_utf8(bytes).map_err(|_| ConfError {
                    file: path.to_path_buf(),
                    line: None,
                    message: "not UTF-8 text".into(),
                })?;
                Self::parse(&text, path)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PluginsConf::default()),
            Err(e) => Err(ConfError { file: path.to_path_buf(), line: None, message: e.to_string() }),
        }
    }

    pub fn entries(&self) -> impl Iterator<Item = &PluginEntry> {
        self.lines.iter().filter_map(|l| match l {
            Line::Entry(e) => Some(e),
            Line::Text(_) => None,
        })
    }

    fn entries_mut(&mut self) -> impl Iterator<Item = &mut PluginEntry> {
        self.lines.iter_mut().filter_map(|l| match l {
            Line::Entry(e) => Some(e),
            Line::Text(_) => None,
        })
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            match line {
                Line::Text(t) => out.push_str(t),
                Line::Entry(e) => out.push_str(&e.to_line()),
            }
            out.push('\n');
        }
        out
    }

    /// Writes the file atomically: a temporary file in the same directory, fsync, rename,
    /// fsync of the directory.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        write_atomic(path, self.to_text().as_bytes())
    }
}

fn parse_entry(line: &str) -> Result<PluginEntry, String> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    if !(4..=6).contains(&fields.len()) {
        return Err(format!(
            "expected name,path,enabled,type[,config_path[,venv_path]] but found {} fields",
            fields.len()
        ));
    }
    let name = fields[0];
    check_name(name)?;
    let path = fields[1];
    if path.is_empty() {
        return Err("the path is empty".into());
    }
    check_path("path", path)?;
    let enabled = match fields[2] {
        "1" => true,
        "0" => false,
        other => return Err(format!("enabled must be 1 or 0, not {other:?}")),
    };
    let kind = match fields[3] {
        "0" => PluginKind::Python,
        "1" => PluginKind::Native,
        other => return Err(format!("type must be 0 (Python) or 1 (native), not {other:?}")),
    };
    let config_path = fields.get(4).copied().unwrap_or("");
    check_path("config_path", config_path)?;
    let venv_path = fields.get(5).copied().unwrap_or("");
    check_path("venv_path", venv_path)?;
    Ok(PluginEntry {
        name: name.into(),
        path: path.into(),
        enabled,
        kind,
        config_path: config_path.into(),
        venv_path: venv_path.into(),
    })
}

/// Names become file names (`conf/<name>.json`), so they are kept to a safe alphabet.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if name.len() > MAX_NAME {
        return Err(format!("the name {name:?} is longer than {MAX_NAME} characters"));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.') || name.starts_with('.')
    {
        return Err(format!("the name {name:?} may only hold letters, digits, '_', '-' and '.'"));
    }
    Ok(())
}

fn check_path(what: &str, path: &str) -> Result<(), String> {
    if path.len() > MAX_PATH {
        return Err(format!("{what} is {} bytes long; at most {MAX_PATH} are allowed", path.len()));
    }
    if path.contains('\0') {
        return Err(format!("{what} contains a NUL byte"));
    }
    Ok(())
}

/// Resolves a path from `plugins.conf` against the data directory.
pub fn resolve(data_dir: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() { p.to_path_buf() } else { data_dir.join(p) }
}

/// The per-upload rule (upstream §3.1 step 6): every `conf/<name>.json` in the bundle is
/// copied to `<data dir>/conf/<name>.json`; the plugin of that name is enabled with the copy
/// as its config path, every other plugin is disabled; without a `conf/` directory every
/// plugin is disabled. `plugins.conf` is written back atomically. Copies left from earlier
/// uploads are removed.
///
/// Returns the configuration of every name in the bundle's `conf/`, listed or not, so the
/// companion can start its built-in plugins with the same rule.
pub fn apply_upload(conf_path: &Path, bundle_root: &Path) -> Result<Vec<UploadedConfig>, ConfError> {
    let io_err =
        |file: &Path, e: std::io::Error| ConfError { file: file.to_path_buf(), line: None, message: e.to_string() };
    let mut conf = PluginsConf::load(conf_path)?;
    let data_dir = conf_path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let store = data_dir.join(CONF_DIR);
    let bundle_conf = bundle_root.join("conf");

    let mut uploaded = Vec::new();
    let is_dir = std::fs::symlink_metadata(&bundle_conf).map(|m| m.is_dir()).unwrap_or(false);
    if is_dir {
        let mut files: Vec<(String, PathBuf)> = Vec::new();
        for item in std::fs::read_dir(&bundle_conf).map_err(|e| io_err(&bundle_conf, e))? {
            let item = item.map_err(|e| io_err(&bundle_conf, e))?;
            let path = item.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
            if !meta.is_file() || path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(str::to_string) else { continue };
            if let Err(message) = check_name(&name) {
                return Err(ConfError { file: path, line: None, message });
            }
            files.push((name, path));
        }
        files.sort();
        std::fs::create_dir_all(&store).map_err(|e| io_err(&store, e))?;
        for (name, src) in &files {
            let dst = store.join(format!("{name}.json"));
            let dst = std::path::absolute(&dst).unwrap_or(dst);
            if dst.as_os_str().len() > MAX_PATH {
                return Err(ConfError {
                    file: dst,
                    line: None,
                    message: format!(
                        "the configuration path is longer than {MAX_PATH} bytes; use a shorter data directory"
                    ),
                });
            }
            let bytes = std::fs::read(src).map_err(|e| io_err(src, e))?;
            write_atomic(&dst, &bytes).map_err(|e| io_err(&dst, e))?;
            let listed = conf.entries().any(|e| &e.name == name);
            uploaded.push(UploadedConfig { name: name.clone(), config_path: dst, listed });
        }
    }

    for entry in conf.entries_mut() {
        match uploaded.iter().find(|u| u.name == entry.name) {
            Some(u) => {
                entry.enabled = true;
                entry.config_path = u.config_path.to_string_lossy().into_owned();
            }
            None => entry.enabled = false,
        }
    }
    remove_stale_copies(&store, &uploaded);
    if conf_path.exists() || conf.entries().next().is_some() {
        conf.save(conf_path).map_err(|e| io_err(conf_path, e))?;
    }
    Ok(uploaded)
}

/// Deletes `<store>/*.json` that this upload did not bring.
fn remove_stale_copies(store: &Path, keep: &[UploadedConfig]) {
    let Ok(items) = std::fs::read_dir(store) else { return };
    for item in items.flatten() {
        let path = item.path();
        let is_json = path.extension().and_then(|e| e.to_str()) == Some("json");
        let kept = keep.iter().any(|k| k.config_path.file_name() == path.file_name());
        if is_json && !kept {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Write, fsync, rename, fsync the directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PluginsConf, ConfError> {
        PluginsConf::parse(text, Path::new("plugins.conf"))
    }

    #[test]
    fn reads_comments_optional_fields_and_writes_back() {
        let text =
            "# plugins\n\na,./a.so,1,1\nb, ./b.py ,0,0,conf/b.json\n  # indented comment\nc,/x/c.py,1,0,,/venvs/c\n";
        let conf = parse(text).unwrap();
        let names: Vec<_> = conf.entries().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        let b = conf.entries().nth(1).unwrap();
        assert_eq!(
            (b.path.as_str(), b.enabled, b.kind, b.config_path.as_str()),
            ("./b.py", false, PluginKind::Python, "conf/b.json")
        );
        let c = conf.entries().nth(2).unwrap();
        assert_eq!((c.config_path.as_str(), c.venv_path.as_str()), ("", "/venvs/c"));
        let written = conf.to_text();
        assert_eq!(
            written,
            "# plugins\n\na,./a.so,1,1\nb,./b.py,0,0,conf/b.json\n  # indented comment\nc,/x/c.py,1,0,,/venvs/c\n"
        );
        assert_eq!(parse(&written).unwrap(), conf);
        // Carriage returns at the end of a comment (fuzz/regressions/plugins_conf/) do not
        // survive as part of it, so a save does not change the file again.
        let windows = parse("# plugins\r\r\na,./a.so,1,1\r\n#\r\r").unwrap();
        assert_eq!(windows.to_text(), "# plugins\na,./a.so,1,1\n#\n");
        assert_eq!(parse(&windows.to_text()).unwrap(), windows);
    }

    #[test]
    fn rejects_bad_lines_with_their_number() {
        let cases = [
            ("a,./a.so,1\n", 1, "fields"),
            ("# ok\na,./a.so,2,1\n", 2, "enabled must be 1 or 0"),
            ("a,./a.so,1,7\n", 1, "type must be 0"),
            ("a,,1,1\n", 1, "path is empty"),
            ("a,./a.so,1,1,c,v,extra\n", 1, "fields"),
            ("a b,./a.so,1,1\n", 1, "may only hold"),
            ("../x,./a.so,1,1\n", 1, "may only hold"),
            ("a,./a.so,1,1\na,./b.so,0,1\n", 2, "listed twice"),
        ];
        for (text, line, needle) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, Some(line), "{text:?}: {e}");
            assert!(e.to_string().contains(needle), "{text:?}: {e}");
            assert!(e.to_string().starts_with(&format!("plugins.conf line {line}:")), "{e}");
        }
    }

    #[test]
    fn enforces_upstream_limits() {
        let long_name = "n".repeat(MAX_NAME + 1);
        let e = parse(&format!("{long_name},./a.so,1,1\n")).unwrap_err();
        assert!(e.message.contains("longer than 63"), "{e}");
        assert!(parse(&format!("{},./a.so,1,1\n", "n".repeat(MAX_NAME))).is_ok());

        let long_path = format!("/{}", "p".repeat(MAX_PATH));
        let e = parse(&format!("a,{long_path},1,1\n")).unwrap_err();
        assert!(e.message.contains("at most 255"), "{e}");

        let long_line = format!("# {}", "x".repeat(MAX_LINE));
        let e = parse(&format!("a,./a.so,1,1\n{long_line}\n")).unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("at most 512"), "{e}");

        let sixteen: String = (0..16).map(|i| format!("p{i},./p{i}.so,0,1\n")).collect();
        assert_eq!(parse(&sixteen).unwrap().entries().count(), 16);
        let e = parse(&format!("{sixteen}# a comment does not count\np16,./p16.so,0,1\n")).unwrap_err();
        assert_eq!(e.line, Some(18));
        assert!(e.message.contains("more than 16 plugins"), "{e}");
    }

    #[test]
    fn a_missing_file_is_an_empty_list() {
        let dir = tempfile::tempdir().unwrap();
        let conf = PluginsConf::load(&dir.path().join("plugins.conf")).unwrap();
        assert_eq!(conf.entries().count(), 0);
    }
}
