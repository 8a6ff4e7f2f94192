//! The web console's files, served at `/` from `--console-dir` (the built `console/dist`).
//!
//! Any GET that no other route takes lands here: a file in the folder is sent with its
//! content type (Vite's hashed `/assets/*` as immutable, everything else revalidated);
//! a path without a file extension gets `index.html`, so the console's own addresses
//! (`/regions/rg_…`) survive a reload. Paths under the machine routes (`/api/`,
//! `/media/`, …) never fall back to the page: they answer the JSON 404 their clients
//! expect. Without a built console, `/` answers a page that says how to build it.

use std::path::{Component, Path, PathBuf};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::routes::problem;

/// Prefixes of routes that belong to programs, not to the console.
const MACHINE_PREFIXES: &[&str] =
    &["/api/", "/media/", "/twilio/", "/livekit/", "/web/", "/health", "/metrics", "/attach"];

/// Only the gateway's own origin; recordings may come from the region's storage (any URL).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; media-src 'self' http: https: blob:; connect-src 'self'; \
     frame-ancestors 'none'; base-uri 'self'; form-action 'self'";

/// Where the console's files are, if anywhere.
#[derive(Debug, Clone)]
pub struct Console {
    dir: Option<PathBuf>,
}

impl Console {
    pub fn new(dir: Option<PathBuf>) -> Self {
        Console { dir }
    }

    /// Whether the folder holds a built console.
    pub fn is_built(&self) -> bool {
        self.dir.as_ref().is_some_and(|d| d.join("index.html").is_file())
    }
}

/// A router with only a fallback, to be merged into voxgate's app.
pub fn router(console: Console) -> Router {
    if console.dir.is_some() && !console.is_built() {
        tracing::warn!(dir = ?console.dir, "no index.html in the console dir: run `bash console/build.sh`");
    }
    Router::new().fallback(serve).with_state(console)
}

async fn serve(State(console): State<Console>, method: Method, uri: Uri) -> Response {
    respond(&console, &method, uri.path()).await
}

/// The answer to `method path` for a path no other route took.
pub async fn respond(console: &Console, method: &Method, path: &str) -> Response {
    if MACHINE_PREFIXES.iter().any(|p| path.starts_with(p) || path == p.trim_end_matches('/')) {
        return problem(StatusCode::NOT_FOUND, "not_found", &format!("no route {method} {path}"));
    }
    if method != Method::GET && method != Method::HEAD {
        return problem(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            &format!("{method} is not allowed on {path}: the console's pages are read with GET"),
        );
    }
    let Some(dir) = &console.dir else {
        return not_built(
            "voxgate was started without a console folder.",
            "Build it with <code>bash console/build.sh</code>, then restart voxgate with \
             <code>--console-dir console/dist</code> (or <code>VOX_CONSOLE_DIR</code>). \
             <code>bash ops/run.sh</code> does both.",
        );
    };
    let Some(relative) = safe_relative(path) else {
        return file_not_found(path);
    };
    if !relative.as_os_str().is_empty() {
        let candidate = dir.join(&relative);
        if let Some(bytes) = read_inside(dir, &candidate).await {
            return file(&relative, bytes);
        }
        // A missing asset is a 404, not the page: a stale index.html must not get HTML
        // where it asked for JavaScript.
        if relative.extension().is_some() {
            return file_not_found(path);
        }
    }
    match tokio::fs::read(dir.join("index.html")).await {
        Ok(bytes) => file(Path::new("index.html"), bytes),
        Err(_) => not_built(
            &format!("There is no built console in {}.", html_escape(&dir.display().to_string())),
            "Build it with <code>bash console/build.sh</code> (Node.js 20 and npm), then reload this page.",
        ),
    }
}

/// The path's segments as a relative path, or None when one would leave the folder.
fn safe_relative(path: &str) -> Option<PathBuf> {
    let trimmed = path.trim_start_matches('/');
    if trimmed.contains('\\') || trimmed.contains('\0') {
        return None;
    }
    let rel = PathBuf::from(trimmed);
    rel.components().all(|c| matches!(c, Component::Normal(_))).then_some(rel)
}

/// Reads `candidate` when it is a file that really lies inside `dir` (no symlink out).
async fn read_inside(dir: &Path, candidate: &Path) -> Option<Vec<u8>> {
    let root = tokio::fs::canonicalize(dir).await.ok()?;
    let real = tokio::fs::canonicalize(candidate).await.ok()?;
    if !real.starts_with(&root) || !tokio::fs::metadata(&real).await.ok()?.is_file() {
        return None;
    }
    tokio::fs::read(&real).await.ok()
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "ico" => "image/x-icon",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "wasm" => "application/wasm",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn file(relative: &Path, bytes: Vec<u8>) -> Response {
    // Vite names everything under assets/ by its content hash: it never changes.
    let cache = if relative.starts_with("assets") { "public, max-age=31536000, immutable" } else { "no-cache" };
    let mut r = Response::new(Body::from(bytes));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(relative)));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if relative == Path::new("index.html") {
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
        h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    r
}

fn file_not_found(path: &str) -> Response {
    let mut r = (StatusCode::NOT_FOUND, format!("no file {path} in the console\n")).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// A page for a person who opened the console's address before it was built.
fn not_built(what: &str, todo: &str) -> Response {
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Vox console not built</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:640px;margin:10vh auto;padding:0 16px;\
         line-height:1.5;color:#17202e}}code{{background:#eef1f6;padding:1px 4px;border-radius:4px}}</style>\
         </head><body><h1>The Vox console is not available</h1><p>{what}</p><p>{todo}</p>\
         <p>The REST API answers meanwhile at <a href=\"/api/v1/openapi.json\">/api/v1/openapi.json</a>.</p>\
         </body></html>"
    );
    let mut r = (StatusCode::SERVICE_UNAVAILABLE, page).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    async fn get(console: &Console, path: &str) -> (StatusCode, String, String, String) {
        let r = respond(console, &Method::GET, path).await;
        let header = |name| r.headers().get(name).map(|v: &HeaderValue| v.to_str().unwrap().to_string());
        let (ct, cache) = (header(header::CONTENT_TYPE).unwrap_or_default(), header(header::CACHE_CONTROL));
        let status = r.status();
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        (status, ct, cache.unwrap_or_default(), String::from_utf8_lossy(&body).into_owned())
    }

    /// A built console in `<tmp>/dist`, with a file beside it that must stay private.
    fn built() -> (tempfile::TempDir, Console) {
        let outer = tempfile::tempdir().unwrap();
        let dist = outer.path().join("dist");
        std::fs::create_dir_all(dist.join("assets")).unwrap();
        std::fs::write(dist.join("index.html"), "<!doctype html><div id=root></div>").unwrap();
        std::fs::write(dist.join("assets/index-abc123.js"), "console.log(1)").unwrap();
        std::fs::write(dist.join("favicon.svg"), "<svg/>").unwrap();
        std::fs::write(outer.path().join("secret.txt"), "no").unwrap();
        (outer, Console::new(Some(dist)))
    }

    #[tokio::test]
    async fn pages_get_index_html_revalidated_and_assets_are_immutable() {
        let (_dir, console) = built();
        for path in ["/", "/regions/rg_123", "/nodes"] {
            let (status, ct, cache, body) = get(&console, path).await;
            assert_eq!((status, ct.as_str(), cache.as_str()), (StatusCode::OK, "text/html; charset=utf-8", "no-cache"));
            assert!(body.contains("id=root"), "{path}: {body}");
        }
        let (status, ct, cache, body) = get(&console, "/assets/index-abc123.js").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ct, "text/javascript; charset=utf-8");
        assert_eq!(cache, "public, max-age=31536000, immutable");
        assert_eq!(body, "console.log(1)");
        assert_eq!(get(&console, "/favicon.svg").await.1, "image/svg+xml");
    }

    #[tokio::test]
    async fn missing_assets_and_machine_routes_are_not_the_page() {
        let (_dir, console) = built();
        let (status, _, _, body) = get(&console, "/assets/index-old.js").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(!body.contains("id=root"));
        for path in ["/api/v2/x", "/media/other", "/health/none", "/metrics"] {
            let (status, ct, _, body) = get(&console, path).await;
            assert_eq!((status, ct.as_str()), (StatusCode::NOT_FOUND, "application/json"), "{path}");
            assert!(body.contains("\"not_found\""), "{path}: {body}");
        }
        let r = respond(&console, &Method::POST, "/regions").await;
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    #[tokio::test]
    async fn nothing_outside_the_folder_is_served() {
        let (_dir, console) = built();
        for path in ["/../secret.txt", "/assets/../../secret.txt", "/..%2fsecret.txt", "/a\\..\\b.txt"] {
            let (status, _, _, body) = get(&console, path).await;
            assert_ne!(body, "no", "{path}");
            assert!(status == StatusCode::NOT_FOUND || body.contains("id=root"), "{path}: {status}");
        }
    }

    #[tokio::test]
    async fn without_a_build_the_page_says_how_to_make_one() {
        let (status, ct, _, body) = get(&Console::new(None), "/").await;
        assert_eq!((status, ct.as_str()), (StatusCode::SERVICE_UNAVAILABLE, "text/html; charset=utf-8"));
        assert!(body.contains("bash console/build.sh") && body.contains("--console-dir"), "{body}");
        let empty = tempfile::tempdir().unwrap();
        let (status, _, _, body) = get(&Console::new(Some(empty.path().to_path_buf())), "/calls").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("no built console") && body.contains("bash console/build.sh"), "{body}");
    }
}
