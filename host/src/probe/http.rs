//! HTTP probes: `GET /` over plain HTTP/1.1 to an address; any status line
//! is an answer. The https probe speaks the same request over TLS
//! ([`status`]).
//!
//! Written on a bare TCP connection rather than with an HTTP client: the
//! probe wants only the first line of the answer, and must not follow
//! redirects, use a proxy from the environment, or keep connections open
//! between rounds (a kept connection would hide a dead link until it
//! timed out).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// Enough for any status line ("HTTP/1.1 200 OK\r\n" is 17 bytes).
const STATUS_LINE_MAX: usize = 256;

/// Sends `GET /` to `addr` and waits, `timeout` in all, for the status line;
/// the time from the connection request to the status line.
pub(super) async fn get(addr: SocketAddr, timeout: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    let exchange = async {
        let mut stream = super::tcp::open(addr, timeout).await?;
        status(&mut stream, &addr.to_string(), "/").await
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(_)) => Ok(start.elapsed()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("no HTTP answer".into()),
    }
}

/// Sends `GET target` for `host` over `stream` (plain TCP, or TLS for the
/// https probe) and reads the answer's status line: its code.
pub(super) async fn status<S>(stream: &mut S, host: &str, target: &str) -> Result<u16, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: wanwatch/{}\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    let sent = async {
        stream.write_all(request.as_bytes()).await?;
        // TLS buffers what it writes until flushed.
        stream.flush().await
    };
    sent.await
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

/// The status code, when `answer` starts with an HTTP status line
/// ("HTTP/1.1 404 ...").
fn status_line(answer: &[u8]) -> Result<u16, String> {
    let line = answer.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut words = line.split(|&b| b == b' ');
    let version = words.next().unwrap_or_default();
    let code = words.next().unwrap_or_default();
    let code = (code.len() == 3 && code.iter().all(u8::is_ascii_digit))
        .then(|| code.iter().fold(0, |n, d| n * 10 + u16::from(d - b'0')));
    match code {
        Some(code) if version.starts_with(b"HTTP/") => Ok(code),
        _ if answer.is_empty() => Err("the connection closed without an answer".into()),
        _ => Err(format!(
            "the answer is not HTTP: {:?}",
            String::from_utf8_lossy(&answer[..answer.len().min(40)])
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_status_line_is_an_answer() {
        assert_eq!(status_line(b"HTTP/1.1 200 OK\r\n"), Ok(200));
        assert_eq!(
            status_line(b"HTTP/1.0 301 Moved Permanently\r\nLocation: x"),
            Ok(301)
        );
        assert_eq!(status_line(b"HTTP/1.1 503 "), Ok(503));
    }

    #[test]
    fn anything_else_is_not() {
        assert_eq!(
            status_line(b"").unwrap_err(),
            "the connection closed without an answer"
        );
        assert!(status_line(b"SSH-2.0-OpenSSH_9.2\r\n").is_err());
        assert!(status_line(b"HTTP/1.1 2000 OK\r\n").is_err());
        assert!(status_line(b"HTTP/1.1 +20 OK\r\n").is_err());
        assert!(status_line(b"\x16\x03\x01\x00").is_err());
    }
}
