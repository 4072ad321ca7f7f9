//! A real headless Chromium for the monitor's tests: Debian's `chromium`, driven over
//! WebDriver by Debian's `chromedriver` (started here on a free port, killed on drop) with
//! the fantoccini client. Chromium runs with a fresh profile and without any of its own
//! background traffic, with the network and console logs on, so a test can tell every
//! request the page made and every message it printed.

#![allow(dead_code)]

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::future::Future;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The sizes every view is photographed at: a desktop and a phone.
pub const SIZES: [(u32, u32); 2] = [(1280, 800), (390, 844)];

/// Where the screenshots go (named in the README).
pub fn screenshot_dir() -> PathBuf {
    super::common::repo_root().join("target/monitor-screenshots")
}

/// chromedriver and the browser session it drives.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile; `log` gets
    /// chromedriver's output.
    pub async fn start(log: &Path) -> Browser {
        for tool in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: scripts/test-deps installs chromium and chromium-driver"
            );
        }
        let port = super::common::free_port();
        let out = std::fs::File::create(log).expect("chromedriver log");
        // In a process group of its own: the Chromium it starts is in it too, and dies with it.
        let driver = Command::new(CHROMEDRIVER)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::Builder::new().prefix("oplc-chromium").tempdir().expect("profile dir");
        let url = format!("http://127.0.0.1:{port}");
        let mut driver = Some(driver);
        // chromedriver answers once it listens; a session is then a few hundred ms away.
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = loop {
            let mut caps = serde_json::Map::new();
            caps.insert("browserName".into(), json!("chrome"));
            caps.insert("acceptInsecureCerts".into(), json!(true));
            caps.insert(
                "goog:chromeOptions".into(),
                json!({
                    "binary": CHROMIUM,
                    "args": [
                        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        "--disable-default-apps", "--disable-extensions", "--mute-audio", "--lang=en-US",
                        "--force-device-scale-factor=1", "--window-size=1280,800",
                        format!("--user-data-dir={}", profile.path().display()),
                    ],
                }),
            );
            caps.insert("goog:loggingPrefs".into(), json!({ "performance": "ALL", "browser": "ALL" }));
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector).capabilities(caps).connect(&url).await {
                Ok(c) => break c,
                Err(e) => {
                    if Instant::now() > deadline {
                        if let Some(mut d) = driver.take() {
                            kill_group(&mut d);
                        }
                        panic!("no WebDriver session within 20 s: {e}; see {}", log.display());
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        Browser { client, driver: driver.take().expect("chromedriver"), _profile: profile }
    }

    /// Runs `script` (a function body) in the page and returns its value.
    pub async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Polls `check` (a function body returning a value, `null`/`false` for "not yet") until
    /// it returns something, or fails naming `what`.
    pub async fn until(&self, what: &str, timeout: Duration, check: &str) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.js(check).await;
            if !(v.is_null() || v == Value::Bool(false)) {
                return v;
            }
            if Instant::now() > deadline {
                let shot =
                    screenshot_dir().join(format!("FAILED-{}.png", what.replace(|c: char| !c.is_alphanumeric(), "-")));
                if let Ok(png) = self.client.screenshot().await {
                    let _ = std::fs::create_dir_all(screenshot_dir());
                    let _ = std::fs::write(&shot, png);
                }
                panic!("timed out after {timeout:?} waiting for {what} (screenshot {})", shot.display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn click(&self, css: &str) {
        let el = self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}"));
        el.click().await.unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let el = self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}"));
        el.clear().await.unwrap_or_else(|e| panic!("clear {css}: {e}"));
        el.send_keys(text).await.unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Resizes the window until the page's viewport is `width`×`height` CSS pixels and the
    /// page has laid itself out again (two animation frames).
    pub async fn viewport(&self, width: u32, height: u32) {
        let (mut w, mut h) = (width, height);
        for _ in 0..4 {
            self.client.set_window_size(w, h).await.expect("set window size");
            let inner = self.js("return [window.innerWidth, window.innerHeight];").await;
            let (iw, ih) = (inner[0].as_u64().unwrap_or(0) as u32, inner[1].as_u64().unwrap_or(0) as u32);
            if (iw, ih) == (width, height) {
                break;
            }
            // The window's frame, if any, is outside the viewport: grow by the difference.
            w = w + width - iw.min(width);
            h = h + height - ih.min(height);
        }
        self.client
            .execute_async(
                "const done = arguments[0]; requestAnimationFrame(() => requestAnimationFrame(() => done(true)));",
                vec![],
            )
            .await
            .expect("two animation frames");
    }

    /// Screenshots of the current view at every size in [`SIZES`], as
    /// `<dir>/<name>-<w>x<h>.png`; returns to the first size.
    pub async fn photograph(&self, name: &str, ready: &str) {
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        for (w, h) in SIZES {
            self.viewport(w, h).await;
            self.until(&format!("{name} to be ready at {w}x{h}"), Duration::from_secs(10), ready).await;
            let png = self.client.screenshot().await.expect("screenshot");
            assert!(png.starts_with(b"\x89PNG"), "a PNG");
            std::fs::write(dir.join(format!("{name}-{w}x{h}.png")), png).expect("write screenshot");
        }
        self.viewport(SIZES[0].0, SIZES[0].1).await;
    }

    /// The browser's log of `kind` (`performance`: DevTools network events; `browser`: the
    /// console) since the last call.
    pub async fn log(&self, kind: &str) -> Vec<Value> {
        #[derive(Debug)]
        struct GetLog(String);
        impl WebDriverCompatibleCommand for GetLog {
            fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
                base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
            }
            fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
                (http::Method::POST, Some(json!({ "type": self.0 }).to_string()))
            }
        }
        match self.client.issue_cmd(GetLog(kind.into())).await.expect("read the browser's log") {
            Value::Array(entries) => entries,
            other => panic!("unexpected log answer {other}"),
        }
    }

    /// The DevTools network events of requests since the last call: `(url, event params)`.
    pub async fn requests(&self) -> Vec<(String, Value)> {
        self.log("performance")
            .await
            .iter()
            .filter_map(|e| serde_json::from_str::<Value>(e["message"].as_str()?).ok())
            .filter(|m| {
                matches!(
                    m["message"]["method"].as_str(),
                    Some("Network.requestWillBeSent" | "Network.webSocketCreated")
                )
            })
            .filter_map(|m| {
                let p = m["message"]["params"].clone();
                let url = p["request"]["url"].as_str().or(p["url"].as_str())?.to_string();
                Some((url, p))
            })
            .collect()
    }

    pub async fn quit(self) {
        // Ends the session: chromedriver closes its Chromium (Drop then ends chromedriver).
        let _ = self.client.clone().close().await;
    }
}

/// Ends chromedriver and whatever is left of the Chromium it started: their process group,
/// which this test created.
fn kill_group(child: &mut Child) {
    // SAFETY: kill() touches no memory; the group is the one `process_group(0)` made for
    // this child, whose pid is its id.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    let _ = child.wait();
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&mut self.driver);
    }
}

/// Polls an async condition until it yields `Some`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
