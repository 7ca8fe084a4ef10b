//! A link the tests cut and restore: a TCP target on loopback.

use std::net::{Ipv4Addr, TcpListener};
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
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let link = Link {
            port,
            open: Arc::new(AtomicBool::new(false)),
        };
        drop(listener);
        link.restore();
        link
    }

    /// Listens until cut: a closed port refuses, which a TCP probe counts
    /// as no answer.
    pub fn restore(&self) {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, self.port)).unwrap();
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

    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        // The accepting thread drops the listener within 10 ms.
        std::thread::sleep(Duration::from_millis(50));
    }
}
