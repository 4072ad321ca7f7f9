//! A real runtime for the deploy bench: the release companion on a fresh data directory,
//! port and shared memory, the rt-core it starts, a user; uploads over HTTPS timed from the
//! first byte of the request to the build's SUCCESS (which the companion reports only once
//! the program is loaded and running), polled on a keep-alive connection.
//!
//! Dropping it stops the companion, then rt-core (which outlives the companion by design;
//! signalled by pid, only if its command line names our shared memory).

use anyhow::{Context, Result, bail};
use hyper::Method;
use openplc_benches::https::{Api, Body, Conn};
use openplc_benches::process::{self, ChildGuard, wait_for};
use shared_abi::client::{Observer, Reader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const USER: &str = "bench";
const PASSWORD: &str = "bench-pass-123";

pub struct Runtime {
    api: Api,
    token: String,
    shm: String,
    dir: PathBuf,
    companion: Option<ChildGuard>,
    rt_pids: Vec<u32>,
    tokio: tokio::runtime::Runtime,
    /// How often the build's status is asked for.
    poll: Duration,
}

/// One upload, timed.
pub struct Deployed {
    /// From the first byte of the upload to SUCCESS, seen on the status poll.
    pub to_running: Duration,
    /// The companion's own account of it (`Deploy timings: ...`), parsed.
    pub timings: Vec<(String, f64)>,
    /// The build log's line about the build cache.
    pub cache_line: String,
}

impl Runtime {
    pub fn start(companion: &Path, rt_binary: &Path, dir: &Path, poll: Duration) -> Result<Runtime> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let shm = dir.join("shm").to_string_lossy().into_owned();
        let log = std::fs::File::create(dir.join("companion.log")).context("companion.log")?;
        let mut cmd = Command::new(companion);
        cmd.arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--shm", &shm])
            .arg("--rt-binary")
            .arg(rt_binary)
            .args(["--discovery-port", "0", "--first-user-from", "loopback"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let mut rt = Runtime {
            api: Api::new(port)?,
            token: String::new(),
            shm,
            dir: dir.to_path_buf(),
            companion: Some(ChildGuard::spawn("openplc-runtime", &mut cmd)?),
            rt_pids: Vec::new(),
            tokio,
            poll,
        };
        rt.bring_up().with_context(|| format!("starting the runtime (log: {})", rt.log_path().display()))?;
        Ok(rt)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("companion.log")
    }

    fn bring_up(&mut self) -> Result<()> {
        let api = self.api.clone();
        wait_for("the companion to answer", Duration::from_secs(30), || {
            self.tokio.block_on(api.once(Method::GET, "/api/version", None, None)).ok().filter(|r| r.status == 200)
        })?;
        let shm = self.shm.clone();
        let pid = wait_for("rt-core", Duration::from_secs(30), || {
            let s = Observer::open(&shm).ok()?.status();
            (s.rt_alive && s.rt_pid != 0).then_some(s.rt_pid)
        })?;
        self.rt_pids.push(pid);
        let user = serde_json::json!({ "username": USER, "password": PASSWORD, "role": "user" });
        let r = self.tokio.block_on(api.once(Method::POST, "/api/create-user", None, Some(Body::json(&user))))?;
        if r.status != 201 {
            bail!("create-user: HTTP {}: {}", r.status, r.text());
        }
        let login = serde_json::json!({ "username": USER, "password": PASSWORD });
        let r = self.tokio.block_on(api.once(Method::POST, "/api/login", None, Some(Body::json(&login))))?;
        self.token = r.ok_json("login")?["access_token"].as_str().context("login: no access_token")?.to_string();
        Ok(())
    }

    /// Uploads `zip` (`?clean=1` with `clean`) and waits until the program runs.
    pub fn deploy(&mut self, zip: &Path, clean: bool) -> Result<Deployed> {
        let data = std::fs::read(zip).with_context(|| zip.display().to_string())?;
        // Logins last 15 minutes: a fresh token for every upload keeps a long run going.
        self.refresh_token()?;
        let (api, token, poll) = (self.api.clone(), self.token.clone(), self.poll);
        let path = if clean { "/api/upload-file?clean=1" } else { "/api/upload-file" };
        let result = self.tokio.block_on(async move {
            let mut upload = api.connect().await?;
            let mut status = api.connect().await?;
            let started = Instant::now();
            let body = Body::multipart_file("file", "program.zip", "application/zip", &data);
            upload.send(Method::POST, path, Some(&token), Some(body)).await?.ok_json("upload-file")?;
            let build = loop {
                let s = ask(&mut status, "/api/compilation-status", &token).await?;
                if s["status"] != "COMPILING" {
                    break s;
                }
                tokio::time::sleep(poll).await;
            };
            let to_running = started.elapsed();
            if build["status"] != "SUCCESS" {
                bail!("the build failed: {build:#}");
            }
            let s = ask(&mut status, "/api/status", &token).await?;
            if s["status"] != "STATUS:RUNNING" {
                bail!("SUCCESS but the PLC is {}", s["status"]);
            }
            Ok::<_, anyhow::Error>((to_running, build))
        });
        let (to_running, build) = result?;
        let logs: Vec<String> =
            build["logs"].as_array().into_iter().flatten().filter_map(|l| l.as_str().map(str::to_string)).collect();
        let timings = logs
            .iter()
            .find_map(|l| l.strip_prefix("[INFO] Deploy timings: "))
            .map(parse_timings)
            .context("no Deploy timings line in the build log")?;
        let cache_line = logs
            .iter()
            .find(|l| l.contains("Build cache:") || l.contains("Clean build"))
            .map(|l| l.trim_start_matches("[INFO] ").to_string())
            .unwrap_or_default();
        Ok(Deployed { to_running, timings, cache_line })
    }

    /// Waits until the companion has made the precompiled header the last build lacked (its
    /// log says so), at most `timeout`; whether it did.
    pub fn wait_precompiled(&self, since_id: u64, timeout: Duration) -> Result<Option<String>> {
        let (api, token) = (self.api.clone(), self.token.clone());
        let deadline = Instant::now() + timeout;
        loop {
            let logs = self.tokio.block_on(api.once(
                Method::GET,
                &format!("/api/runtime-logs?id={since_id}"),
                Some(&token),
                None,
            ))?;
            let logs = logs.ok_json("runtime-logs")?;
            for entry in logs["runtime-logs"].as_array().into_iter().flatten() {
                let message = entry["message"].as_str().unwrap_or_default();
                if message.starts_with("Precompiled ") || message.starts_with("Could not precompile") {
                    return Ok(Some(message.to_string()));
                }
            }
            if Instant::now() > deadline {
                return Ok(None);
            }
            process::pause(Duration::from_millis(100))?;
        }
    }

    /// The id the runtime log's next entry will have.
    pub fn next_log_id(&self) -> Result<u64> {
        let r = self.tokio.block_on(self.api.once(Method::GET, "/api/runtime-logs", Some(&self.token), None))?;
        let logs = r.ok_json("runtime-logs")?;
        let last = logs["runtime-logs"].as_array().into_iter().flatten().filter_map(|e| e["id"].as_u64()).max();
        Ok(last.map_or(0, |id| id + 1))
    }

    fn refresh_token(&mut self) -> Result<()> {
        let login = serde_json::json!({ "username": USER, "password": PASSWORD });
        let r = self.tokio.block_on(self.api.once(Method::POST, "/api/login", None, Some(Body::json(&login))))?;
        self.token = r.ok_json("login")?["access_token"].as_str().context("login: no access_token")?.to_string();
        Ok(())
    }
}

async fn ask(conn: &mut Conn, path: &str, token: &str) -> Result<serde_json::Value> {
    Ok(conn.send(Method::GET, path, Some(token), None).await?.ok_json(path)?)
}

/// `extract 3.1 ms, detect 0.2 ms, build 120.5 ms (prepare 9.0 ms, ...), load and start 11.0
/// ms; total 134.6 ms` → `[("extract", 3.1), ...]`.
pub fn parse_timings(text: &str) -> Vec<(String, f64)> {
    text.replace(['(', ')', ';'], ",")
        .split(',')
        .filter_map(|part| {
            let words: Vec<&str> = part.split_whitespace().collect();
            match words.as_slice() {
                [name @ .., value, "ms"] if !name.is_empty() => Some((name.join(" "), value.parse().ok()?)),
                _ => None,
            }
        })
        .collect()
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Ok(o) = Observer::open(&self.shm) {
            let pid = o.status().rt_pid;
            if pid != 0 && !self.rt_pids.contains(&pid) {
                self.rt_pids.push(pid);
            }
        }
        if let Some(mut c) = self.companion.take() {
            c.stop(Duration::from_secs(5));
        }
        for &pid in &self.rt_pids {
            process::stop_foreign(pid, &self.shm, Duration::from_secs(3));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_deploy_timings_line() {
        let t = parse_timings(
            "extract 3.1 ms, detect 0.2 ms, build 120.5 ms (prepare 9.0 ms, cache lookup 1.0 ms, compile 50.0 ms), \
             load and start 11.0 ms; total 134.6 ms",
        );
        let names: Vec<&str> = t.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["extract", "detect", "build", "prepare", "cache lookup", "compile", "load and start", "total"]
        );
        assert_eq!(t[5].1, 50.0);
    }
}
