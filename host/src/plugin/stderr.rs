//! The guest's stderr, kept as a bounded tail for error reports.
//!
//! A Rust guest that panics prints the panic message to stderr just before
//! it traps, so the last few KiB of stderr is what turns "wasm trap:
//! unreachable" into a useful error. wasmtime-wasi's `MemoryOutputPipe`
//! cannot serve here: once full it fails every write, and a guest whose
//! `eprintln!` fails panics itself. This stream never fails and never grows
//! beyond its bound: it keeps only the most recent bytes.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// How much of the guest's stderr is kept.
const TAIL_BYTES: usize = 4096;

/// The most recent [`TAIL_BYTES`] bytes a guest wrote to stderr. Clones share
/// the buffer: WASI hands the guest a fresh stream each time it asks for
/// stderr, and the host reads the tail through its own clone.
#[derive(Clone, Debug, Default)]
pub(super) struct StderrTail {
    buffer: Arc<Mutex<VecDeque<u8>>>,
}

impl StderrTail {
    fn lock(&self) -> MutexGuard<'_, VecDeque<u8>> {
        // A poisoned buffer is still a valid byte queue.
        self.buffer.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, bytes: &[u8]) {
        let mut buffer = self.lock();
        let keep = &bytes[bytes.len().saturating_sub(TAIL_BYTES)..];
        let overflow = (buffer.len() + keep.len()).saturating_sub(TAIL_BYTES);
        buffer.drain(..overflow);
        buffer.extend(keep);
    }

    /// Forgets what was written so far (at the start of each callback, so
    /// that an error report shows only that callback's output).
    pub(super) fn clear(&self) {
        self.lock().clear();
    }

    /// The tail as text, trimmed; None when the guest wrote nothing.
    pub(super) fn text(&self) -> Option<String> {
        let mut buffer = self.lock();
        let text = String::from_utf8_lossy(buffer.make_contiguous());
        let text = text.trim();
        (!text.is_empty()).then(|| text.to_owned())
    }
}

impl IsTerminal for StderrTail {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for StderrTail {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for StderrTail {
    // Always writable: writes never block.
    async fn ready(&mut self) {}
}

impl OutputStream for StderrTail {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(TAIL_BYTES)
    }
}

impl tokio::io::AsyncWrite for StderrTail {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_most_recent_bytes() {
        let tail = StderrTail::default();
        tail.push(&[b'a'; TAIL_BYTES]);
        tail.push(b"end");
        let text = tail.text().unwrap();
        assert_eq!(text.len(), TAIL_BYTES);
        assert!(text.ends_with("aaend"));
        tail.push(&[b'z'; TAIL_BYTES * 3]);
        assert_eq!(tail.text().unwrap(), "z".repeat(TAIL_BYTES));
    }

    #[test]
    fn writes_never_fail_and_clear_forgets() {
        let mut stream = StderrTail::default();
        for _ in 0..10 {
            assert_eq!(stream.check_write().unwrap(), TAIL_BYTES);
            stream.write(Bytes::from(vec![b'x'; TAIL_BYTES])).unwrap();
        }
        stream.clear();
        assert_eq!(stream.text(), None);
        stream
            .write(Bytes::from_static(b"  panicked at lib.rs:1\n"))
            .unwrap();
        assert_eq!(stream.text().as_deref(), Some("panicked at lib.rs:1"));
    }
}
