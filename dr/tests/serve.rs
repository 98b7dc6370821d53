//! The API on a real socket: slow and idle clients, too many clients, a foreign
//! `Host`, and a shutdown with a request in flight.

use std::net::SocketAddr;
use std::time::Duration;

use tandem_dr::api::{ApiState, router};
use tandem_dr::embedded::Region;
use tandem_dr::serve::{Limits, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// A server on its own runtime in its own thread, as `tandem api serve` runs: when
/// `serve` returns the runtime is dropped and any connection left is cut, as the
/// process's exit would.
struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: Option<std::thread::JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(limits: Limits) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let region = Region::new(dir.path(), "us-east-2").unwrap();
        let state = ApiState {
            store: region.create_table("Product").unwrap(),
            backups: None,
            api_key: None,
            region: None,
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let done = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                serve(listener, router(state), limits, async {
                    let _ = stopped.await;
                })
                .await
            })
        });
        Self {
            addr,
            stop: Some(stop),
            done: Some(done),
            _dir: dir,
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let done = self.done.take().unwrap();
        tokio::task::spawn_blocking(move || done.join())
            .await
            .unwrap()
            .expect("the server thread did not panic")
            .unwrap();
    }
}

fn limits() -> Limits {
    Limits {
        max_connections: 8,
        header_timeout: Duration::from_millis(500),
        body_timeout: Duration::from_millis(500),
        grace: Duration::from_secs(5),
    }
}

const BODY: &str = r#"{"product_category":"c","product_title":"t"}"#;

fn add_request(host: &str) -> String {
    format!(
        "POST /addProduct HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{BODY}",
        BODY.len()
    )
}

/// Reads one response's status line and headers (and whatever body came with them).
async fn status_of(conn: &mut TcpStream) -> Option<u16> {
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    loop {
        let n = conn.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        got.extend_from_slice(&buf[..n]);
        if got.windows(4).any(|w| w == b"\r\n\r\n") {
            return std::str::from_utf8(&got[9..12]).ok()?.parse().ok();
        }
    }
}

/// True when the server closed the connection (read returns 0 or a reset).
async fn closed(conn: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(within, conn.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_host_is_refused_on_loopback() {
    let server = Server::start(limits()).await;
    let port = server.addr.port();
    for (host, want) in [
        (format!("127.0.0.1:{port}"), 201),
        (format!("localhost:{port}"), 201),
        ("rebound.example".to_string(), 403),
        (format!("localhost:{}", port.wrapping_add(1)), 403),
    ] {
        let mut conn = TcpStream::connect(server.addr).await.unwrap();
        conn.write_all(add_request(&host).as_bytes()).await.unwrap();
        assert_eq!(status_of(&mut conn).await, Some(want), "{host}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_idle_connections_and_slow_bodies_are_cut_off() {
    let server = Server::start(limits()).await;
    let host = server.addr.to_string();
    // Headers that never finish: the connection is closed.
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"POST /addProduct HTTP/1.1\r\nHost: ")
        .await
        .unwrap();
    assert!(closed(&mut slow, Duration::from_secs(5)).await);
    // A keep-alive connection left idle after its request: closed too.
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(add_request(&host).as_bytes()).await.unwrap();
    assert_eq!(status_of(&mut idle).await, Some(201));
    assert!(closed(&mut idle, Duration::from_secs(5)).await);
    // A body that stops halfway: 408, naming the wait.
    let mut partial = TcpStream::connect(server.addr).await.unwrap();
    let req = add_request(&host);
    partial
        .write_all(&req.as_bytes()[..req.len() - 10])
        .await
        .unwrap();
    assert_eq!(status_of(&mut partial).await, Some(408));
    server.stop().await;
}

/// The bound on every wait for an event, so a broken server fails the test rather
/// than hanging it; never what a test measures.
const NEVER: Duration = Duration::from_secs(60);

/// True when `conn` has bytes to read, or was closed, right now.
fn has_answer(conn: &TcpStream) -> bool {
    let mut buf = [0u8; 1];
    !matches!(conn.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_wait_for_a_free_slot() {
    let server = Server::start(Limits {
        max_connections: 1,
        header_timeout: Duration::from_secs(30),
        ..limits()
    })
    .await;
    let host = server.addr.to_string();
    // The holder is answered: its connection has the only slot, and keeps it.
    let mut holder = TcpStream::connect(server.addr).await.unwrap();
    holder.write_all(add_request(&host).as_bytes()).await.unwrap();
    assert_eq!(status_of(&mut holder).await, Some(201));
    let mut waiting = TcpStream::connect(server.addr).await.unwrap();
    waiting.write_all(add_request(&host).as_bytes()).await.unwrap();
    // Twenty more requests go through the holder's slot while the other waits:
    // the server is running, and still has not answered the connection over the
    // limit.
    for _ in 0..20 {
        holder.write_all(add_request(&host).as_bytes()).await.unwrap();
        assert_eq!(status_of(&mut holder).await, Some(201));
        assert!(!has_answer(&waiting), "answered over the connection limit");
    }
    // ...and it is served as soon as the slot is free.
    drop(holder);
    let answer = tokio::time::timeout(NEVER, status_of(&mut waiting)).await;
    assert_eq!(answer.ok().flatten(), Some(201));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_the_request_in_flight_and_accepts_no_more() {
    let server = Server::start(Limits {
        body_timeout: NEVER,
        grace: NEVER,
        ..limits()
    })
    .await;
    let addr = server.addr;
    // Headers asking to continue, then nothing: the server's `100 Continue` says
    // it has the request and is reading its body.
    let head = format!(
        "POST /addProduct HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        BODY.len()
    );
    let mut in_flight = TcpStream::connect(addr).await.unwrap();
    in_flight.write_all(head.as_bytes()).await.unwrap();
    let continued = tokio::time::timeout(NEVER, status_of(&mut in_flight)).await;
    assert_eq!(continued.ok().flatten(), Some(100), "the request is in flight");

    let stopping = tokio::spawn(server.stop());
    // Shutdown has begun once a connection is refused: the listener is closed.
    let mut accepted_meanwhile = 0;
    tokio::time::timeout(NEVER, async {
        while TcpStream::connect(addr).await.is_ok() {
            accepted_meanwhile += 1;
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the server stops accepting");
    assert!(!stopping.is_finished(), "stopped with a request in flight");

    // The body arrives after shutdown began: the request is still answered.
    in_flight.write_all(BODY.as_bytes()).await.unwrap();
    assert_eq!(status_of(&mut in_flight).await, Some(201));
    tokio::time::timeout(NEVER, stopping)
        .await
        .expect("the server stops once the request is answered")
        .unwrap();
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown ({accepted_meanwhile} accepted while stopping)"
    );
}

#[test]
fn limits_default_to_what_the_cli_documents() {
    let l = Limits::default();
    assert_eq!(
        (l.max_connections, l.header_timeout, l.body_timeout),
        (256, Duration::from_secs(10), Duration::from_secs(10))
    );
}
