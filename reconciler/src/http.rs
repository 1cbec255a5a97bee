//! The operators' HTTP endpoints of `netward reconcile --listen`:
//! `/healthz`, `/readyz`, `/metrics` (Prometheus text), `/status` (JSON) and
//! the signed webhook `POST /hook`.
//!
//! The DaemonSet listens on the node's network, so anyone there can connect:
//! connections are served concurrently (axum on hyper, one small runtime on
//! the server's own thread), each must send its headers within
//! [`HEADER_TIMEOUT`] and finish within [`CONNECTION_TIMEOUT`], and at most
//! [`MAX_CONNECTIONS`] are open at once. A client that trickles bytes can
//! therefore never hold up the kubelet's liveness probe.

use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::reconcile::{Metrics, RolloutMode, Status, Wake};

/// A client must have sent its request headers by then.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// A connection is closed after this long, whatever it is doing.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more wait in the listen queue.
pub const MAX_CONNECTIONS: usize = 64;
/// Webhook bodies larger than this are refused (GitHub's are a few KiB).
const MAX_BODY: usize = 1 << 20;

/// What the loop shares with the server: the status and metrics after the
/// last pass.
pub type Shared = Arc<Mutex<(Status, Metrics)>>;

/// The webhook's secret and where a valid hook wakes the loop.
pub type Hook = (Vec<u8>, Sender<Wake>);

#[derive(Clone)]
struct App {
    shared: Shared,
    hook: Option<Arc<Hook>>,
    mode: RolloutMode,
}

/// The endpoints as a router (for tests that drive it without a socket, too).
fn router(shared: Shared, hook: Option<Hook>, mode: RolloutMode) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .route("/hook", post(webhook))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(App { shared, hook: hook.map(Arc::new), mode })
}

/// Serves the endpoints on `listener` until the process ends (blocking: run
/// it on a thread of its own).
pub fn serve(listener: std::net::TcpListener, shared: Shared, hook: Option<Hook>, mode: RolloutMode) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the HTTP server");
            return;
        }
    };
    runtime.block_on(async move {
        let listener = match listener.set_nonblocking(true).and_then(|()| tokio::net::TcpListener::from_std(listener)) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot serve HTTP on the listener");
                return;
            }
        };
        let app = router(shared, hook, mode);
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else { return };
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(_) => {
                    // Out of file descriptors, say: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let service = hyper_util::service::TowerToHyperService::new(app.clone());
            tokio::spawn(async move {
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .keep_alive(false)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                let _ = tokio::time::timeout(CONNECTION_TIMEOUT, connection).await;
                drop(permit);
            });
        }
    });
}

fn text(code: StatusCode, body: String) -> Response {
    (code, [(header::CONTENT_TYPE, "text/plain")], body).into_response()
}

fn snapshot(app: &App) -> Option<(Status, Metrics)> {
    app.shared.lock().ok().map(|g| g.clone())
}

async fn healthz(State(app): State<App>) -> Response {
    match snapshot(&app).and_then(|(s, _)| s.stalled_fetch) {
        Some(why) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
        None => text(StatusCode::OK, "ok\n".into()),
    }
}

async fn readyz(State(app): State<App>) -> Response {
    let Some((s, _)) = snapshot(&app) else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "status unavailable\n".into());
    };
    if let Some(e) = &s.inventory_error {
        return text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n"));
    }
    // A dry-run enforces nothing by design: it is ready once it has evaluated
    // a commit, and says that nothing is enforced.
    match (app.mode, &s.applied, &s.dry_run) {
        (RolloutMode::DryRun, _, Some(c)) => text(
            StatusCode::OK,
            format!("ready (dry-run): evaluated {}; nothing is enforced\n", crate::text::short_id(c)),
        ),
        (RolloutMode::DryRun, _, None) => {
            text(StatusCode::SERVICE_UNAVAILABLE, "dry-run: no revision evaluated yet\n".into())
        }
        (_, Some(_), _) => text(StatusCode::OK, "ready\n".into()),
        (_, None, _) => text(StatusCode::SERVICE_UNAVAILABLE, "no revision enforced yet\n".into()),
    }
}

async fn metrics(State(app): State<App>) -> Response {
    match snapshot(&app) {
        Some((s, m)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
            m.render(&s),
        )
            .into_response(),
        None => text(StatusCode::SERVICE_UNAVAILABLE, "status unavailable\n".into()),
    }
}

async fn status(State(app): State<App>) -> Response {
    match snapshot(&app) {
        Some((s, _)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_string_pretty(&s).expect("status serializes") + "\n",
        )
            .into_response(),
        None => text(StatusCode::SERVICE_UNAVAILABLE, "status unavailable\n".into()),
    }
}

async fn webhook(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(hook) = &app.hook else {
        return text(StatusCode::NOT_FOUND, "no webhook configured\n".into());
    };
    let signature = headers.get("x-hub-signature-256").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !signature_ok(&hook.0, &body, signature) {
        return text(StatusCode::UNAUTHORIZED, "bad signature\n".into());
    }
    let _ = hook.1.send(Wake::Fetch);
    text(StatusCode::ACCEPTED, "fetching\n".into())
}

/// Checks a GitHub-style `sha256=<hex>` HMAC of the body, in constant time.
pub fn signature_ok(secret: &[u8], body: &[u8], header: &str) -> bool {
    use hmac::{Hmac, Mac};
    let Some(hex) = header.strip_prefix("sha256=") else { return false };
    let Some(expected) = (0..hex.len())
        .step_by(2)
        .map(|i| hex.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret) else { return false };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// The `sha256=<hex>` header value for a body (for tests and tools that send hooks).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    format!("sha256={}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Instant;

    #[test]
    fn webhook_signatures_match_githubs_scheme() {
        // The example from GitHub's documentation on validating webhook deliveries.
        let s = sign(b"It's a Secret to Everybody", b"Hello, World!");
        assert_eq!(s, "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
        assert!(signature_ok(b"It's a Secret to Everybody", b"Hello, World!", &s));
        assert!(!signature_ok(b"wrong", b"Hello, World!", &s));
        assert!(!signature_ok(b"It's a Secret to Everybody", b"Hello, World!", "sha1=abc"));
    }

    fn start(status: Status, mode: RolloutMode, hook: Option<Hook>) -> String {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = l.local_addr().expect("addr").to_string();
        let shared: Shared = Arc::new(Mutex::new((status, Metrics::default())));
        std::thread::spawn(move || serve(l, shared, hook, mode));
        addr
    }

    fn request(addr: &str, raw: &str) -> String {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        s.write_all(raw.as_bytes()).expect("send");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    fn get(addr: &str, path: &str) -> String {
        request(addr, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"))
    }

    // Regression (#13): the server was one thread, so a client that sent
    // half a request held /healthz until the liveness probe restarted netward.
    #[test]
    fn stalled_clients_never_hold_up_the_probes() {
        let addr = start(Status { applied: Some("c0ffee".into()), ..Status::default() }, RolloutMode::Enforce, None);
        // Many clients trickle half a request line and then say nothing.
        let stalled: Vec<TcpStream> = (0..20)
            .map(|_| {
                let mut s = TcpStream::connect(&addr).expect("connect");
                s.write_all(b"GET /hea").expect("send");
                s
            })
            .collect();
        for path in ["/healthz", "/readyz", "/metrics", "/status"] {
            let t = Instant::now();
            let answer = get(&addr, path);
            assert!(answer.starts_with("HTTP/1.1 200"), "{path}: {answer}");
            assert!(t.elapsed() < Duration::from_millis(500), "{path} took {:?} behind stalled clients", t.elapsed());
        }
        // The server closes a stalled connection once its header time is up.
        let mut s = stalled.into_iter().next().expect("one");
        s.set_read_timeout(Some(HEADER_TIMEOUT + Duration::from_secs(3))).expect("timeout");
        let t = Instant::now();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        assert!(t.elapsed() < HEADER_TIMEOUT + Duration::from_secs(2), "closed after {:?}", t.elapsed());
    }

    #[test]
    fn readiness_and_the_webhook() {
        let (tx, rx) = std::sync::mpsc::channel();
        let addr = start(Status::default(), RolloutMode::Enforce, Some((b"s3cret".to_vec(), tx)));
        assert!(get(&addr, "/readyz").starts_with("HTTP/1.1 503"), "nothing enforced yet");
        assert!(get(&addr, "/nope").starts_with("HTTP/1.1 404"));
        let body = r#"{"ref":"refs/heads/main"}"#;
        let post = |sig: &str| {
            request(
                &addr,
                &format!(
                    "POST /hook HTTP/1.1\r\nHost: x\r\nX-Hub-Signature-256: {sig}\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                ),
            )
        };
        assert!(post("sha256=00").starts_with("HTTP/1.1 401"));
        assert!(rx.try_recv().is_err(), "a bad signature wakes nothing");
        assert!(post(&sign(b"s3cret", body.as_bytes())).starts_with("HTTP/1.1 202"));
        assert_eq!(rx.recv_timeout(Duration::from_secs(2)), Ok(Wake::Fetch));
    }

    // Regression (#13): a dry-run recorded its commit as applied, so
    // readiness and the applied-revision metric said it was enforced.
    #[test]
    fn a_dry_run_is_ready_without_claiming_anything_is_enforced() {
        let addr =
            start(Status { dry_run: Some("abcdef123456789".into()), ..Status::default() }, RolloutMode::DryRun, None);
        let ready = get(&addr, "/readyz");
        assert!(ready.starts_with("HTTP/1.1 200") && ready.contains("nothing is enforced"), "{ready}");
        let metrics = get(&addr, "/metrics");
        assert!(!metrics.contains("netward_applied_revision{"), "{metrics}");
        assert!(metrics.contains("netward_dry_run_revision{commit=\"abcdef123456789\""), "{metrics}");
    }
}
