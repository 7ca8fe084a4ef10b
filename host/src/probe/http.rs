//! HTTP probes: `GET /` over plain HTTP/1.1 to an address; any status line
//! is an answer.
//!
//! Written on a bare TCP connection rather than with an HTTP client: the
//! probe wants only the first line of the answer, and must not follow
//! redirects, use a proxy from the environment, or keep connections open
//! between rounds (a kept connection would hide a dead link until it
//! timed out).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// Enough for any status line ("HTTP/1.1 200 OK\r\n" is 17 bytes).
const STATUS_LINE_MAX: usize = 256;

/// Sends `GET /` to `addr` and waits, `timeout` in all, for the status line;
/// the time from the connection request to the status line.
pub(super) async fn get(addr: SocketAddr, timeout: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    match tokio::time::timeout(timeout, exchange(addr, timeout)).await {
        Ok(Ok(())) => Ok(start.elapsed()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("no HTTP answer".into()),
    }
}

async fn exchange(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    let mut stream = super::tcp::open(addr, timeout).await?;
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: wanwatch/{}\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("cannot send the request: {e}"))?;
    let mut answer = Vec::with_capacity(STATUS_LINE_MAX);
    while !answer.contains(&b'\n') && answer.len() < STATUS_LINE_MAX {
        let mut chunk = [0; STATUS_LINE_MAX];
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("cannot read the answer: {e}"))?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..n]);
    }
    status_line(&answer)
}

/// Whether `answer` starts with an HTTP status line ("HTTP/1.1 404 ...").
fn status_line(answer: &[u8]) -> Result<(), String> {
    let line = answer.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut words = line.split(|&b| b == b' ');
    let version = words.next().unwrap_or_default();
    let code = words.next().unwrap_or_default();
    if version.starts_with(b"HTTP/") && code.len() == 3 && code.iter().all(u8::is_ascii_digit) {
        Ok(())
    } else if answer.is_empty() {
        Err("the connection closed without an answer".into())
    } else {
        Err(format!(
            "the answer is not HTTP: {:?}",
            String::from_utf8_lossy(&answer[..answer.len().min(40)])
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_status_line_is_an_answer() {
        assert!(status_line(b"HTTP/1.1 200 OK\r\n").is_ok());
        assert!(status_line(b"HTTP/1.0 301 Moved Permanently\r\nLocation: x").is_ok());
        assert!(status_line(b"HTTP/1.1 503 ").is_ok());
    }

    #[test]
    fn anything_else_is_not() {
        assert_eq!(
            status_line(b"").unwrap_err(),
            "the connection closed without an answer"
        );
        assert!(status_line(b"SSH-2.0-OpenSSH_9.2\r\n").is_err());
        assert!(status_line(b"HTTP/1.1 2000 OK\r\n").is_err());
        assert!(status_line(b"\x16\x03\x01\x00").is_err());
    }
}
