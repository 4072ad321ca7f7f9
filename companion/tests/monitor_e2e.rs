//! The browser monitor (`/` on the HTTPS port) in a real headless Chromium, against the real
//! companion and rt-core running the demo program: sign-in, the four views, live values,
//! trends, forcing (allowed for `user`, refused by the server for `viewer`), start and stop,
//! the latency plot, the log, sessions ending when the user changes; that the page talks to
//! nothing but its own origin and that another site cannot drive the PLC through the
//! browser. Screenshots of every view at 1280×800 and 390×844 go to
//! `target/monitor-screenshots/`.
//!
//! Needs `cargo build --workspace --bins`, and Debian's chromium and chromium-driver
//! (scripts/test-deps). The live socket's protocol without a browser: `monitor/live.rs`.

mod browser;
mod common;
#[path = "monitor/live.rs"]
mod live;
mod net;

use browser::Browser;
use common::{Runtime, curl, wait_for};
use serde_json::Value;
use std::time::Duration;

const COUNTER: &str = "CONFIG0.RES0.INSTANCE0.COUNTER";
const T: Duration = Duration::from_secs(20);

/// A runtime running the demo program (its Modbus server on a free port), with an `admin`,
/// an operator `op` (role user) and a viewer `eve`.
pub struct Plant {
    pub rt: Runtime,
    pub admin: String,
    pub eve_id: u64,
}

impl Plant {
    pub fn start() -> Plant {
        let rt = Runtime::start(&[]);
        let admin = rt.bootstrap("admin", "admin-pass");
        let mut eve_id = 0;
        for (name, role) in [("op", "user"), ("eve", "viewer")] {
            let body = serde_json::json!({ "username": name, "password": format!("{name}-pass"), "role": role });
            let r = rt.curl("POST", "/create-user", Some(&admin), Some(&body.to_string()));
            assert_eq!(r.status, 201, "{r:?}");
            eve_id = r.json()["id"].as_u64().unwrap_or(0);
        }
        let plain = rt.dir.path().join("plain.zip");
        common::demo_bundle(&plain, &["--period-ms", "10"]);
        let zip = rt.dir.path().join("demo.zip");
        let modbus = common::free_port().to_string();
        common::rewrite_zip(
            &plain,
            &zip,
            |name, data| {
                Some(if name.ends_with("modbus_slave.json") {
                    String::from_utf8(data).unwrap().replace("5020", &modbus).into_bytes()
                } else {
                    data
                })
            },
            &[],
        );
        assert_eq!(rt.upload(&zip, &admin).status, 200);
        assert_eq!(rt.wait_build(&admin)["status"], "SUCCESS");
        rt.wait_status(&admin, "STATUS:RUNNING");
        Plant { rt, admin, eve_id }
    }

    pub fn origin(&self) -> String {
        format!("https://127.0.0.1:{}", self.rt.port)
    }

    /// The counter as the REST monitor reads it (a witness independent of the page).
    fn counter(&self) -> u64 {
        let r = self.rt.get(&format!("/variables/values?names={COUNTER}"), &self.admin);
        r.json()["values"][0]["value"].as_u64().unwrap_or_else(|| panic!("{r:?}"))
    }

    fn status(&self) -> String {
        self.rt.status(&self.admin)
    }

    fn log(&self) -> String {
        self.rt.get("/runtime-logs", &self.admin).json()["runtime-logs"].to_string()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// `document.querySelector(css)`'s text, or null.
fn text_of(css: &str) -> String {
    format!("const e = document.querySelector({css:?}); return e ? e.textContent : null;")
}

fn value_js() -> String {
    text_of(&format!("tr[data-name=\"{COUNTER}\"] .value"))
}

async fn sign_in(b: &Browser, user: &str, password: &str) {
    b.until("the sign-in form", T, "return !document.getElementById('signin').hidden;").await;
    b.type_into("#signin-user", user).await;
    b.type_into("#signin-pass", password).await;
    b.click("#signin-submit").await;
    b.until(&format!("{user} signed in"), T, &format!("return {};", text_eq("#who-name", user))).await;
}

fn text_eq(css: &str, want: &str) -> String {
    format!("(document.querySelector({css:?}) || {{}}).textContent === {want:?}")
}

async fn view(b: &Browser, name: &str) {
    b.click(&format!(".tabs a[data-view=\"{name}\"]")).await;
    b.until(&format!("the {name} view"), T, &format!("return !document.getElementById('view-{name}').hidden;")).await;
}

async fn counter_on_page(b: &Browser) -> u64 {
    let v = b
        .until(
            "the counter's value",
            T,
            &format!("const t = (() => {{ {} }})(); return t && t !== '—' ? t : null;", value_js()),
        )
        .await;
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn the_monitor_in_a_real_browser() {
    let plant = Plant::start();
    let origin = plant.origin();
    runtime().block_on(async {
        let b = Browser::start(&plant.rt.dir.path().join("chromedriver.log")).await;
        b.client.goto(&format!("{origin}/")).await.expect("open the page");

        // Signed out: the shell stays hidden; only the sign-in form shows.
        b.until("the sign-in form", T, "return !document.getElementById('signin').hidden;").await;
        assert_eq!(b.js("return document.getElementById('shell').hidden;").await, true);
        b.photograph("signin", "return true;").await;
        sign_in(&b, "op", "op-pass").await;

        // Overview: RUNNING, the program, live cycle figures, the Modbus server.
        b.until("RUNNING", T, &format!("return {};", text_eq("#state-pill", "RUNNING"))).await;
        b.until("live cycle figures", T, "return !['—', '0'].includes(document.getElementById('ov-scans').textContent) && document.getElementById('ov-lat-max').textContent !== '—';").await;
        let generator = b.until("the program", T, &text_of("#ov-generator")).await;
        assert!(generator.as_str().unwrap_or_default().contains("MatIEC"), "{generator}");
        let md5 = plant.rt.get("/variables", &plant.admin).json()["md5"].clone();
        b.until("the program's MD5", T, &format!("return {};", text_eq("#ov-md5", md5.as_str().unwrap()))).await;
        let modbus_row = "return [...document.querySelectorAll('#ov-plugins li')].some(r => r.textContent.includes('modbus') && r.textContent.includes('running'));";
        b.until("the Modbus server in the plugins table", T, modbus_row).await;
        let before = b.js(&text_of("#ov-scans")).await;
        b.until("the scan count to move", T, &format!("return document.getElementById('ov-scans').textContent !== {before};")).await;
        b.photograph("overview", modbus_row).await;

        // Variables: names and types of the bundle, a counter that counts.
        view(&b, "variables").await;
        b.until("33 variables", T, "return document.querySelectorAll('#var-rows tr').length === 33;").await;
        let first = counter_on_page(&b).await;
        b.until("the counter to count", T, &format!("return Number((() => {{ {} }})()) > {first};", value_js())).await;

        // Values change a few times a second without moving anything on the page.
        b.js("window.__shift = 0; window.__moved = []; new PerformanceObserver(l => { for (const e of l.getEntries()) if (!e.hadRecentInput) { window.__shift += e.value; for (const s of e.sources || []) window.__moved.push(`${s.node && (s.node.className || s.node.nodeName)}: ${s.node && s.node.textContent} ${JSON.stringify(s.previousRect)} -> ${JSON.stringify(s.currentRect)}`); } }).observe({ type: 'layout-shift' }); return true;").await;
        let from = counter_on_page(&b).await;
        b.until("ten ticks of values", T, &format!("return Number((() => {{ {} }})()) > {from} + 200;", value_js())).await;
        assert_eq!(
            b.js("return window.__shift;").await.as_f64(),
            Some(0.0),
            "layout shift while values changed: {}",
            b.js("return window.__moved;").await
        );

        // Pinned, it becomes a trend that grows.
        b.click(&format!("tr[data-name=\"{COUNTER}\"] .pin")).await;
        let points = "const f = document.querySelector('figure.trend[data-index=\"0\"]'); return f ? Number(f.dataset.points || 0) : 0;";
        let n = b.until("a trend with points", T, &format!("const n = (() => {{ {points} }})(); return n >= 3 ? n : null;")).await;
        b.until("the trend to grow", T, &format!("return (() => {{ {points} }})() >= {} + 5;", n)).await;

        // Search by name.
        b.type_into("#var-search", "preset").await;
        b.until("one match", T, "const r = document.querySelectorAll('#var-rows tr'); return r.length === 1 && r[0].querySelector('.value').textContent === 'T#500ms';").await;
        b.client.find(fantoccini::Locator::Css("#var-search")).await.unwrap().clear().await.unwrap();
        b.js("document.getElementById('var-search').dispatchEvent(new Event('input')); return true;").await;
        b.until("all rows again", T, "return document.querySelectorAll('#var-rows tr').length === 33;").await;
        b.photograph("variables", &format!("return (() => {{ {points} }})() > 10;")).await;

        // Forced by a `user`: the page, rt-core (through the REST monitor) and the log agree.
        b.click(&format!("tr[data-name=\"{COUNTER}\"] .force-btn")).await;
        b.type_into(".force-row .force-input", "4242").await;
        b.click(".force-row button[type=submit]").await;
        b.until("the forced value on the page", T, &format!("const r = document.querySelector('tr[data-name=\"{COUNTER}\"]'); return r.classList.contains('forced') && r.querySelector('.value').textContent === '4242';")).await;
        wait_for("rt-core to hold the forced value", T, || (plant.counter() == 4242).then_some(()));
        assert!(plant.log().contains(&format!("monitor: user \\\"op\\\" forced {COUNTER} (UINT) to 4242")), "{}", plant.log());
        b.photograph("variables-forced", "return !!document.querySelector('.force-row');").await;
        b.click(".force-row .release").await;
        b.until("the release on the page", T, &format!("const r = document.querySelector('tr[data-name=\"{COUNTER}\"]'); return !r.classList.contains('forced') && r.querySelector('.value').textContent !== '4242';")).await;
        wait_for("the counter to count again", T, || (plant.counter() != 4242).then_some(()));

        // Stop and start from the overview.
        view(&b, "overview").await;
        b.click("#ov-stop").await;
        b.until("STOPPED", T, &format!("return {};", text_eq("#state-pill", "STOPPED"))).await;
        assert_eq!(plant.status(), "STATUS:STOPPED");
        b.click("#ov-start").await;
        b.until("RUNNING again", T, &format!("return {};", text_eq("#state-pill", "RUNNING"))).await;
        assert_eq!(plant.status(), "STATUS:RUNNING");

        // Latency: the histogram is drawn, with its percentiles; a reset starts it over.
        view(&b, "latency").await;
        let drawn = "return Number(document.getElementById('lat-chart').dataset.points || 0) > 0 && !!document.querySelector('#lat-chart canvas') && document.getElementById('lat-p99').textContent !== '—';";
        b.until("the latency plot", T, drawn).await;
        let count = |s: &Value| s.as_str().unwrap_or("0").replace(',', "").parse::<u64>().unwrap_or(0);
        let before = count(&b.until("enough samples", T, "const t = document.getElementById('lat-count').textContent.replace(/,/g, ''); return Number(t) > 500 ? t : null;").await);
        b.photograph("latency", drawn).await;
        b.click("#lat-reset").await;
        b.until("the reset", T, &format!("return Number(document.getElementById('lat-count').textContent.replace(/,/g, '')) < {before} / 2;")).await;

        // Logs: a line the test causes shows up live, and the level filter hides it.
        let probe = format!("probe{}", std::process::id());
        let body = serde_json::json!({ "username": probe, "password": "probe-pass", "role": "viewer" }).to_string();
        assert_eq!(plant.rt.curl("POST", "/create-user", Some(&plant.admin), Some(&body)).status, 201);
        view(&b, "logs").await;
        let shows_probe = format!("return document.getElementById('log-list').textContent.includes({probe:?});");
        b.until("the test's log line", T, &shows_probe).await;
        b.photograph("logs", &shows_probe).await;
        b.client.find(fantoccini::Locator::Css("#log-level")).await.unwrap().select_by_value("ERROR").await.unwrap();
        b.until("the line filtered out", T, &format!("return !(() => {{ {shows_probe} }})();")).await;
        b.client.find(fantoccini::Locator::Css("#log-level")).await.unwrap().select_by_value("INFO").await.unwrap();
        b.until("the line back", T, &shows_probe).await;

        // Nothing but this origin, and nothing the CSP had to block.
        // Chromium's own pages (the first, blank tab is chrome://new-tab-page…) are left out:
        // every request of any other document, and every socket, must be this origin's.
        let urls: Vec<String> = b
            .requests()
            .await
            .into_iter()
            .filter(|(_, p)| !p["documentURL"].as_str().is_some_and(|d| d.starts_with("chrome://")))
            .map(|(u, _)| u)
            .collect();
        assert!(urls.iter().any(|u| u.ends_with("/api/monitor/live")), "{urls:#?}");
        let wss = origin.replacen("https", "wss", 1);
        let foreign: Vec<&String> =
            urls.iter().filter(|u| !u.starts_with(&format!("{origin}/")) && !u.starts_with(&format!("{wss}/"))).collect();
        assert!(foreign.is_empty(), "requests to other origins: {foreign:#?}");
        let console = b.log("browser").await;
        let bad: Vec<&Value> = console
            .iter()
            .filter(|e| {
                let m = e["message"].as_str().unwrap_or_default();
                m.contains("Content Security Policy") || m.contains("Uncaught") || m.contains("TypeError")
            })
            .collect();
        assert!(bad.is_empty(), "console: {bad:#?}");

        // Signing out revokes the token for good.
        let token = b.js("return sessionStorage.getItem('openplc-monitor-token');").await;
        let token = token.as_str().expect("the token is kept in sessionStorage").to_string();
        b.click("#signout").await;
        b.until("the sign-in form after signing out", T, "return !document.getElementById('signin').hidden;").await;
        assert_eq!(b.js("return sessionStorage.getItem('openplc-monitor-token');").await, Value::Null);
        assert_eq!(plant.rt.get("/status", &token).status, 401);

        // A viewer sees the controls greyed, and the server refuses them when used anyway.
        sign_in(&b, "eve", "eve-pass").await;
        b.until("RUNNING for the viewer", T, &format!("return {};", text_eq("#state-pill", "RUNNING"))).await;
        assert_eq!(b.js(&text_of("#who-role")).await, "viewer");
        view(&b, "overview").await;
        assert_eq!(b.js("return document.getElementById('ov-stop').classList.contains('denied');").await, true);
        b.click("#ov-stop").await;
        b.until("the refusal of stop", T, "return document.getElementById('ov-action').textContent.includes('refused');").await;
        assert_eq!(plant.status(), "STATUS:RUNNING");
        view(&b, "variables").await;
        let force_btn = format!("tr[data-name=\"{COUNTER}\"] .force-btn");
        b.until("a greyed force button", T, &format!("const e = document.querySelector({force_btn:?}); return e && e.classList.contains('denied');")).await;
        b.click(&force_btn).await;
        b.type_into(".force-row .force-input", "7").await;
        b.click(".force-row button[type=submit]").await;
        let refusal = b.until("the server's refusal", T, "const m = document.querySelector('.force-row .force-msg'); return m && m.textContent.includes('Forbidden') ? m.textContent : null;").await;
        assert!(refusal.as_str().unwrap().contains("may monitor but not force"), "{refusal}");
        assert!(plant.log().contains("monitor: user \\\"eve\\\" may not force; refused to force"), "{}", plant.log());
        let a = plant.counter();
        wait_for("the counter to keep counting", T, || (plant.counter() > a).then_some(()));
        b.photograph("variables-viewer", "return !!document.querySelector('.force-row .force-msg.bad');").await;

        // Changes to the user reach an open page at once: a promotion ungreys the controls,
        // a password change ends the session.
        let promote = serde_json::json!({ "role": "user" }).to_string();
        let r = plant.rt.curl("PUT", &format!("/update-user/{}", plant.eve_id), Some(&plant.admin), Some(&promote));
        assert_eq!(r.status, 200, "{r:?}");
        b.until("the new role", T, &format!("return {} && !document.querySelector({force_btn:?}).classList.contains('denied');", text_eq("#who-role", "user"))).await;
        let password = serde_json::json!({ "password": "eve-new-pass" }).to_string();
        let r = plant.rt.curl("PUT", &format!("/update-user/{}", plant.eve_id), Some(&plant.admin), Some(&password));
        assert_eq!(r.status, 200, "{r:?}");
        let note = b.until("the session to end", T, "const n = document.getElementById('signin-note'); return !document.getElementById('signin').hidden && !n.hidden ? n.textContent : null;").await;
        assert!(note.as_str().unwrap().contains("revoked"), "{note}");
        assert_eq!(b.js("return document.getElementById('shell').hidden;").await, true);
        b.quit().await;
    });
}

/// The attacker's site: another origin (another port) whose pages make the browser send
/// requests to the runtime, as a hostile page the operator visits would.
fn attacker(target: &str) -> (u16, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let target = target.to_string();
    let handle = std::thread::spawn(move || {
        use std::io::{BufRead, BufReader, Write};
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut first = String::new();
            if reader.read_line(&mut first).is_err() {
                continue;
            }
            loop {
                let mut l = String::new();
                if reader.read_line(&mut l).map(|n| n == 0).unwrap_or(true) || l == "\r\n" {
                    break;
                }
            }
            let path = first.split_whitespace().nth(1).unwrap_or("/").to_string();
            let submit = "<script>document.forms[0].submit()</script>";
            let page = match path.as_str() {
                "/stop" => format!("<form method=GET action='{target}/api/stop-plc'></form>{submit}"),
                "/start" => format!("<form method=GET action='{target}/api/start-plc'></form>{submit}"),
                "/start-post" => format!("<form method=POST action='{target}/api/start-plc'></form>{submit}"),
                "/force" => format!(
                    "<form method=POST enctype=text/plain action='{target}/api/monitor/force'>\
                     <input name='{{\"index\":0,\"value\":\"7\",\"x\":\"' value='\"}}'></form>{submit}"
                ),
                "/frame" => format!("<iframe src='{target}/'></iframe>"),
                "/socket" => format!(
                    "<script>const w = new WebSocket('{}/api/monitor/live'); \
                     w.onopen = () => document.title = 'opened'; w.onclose = () => document.title = 'refused';</script>",
                    target.replacen("https", "wss", 1)
                ),
                "/quit" => return,
                _ => "nothing here".into(),
            };
            let mut s = reader.into_inner();
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    (port, handle)
}

#[test]
fn another_site_cannot_drive_the_plc_and_the_page_keeps_to_itself() {
    let plant = Plant::start();
    let origin = plant.origin();

    // The page and its files carry the policy: own files only, no inline code, no framing.
    for path in ["/", "/monitor/js/app.js", "/monitor/style.css"] {
        let r = curl(&origin, "GET", path, None, None).unwrap();
        assert_eq!(r.status, 200, "{path}");
        let csp = r.header("content-security-policy").unwrap_or_else(|| panic!("{path}: no CSP"));
        assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe"), "{csp}");
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    }
    let (evil, server) = attacker(&origin);
    let evil_origin = format!("http://127.0.0.1:{evil}");

    runtime().block_on(async {
        let b = Browser::start(&plant.rt.dir.path().join("chromedriver.log")).await;
        // The operator is signed in to the monitor in one tab…
        b.client.goto(&format!("{origin}/")).await.unwrap();
        sign_in(&b, "op", "op-pass").await;
        b.until("RUNNING", T, &format!("return {};", text_eq("#state-pill", "RUNNING"))).await;
        // …and visits the attacker's site in another.
        let monitor_tab = b.client.window().await.unwrap();
        let tab = b.client.new_window(true).await.unwrap();
        b.client.switch_to_window(tab.handle).await.unwrap();
        let refused = "return document.body && document.body.innerText.includes('Missing Authorization Header');";

        b.client.goto(&format!("{evil_origin}/stop")).await.unwrap();
        b.until("the stop form's answer", T, refused).await;
        assert_eq!(plant.status(), "STATUS:RUNNING", "a cross-site form stopped the PLC");

        assert_eq!(plant.rt.get("/stop-plc", &plant.admin).json()["status"], "STOP:OK");
        b.client.goto(&format!("{evil_origin}/start")).await.unwrap();
        b.until("the start form's answer", T, refused).await;
        b.client.goto(&format!("{evil_origin}/start-post")).await.unwrap();
        // No POST route there: 405 (Chromium shows its own error page for it).
        b.until(
            "the POSTed start form's answer",
            T,
            "return !!document.body && document.body.innerText.includes('405');",
        )
        .await;
        assert_eq!(plant.status(), "STATUS:STOPPED", "a cross-site form started the PLC");
        assert_eq!(plant.rt.get("/start-plc", &plant.admin).json()["status"], "START:OK");

        b.client.goto(&format!("{evil_origin}/force")).await.unwrap();
        b.until("the force form's answer", T, refused).await;
        let a = plant.counter();
        wait_for("the counter, not forced, to count", T, || (plant.counter() > a).then_some(()));

        // Another site can neither frame the page nor open its live socket.
        b.client.goto(&format!("{evil_origin}/socket")).await.unwrap();
        b.until("the socket's refusal", T, "return document.title === 'refused';").await;
        b.client.goto(&format!("{evil_origin}/frame")).await.unwrap();
        let console = browser::eventually("the framing refusal in the console", T, || async {
            let log = b.log("browser").await;
            log.iter().any(|e| e["message"].as_str().unwrap_or_default().contains("frame-ancestors")).then_some(log)
        })
        .await;
        assert!(!console.is_empty());

        // The monitor tab is still signed in and live: nothing above touched it.
        b.client.switch_to_window(monitor_tab).await.unwrap();
        b.until("the monitor still live", T, &format!("return {};", text_eq("#state-pill", "RUNNING"))).await;
        b.quit().await;
    });
    let _ = std::net::TcpStream::connect(("127.0.0.1", evil)).and_then(|mut s| {
        use std::io::Write;
        s.write_all(b"GET /quit HTTP/1.1\r\n\r\n")
    });
    let _ = server.join();
}
