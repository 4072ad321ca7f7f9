//! Facts about the machine this runtime runs on, for `GET /api/device-info` and the update
//! policy `GET /api/capabilities` publishes (upstream's `updatePolicy`).
//!
//! The runtime never updates itself; the policy only says who may change its version:
//! `OPENPLC_UPDATE_POLICY` (`self`, `managed`, `manual`, `none`; any case) wins, an unknown
//! value falls through to detection (a typo must never read as permission); in a container
//! the policy is `managed` (whatever made the container chose the image, which is the
//! version); otherwise `manual`.

use std::ffi::CStr;
use std::path::Path;

/// Port of upstream's update sidecar ("bootloader") when the policy is `self`.
pub const DEFAULT_BOOTLOADER_PORT: u16 = 8445;

/// Who may change this runtime's version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdatePolicy {
    /// The update sidecar owns the container and may replace the image.
    SelfManaged,
    /// Some other supervisor owns the container.
    Managed,
    /// A person with a shell owns the installation.
    Manual,
    /// Vendor-locked.
    None,
}

impl UpdatePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            UpdatePolicy::SelfManaged => "self",
            UpdatePolicy::Managed => "managed",
            UpdatePolicy::Manual => "manual",
            UpdatePolicy::None => "none",
        }
    }

    fn parse(text: &str) -> Option<UpdatePolicy> {
        match text.trim().to_ascii_lowercase().as_str() {
            "self" => Some(UpdatePolicy::SelfManaged),
            "managed" => Some(UpdatePolicy::Managed),
            "manual" => Some(UpdatePolicy::Manual),
            "none" => Some(UpdatePolicy::None),
            _ => None,
        }
    }

    /// The policy from an override (the environment's `OPENPLC_UPDATE_POLICY`) and whether
    /// the runtime is containerised.
    pub fn resolve(override_value: Option<&str>, containerized: bool) -> UpdatePolicy {
        match override_value.and_then(UpdatePolicy::parse) {
            Some(policy) => policy,
            None if containerized => UpdatePolicy::Managed,
            None => UpdatePolicy::Manual,
        }
    }

    /// The sidecar's port: only under `self` (nothing listens otherwise); a port override
    /// that is not a port falls back to the default rather than hiding a working sidecar.
    pub fn sidecar_port(self, override_value: Option<&str>) -> Option<u16> {
        if self != UpdatePolicy::SelfManaged {
            return None;
        }
        Some(
            override_value
                .and_then(|v| v.trim().parse::<u16>().ok())
                .filter(|&p| p != 0)
                .unwrap_or(DEFAULT_BOOTLOADER_PORT),
        )
    }
}

/// What does not change while the process runs: whether it is containerised, its update
/// policy and the sidecar's port, from this process's environment (read once).
#[derive(Clone, Copy, Debug)]
pub struct Deployment {
    pub containerized: bool,
    pub policy: UpdatePolicy,
    pub sidecar_port: Option<u16>,
}

pub fn deployment() -> Deployment {
    static ONCE: std::sync::OnceLock<Deployment> = std::sync::OnceLock::new();
    *ONCE.get_or_init(|| {
        let containerized = containerized(Path::new("/"));
        let policy = UpdatePolicy::resolve(std::env::var("OPENPLC_UPDATE_POLICY").ok().as_deref(), containerized);
        let port = std::env::var("OPENPLC_BOOTLOADER_PORT").or_else(|_| std::env::var("OPENPLC_SIDECAR_PORT")).ok();
        Deployment { containerized, policy, sidecar_port: policy.sidecar_port(port.as_deref()) }
    })
}

/// Whether this process runs in a container: Docker's `/.dockerenv`, Podman's
/// `/run/.containerenv`, the `container` variable systemd-nspawn, LXC and Podman set, or a
/// container runtime in PID 1's cgroup path (cgroup v1).
pub fn containerized(root: &Path) -> bool {
    if root.join(".dockerenv").exists() || root.join("run/.containerenv").exists() {
        return true;
    }
    if std::env::var_os("container").is_some_and(|v| !v.is_empty()) {
        return true;
    }
    std::fs::read_to_string(root.join("proc/1/cgroup"))
        .map(|text| ["docker", "kubepods", "containerd", "libpod", "lxc"].iter().any(|k| text.contains(k)))
        .unwrap_or(false)
}

/// `uname`'s machine, release and system name.
pub struct Uname {
    pub machine: String,
    pub release: String,
    pub sysname: String,
}

pub fn uname() -> Option<Uname> {
    // SAFETY: `utsname` is plain bytes, valid when zeroed; uname fills it and NUL-terminates
    // every field on success.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a writable utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return None;
    }
    let field = |f: &[libc::c_char]| {
        // SAFETY: uname NUL-terminates each field within its array.
        unsafe { CStr::from_ptr(f.as_ptr()) }.to_string_lossy().into_owned()
    };
    Some(Uname { machine: field(&u.machine), release: field(&u.release), sysname: field(&u.sysname) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_override_wins_and_a_typo_falls_through() {
        assert_eq!(UpdatePolicy::resolve(Some("  NONE "), false), UpdatePolicy::None);
        assert_eq!(UpdatePolicy::resolve(Some("self"), true), UpdatePolicy::SelfManaged);
        assert_eq!(UpdatePolicy::resolve(Some("yes-please"), true), UpdatePolicy::Managed);
        assert_eq!(UpdatePolicy::resolve(None, false), UpdatePolicy::Manual);
    }

    #[test]
    fn a_sidecar_port_only_under_self() {
        assert_eq!(UpdatePolicy::Manual.sidecar_port(Some("9445")), None);
        assert_eq!(UpdatePolicy::SelfManaged.sidecar_port(None), Some(8445));
        assert_eq!(UpdatePolicy::SelfManaged.sidecar_port(Some("9445")), Some(9445));
        for bad in ["x", "0", "70000", "-1"] {
            assert_eq!(UpdatePolicy::SelfManaged.sidecar_port(Some(bad)), Some(8445), "{bad}");
        }
    }

    #[test]
    fn container_markers_are_seen() {
        let root = tempfile::tempdir().unwrap();
        if std::env::var_os("container").is_none() {
            assert!(!containerized(root.path()), "an empty root is no container");
        }
        std::fs::write(root.path().join(".dockerenv"), "").unwrap();
        assert!(containerized(root.path()));
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("proc/1")).unwrap();
        std::fs::write(root.path().join("proc/1/cgroup"), "12:pids:/docker/abc\n").unwrap();
        assert!(containerized(root.path()));
    }

    #[test]
    fn uname_names_this_kernel() {
        let u = uname().unwrap();
        assert_eq!(u.sysname, "Linux");
        assert!(!u.machine.is_empty() && !u.release.is_empty());
    }
}
