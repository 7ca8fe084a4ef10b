//! Network namespaces for the end-to-end tests: a house (the daemon) behind
//! a router, and an "internet" beyond it, each namespace created by the test
//! and removed when it ends.
//!
//! ```text
//!  [client: daemon] --veth-- [gateway: LAN gateway, forwards] --veth-- [internet]
//!     10.77.1.2               10.77.1.1 | 10.77.2.1                    10.77.2.2
//! ```
//!
//! Every address lives inside these namespaces: nothing is sent anywhere
//! else. Creating them needs root.

use std::process::Command;

/// The daemon's address, in `client`.
pub const CLIENT: &str = "10.77.1.2";
/// The LAN gateway, in `gateway`.
pub const GATEWAY: &str = "10.77.1.1";
/// The host beyond the router, in `internet`.
pub const INTERNET: &str = "10.77.2.2";

/// The start of the config of a daemon in `client`: `state_dir`, probing
/// every 200 ms (down after 1 s of failures), the LAN gateway its `lan`
/// target and the internet host its `wan` target, both by ICMP. The test
/// adds its own sections after it.
pub fn daemon_config(state_dir: &std::path::Path) -> String {
    format!(
        r#"state_dir = "{state}"

[probe]
interval = "200ms"
timeout = "150ms"
down_after = "1s"

[[targets]]
name = "gateway"
address = "{GATEWAY}"
role = "lan"

[[targets]]
name = "internet"
address = "{INTERNET}"
"#,
        state = state_dir.display()
    )
}

/// `wanwatch run --config CONFIG` in namespace `ns`, its log (stderr) going
/// to `log`. `binary` is the test's `env!("CARGO_BIN_EXE_wanwatch")`.
/// `ip netns exec` execs the daemon: the child's pid is the daemon's.
pub fn run_daemon(
    ns: &str,
    binary: &str,
    config: &std::path::Path,
    log: impl Into<std::process::Stdio>,
) -> crate::DaemonProcess {
    let mut launcher = Command::new("ip");
    launcher.args(["netns", "exec", ns, binary]);
    crate::DaemonProcess::spawn(launcher, config, log)
}

/// Runs `ip` with the arguments, failing with its stderr.
pub fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Three namespaces joined by two veth pairs; removed on drop.
pub struct Topology {
    pub client: String,
    pub gateway: String,
    pub internet: String,
    /// The gateway's links, towards the daemon and towards the internet.
    gateway_lan: String,
    gateway_wan: String,
}

impl Topology {
    /// `tag` tells apart the topologies of tests that run at once (in one
    /// test binary they share a process id).
    pub fn create(tag: &str) -> Result<Topology, String> {
        let id = std::process::id() % 100_000;
        let t = Topology {
            client: format!("ww{tag}c{id}"),
            gateway: format!("ww{tag}g{id}"),
            internet: format!("ww{tag}i{id}"),
            gateway_lan: format!("w{tag}l{id}g"),
            gateway_wan: format!("w{tag}w{id}g"),
        };
        for ns in [&t.client, &t.gateway, &t.internet] {
            ip(&["netns", "add", ns])?;
        }
        let (c, g) = (t.client.as_str(), t.gateway.as_str());
        let i = t.internet.as_str();
        // Each pair is created straight into its two namespaces, so nothing
        // ever appears in the root namespace.
        let (lan_c, lan_g) = (format!("w{tag}l{id}c"), t.gateway_lan.as_str());
        let (wan_g, wan_i) = (t.gateway_wan.as_str(), format!("w{tag}w{id}i"));
        ip(&[
            "link", "add", &lan_c, "netns", c, "type", "veth", "peer", "name", lan_g, "netns", g,
        ])?;
        ip(&[
            "link", "add", wan_g, "netns", g, "type", "veth", "peer", "name", &wan_i, "netns", i,
        ])?;
        for (ns, link, addr) in [
            (c, lan_c.as_str(), "10.77.1.2/24"),
            (g, lan_g, "10.77.1.1/24"),
            (g, wan_g, "10.77.2.1/24"),
            (i, wan_i.as_str(), "10.77.2.2/24"),
        ] {
            ip(&["-n", ns, "addr", "add", addr, "dev", link])?;
            ip(&["-n", ns, "link", "set", link, "up"])?;
        }
        for ns in [c, g, i] {
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        ip(&["-n", c, "route", "add", "default", "via", GATEWAY])?;
        ip(&["-n", i, "route", "add", "default", "via", "10.77.2.1"])?;
        let forward = Command::new("ip")
            .args(["netns", "exec", g, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
            .status()
            .map_err(|e| e.to_string())?;
        if !forward.success() {
            return Err("cannot enable forwarding in the gateway namespace".into());
        }
        Ok(t)
    }

    /// Takes the gateway's link towards the internet up or down: the ISP
    /// link failing while the LAN stays fine.
    pub fn wan_link(&self, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.gateway, "link", "set", &self.gateway_wan, state]).expect("wan link");
    }

    /// Takes the gateway's LAN link up or down: a local fault.
    pub fn lan_link(&self, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.gateway, "link", "set", &self.gateway_lan, state]).expect("lan link");
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in [&self.client, &self.gateway, &self.internet] {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// Runs `f` on a thread that has joined namespace `ns`, and returns what it
/// returns. Sockets it opens stay in `ns` whichever thread later serves
/// them, and threads it starts are in `ns` too (a new thread inherits its
/// creator's namespaces): emulators started here listen on `ns`'s
/// addresses.
pub fn in_namespace<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("namespace file");
        // SAFETY: setns only changes this thread's network namespace, and
        // the descriptor is valid for the call.
        let joined =
            unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
        assert_eq!(joined, 0, "setns: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("a thread in the namespace")
}
