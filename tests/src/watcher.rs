//! `wanwatch watcher` run as a process on loopback, for the watcher's
//! tests (and the end-to-end test): its config written to a temp
//! directory, started, stopped with SIGTERM or killed, restarted on the
//! same port and state; and the JSON documents a site sends it.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::DaemonProcess;

/// The viewer token the test watchers ask for.
pub const VIEWER_TOKEN: &str = "viewer-token-0123456789";

/// A watcher process and its files; killed on drop.
pub struct WatcherProcess {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub log: PathBuf,
    pub addr: SocketAddr,
    binary: String,
    process: Option<DaemonProcess>,
}

impl WatcherProcess {
    /// Starts `binary watcher` on a free loopback port with the viewer
    /// token, its state in a temp directory; `extra` is the rest of the
    /// config (the sites, `missed_after`, `[notify]`...).
    pub fn start(binary: &str, extra: &str) -> WatcherProcess {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let config = dir.path().join("watcher.toml");
        std::fs::write(
            &config,
            format!(
                "state_dir = {:?}\nlisten = \"{addr}\"\ntoken = \"{VIEWER_TOKEN}\"\n{extra}",
                dir.path().join("state")
            ),
        )
        .unwrap();
        let log = dir.path().join("watcher.log");
        let mut watcher = WatcherProcess {
            dir,
            config,
            log,
            addr,
            binary: binary.to_owned(),
            process: None,
        };
        watcher.launch();
        watcher
    }

    /// `http://127.0.0.1:PORT`
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(&self.binary)
            .args(["watcher", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the watcher");
        self.process = Some(DaemonProcess(child));
        // Listening once the port accepts: bound before anything else.
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(self.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "the watcher did not listen on {}; its log:\n{}",
                self.addr,
                self.log_text()
            );
            if let Some(status) = self.process.as_mut().unwrap().0.try_wait().unwrap() {
                panic!(
                    "the watcher exited ({status}); its log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops it as systemd does (SIGTERM) and returns how it exited.
    pub fn stop(&mut self) -> ExitStatus {
        let mut process = self.process.take().expect("the watcher runs");
        // SAFETY: kill has no memory effects; the pid is our child's.
        unsafe { libc::kill(process.0.id() as libc::pid_t, libc::SIGTERM) };
        process.0.wait().unwrap()
    }

    /// Kills it (SIGKILL), as a crash or a power cut would.
    pub fn kill(&mut self) {
        let mut process = self.process.take().expect("the watcher runs");
        process.0.kill().unwrap();
        process.0.wait().unwrap();
    }

    /// Starts it again with the same config, port and state.
    pub fn restart(&mut self) {
        assert!(self.process.is_none(), "stop or kill it first");
        self.launch();
    }

    /// The pid, for the benchmark's /proc readings.
    pub fn pid(&self) -> u32 {
        self.process.as_ref().expect("the watcher runs").0.id()
    }

    /// Its log (stderr) so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A heartbeat as a site's daemon sends it, its clock reading `sent_at_ms`.
pub fn heartbeat(sent_at_ms: u64) -> Value {
    json!({
        "sent_at_ms": sent_at_ms,
        "version": "test",
        "state": "up",
        "state_since_ms": sent_at_ms.saturating_sub(3_600_000),
        "interval_s": 1,
        "summary": {"rtt_ms": 12.5, "loss_percent": 0.0, "outages_today": 1, "dry_run": false}
    })
}

/// An outage report of `[started, ended]` (wall clock).
pub fn report(id: &str, started: u64, ended: u64, cause: &str) -> Value {
    json!({
        "id": id,
        "started_at_ms": started,
        "down_at_ms": started + 100,
        "ended_at_ms": ended,
        "duration_ms": ended - started,
        "cause": cause,
        "evidence": "the LAN gateway did not answer either",
        "power_cycles": [{"at_ms": started + 200, "device": "modem", "outcome": "done"}],
        "fixed_by_cycle": 1,
        "targets": [{
            "name": "cloudflare",
            "before": {"sent": 10, "answered": 10, "loss_percent": 0.0, "rtt_mean_ms": 11.0},
            "during": {"sent": 5, "answered": 0, "loss_percent": 100.0, "rtt_mean_ms": null},
            "after": {"sent": 10, "answered": 10, "loss_percent": 0.0, "rtt_mean_ms": 12.0}
        }]
    })
}
