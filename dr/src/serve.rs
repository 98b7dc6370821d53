//! Serving the API on a socket (`tandem api serve`): an accept loop that holds at
//! most `max_connections` connections (the rest wait in the kernel's backlog), closes
//! a connection whose request headers do not arrive within `header_timeout` (idle
//! keep-alive connections included), answers 408 to a body that does not arrive within
//! `body_timeout`, refuses (403) a `Host` other than the loopback names when it
//! listens on loopback (so a web page cannot reach it through DNS rebinding), and on
//! shutdown stops accepting and lets requests in flight finish.
//!
//! In Lambda none of this applies: API Gateway holds the connections and hands the
//! function whole requests.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::api::{ApiError, MAX_BODY};

/// How the server treats its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most connections held at once.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers, and how long an idle
    /// keep-alive connection stays open.
    pub header_timeout: Duration,
    /// How long a client may take to send a request's body.
    pub body_timeout: Duration,
    /// How long requests in flight get to finish after shutdown begins.
    pub grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            grace: Duration::from_secs(10),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then waits up to
/// `limits.grace` for the connections still open. Accept errors (out of file
/// descriptors, a connection reset before it was accepted) are logged and retried:
/// they do not stop the server.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    let app = protect(app, local, limits.body_timeout);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(grace = ?limits.grace, "connections still open after the grace period");
    }
    Ok(())
}

/// The layers only a socket server needs: the body timeout, and on loopback the
/// `Host` check.
fn protect(app: Router, local: SocketAddr, body_timeout: Duration) -> Router {
    let app = app.layer(middleware::from_fn_with_state(body_timeout, read_body));
    if local.ip().is_loopback() {
        app.layer(middleware::from_fn_with_state(local.port(), loopback_host))
    } else {
        app
    }
}

/// Reads the whole body within the timeout (and at most [`MAX_BODY`] bytes) before
/// the handler runs.
async fn read_body(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    match tokio::time::timeout(limit, axum::body::to_bytes(body, MAX_BODY)).await {
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!("the request body did not arrive within {limit:?}"),
        )
        .into_response(),
        Ok(Err(_)) => ApiError::too_large().into_response(),
        Ok(Ok(bytes)) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
    }
}

/// Whether `host` (a `Host` header) names this loopback server.
pub fn is_loopback_host(host: &str, port: u16) -> bool {
    let (name, given_port) = match host.rsplit_once(':') {
        // `[::1]:8080`, `localhost:8080`; not the colons inside `[::1]`.
        Some((n, p)) if !p.contains(']') => (n, Some(p)),
        _ => (host, None),
    };
    let name_ok = name.eq_ignore_ascii_case("localhost") || name == "127.0.0.1" || name == "[::1]";
    let port_ok = given_port.is_none_or(|p| p.parse::<u16>() == Ok(port));
    name_ok && port_ok
}

async fn loopback_host(State(port): State<u16>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("");
    if is_loopback_host(host, port) {
        next.run(req).await
    } else {
        ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "Host {host:?} is not this server: on loopback it answers to localhost:{port}, \
                 127.0.0.1:{port} and [::1]:{port} only"
            ),
        )
        .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn only_loopback_names_on_our_port_pass() {
        for ok in [
            "localhost:8080",
            "LOCALHOST:8080",
            "127.0.0.1:8080",
            "[::1]:8080",
            "localhost",
            "[::1]",
        ] {
            assert!(is_loopback_host(ok, 8080), "{ok}");
        }
        for bad in [
            "evil.example:8080",
            "localhost:8081",
            "127.0.0.1.evil.example:8080",
            "localhost.:8080",
            "",
            "[::1]:x",
            "10.0.0.1:8080",
        ] {
            assert!(!is_loopback_host(bad, 8080), "{bad}");
        }
    }
}
