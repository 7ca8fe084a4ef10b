//! Config reload on the live daemon: plugins added and removed when the file
//! changes or on SIGHUP, and a broken config rejected as a whole while the
//! running one stays. The daemon probes 127.0.0.1 only.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wanwatch_tests::{plugin_wasm, wait_for};

struct Daemon {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    fn start(config: &Path) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wanwatch"))
            .args(["--log-format", "json", "run", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the daemon");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Daemon { child, log }
    }

    /// Waits until the log has a line containing `text`.
    fn wait_log(&self, text: &str) -> String {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Some(line) = self.log.lock().unwrap().lines().find(|l| l.contains(text)) {
                return line.to_owned();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "no log line with {text:?}; log:\n{}",
            self.log.lock().unwrap()
        );
    }
}

/// Waits until the plugins the status file names are `want`.
fn wait_plugins(status: &Path, want: &[&str]) {
    wait_for(
        status,
        &format!("plugins {want:?}"),
        Duration::from_secs(30),
        |s| {
            let seen: Vec<&str> = s["plugins"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["name"].as_str())
                .collect();
            seen == want
        },
    );
}

/// Saves `text` as editors do: a new file renamed over the old one.
fn save(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn config(state: &Path, plugins: &[&str], extra: &str) -> String {
    let mut text = format!(
        "state_dir = \"{}\"\n[probe]\ninterval = \"200ms\"\ntimeout = \"100ms\"\n\
         [[targets]]\nname = \"lo\"\naddress = \"127.0.0.1\"\n{extra}\n",
        state.display()
    );
    for name in plugins {
        text += &format!(
            "[plugins.{name}]\nfile = \"{}\"\n",
            plugin_wasm("probe-plugin").display()
        );
    }
    text
}

#[test]
fn plugins_follow_the_config_and_a_broken_config_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let status = state.join("status.json");
    let path = dir.path().join("wanwatch.toml");
    save(&path, &config(&state, &["a"], ""));
    let daemon = Daemon::start(&path);
    wait_plugins(&status, &["a"]);

    // Saved with a second plugin: it is loaded without a restart.
    save(&path, &config(&state, &["a", "b"], ""));
    wait_plugins(&status, &["a", "b"]);

    // A typo: rejected as a whole, located, and the running config stays.
    save(
        &path,
        &config(&state, &["a"], "[safety]\nmax_cycles_per_huor = 2"),
    );
    let line = daemon.wait_log("config reload rejected");
    assert!(
        line.contains("wanwatch.toml:9:1: safety.max_cycles_per_huor: unknown field"),
        "{line}"
    );
    daemon.wait_log("keeping the running config");
    wait_plugins(&status, &["a", "b"]);

    // Fixed, with `b` gone; a change outside [plugins] is reported as
    // needing a restart.
    save(
        &path,
        &config(&state, &["a"], "[safety]\nmax_cycles_per_hour = 2"),
    );
    wait_plugins(&status, &["a"]);
    daemon.wait_log("changes to [safety] take effect at the next restart");

    // SIGHUP reloads too.
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(
        unsafe { libc::kill(daemon.child.id() as i32, libc::SIGHUP) },
        0
    );
    daemon.wait_log("(Hangup)");
}
