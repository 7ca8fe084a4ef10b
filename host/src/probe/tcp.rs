//! TCP probes: a target answers when the three-way handshake completes.
//!
//! A refused connection (RST) is not counted as an answer, although it
//! proves the path: the router on the way, or a captive portal, can send
//! it too. The connection is closed at once, having sent nothing.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

/// Connects to `addr` within `timeout`; the time the handshake took.
pub(super) async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    open(addr, timeout).await.map(|_| start.elapsed())
}

/// The connection, for probes that go on to speak over it.
pub(super) async fn open(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, String> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(format!("cannot connect: {e}")),
        Err(_) => Err("no answer to the connection request".into()),
    }
}
