//! Settings: built-in defaults, then `settings.json` in the data directory, then the
//! command line (highest priority).

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What `X-OpenPLC-Runtime-Version` is set to when speaking to Editor ≤ 4.1.4 (it compares
/// the header, lower-cased, with the `v4` in the board name "OpenPLC Runtime v4").
pub const LEGACY_VERSION: &str = "v4";

/// The upstream release whose REST API this runtime implements, reported to Editor ≥ 4.2:
/// ≥ 4.1.0 unlocks uploads, ≥ 4.1.9 the user-management screen, 4.1.10 added
/// `/api/capabilities`. (Not ≥ 4.2.0: that would promise the `retain.conf` store.)
pub const CURRENT_VERSION: &str = "v4.1.10";

/// The oldest Editor whose programs this runtime accepts (MatIEC bundles of 4.0.x included).
pub const MIN_EDITOR_VERSION: &str = "4.0.0";

/// Which Editor generation the version reports are tuned for. The Editor's own checks
/// (see the README): ≤ 4.1.4 reads only the header of `GET /api/get-users-info` and wants
/// exactly `v4`; ≥ 4.2 compares only the header's major version on connect, and gates
/// uploads on `/api/capabilities` (`runtimeVersion`) or `/api/version` (`version`) ≥ 4.1.0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum EditorCompat {
    /// Header and `/api/version` say `v4`: Editor ≤ 4.1.4 (MatIEC bundles) connects, Editor
    /// ≥ 4.2 connects but refuses to upload ("upgrade the runtime").
    Legacy,
    /// Header and `/api/version` carry a 4.1.x release tag, as upstream 4.1.x does: for
    /// Editor ≥ 4.2 (STruC++ bundles); Editor ≤ 4.1.4 reports "Runtime Version Mismatch".
    Current,
    /// Header `v4` and `/api/version` 4.1.x: both generations connect and upload (the
    /// default).
    Dual,
}

impl EditorCompat {
    /// The `X-OpenPLC-Runtime-Version` header value.
    pub fn header_version(self) -> &'static str {
        match self {
            EditorCompat::Legacy | EditorCompat::Dual => LEGACY_VERSION,
            EditorCompat::Current => CURRENT_VERSION,
        }
    }

    /// What `/api/version`, `/api/capabilities` and discovery report.
    pub fn api_version(self) -> &'static str {
        match self {
            EditorCompat::Legacy => LEGACY_VERSION,
            EditorCompat::Current | EditorCompat::Dual => CURRENT_VERSION,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EditorCompat::Legacy => "legacy",
            EditorCompat::Current => "current",
            EditorCompat::Dual => "dual",
        }
    }
}

/// Who may create the first user without credentials (the Editor's "Create User" dialog
/// sends no token), while no user exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum FirstUserPolicy {
    /// Loopback and private networks (RFC 1918, link-local, IPv6 ULA): the default.
    Local,
    /// Only the machine itself (SSH tunnel, or `openplc-runtime add-user`).
    Loopback,
    /// Anyone who reaches the port (a fresh device on a trusted, isolated network).
    Any,
    /// Nobody: the first user is created with `openplc-runtime add-user`.
    None,
}

impl FirstUserPolicy {
    pub fn allows(self, peer: IpAddr) -> bool {
        let peer = canonical_ip(peer);
        match self {
            FirstUserPolicy::Any => true,
            FirstUserPolicy::None => false,
            FirstUserPolicy::Loopback => peer.is_loopback(),
            FirstUserPolicy::Local => is_local_network(peer),
        }
    }
}

/// An IPv4 peer seen through a dual-stack socket arrives as `::ffff:a.b.c.d`.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

fn is_local_network(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

#[derive(Parser, Debug, Default)]
#[command(
    name = "openplc-runtime",
    version,
    about = "OpenPLC runtime: HTTPS API for the OpenPLC Editor, program builder and supervisor of the real-time core (openplc-rt)"
)]
pub struct Cli {
    #[command(flatten)]
    pub opts: Options,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the API (the default).
    Serve,
    /// Create a user in the data directory while the runtime is stopped (for headless
    /// provisioning; the password is read from standard input).
    AddUser {
        #[arg(long)]
        username: String,
        #[arg(long, default_value = "admin")]
        role: String,
    },
    /// Tell a running openplc-rt to exit (the companion itself never stops it, so that it
    /// can be restarted or upgraded while the PLC keeps running).
    ShutdownRt,
}

#[derive(Args, Debug, Default, Clone)]
pub struct Options {
    /// Data directory (settings, users, TLS material, programs, logs).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// HTTPS port (the Editor always uses 8443).
    #[arg(long, global = true)]
    pub port: Option<u16>,
    /// Address to listen on.
    #[arg(long, global = true, value_name = "ADDR")]
    pub bind: Option<IpAddr>,
    /// PEM certificate chain to serve instead of the generated self-signed one.
    #[arg(long, global = true, value_name = "PEM", requires = "key")]
    pub cert: Option<PathBuf>,
    /// PEM private key for --cert.
    #[arg(long, global = true, value_name = "PEM", requires = "cert")]
    pub key: Option<PathBuf>,
    /// The real-time core binary (default: openplc-rt beside this executable).
    #[arg(long, global = true, value_name = "PATH")]
    pub rt_binary: Option<PathBuf>,
    /// CPU for rt-core's scan thread: auto (an isolated CPU if any), none, or a number.
    #[arg(long, global = true, value_name = "auto|none|N")]
    pub rt_cpu: Option<String>,
    /// SCHED_FIFO priority of rt-core's scan thread.
    #[arg(long, global = true)]
    pub rt_priority: Option<u32>,
    /// rt-core's watchdog: abort a scan longer than this many milliseconds.
    #[arg(long, global = true)]
    pub rt_watchdog_ms: Option<u64>,
    /// Shared-memory name (/dev/shm/NAME), or a path when it contains a slash. Default:
    /// openplc-rt-<hash of the data directory's path>, one rt-core per data directory.
    #[arg(long, global = true, value_name = "NAME")]
    pub shm: Option<String>,
    /// Start rt-core as this user (`openplc-rt run --user NAME`: it drops root keeping only
    /// what real time needs); for a companion that runs as root.
    #[arg(long, global = true, value_name = "NAME")]
    pub rt_user: Option<String>,
    /// rt-core is started and restarted by its own service (scripts/install's
    /// openplc-rt.service): attach to it, never start one.
    #[arg(long, global = true, value_name = "true|false")]
    pub rt_external: Option<bool>,
    /// Which Editor generation the version reports target (see the README).
    #[arg(long, global = true, value_enum)]
    pub editor_compat: Option<EditorCompat>,
    /// Where the first user may be created from without credentials.
    #[arg(long, global = true, value_enum)]
    pub first_user_from: Option<FirstUserPolicy>,
    /// UDP discovery port (OPENPLC_DISCOVER_V1); 0 turns discovery off.
    #[arg(long, global = true)]
    pub discovery_port: Option<u16>,
    /// C compiler for program builds (default: cc).
    #[arg(long, global = true)]
    pub cc: Option<String>,
    /// C++ compiler for program builds (default: c++).
    #[arg(long, global = true)]
    pub cxx: Option<String>,
    /// Parallel compiler jobs (default: as many as CPUs).
    #[arg(long, global = true)]
    pub build_jobs: Option<usize>,
    /// Size bound of the build cache (compiled units and precompiled headers, in the data
    /// directory's build-cache/), in MiB; 0 turns the cache off (default 256).
    #[arg(long, global = true, value_name = "MIB")]
    pub build_cache_mib: Option<u64>,
    /// Give up a build after this many seconds.
    #[arg(long, global = true)]
    pub build_timeout_s: Option<u64>,
    /// Compile uploads in the bubblewrap sandbox (default true; false lets an upload's
    /// compiler read every file this runtime can: not for a production device).
    #[arg(long, global = true, value_name = "true|false")]
    pub build_sandbox: Option<bool>,
    /// Keep RETAIN variables across restarts, written to the data directory at most every
    /// N seconds (1 to 3600) when they changed; 0 (the default) keeps none.
    #[arg(long, global = true, value_name = "SECONDS")]
    pub retain_flush_s: Option<u64>,
}

/// `settings.json`: every field optional; unknown keys are an error so a typo is noticed.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub port: Option<u16>,
    pub bind: Option<IpAddr>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub rt_binary: Option<PathBuf>,
    pub rt_cpu: Option<String>,
    pub rt_priority: Option<u32>,
    pub rt_watchdog_ms: Option<u64>,
    pub shm: Option<String>,
    pub rt_user: Option<String>,
    pub rt_external: Option<bool>,
    pub editor_compat: Option<EditorCompat>,
    pub first_user_from: Option<FirstUserPolicy>,
    pub discovery_port: Option<u16>,
    pub cc: Option<String>,
    pub cxx: Option<String>,
    pub build_jobs: Option<usize>,
    pub build_cache_mib: Option<u64>,
    pub build_timeout_s: Option<u64>,
    pub build_sandbox: Option<bool>,
    pub retain_flush_s: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub port: u16,
    pub bind: IpAddr,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub rt_binary: PathBuf,
    pub rt_cpu: shared_abi::layout::CpuChoice,
    pub rt_priority: Option<u32>,
    pub rt_watchdog_ms: Option<u64>,
    pub shm: String,
    /// The account rt-core runs as, when the companion starts it as root.
    pub rt_user: Option<String>,
    /// rt-core is managed by its own service: never started by the companion.
    pub rt_external: bool,
    pub editor_compat: EditorCompat,
    pub first_user_from: FirstUserPolicy,
    pub discovery_port: u16,
    pub cc: Option<String>,
    pub cxx: Option<String>,
    pub build_jobs: Option<usize>,
    /// Bound of the build cache in bytes; 0: no cache.
    pub build_cache_bytes: u64,
    pub build_timeout: Duration,
    /// Whether uploads compile in the sandbox.
    pub build_sandbox: bool,
    /// How often RETAIN values are written when they changed; `None`: retain is off.
    pub retain_flush: Option<Duration>,
}

pub const DEFAULT_PORT: u16 = 8443;
pub const DEFAULT_DISCOVERY_PORT: u16 = 33333;
pub const SETTINGS_FILE: &str = "settings.json";
/// The build cache's default bound: a few STruC++ precompiled runtimes (about 40 MiB each)
/// and thousands of compiled units.
pub const DEFAULT_BUILD_CACHE_MIB: u64 = 256;

impl Settings {
    /// Resolves the settings for `opts`, reading `settings.json` from the data directory.
    pub fn resolve(opts: &Options) -> anyhow::Result<Settings> {
        let data_dir = match &opts.data_dir {
            Some(d) => d.clone(),
            None => std::env::current_dir()?.join("data"),
        };
        let file = load_file(&data_dir.join(SETTINGS_FILE))?;
        let rt_binary = match opts.rt_binary.clone().or(file.rt_binary) {
            Some(p) => p,
            None => default_rt_binary(),
        };
        let (cert, key) = match (&opts.cert, &opts.key) {
            (Some(c), Some(k)) => (Some(c.clone()), Some(k.clone())),
            _ => (file.cert, file.key),
        };
        let retain_flush_s = opts.retain_flush_s.or(file.retain_flush_s).unwrap_or(0);
        if retain_flush_s > 3600 {
            anyhow::bail!("retain_flush_s must be 0 (off) or 1 to 3600 seconds, not {retain_flush_s}");
        }
        let rt_cpu_text = opts.rt_cpu.clone().or(file.rt_cpu).unwrap_or_else(|| "auto".into());
        let rt_cpu: shared_abi::layout::CpuChoice =
            rt_cpu_text.parse().map_err(|e| anyhow::anyhow!("rt_cpu {rt_cpu_text:?}: {e}"))?;
        if cert.is_some() != key.is_some() {
            anyhow::bail!("a certificate needs its key: set both `cert` and `key` in {SETTINGS_FILE}");
        }
        Ok(Settings {
            port: opts.port.or(file.port).unwrap_or(DEFAULT_PORT),
            bind: opts.bind.or(file.bind).unwrap_or(IpAddr::from([0, 0, 0, 0])),
            cert: cert.map(|p| absolute_in(&data_dir, p)),
            key: key.map(|p| absolute_in(&data_dir, p)),
            rt_binary,
            rt_cpu,
            rt_priority: opts.rt_priority.or(file.rt_priority),
            rt_watchdog_ms: opts.rt_watchdog_ms.or(file.rt_watchdog_ms),
            shm: opts.shm.clone().or(file.shm).unwrap_or_else(|| shared_abi::shm::name_for_data_dir(&data_dir)),
            rt_user: opts.rt_user.clone().or(file.rt_user).filter(|u| !u.is_empty()),
            rt_external: opts.rt_external.or(file.rt_external).unwrap_or(false),
            editor_compat: opts.editor_compat.or(file.editor_compat).unwrap_or(EditorCompat::Dual),
            first_user_from: opts.first_user_from.or(file.first_user_from).unwrap_or(FirstUserPolicy::Local),
            discovery_port: opts.discovery_port.or(file.discovery_port).unwrap_or(DEFAULT_DISCOVERY_PORT),
            cc: opts.cc.clone().or(file.cc),
            cxx: opts.cxx.clone().or(file.cxx),
            build_jobs: opts.build_jobs.or(file.build_jobs),
            build_cache_bytes: opts
                .build_cache_mib
                .or(file.build_cache_mib)
                .unwrap_or(DEFAULT_BUILD_CACHE_MIB)
                .saturating_mul(1 << 20),
            build_timeout: Duration::from_secs(opts.build_timeout_s.or(file.build_timeout_s).unwrap_or(600)),
            build_sandbox: opts.build_sandbox.or(file.build_sandbox).unwrap_or(true),
            retain_flush: (retain_flush_s > 0).then(|| Duration::from_secs(retain_flush_s)),
            data_dir,
        })
    }
}

fn load_file(path: &Path) -> anyhow::Result<FileSettings> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FileSettings::default()),
        Err(e) => Err(anyhow::anyhow!("{}: {e}", path.display())),
    }
}

/// Relative paths in the settings file are relative to the data directory.
fn absolute_in(base: &Path, p: PathBuf) -> PathBuf {
    if p.is_absolute() { p } else { base.join(p) }
}

fn default_rt_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("openplc-rt")))
        .unwrap_or_else(|| PathBuf::from("openplc-rt"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_beats_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(SETTINGS_FILE),
            r#"{"port": 9443, "editor_compat": "legacy", "discovery_port": 0}"#,
        )
        .unwrap();
        let opts = Options { data_dir: Some(dir.path().into()), port: Some(10443), ..Default::default() };
        let s = Settings::resolve(&opts).unwrap();
        assert_eq!(s.port, 10443);
        assert_eq!(s.editor_compat, EditorCompat::Legacy);
        assert_eq!(s.discovery_port, 0);
        assert_eq!(s.first_user_from, FirstUserPolicy::Local);
        assert_eq!(s.rt_cpu, shared_abi::layout::CpuChoice::Auto);
        assert!(s.build_sandbox, "uploads compile in the sandbox unless told otherwise");
        assert_eq!((s.rt_user.as_deref(), s.rt_external), (None, false), "the companion starts rt-core as itself");

        let bare = tempfile::tempdir().unwrap();
        let opts = Options { data_dir: Some(bare.path().into()), ..Default::default() };
        assert_eq!(Settings::resolve(&opts).unwrap().editor_compat, EditorCompat::Dual, "both Editor generations");
    }

    #[test]
    fn the_shared_memory_is_named_after_the_data_directory_unless_set() {
        let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let resolve = |dir: &Path, shm: Option<&str>| {
            let opts = Options { data_dir: Some(dir.into()), shm: shm.map(String::from), ..Default::default() };
            Settings::resolve(&opts).unwrap().shm
        };
        let name = resolve(one.path(), None);
        assert_eq!(name, shared_abi::shm::name_for_data_dir(one.path()));
        assert_ne!(name, resolve(two.path(), None), "two installations, two rt-cores");
        assert_ne!(name, shared_abi::shm::DEFAULT_NAME);
        std::fs::write(one.path().join(SETTINGS_FILE), r#"{"shm": "from-file"}"#).unwrap();
        assert_eq!(resolve(one.path(), None), "from-file");
        assert_eq!(resolve(one.path(), Some("from-cli")), "from-cli", "the command line still wins");
    }

    #[test]
    fn a_cpu_choice_that_openplc_rt_would_refuse_is_refused_at_load() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SETTINGS_FILE), r#"{"rt_cpu": "cpu1"}"#).unwrap();
        let opts = Options { data_dir: Some(dir.path().into()), ..Default::default() };
        let err = Settings::resolve(&opts).unwrap_err().to_string();
        assert!(err.contains("rt_cpu") && err.contains("auto, none or a CPU number"), "{err}");
        std::fs::write(dir.path().join(SETTINGS_FILE), r#"{"rt_cpu": "1"}"#).unwrap();
        assert_eq!(Settings::resolve(&opts).unwrap().rt_cpu, shared_abi::layout::CpuChoice::Cpu(1));
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SETTINGS_FILE), r#"{"prot": 9443}"#).unwrap();
        let opts = Options { data_dir: Some(dir.path().into()), ..Default::default() };
        assert!(Settings::resolve(&opts).is_err());
    }

    #[test]
    fn first_user_policy_by_address() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let local = FirstUserPolicy::Local;
        assert!(local.allows(ip("127.0.0.1")));
        assert!(local.allows(ip("192.168.1.20")));
        assert!(local.allows(ip("10.1.2.3")));
        assert!(local.allows(ip("::ffff:172.16.0.9")));
        assert!(local.allows(ip("fe80::1")));
        assert!(local.allows(ip("fd00::5")));
        assert!(!local.allows(ip("8.8.8.8")));
        assert!(!local.allows(ip("2001:db8::1")));
        assert!(FirstUserPolicy::Loopback.allows(ip("::1")));
        assert!(!FirstUserPolicy::Loopback.allows(ip("192.168.1.20")));
        assert!(!FirstUserPolicy::None.allows(ip("127.0.0.1")));
        assert!(FirstUserPolicy::Any.allows(ip("8.8.8.8")));
    }

    #[test]
    fn dual_mode_satisfies_both_generations() {
        assert_eq!(EditorCompat::Dual.header_version(), "v4");
        assert_eq!(EditorCompat::Dual.api_version(), CURRENT_VERSION);
        assert_eq!(EditorCompat::Legacy.api_version(), "v4");
        assert_eq!(EditorCompat::Current.header_version(), CURRENT_VERSION);
    }
}
