//! A real Prometheus Pushgateway (Debian's `prometheus-pushgateway`),
//! started on a free port of 127.0.0.1 and stopped when dropped.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BINARY: &str = "/usr/bin/prometheus-pushgateway";

pub struct Pushgateway {
    child: Child,
    addr: SocketAddr,
}

impl Pushgateway {
    /// Starts one, keeping its (unused) persistence file in `dir`, and
    /// waits until it is ready. None when it is not installed.
    pub fn start(dir: &Path) -> Option<Pushgateway> {
        if !Path::new(BINARY).exists() {
            return None;
        }
        let addr = {
            let free = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("a free port");
            free.local_addr().expect("its address")
        };
        let child = Command::new(BINARY)
            .arg(format!("--web.listen-address={addr}"))
            .arg(format!(
                "--persistence.file={}",
                dir.join("pushgateway.data").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the pushgateway");
        let gateway = Pushgateway { child, addr };
        let deadline = Instant::now() + Duration::from_secs(20);
        while gateway
            .get("/-/ready")
            .is_none_or(|(status, _)| status != 200)
        {
            assert!(Instant::now() < deadline, "the pushgateway is not ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(gateway)
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What a Prometheus scraping it gets: its `/metrics`.
    pub fn metrics(&self) -> String {
        match self.get("/metrics") {
            Some((200, body)) => body,
            other => panic!("the pushgateway's /metrics: {other:?}"),
        }
    }

    /// GETs `path`: the status and body, None when it does not answer.
    fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr).ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        let (head, body) = answer.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((status, body.to_owned()))
    }
}

impl Drop for Pushgateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
