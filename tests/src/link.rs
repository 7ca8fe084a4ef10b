//! A link the tests cut and restore: a TCP target on loopback.

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A TCP port on 127.0.0.1 that answers (its handshakes complete) until
/// [`Link::cut`], and again after [`Link::restore`].
pub struct Link {
    pub port: u16,
    open: Arc<AtomicBool>,
}

impl Link {
    /// A link that answers, on a free port.
    pub fn up() -> Link {
        // Kept, not dropped and bound again: another test could take a
        // port released in between.
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let link = Link {
            port: listener.local_addr().unwrap().port(),
            open: Arc::new(AtomicBool::new(false)),
        };
        link.serve(listener);
        link
    }

    /// Listens again on the link's port after [`Link::cut`].
    pub fn restore(&self) {
        self.serve(TcpListener::bind((Ipv4Addr::LOCALHOST, self.port)).unwrap());
    }

    /// Accepts on `listener` until cut: a closed port refuses, which a TCP
    /// probe counts as no answer.
    fn serve(&self, listener: TcpListener) {
        listener.set_nonblocking(true).unwrap();
        self.open.store(true, Ordering::SeqCst);
        let open = self.open.clone();
        std::thread::spawn(move || {
            while open.load(Ordering::SeqCst) {
                if listener.accept().is_err() {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        });
    }

    /// The start of a daemon's config: `state_dir`, probing every 500 ms
    /// (down after 1 s of failures), this link its one `wan` target,
    /// `internet`. The test adds its own sections after it.
    pub fn daemon_config(&self, state_dir: &Path) -> String {
        format!(
            r#"state_dir = "{state}"

[probe]
interval = "500ms"
timeout = "300ms"
down_after = "1s"

[[targets]]
name = "internet"
address = "127.0.0.1"
kind = "tcp"
port = {port}
"#,
            state = state_dir.display(),
            port = self.port,
        )
    }

    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        // The accepting thread drops the listener within 10 ms.
        std::thread::sleep(Duration::from_millis(50));
    }
}
