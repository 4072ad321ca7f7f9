//! A full disk during an upload, end to end: the data directory is a small tmpfs of its own
//! (mounted by the test: it runs as root, as CI does), filled so that the device runs out of
//! space while the upload is received, while it is unzipped, and while the built library is
//! written. Each time the answer says "no space left on the device", nothing of the failed
//! upload stays on the device, and the last good program keeps running; once space is free
//! again the same upload deploys.

mod common;

use common::{Runtime, demo_bundle, rewrite_zip, wait_for};
use serde_json::Value;
use shared_abi::client::{Observer, Reader};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const PAGE: u64 = 4096;

/// A tmpfs mounted for the test; lazily unmounted when dropped (before the runtime that
/// uses it is stopped, so it never blocks).
struct Tmpfs {
    at: PathBuf,
}

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(unsafe { libc::geteuid() }, 0, "mounting a tmpfs needs root: run the tests as root (CI does)");
        fs::create_dir_all(at).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0750"), "oplc-disk-full"])
            .arg(at)
            .output()
            .expect("run mount");
        assert!(out.status.success(), "mount -t tmpfs failed: {}", String::from_utf8_lossy(&out.stderr));
        Tmpfs { at: at.to_path_buf() }
    }

    /// Bytes still free.
    fn available(&self) -> u64 {
        let path = std::ffi::CString::new(self.at.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: statvfs is plain data; all-zero is valid and the call overwrites it.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: a NUL-terminated path and a statvfs we own.
        assert_eq!(unsafe { libc::statvfs(path.as_ptr(), &mut st) }, 0, "statvfs");
        st.f_bavail * st.f_frsize
    }

    /// Fills the file system so that about `leave` bytes stay free.
    fn leave_free(&self, leave: u64) {
        let filler = self.at.join("filler");
        let _ = fs::remove_file(&filler);
        let mut left = self.available().saturating_sub(leave) / PAGE * PAGE;
        let mut file = fs::File::create(&filler).expect("filler");
        let chunk = vec![0x5a_u8; 64 * 1024];
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            file.write_all(&chunk[..n]).expect("fill");
            left -= n as u64;
        }
        file.sync_all().expect("sync filler");
    }

    fn free_all(&self) {
        let _ = fs::remove_file(self.at.join("filler"));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

/// Bytes a file of `len` takes on a tmpfs.
fn pages(len: u64) -> u64 {
    len.div_ceil(PAGE) * PAGE
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

fn program_md5(rt: &Runtime) -> String {
    let obs = Observer::open(rt.shm.to_str().expect("utf-8")).expect("observe");
    obs.program_info().expect("program info").md5_str().unwrap_or_default().to_string()
}

#[test]
fn a_full_disk_during_upload_says_so_leaves_nothing_and_keeps_the_program_running() {
    let mut rt = Runtime::prepared(&[]);
    let tmpfs = Tmpfs::mount(&rt.data_dir(), "16m");
    rt.spawn_companion();
    let token = rt.bootstrap("admin", "admin-pass");
    let good = rt.dir.path().join("good.zip");
    demo_bundle(&good, &["--period-ms", "10"]);
    assert_eq!(rt.upload(&good, &token).status, 200);
    assert_eq!(rt.wait_build(&token)["status"], "SUCCESS");
    rt.wait_status(&token, "STATUS:RUNNING");
    let running = program_md5(&rt);

    // A bigger upload: a megabyte of header nobody includes, and a library made large by a
    // constant table, so each step needs clearly more room than the one before.
    let demo = rt.dir.path().join("demo-20ms.zip");
    demo_bundle(&demo, &["--period-ms", "20"]);
    let big = rt.dir.path().join("big.zip");
    let padding = format!("/* {} */\n", "padding ".repeat(128 * 1024));
    rewrite_zip(
        &demo,
        &big,
        |name, d| {
            Some(if name == "c_blocks_code.cpp" {
                [&d[..], b"\nextern \"C\" { extern const char oplc_ballast[]; const char oplc_ballast[768 * 1024] = {1}; }\n"].concat()
            } else {
                d
            })
        },
        &[("lib/padding.h", padding.into_bytes(), zip::CompressionMethod::Stored)],
    );
    let zip_bytes = pages(fs::metadata(&big).expect("zip").len());
    let mut archive = zip::ZipArchive::new(fs::File::open(&big).expect("zip")).expect("zip");
    let extracted: u64 = (0..archive.len()).map(|i| pages(archive.by_index(i).expect("entry").size())).sum();
    // The library is as large as the ballast and the demo's code: at least 768 KiB.
    let library = 768 * 1024;

    let data = rt.data_dir();
    let uploads_before = names(&data.join("uploads"));
    let programs_before = names(&data.join("programs"));
    let still_running = |rt: &Runtime, when: &str| {
        assert_eq!(rt.status(&token), "STATUS:RUNNING", "{when}");
        assert_eq!(program_md5(rt), running, "{when}: the last good program still runs");
        let before = rt.scan_count(&token);
        wait_for("the program to keep scanning", Duration::from_secs(10), || {
            (rt.scan_count(&token) > before).then_some(())
        });
        assert_eq!(names(&data.join("uploads")), uploads_before, "{when}: no upload left behind");
        assert_eq!(names(&data.join("programs")), programs_before, "{when}: no program folder left behind");
    };
    let build_failed_with = |rt: &Runtime, expect: &[&str]| -> Value {
        let build = rt.wait_build(&token);
        assert_eq!(build["status"], "FAILED", "{build:#}");
        let logs = build["logs"].to_string();
        for e in expect {
            assert!(logs.contains(e), "{e:?} in {logs}");
        }
        build
    };

    // 1. While the upload is received: 507 and the words, no partial zip.
    tmpfs.leave_free(zip_bytes / 2);
    let r = rt.upload(&big, &token);
    assert_eq!(r.status, 507, "{r:?}");
    assert!(r.body.contains("no space left on the device: saving the upload"), "{}", r.body);
    still_running(&rt, "full while receiving");

    // 2. While it is unzipped.
    tmpfs.leave_free(zip_bytes + extracted / 2);
    assert_eq!(rt.upload(&big, &token).status, 200);
    build_failed_with(
        &rt,
        &["Could not extract the upload: no space left on the device", "previous program is still loaded"],
    );
    still_running(&rt, "full while unzipping");

    // 3. While the built library is written into the program's folder.
    tmpfs.leave_free(zip_bytes + extracted + library / 2);
    assert_eq!(rt.upload(&big, &token).status, 200);
    let build = build_failed_with(&rt, &["no space left on the device: writing the program library"]);
    assert!(build["logs"].to_string().contains("Compiling"), "this time it got as far as compiling: {build:#}");
    still_running(&rt, "full while writing the library");

    // Room again: the same upload deploys.
    tmpfs.free_all();
    assert_eq!(rt.upload(&big, &token).status, 200);
    let build = rt.wait_build(&token);
    assert_eq!(build["status"], "SUCCESS", "{build:#}");
    rt.wait_status(&token, "STATUS:RUNNING");
    wait_for("the new program to run", Duration::from_secs(10), || (program_md5(&rt) != running).then_some(()));
    drop(tmpfs);
}
