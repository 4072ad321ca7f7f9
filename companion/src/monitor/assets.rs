//! The page's files, embedded in the binary (`companion/monitor/`: hand-written HTML, CSS
//! and ES modules, no build step, plus the vendored uPlot), served with the headers that
//! keep it to itself: a Content-Security-Policy that allows only this origin's own files
//! (no inline script or style, no other host, no framing), `X-Frame-Options: DENY`,
//! `nosniff`, no referrer.

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// The policy of every monitor response. `connect-src 'self'` covers the page's own
/// `wss:` socket (CSP 3); `form-action 'self'`: the sign-in form never posts anywhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $type:expr) => {
        Asset { path: $path, content_type: $type, body: include_bytes!(concat!("../../monitor/", $path)) }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
    asset!("js/app.js", JS),
    asset!("js/api.js", JS),
    asset!("js/live.js", JS),
    asset!("js/format.js", JS),
    asset!("js/charts.js", JS),
    asset!("js/overview.js", JS),
    asset!("js/latency.js", JS),
    asset!("js/variables.js", JS),
    asset!("js/logs.js", JS),
    asset!("vendor/uplot/uPlot.iife.min.js", JS),
    asset!("vendor/uplot/uPlot.min.css", "text/css; charset=utf-8"),
    asset!("vendor/uplot/LICENSE", "text/plain; charset=utf-8"),
];

/// Strong validators, computed once per asset.
fn etag(index: usize) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let d = Sha256::digest(a.body);
                format!("\"{}\"", d[..12].iter().map(|b| format!("{b:02x}")).collect::<String>())
            })
            .collect()
    });
    tags.get(index).map(String::as_str).unwrap_or("\"\"")
}

/// Adds the monitor's security headers to a response.
pub fn protect(headers: &mut HeaderMap) {
    let set = |h: &mut HeaderMap, name: &'static str, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(headers, "content-security-policy", CONTENT_SECURITY_POLICY);
    set(headers, "x-frame-options", "DENY");
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "referrer-policy", "no-referrer");
    set(headers, "cross-origin-opener-policy", "same-origin");
    set(headers, "cross-origin-resource-policy", "same-origin");
    set(headers, "permissions-policy", "camera=(), microphone=(), geolocation=(), usb=(), serial=()");
}

fn serve(path: &str, request: &HeaderMap) -> Response {
    let Some((index, asset)) = ASSETS.iter().enumerate().find(|(_, a)| a.path == path) else {
        let mut r = (StatusCode::NOT_FOUND, "Not found").into_response();
        protect(r.headers_mut());
        return r;
    };
    let tag = etag(index);
    let fresh = request.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v == tag);
    let mut r = if fresh { StatusCode::NOT_MODIFIED.into_response() } else { asset.body.into_response() };
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(tag) {
        h.insert(header::ETAG, v);
    }
    protect(h);
    r
}

/// `GET /`: the page's shell (it shows nothing but a sign-in form until signed in).
pub async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

/// `GET /monitor/{*path}`: the page's scripts, styles and icon.
pub async fn file(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha256(bytes: &[u8]) -> String {
        Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn the_vendored_chart_library_is_the_pinned_release() {
        // companion/monitor/vendor/uplot/VENDOR.md: uplot 1.6.32 from the npm registry.
        let want = [
            ("vendor/uplot/uPlot.iife.min.js", "19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f"),
            ("vendor/uplot/uPlot.min.css", "df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04"),
            ("vendor/uplot/LICENSE", "8f989229699b4fe2f1a0432d0e9edc338a8a911e250e2d1b01ecd770a5f5b1bd"),
        ];
        for (path, hash) in want {
            let asset = ASSETS.iter().find(|a| a.path == path).unwrap();
            assert_eq!(sha256(asset.body), hash, "{path}");
        }
        let vendor = include_str!("../../monitor/vendor/uplot/VENDOR.md");
        assert!(want.iter().all(|(_, h)| vendor.contains(h)), "VENDOR.md names the same hashes");
    }

    #[test]
    fn the_page_has_no_inline_script_or_style_and_names_no_other_host() {
        for asset in ASSETS.iter().filter(|a| !a.path.starts_with("vendor/")) {
            // An SVG file names its XML namespace; that is no request.
            let text = std::str::from_utf8(asset.body).unwrap().replace("http://www.w3.org/2000/svg", "");
            for needle in ["http://", "https://", "//cdn", " style=", "<style", "onclick=", "onload=", "javascript:"] {
                assert!(!text.contains(needle), "{} contains {needle:?}", asset.path);
            }
            if asset.path.ends_with(".html") {
                for (i, _) in text.match_indices("<script") {
                    let tag = &text[i..i + text[i..].find('>').unwrap()];
                    assert!(tag.contains("src=\"/monitor/"), "only scripts from files: {tag}");
                }
            }
        }
    }

    #[test]
    fn files_are_served_with_the_policy_and_revalidated() {
        let r = serve("js/app.js", &HeaderMap::new());
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], JS);
        assert_eq!(r.headers()["content-security-policy"], CONTENT_SECURITY_POLICY);
        assert_eq!(r.headers()["x-frame-options"], "DENY");
        let tag = r.headers()["etag"].clone();
        let mut again = HeaderMap::new();
        again.insert(header::IF_NONE_MATCH, tag);
        assert_eq!(serve("js/app.js", &again).status(), StatusCode::NOT_MODIFIED);
        assert_eq!(serve("../Cargo.toml", &HeaderMap::new()).status(), StatusCode::NOT_FOUND);
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
    }
}
