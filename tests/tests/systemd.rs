//! systemd's notify protocol, as the live daemon and watcher speak it: a
//! datagram socket of the test's is given as `NOTIFY_SOCKET`, and receives
//! what systemd would. The daemon probes loopback listeners the test owns
//! (HTTP and TCP: no root needed, and the test decides when they fail).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use wanwatch_tests::DaemonProcess;

const BIN: &str = env!("CARGO_BIN_EXE_wanwatch");
/// Starting includes compiling the built-in plugins (a debug build).
const START: Duration = Duration::from_secs(120);
const WAIT: Duration = Duration::from_secs(30);

/// The service manager's end: what a `Type=notify` service sends.
struct Systemd {
    socket: UnixDatagram,
    dir: tempfile::TempDir,
}

/// One datagram: its `KEY=VALUE` lines, and when it came.
#[derive(Debug)]
struct Message {
    at: Instant,
    lines: Vec<String>,
}

impl Message {
    fn has(&self, line: &str) -> bool {
        self.lines.iter().any(|l| l == line)
    }

    fn value(&self, key: &str) -> Option<&str> {
        self.lines
            .iter()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
    }
}

impl Systemd {
    fn new() -> Systemd {
        let dir = tempfile::tempdir().unwrap();
        let socket = UnixDatagram::bind(dir.path().join("notify")).unwrap();
        Systemd { socket, dir }
    }

    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("notify")
    }

    /// The next message, or None after `timeout`.
    fn next(&self, timeout: Duration) -> Option<Message> {
        self.socket.set_read_timeout(Some(timeout)).unwrap();
        let mut buf = [0u8; 4096];
        let n = self.socket.recv(&mut buf).ok()?;
        let text = String::from_utf8_lossy(&buf[..n]);
        Some(Message {
            at: Instant::now(),
            lines: text.lines().map(str::to_owned).collect(),
        })
    }

    /// Waits for a message that `want` accepts; returns it and those
    /// before it. Fails after `timeout`, showing what came.
    fn wait(
        &self,
        what: &str,
        timeout: Duration,
        want: impl Fn(&Message) -> bool,
    ) -> (Message, Vec<Message>) {
        let deadline = Instant::now() + timeout;
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {what} within {timeout:?}; received: {before:#?}"
            );
            match self.next(left) {
                Some(m) if want(&m) => return (m, before),
                Some(m) => before.push(m),
                None => {}
            }
        }
    }
}

fn signal(daemon: &DaemonProcess, signal: libc::c_int) {
    // SAFETY: kill has no memory effects; the pid is our child's.
    assert_eq!(
        unsafe { libc::kill(daemon.0.id() as libc::pid_t, signal) },
        0
    );
}

/// The daemon run as systemd runs it: `NOTIFY_SOCKET` set, `env` added.
fn start(
    config: &Path,
    systemd: &Systemd,
    env: &[(&str, &str)],
    args: &[&str],
    stderr: impl Into<Stdio>,
) -> DaemonProcess {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env("NOTIFY_SOCKET", systemd.path())
        .envs(env.iter().copied());
    DaemonProcess::spawn(command, config, stderr)
}

/// What the test's HTTP "server" does with a probe.
const HOLD: u8 = 0;
const ANSWER: u8 = 1;
const CLOSE: u8 = 2;

/// An HTTP server on loopback that holds every request unanswered, answers
/// 204, or closes its listening socket, as `mode` says; and when it first
/// accepted a probe.
fn http_target(mode: Arc<AtomicU8>, first: Arc<OnceLock<Instant>>) -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            first.get_or_init(Instant::now);
            match mode.load(Ordering::SeqCst) {
                HOLD => held.push(stream),
                ANSWER => {
                    let mut buf = [0u8; 1024];
                    let _ = stream.read(&mut buf);
                    let _ =
                        stream.write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n");
                }
                // The listener is dropped: the next probes are refused.
                _ => return,
            }
        }
    });
    port
}

#[test]
fn ready_follows_the_first_round_and_status_reload_and_stop_are_told() {
    let mode = Arc::new(AtomicU8::new(HOLD));
    let first = Arc::new(OnceLock::new());
    let port = http_target(mode.clone(), first.clone());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wanwatch.toml");
    // The first round takes the whole timeout: its probe is held unanswered.
    let timeout = Duration::from_millis(1000);
    std::fs::write(
        &config,
        format!(
            "state_dir = {:?}\n[probe]\ninterval = \"1500ms\"\ntimeout = \"1s\"\ndown_after = \"1s\"\n\
             [[targets]]\nname = \"web\"\naddress = \"127.0.0.1\"\nkind = \"http\"\nport = {port}\n",
            dir.path()
        ),
    )
    .unwrap();
    let systemd = Systemd::new();
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    let daemon = start(&config, &systemd, &[], &[], log);

    let (ready, before) = systemd.wait("READY=1", START, |m| m.has("READY=1"));
    assert!(before.is_empty(), "sent before READY=1: {before:?}");
    // Not before the first round was judged: its probe came, then waited
    // out its timeout (less the time to connect, well under 100 ms).
    let probed = *first.get().expect("READY=1 came before any probe");
    assert!(
        ready.at >= probed + timeout - Duration::from_millis(100),
        "READY=1 {:?} after the first probe, whose round takes {timeout:?}",
        ready.at - probed
    );
    let status = ready.value("STATUS").expect("READY=1 comes with a STATUS=");
    assert!(
        status.starts_with("WAN ")
            && status.contains(" since ")
            && status.ends_with("(1 target, dry run)"),
        "{status}"
    );

    // The target answers: up. Then it is gone: down, each said once.
    mode.store(ANSWER, Ordering::SeqCst);
    let (up, _) = systemd.wait("STATUS=WAN up", WAIT, |m| {
        m.value("STATUS")
            .is_some_and(|s| s.starts_with("WAN up since "))
    });
    mode.store(CLOSE, Ordering::SeqCst);
    let (down, between) = systemd.wait("STATUS=WAN down", WAIT, |m| {
        m.value("STATUS")
            .is_some_and(|s| s.starts_with("WAN down since "))
    });
    assert_ne!(up.value("STATUS"), down.value("STATUS"));
    let statuses: Vec<&str> = between.iter().filter_map(|m| m.value("STATUS")).collect();
    assert!(
        statuses.iter().all(|s| s.starts_with("WAN sick since ")),
        "STATUS= is sent again only on a transition: {statuses:?}"
    );

    // SIGHUP, as ExecReload= sends it: reloading, then ready again.
    signal(&daemon, libc::SIGHUP);
    let (reloading, _) = systemd.wait("RELOADING=1", WAIT, |m| m.has("RELOADING=1"));
    let usec: u64 = reloading
        .value("MONOTONIC_USEC")
        .expect("RELOADING=1 with MONOTONIC_USEC=")
        .parse()
        .unwrap();
    assert!(usec > 0);
    systemd.wait("READY=1 after the reload", WAIT, |m| m.has("READY=1"));

    // SIGTERM, as systemctl stop sends it.
    signal(&daemon, libc::SIGTERM);
    systemd.wait("STOPPING=1", WAIT, |m| m.has("STOPPING=1"));
    let mut daemon = daemon;
    assert!(daemon.0.wait().unwrap().success());
}

/// A pipe for the daemon's stderr that the test reads, or stops reading as
/// a wedged journald would: then the daemon's threads that log block.
struct LogPipe {
    draining: Arc<(Mutex<bool>, Condvar)>,
}

impl LogPipe {
    fn new() -> (LogPipe, std::io::PipeWriter) {
        let (mut reader, writer) = std::io::pipe().unwrap();
        // One page, the smallest pipe: a few dozen lines fill it.
        // SAFETY: fcntl on a descriptor we own; no memory is passed.
        let size = unsafe {
            libc::fcntl(
                std::os::fd::AsRawFd::as_raw_fd(&writer),
                libc::F_SETPIPE_SZ,
                4096,
            )
        };
        assert!(
            size >= 4096,
            "F_SETPIPE_SZ: {}",
            std::io::Error::last_os_error()
        );
        let draining = Arc::new((Mutex::new(true), Condvar::new()));
        let gate = draining.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            loop {
                let (lock, changed) = &*gate;
                let _open = changed
                    .wait_while(lock.lock().unwrap(), |draining| !*draining)
                    .unwrap();
                drop(_open);
                if matches!(reader.read(&mut buf), Ok(0) | Err(_)) {
                    return;
                }
            }
        });
        (LogPipe { draining }, writer)
    }

    fn drain(&self, on: bool) {
        *self.draining.0.lock().unwrap() = on;
        self.draining.1.notify_all();
    }
}

/// The watchdog is fed by handled rounds, not by a timer: when the rounds
/// stop reaching the main loop, the pings stop, though the process lives
/// and its main loop could still tick.
///
/// How the rounds are stopped: the daemon's log blocks, as it does when
/// journald is wedged. Each failed probe is logged at debug level by the
/// probing task, which then blocks on the full pipe, and no round reaches
/// the main loop. SIGSTOP would stop every thread, a timer thread's
/// pings with them, so it could not tell the two designs apart: this can.
/// (The gate's half-period rule is unit-tested in host/src/systemd.rs.)
#[test]
fn watchdog_pings_come_while_rounds_are_handled_and_stop_when_they_stop() {
    // A port nobody listens on: every probe fails at once, logged.
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wanwatch.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = {:?}\n[probe]\ninterval = \"100ms\"\ntimeout = \"50ms\"\n\
             [[targets]]\nname = \"web\"\naddress = \"127.0.0.1\"\nkind = \"tcp\"\nport = {port}\n",
            dir.path()
        ),
    )
    .unwrap();
    let systemd = Systemd::new();
    let (log, stderr) = LogPipe::new();
    let period = Duration::from_millis(1500);
    let daemon = start(
        &config,
        &systemd,
        &[("WATCHDOG_USEC", &period.as_micros().to_string())],
        &["--log-level", "debug"],
        stderr,
    );
    systemd.wait("READY=1", START, |m| m.has("READY=1"));

    // Rounds every 100 ms: a ping every half period, never a period apart.
    let mut pings = Vec::new();
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        if let Some(m) = systemd.next(until.saturating_duration_since(Instant::now()))
            && m.has("WATCHDOG=1")
        {
            pings.push(m.at);
        }
    }
    assert!(pings.len() >= 4, "{} pings in 4 s", pings.len());
    for pair in pings.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= period / 2 - Duration::from_millis(50) && gap < period,
            "pings {gap:?} apart with WATCHDOG_USEC={period:?}"
        );
    }

    // The log stops being read: within a few dozen rounds the pipe is full.
    log.drain(false);
    let silence = period * 3;
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "the pings never stopped");
        match systemd.next(silence) {
            None => break,
            Some(m) => assert!(!m.has("STOPPING=1"), "{m:?}"),
        }
    }
    let mut daemon = daemon;
    assert!(
        daemon.0.try_wait().unwrap().is_none(),
        "the daemon exited instead of wedging"
    );

    // The log flows again: so do the rounds, and the pings.
    log.drain(true);
    systemd.wait("WATCHDOG=1 after the log flows again", WAIT, |m| {
        m.has("WATCHDOG=1")
    });
}

/// The watcher is ready once it listens, and says it stops.
#[test]
fn the_watcher_is_ready_once_listening_and_says_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("watcher.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = {:?}\nlisten = \"127.0.0.1:{port}\"\n[sites.home]\ntoken = \"home-site-token-4711\"\n",
            dir.path()
        ),
    )
    .unwrap();
    let systemd = Systemd::new();
    let mut watcher = Command::new(BIN);
    watcher
        .args(["watcher", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", systemd.path())
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    // systemd's MemoryDenyWriteExecute=yes, as the kernel enforces it
    // (PR_SET_MDWE, Linux 6.3+): the watcher unit sets it, so the watcher
    // must never need memory that becomes executable.
    let mdwe = memory_deny_write_execute(&mut watcher);
    let watcher = DaemonProcess(watcher.spawn().unwrap());
    let (ready, _) = systemd.wait("READY=1", WAIT, |m| m.has("READY=1"));
    assert_eq!(ready.value("STATUS"), Some("watching 1 site(s)"));
    // Listening by then, not soon after.
    TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("listening at READY=1");
    if !mdwe {
        wanwatch_tests::skip("PR_SET_MDWE needs Linux 6.3: MemoryDenyWriteExecute not checked");
    }
    signal(&watcher, libc::SIGTERM);
    systemd.wait("STOPPING=1", WAIT, |m| m.has("STOPPING=1"));
    let mut watcher = watcher;
    assert!(watcher.0.wait().unwrap().success());
}

/// The daemon's unit has MemoryDenyWriteExecute off, because the plugins
/// are compiled to machine code at run time: under it, the daemon cannot
/// start them (and says so), which is what the unit's comment claims.
#[test]
fn the_daemon_cannot_run_its_plugins_with_memory_deny_write_execute() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wanwatch.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = {:?}\n[[targets]]\nname = \"lo\"\naddress = \"127.0.0.1\"\nkind = \"tcp\"\nport = 9\n",
            dir.path()
        ),
    )
    .unwrap();
    let mut command = Command::new(BIN);
    command.args(["run", "--config"]).arg(&config);
    if !memory_deny_write_execute(&mut command) {
        wanwatch_tests::skip("PR_SET_MDWE needs Linux 6.3");
        return;
    }
    let out = command.stdin(Stdio::null()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    // "plugin `powercycle` (built-in): ... unable to make memory executable"
    assert!(
        stderr.contains("plugin") && stderr.contains("executable"),
        "{stderr}"
    );
}

/// Makes `command` run with the kernel refusing memory that is or becomes
/// both written and executed (PR_SET_MDWE, what MemoryDenyWriteExecute=
/// means); false, leaving it as it was, if this kernel cannot (before 6.3).
fn memory_deny_write_execute(command: &mut Command) -> bool {
    fn refuse_exec_gain(command: &mut Command) -> &mut Command {
        const PR_SET_MDWE: libc::c_int = 65;
        const PR_MDWE_REFUSE_EXEC_GAIN: libc::c_ulong = 1;
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
        }
    }
    // Tried on a child first: the setting cannot be undone.
    let supported = refuse_exec_gain(&mut Command::new("true"))
        .status()
        .is_ok_and(|s| s.success());
    if supported {
        refuse_exec_gain(command);
    }
    supported
}
