//! The server: its listeners, its own thread and runtime, its limits, and
//! its graceful stop. The daemon's API and `wanwatch watcher` both serve
//! their routers with it.
//!
//! It runs on a thread of its own with a single-threaded tokio runtime,
//! not on the daemon's: tokio has no priorities, and a flood of
//! connections on the daemon's two workers would queue the probe rounds
//! behind their tasks. On a thread of its own, a flood competes with
//! probing only for the CPU, shared by the kernel's scheduler, and the
//! watchdog keeps its cadence (tests/tests/api.rs proves it with 500
//! connections held open).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::{Semaphore, mpsc, watch};

use axum::Router;
use axum::extract::ConnectInfo;
use tower::ServiceExt;

/// Connections served at once; more are closed as soon as accepted. Each
/// costs a task and its buffers; an event stream is one of them.
pub const MAX_CONNECTIONS: usize = 128;
/// A client must send a request's headers within this time, and start the
/// next request on a kept-alive connection within it too (idle
/// connections are closed after it).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The most header bytes and headers in one request.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;
pub const MAX_HEADERS: usize = 32;
/// How long a stop waits for answers under way.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// Blocking work (history queries, power cycles) at once.
const BLOCKING_THREADS: usize = 4;

/// The running server; [`Server::stop`] stops it.
pub struct Server {
    label: &'static str,
    stopping: watch::Sender<bool>,
    thread: std::thread::JoinHandle<()>,
    addresses: Vec<SocketAddr>,
}

impl Server {
    /// Binds every address in `listen` and serves the router `app` makes
    /// (given the receiver that turns true when the server stops, for the
    /// answers that last, like event streams). `label` names the server in
    /// the log ("HTTP API", "watcher"). None when no address could be
    /// bound: each failure is logged, and the caller decides whether it can
    /// go on without a server.
    pub fn serve(
        label: &'static str,
        listen: &[SocketAddr],
        app: impl FnOnce(watch::Receiver<bool>) -> Router,
    ) -> Option<Server> {
        let mut listeners = Vec::new();
        for address in listen {
            match bind(*address) {
                Ok(listener) => listeners.push(listener),
                Err(e) => tracing::error!("{label}: cannot listen on {address}: {e}"),
            }
        }
        if listeners.is_empty() {
            return None;
        }
        let addresses: Vec<SocketAddr> = listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        let (stopping, stopped) = watch::channel(false);
        let app = app(stopped.clone());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(BLOCKING_THREADS)
            .thread_name("wanwatch-api-blocking")
            .build();
        let runtime = match runtime {
            Ok(runtime) => runtime,
            Err(e) => {
                tracing::error!("{label}: cannot start its runtime: {e}");
                return None;
            }
        };
        let thread = std::thread::Builder::new()
            .name("wanwatch-api".into())
            .spawn(move || {
                runtime.block_on(serve(label, listeners, app, stopped));
                // Blocking work under way (a power cycle waiting for its
                // plug) is not waited for beyond the grace.
                runtime.shutdown_timeout(STOP_GRACE);
            });
        let thread = match thread {
            Ok(thread) => thread,
            Err(e) => {
                tracing::error!("{label}: cannot start its thread: {e}");
                return None;
            }
        };
        Some(Server {
            label,
            stopping,
            thread,
            addresses,
        })
    }

    /// The addresses bound (with the port the system chose for port 0).
    pub fn addresses(&self) -> &[SocketAddr] {
        &self.addresses
    }

    /// Stops accepting, ends the event streams, waits up to [`STOP_GRACE`]
    /// for answers under way, and returns once the thread has ended.
    pub fn stop(self) {
        self.stopping.send_replace(true);
        if self.thread.join().is_err() {
            tracing::error!("{}: its thread panicked", self.label);
        }
    }
}

fn bind(address: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(address)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

async fn serve(
    label: &'static str,
    listeners: Vec<std::net::TcpListener>,
    app: Router,
    mut stopping: watch::Receiver<bool>,
) {
    // Every listener's accepted connections, served by one loop.
    let (accepted, mut connections) = mpsc::channel(16);
    for listener in listeners {
        match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => {
                tokio::spawn(accept(label, listener, accepted.clone()));
            }
            Err(e) => tracing::error!("{label}: cannot serve a listener: {e}"),
        }
    }
    drop(accepted);
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_header_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS);
    loop {
        tokio::select! {
            _ = stopping.wait_for(|stop| *stop) => break,
            stream = connections.recv() => {
                let Some((stream, peer)) = stream else { break };
                // Over the cap: closed at once, which costs the flood more
                // than it costs the server.
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    continue;
                };
                // The peer's address, for handlers that log who was refused.
                let app = app.clone().map_request(move |mut request: hyper::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request
                });
                let service = TowerToHyperService::new(app);
                let connection = http.serve_connection(TokioIo::new(stream), service);
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    // A client that goes away mid-request is its business.
                    let _ = connection.await;
                    drop(permit);
                });
            }
        }
    }
    if tokio::time::timeout(STOP_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("{label}: connections still open at the stop, closed");
    }
}

/// Accepts connections until the receiving loop ends.
async fn accept(
    label: &'static str,
    listener: tokio::net::TcpListener,
    accepted: mpsc::Sender<(tokio::net::TcpStream, SocketAddr)>,
) {
    loop {
        match listener.accept().await {
            Ok(connection) => {
                if accepted.send(connection).await.is_err() {
                    return;
                }
            }
            // Out of file descriptors, say: wait a little rather than spin.
            Err(e) => {
                tracing::warn!("{label}: accepting a connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
