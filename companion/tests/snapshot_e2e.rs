//! The project snapshot (Editor ≥ 4.2's `snapshot` and `snapshot_metadata` upload parts)
//! through the real companion over HTTPS: kept with the program it came with, described to
//! any signed-in user, handed back byte for byte to admins only, advertised by UDP
//! discovery, kept across a failed build, and one upload at a time.

mod common;

use base64::Engine;
use common::{Runtime, demo_bundle, rewrite_zip, wait_for};
use std::path::{Path, PathBuf};
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

/// A project archive: bytes that are not a zip at all (the runtime never opens it).
fn archive(rt: &Runtime, name: &str, len: usize, seed: u64) -> (PathBuf, Vec<u8>) {
    let mut x = seed | 1;
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let path = rt.dir.path().join(name);
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

fn snapshot_parts(archive: &Path, metadata: &str) -> Vec<String> {
    vec![
        "-F".into(),
        format!("snapshot=@{};filename=project.zip;type=application/zip", archive.display()),
        "--form-string".into(),
        format!("snapshot_metadata={metadata}"),
    ]
}

fn deploy_with(rt: &Runtime, token: &str, zip: &Path, more: &[String]) -> serde_json::Value {
    let r = rt.upload_with(zip, token, "?clean=1", more);
    assert_eq!(r.status, 200, "{r:?}");
    let reply = r.json();
    let build = rt.wait_build(token);
    assert_eq!(build["status"], "SUCCESS", "{build:#}");
    reply
}

fn discovery(port: u16) -> serde_json::Value {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 1024];
    // Spaced beyond the responder's per-address interval.
    wait_for("a discovery reply", T, || {
        std::thread::sleep(Duration::from_millis(150));
        sock.send_to(b"OPENPLC_DISCOVER_V1", ("127.0.0.1", port)).ok()?;
        let n = sock.recv(&mut buf).ok()?;
        serde_json::from_slice(&buf[..n]).ok()
    })
}

#[test]
fn a_project_snapshot_travels_with_its_program() {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let rt = Runtime::start(&["--discovery-port", &udp.to_string()]);
    let admin = rt.bootstrap("admin", "admin-pass");
    for (user, role) in [("operator", "user"), ("watcher", "viewer")] {
        let body = format!(r#"{{"username":"{user}","password":"{user}-pass","role":"{role}"}}"#);
        assert_eq!(rt.curl("POST", "/create-user", Some(&admin), Some(&body)).status, 201);
    }
    let (operator, watcher) = (rt.login("operator", "operator-pass"), rt.login("watcher", "watcher-pass"));
    assert_eq!(rt.curl("GET", "/capabilities", None, None).json()["projectSnapshot"], true);

    // Nothing stored yet.
    assert_eq!(rt.get("/project-snapshot/info", &watcher).json(), serde_json::json!({ "present": false }));
    let r = rt.get("/project-snapshot", &admin);
    assert_eq!((r.status, r.json()["msg"].as_str()), (404, Some("No project is stored on this device")));
    assert!(discovery(udp).get("project_name").is_none());

    // An upload with both parts, as Editor >= 4.2 sends them (`?clean=1` accepted).
    let zip = rt.dir.path().join("demo.zip");
    demo_bundle(&zip, &["--period-ms", "10"]);
    let (first_archive, first_bytes) = archive(&rt, "first.bin", 300_000, 7);
    let metadata = r#"{"formatVersion":1,"projectName":"Traffic\nLight","editorVersion":"4.3.0","uploadedBy":"admin","timestamp":"2026-12-04T10:00:00Z","libraries":[{"name":"Motion","version":"1.2.0","hash":"abc"},{"version":"no name"}],"somethingElse":"dropped"}"#;
    let reply = deploy_with(&rt, &admin, &zip, &snapshot_parts(&first_archive, metadata));
    assert_eq!(reply["ProjectSnapshotWarning"], "", "{reply}");
    rt.wait_status(&admin, "STATUS:RUNNING");

    // Described to any signed-in user, cleaned as upstream cleans it.
    let info = rt.get("/project-snapshot/info", &watcher).json();
    assert_eq!(
        info,
        serde_json::json!({
            "present": true, "formatVersion": 1, "projectName": "TrafficLight", "editorVersion": "4.3.0",
            "uploadedBy": "admin", "timestamp": "2026-12-04T10:00:00Z",
            "libraries": [{"name": "Motion", "version": "1.2.0", "hash": "abc"}], "sizeBytes": 300_000,
        })
    );

    // Handed back byte for byte to an admin; refused to everyone else.
    let body = rt.get("/project-snapshot", &admin).json();
    assert_eq!((body["projectName"].as_str(), body["filename"].as_str()), (Some("TrafficLight"), Some("project.zip")));
    assert_eq!(body["formatVersion"], 1);
    let back = base64::engine::general_purpose::STANDARD.decode(body["contentBase64"].as_str().unwrap()).unwrap();
    assert!(back == first_bytes, "the archive comes back byte for byte");
    for token in [&operator, &watcher] {
        let r = rt.get("/project-snapshot", token);
        assert_eq!((r.status, r.json()["msg"].as_str()), (403, Some("Admin privileges required")));
    }
    for path in ["/project-snapshot", "/project-snapshot/info"] {
        assert_eq!(rt.curl("GET", path, None, None).status, 401);
    }
    let advert = discovery(udp);
    assert_eq!(
        (advert["project_name"].as_str(), advert["project_timestamp"].as_str()),
        (Some("TrafficLight"), Some("2026-12-04T10:00:00Z"))
    );

    // A failed build keeps the previous program and its snapshot.
    let broken = rt.dir.path().join("broken.zip");
    rewrite_zip(
        &zip,
        &broken,
        |name, data| Some(if name == "Config0.c" { b"this is not C".to_vec() } else { data }),
        &[],
    );
    let (second_archive, _) = archive(&rt, "second.bin", 1000, 9);
    let second_meta = r#"{"formatVersion":1,"projectName":"Broken"}"#;
    assert_eq!(rt.upload_with(&broken, &admin, "", &snapshot_parts(&second_archive, second_meta)).status, 200);
    assert_eq!(rt.wait_build(&admin)["status"], "FAILED");
    assert_eq!(rt.get("/project-snapshot/info", &watcher).json()["projectName"], "TrafficLight");
    let body = rt.get("/project-snapshot", &admin).json();
    let back = base64::engine::general_purpose::STANDARD.decode(body["contentBase64"].as_str().unwrap()).unwrap();
    assert!(back == first_bytes, "still the first project's archive");

    // Metadata the device refuses: the program is deployed, without a snapshot, and the
    // reply says why.
    let reply = deploy_with(&rt, &operator, &zip, &snapshot_parts(&second_archive, r#"{"formatVersion":1}"#));
    let warning = reply["ProjectSnapshotWarning"].as_str().unwrap_or_default();
    assert!(warning.contains("projectName"), "{reply}");
    assert_eq!(rt.get("/project-snapshot/info", &admin).json(), serde_json::json!({ "present": false }));
    assert!(discovery(udp).get("project_name").is_none(), "nothing advertised for the new program");
}

#[test]
fn one_upload_at_a_time() {
    let rt = Runtime::start(&[]);
    let token = rt.bootstrap("admin", "admin-pass");
    let zip = rt.dir.path().join("demo.zip");
    demo_bundle(&zip, &["--period-ms", "10"]);
    // A slow upload: its snapshot part trickles in at 100 kB/s for a few seconds.
    let (slow, _) = archive(&rt, "slow.bin", 400_000, 3);
    let mut first =
        rt.upload_command(&zip, &token, "", &snapshot_parts(&slow, r#"{"formatVersion":1,"projectName":"Slow"}"#));
    let first = first.arg("--limit-rate").arg("100K").stdout(std::process::Stdio::piped()).spawn().unwrap();
    wait_for("the first upload to be received", T, || {
        (rt.curl("GET", "/health", None, None).json()["building"] == true).then_some(())
    });
    let second = rt.upload(&zip, &token);
    assert_eq!(second.status, 409, "{second:?}");
    assert_eq!(second.json()["UploadFileFail"], "Another upload is in progress, please wait");
    let out = first.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.trim_end().ends_with("200"), "the first upload goes through: {text}");
    assert_eq!(rt.wait_build(&token)["status"], "SUCCESS");
    assert_eq!(rt.get("/project-snapshot/info", &token).json()["projectName"], "Slow");
}
