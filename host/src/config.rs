//! The TOML configuration.
//!
//! Every section is optional: with no file at all the daemon runs on built-in
//! defaults (the autodetected gateway, 1.1.1.1 and 8.8.8.8, the built-in
//! `powercycle` and `notify` policies). Unknown keys are rejected, and every
//! error names the file, line, column and key, because a watchdog that
//! silently ignores a typo in its config is a watchdog that does nothing when
//! it matters.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;
use serde::{Deserialize, Deserializer};

use crate::http::{AddressError, base_url};
use crate::plugin::builtin;
use crate::probe::{HttpsProbe, Probe};
use crate::state::{Evidence, ProbeKind, Role, Thresholds};

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the status file and the plugins' key-value stores live.
    /// Default: the unit's `StateDirectory=` under systemd, else
    /// /var/lib/wanwatch as root, else $XDG_STATE_HOME/wanwatch.
    pub state_dir: Option<PathBuf>,
    #[serde(default)]
    pub probe: ProbeConfig,
    /// The probe targets. None: the LAN gateway, 1.1.1.1 and 8.8.8.8.
    #[serde(default)]
    pub targets: Vec<TargetConfig>,
    /// Devices the plugins may act on, by name.
    #[serde(default)]
    pub devices: BTreeMap<String, DeviceConfig>,
    #[serde(default)]
    pub safety: SafetyConfig,
    /// Policy plugins, by name, in the order of their sections: each event
    /// goes to them in that order. None: the built-ins, `powercycle` granted
    /// every configured device (without one, the device it would cycle, for
    /// a dry run) and notify, and `notify` granted notify.
    #[serde(default)]
    pub plugins: IndexMap<String, PluginConfig>,
    /// Where notifications go: `[notify.ntfy]`, `[[notify.webhook]]`.
    #[serde(default)]
    pub notify: crate::notify::NotifyConfig,
    /// Mains power-outage detection. None: no detection, power is assumed on.
    #[serde(default)]
    pub power: PowerConfig,
    /// The history: the database, and a CSV log of every probe, one file
    /// per day.
    #[serde(default)]
    pub history: crate::history::HistoryConfig,
    /// The HTTP API, event stream, metrics and dashboard.
    #[serde(default)]
    pub http: crate::api::HttpConfig,
    /// `[[heartbeat]]`: proof of life sent out of the house while the WAN
    /// is up.
    #[serde(default)]
    pub heartbeat: Vec<crate::heartbeat::HeartbeatConfig>,
    /// `[reports]`: when outage reports are sent.
    #[serde(default)]
    pub reports: crate::outage_report::ReportsConfig,
    /// `[mqtt]`: the state and figures published to an MQTT broker, with
    /// Home Assistant discovery.
    pub mqtt: Option<crate::mqtt::MqttConfig>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeConfig {
    /// Time between the starts of two probe rounds.
    #[serde(with = "human_duration")]
    pub interval: Duration,
    /// How long to wait for each answer; less than `interval`.
    #[serde(with = "human_duration")]
    pub timeout: Duration,
    /// How long rounds must keep failing before the link is down.
    #[serde(with = "human_duration")]
    pub down_after: Duration,
    /// How many `wan` targets must answer for a round to succeed.
    pub min_ok: usize,
    /// How far back each target's loss, round trips and jitter look.
    #[serde(with = "human_duration")]
    pub quality_window: Duration,
    /// The link is degraded at or above this loss ("10%"). Default: off.
    pub degraded_loss: Option<Percent>,
    /// The link is degraded at or above this median round trip ("250ms").
    /// Default: off.
    #[serde(default, with = "human_duration_opt")]
    pub degraded_rtt: Option<Duration>,
    /// How long both figures must stay below before a degraded link is
    /// back to normal.
    #[serde(with = "human_duration")]
    pub degraded_hold: Duration,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        let thresholds = Thresholds::default();
        ProbeConfig {
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            down_after: thresholds.down_after,
            min_ok: thresholds.min_ok,
            quality_window: Duration::from_secs(5 * 60),
            degraded_loss: None,
            degraded_rtt: None,
            // A minute: long enough that a figure hovering at its
            // threshold, as probes enter and leave the window, does not flip
            // the signal every round; short beside the 5-minute window,
            // which already keeps a past fault in the figures for a while.
            degraded_hold: Duration::from_secs(60),
        }
    }
}

impl ProbeConfig {
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            down_after: self.down_after,
            min_ok: self.min_ok,
        }
    }

    /// The link-quality judgement's settings, for rounds every `interval`
    /// (the simulator's scenarios may set their own).
    pub fn quality(&self, interval: Duration) -> crate::quality::Settings {
        crate::quality::Settings {
            window: crate::quality::Settings::probes(self.quality_window, interval),
            degraded_loss_percent: self.degraded_loss.map(|p| p.0),
            degraded_rtt_us: self
                .degraded_rtt
                .map(|d| u32::try_from(d.as_micros()).unwrap_or(u32::MAX)),
            hold_ms: u64::try_from(self.degraded_hold.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// A percentage written "10%" or "2.5%": more than 0, at most 100.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Percent(pub f32);

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let value = s
            .trim()
            .strip_suffix('%')
            .and_then(|n| n.trim().parse::<f32>().ok())
            .filter(|n| n.is_finite())
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "`{s}` is not a percentage; write e.g. \"10%\" or \"2.5%\""
                ))
            })?;
        if !(value > 0.0 && value <= 100.0) {
            return Err(serde::de::Error::custom(format!(
                "`{s}` is out of range: more than 0% and at most 100%"
            )));
        }
        Ok(Percent(value))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    pub name: String,
    /// Every kind but `https` (which has its `url` instead).
    pub address: Option<TargetAddress>,
    #[serde(default = "default_role")]
    pub role: Role,
    #[serde(default = "default_kind")]
    pub kind: ProbeKind,
    /// `tcp` (required), `http` (default 80) and `dns` (default 53).
    pub port: Option<u16>,
    /// `dns` only: the name whose A records are asked for.
    pub query: Option<String>,
    /// `https` only: what is fetched, e.g. "https://example.com/".
    pub url: Option<String>,
    /// `https` only: a PEM file of roots trusted besides the webpki roots;
    /// relative to the config file.
    pub ca_file: Option<PathBuf>,
}

impl TargetConfig {
    /// Whether the target says where it goes as its kind needs: an
    /// `address`, or for https a `url` (and maybe a `ca_file`) instead.
    fn check_destination(
        &self,
        key: &dyn Fn(&str) -> Vec<String>,
        errors: &mut Vec<(Vec<String>, String)>,
    ) {
        let https = self.kind == ProbeKind::Https;
        match (&self.address, https) {
            (Some(_), true) => errors.push((
                key("address"),
                "an https target goes where its `url` says: remove `address`".into(),
            )),
            (None, false) => errors.push((
                key("address"),
                "needs an `address` (an IP address, or \"gateway\"); only https targets go by `url`".into(),
            )),
            _ => {}
        }
        match (&self.url, https) {
            (Some(url), true) => {
                if let Err(e) = crate::probe::parse_https_url(url) {
                    errors.push((key("url"), e));
                }
            }
            (None, true) => errors.push((
                key("kind"),
                "an https target needs a `url` (e.g. \"https://example.com/\")".into(),
            )),
            (Some(_), false) => errors.push((key("url"), "only https targets take a `url`".into())),
            (None, false) => {}
        }
        if self.ca_file.is_some() && !https {
            errors.push((key("ca_file"), "only https targets take a `ca_file`".into()));
        }
    }

    /// How this target is probed, once the config is valid: `"gateway"`
    /// becomes `gateway` (the autodetected one, if any), and an https
    /// target reads its `ca_file`.
    pub fn probe(&self, gateway: Option<IpAddr>) -> Result<Probe, String> {
        let port = self
            .port
            .or(Probe::default_port(self.kind))
            .unwrap_or_default();
        let address = || {
            match self.address {
            Some(TargetAddress::Ip(ip)) => Ok(ip),
            Some(TargetAddress::Gateway) => gateway.ok_or_else(|| "address is \"gateway\" but no default gateway was found in /proc/net/route or /proc/net/ipv6_route".to_owned()),
            None => Err("has no `address`".to_owned()),
        }
        };
        Ok(match self.kind {
            ProbeKind::Icmp => Probe::Icmp {
                address: address()?,
            },
            ProbeKind::Tcp => Probe::Tcp {
                address: address()?,
                port,
            },
            ProbeKind::Http => Probe::Http {
                address: address()?,
                port,
            },
            ProbeKind::Dns => Probe::Dns {
                address: address()?,
                port,
                query: self
                    .query
                    .clone()
                    .unwrap_or_else(|| Probe::DEFAULT_DNS_QUERY.into()),
            },
            ProbeKind::Https => Probe::Https(HttpsProbe::new(
                self.url.as_deref().unwrap_or_default(),
                self.ca_file.as_deref(),
            )?),
        })
    }
}

fn default_role() -> Role {
    Role::Wan
}

fn default_kind() -> ProbeKind {
    ProbeKind::Icmp
}

/// An IP address, or `"gateway"` for the autodetected default gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetAddress {
    Gateway,
    Ip(IpAddr),
}

impl<'de> Deserialize<'de> for TargetAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "gateway" {
            return Ok(TargetAddress::Gateway);
        }
        s.parse().map(TargetAddress::Ip).map_err(|_| {
            serde::de::Error::custom(format!(
                "`{s}` is not an IP address (or \"gateway\" for the autodetected LAN gateway)"
            ))
        })
    }
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    pub kind: DeviceKind,
    /// Host name or IP address of the device.
    pub address: String,
    /// Relay (Gen1) or switch (Gen2+) number.
    #[serde(default)]
    pub relay: u32,
    pub username: Option<String>,
    pub password: Option<String>,
}

/// Never prints the password: configs end up in logs and bug reports.
impl fmt::Debug for DeviceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceConfig")
            .field("kind", &self.kind)
            .field("address", &self.address)
            .field("relay", &self.relay)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    Shelly,
}

/// Devices polled over HTTP to tell a mains power outage from a WAN outage.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PowerConfig {
    /// Always-on devices by name: a URL or host[:port]. Any HTTP answer
    /// means the device has power.
    pub devices: BTreeMap<String, String>,
    #[serde(with = "human_duration")]
    pub interval: Duration,
    #[serde(with = "human_duration")]
    pub timeout: Duration,
    /// The power is out when more than this share of the devices is silent.
    pub out_share: f64,
}

impl Default for PowerConfig {
    fn default() -> Self {
        PowerConfig {
            devices: BTreeMap::new(),
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            out_share: 0.5,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SafetyConfig {
    /// No plugin can make the host power-cycle more often than this.
    pub max_cycles_per_hour: usize,
}

impl Default for SafetyConfig {
    fn default() -> Self {
        SafetyConfig {
            max_cycles_per_hour: 4,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// A component file, relative to the config file. Without it the
    /// plugin's name must be that of a built-in plugin.
    pub file: Option<PathBuf>,
    /// Devices the plugin may power-cycle.
    #[serde(default)]
    pub devices: Vec<String>,
    /// Whether the plugin may notify people.
    #[serde(default)]
    pub notify: bool,
    /// How long one callback may run, in its own wall time: time in `power`,
    /// `notify` and log writes (waiting for a device or a server) is not
    /// counted; waits in WASI and the other imports are.
    #[serde(default = "default_deadline", with = "human_duration")]
    pub deadline: Duration,
    /// The plugin's memory limit in MiB.
    #[serde(default = "default_memory_mib")]
    pub memory_mib: u32,
    /// Handed to the plugin as JSON by the `settings` import.
    #[serde(default)]
    pub settings: toml::Table,
}

fn default_deadline() -> Duration {
    Duration::from_millis(100)
}

fn default_memory_mib() -> u32 {
    32
}

impl PluginConfig {
    /// A plugin with the default limits and no grants.
    pub fn new(file: Option<PathBuf>) -> Self {
        PluginConfig {
            file,
            devices: Vec::new(),
            notify: false,
            deadline: default_deadline(),
            memory_mib: default_memory_mib(),
            settings: toml::Table::new(),
        }
    }
}

/// A config error, located in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line and column, when the error has a place in the file.
    pub position: Option<(usize, usize)>,
    /// The dotted key the error is about, e.g. `plugins.powercycle.devices`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        if self.key.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.key, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Errors one per line, as `wanwatch check` prints them.
pub fn describe(errors: &[ConfigError]) -> String {
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

/// The internet targets used when the config names none: two anycast
/// resolvers run by different companies, so one provider's trouble is not
/// taken for an outage.
pub const DEFAULT_WAN_TARGETS: [(&str, [u8; 4]); 2] =
    [("cloudflare", [1, 1, 1, 1]), ("google", [8, 8, 8, 8])];

/// The state directory when the config does not set one.
pub fn default_state_dir() -> PathBuf {
    // Under systemd the daemon runs as its own user, not root: the
    // directory the unit made for it is the one it may write.
    if let Some(dir) = systemd_state_directory() {
        return dir;
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/wanwatch");
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("wanwatch")
}

/// The directory systemd made for the unit (`StateDirectory=`): the first
/// of `$STATE_DIRECTORY`, a colon-separated list (systemd.exec(5)).
pub fn systemd_state_directory() -> Option<PathBuf> {
    let dirs = std::env::var_os("STATE_DIRECTORY")?;
    let first = dirs.to_str()?.split(':').next()?;
    (!first.is_empty()).then(|| PathBuf::from(first))
}

// What the config leaves out, filled in. Pure functions of the config:
// the daemon, the simulator and the command line all take them from here,
// so that they agree on the defaults.
impl Config {
    /// The state directory: the configured one, or [`default_state_dir`].
    pub fn state_dir_or_default(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(default_state_dir)
    }

    /// The probe targets as a round's evidence names them (name, role, kind),
    /// every one answering, without resolving any address: the simulator's
    /// view of [`crate::daemon::targets`]. The configured ones, or the
    /// defaults (`gateway`, then the two internet resolvers).
    pub fn target_evidence(&self) -> Vec<Evidence> {
        let evidence = |name: &str, role, kind| Evidence {
            target: name.to_owned(),
            role,
            kind,
            ok: true,
            rtt_us: None,
            https: None,
        };
        if self.targets.is_empty() {
            let wan = DEFAULT_WAN_TARGETS
                .iter()
                .map(|(name, _)| evidence(name, Role::Wan, ProbeKind::Icmp));
            return std::iter::once(evidence("gateway", Role::Lan, ProbeKind::Icmp))
                .chain(wan)
                .collect();
        }
        self.targets
            .iter()
            .map(|t| evidence(&t.name, t.role, t.kind))
            .collect()
    }

    /// The plugins to run, in the order events reach them: the configured
    /// ones in config order, or the built-in policies: the `powercycle` policy
    /// granted every configured device and notifications, then the `notify`
    /// policy granted notifications.
    ///
    /// With no device configured, actions are a dry run (see
    /// [`crate::daemon::dry_run_reason`]) and nothing can be granted: the
    /// built-in `powercycle` is then granted the device it would cycle, so
    /// that the dry run logs the cycle it stands for rather than a refusal.
    pub fn plugins(&self) -> Vec<(String, PluginConfig)> {
        let mut plugins: Vec<(String, PluginConfig)> = if self.plugins.is_empty() {
            let mut powercycle = PluginConfig::new(None);
            powercycle.devices = self.devices.keys().cloned().collect();
            powercycle.notify = true;
            let mut notify = PluginConfig::new(None);
            notify.notify = true;
            vec![
                (builtin::POWERCYCLE.into(), powercycle),
                ("notify".into(), notify),
            ]
        } else {
            self.plugins.clone().into_iter().collect()
        };
        if self.devices.is_empty() {
            let builtin_powercycle = plugins
                .iter_mut()
                .filter(|(name, plugin)| name == builtin::POWERCYCLE && plugin.file.is_none());
            for (_, plugin) in builtin_powercycle {
                plugin.devices = vec![builtin::powercycle_device(&plugin.settings)];
            }
        }
        plugins
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
        let text = read(path)?;
        let mut config = Config::parse(path, &text)?;
        // Plugin files are relative to the config file, not to wherever the
        // daemon happens to be started from.
        config.resolve_files(path.parent().unwrap_or(Path::new(".")));
        let errors = located_errors(path, &text, config.check_files());
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(errors)
        }
    }

    /// The checks that read files named by the config, once they are
    /// resolved: the https targets' `ca_file`s.
    fn check_files(&self) -> Vec<(Vec<String>, String)> {
        let key = |i: usize| vec!["targets".into(), i.to_string(), "ca_file".into()];
        self.targets
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                let path = t.ca_file.as_deref()?;
                let error = crate::probe::https_roots(Some(path)).err()?;
                Some((key(i), format!("{}: {error}", path.display())))
            })
            .collect()
    }

    /// Makes the plugin files and the MQTT CA file relative to `base`.
    pub(crate) fn resolve_files(&mut self, base: &Path) {
        for plugin in self.plugins.values_mut() {
            if let Some(file) = &mut plugin.file {
                *file = base.join(&*file);
            }
        }
        let target_ca_files = self.targets.iter_mut().filter_map(|t| t.ca_file.as_mut());
        let mqtt_ca_file = self.mqtt.as_mut().and_then(|m| m.ca_file.as_mut());
        for ca_file in target_ca_files.chain(mqtt_ca_file) {
            *ca_file = base.join(&*ca_file);
        }
    }

    /// Parses and validates config text; `file` is used only in errors.
    pub fn parse(file: &Path, text: &str) -> Result<Config, Vec<ConfigError>> {
        let config: Config = deserialize(file, text)?;
        let errors = located_errors(file, text, config.check());
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(errors)
        }
    }

    /// The checks serde cannot make: each is a key path and a message.
    pub(crate) fn check(&self) -> Vec<(Vec<String>, String)> {
        let mut errors = Vec::new();
        let path = |parts: &[&str]| parts.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        if self.probe.timeout >= self.probe.interval {
            errors.push((
                path(&["probe", "timeout"]),
                format!(
                    "must be shorter than probe.interval ({}), so that a round ends before the next begins",
                    humantime::format_duration(self.probe.interval)
                ),
            ));
        }
        if self.probe.interval.is_zero() {
            errors.push((path(&["probe", "interval"]), "must be longer than 0".into()));
        }
        if !self.probe.interval.is_zero() {
            let probes =
                crate::quality::Settings::probes(self.probe.quality_window, self.probe.interval);
            if self.probe.quality_window < self.probe.interval * 2 {
                errors.push((
                    path(&["probe", "quality_window"]),
                    format!(
                        "must be at least two probe intervals ({}): jitter needs two answers",
                        humantime::format_duration(self.probe.interval * 2)
                    ),
                ));
            } else if probes > crate::quality::MAX_WINDOW_PROBES {
                errors.push((
                    path(&["probe", "quality_window"]),
                    format!(
                        "holds {probes} probes at one every {}: at most {} (a longer interval, or a shorter window)",
                        humantime::format_duration(self.probe.interval),
                        crate::quality::MAX_WINDOW_PROBES
                    ),
                ));
            }
        }
        if self.probe.degraded_rtt.is_some_and(|d| d.is_zero()) {
            errors.push((
                path(&["probe", "degraded_rtt"]),
                "must be longer than 0 (every round trip would be degraded)".into(),
            ));
        }
        let wan_targets = self.targets.iter().filter(|t| t.role == Role::Wan).count();
        if self.probe.min_ok == 0 {
            errors.push((path(&["probe", "min_ok"]), "must be at least 1".into()));
        } else if !self.targets.is_empty() && self.probe.min_ok > wan_targets {
            errors.push((
                path(&["probe", "min_ok"]),
                format!(
                    "is {} but only {wan_targets} target(s) have role \"wan\": no round could ever succeed",
                    self.probe.min_ok
                ),
            ));
        }
        for (key, keep) in [
            ("raw_retention", self.history.raw_retention),
            ("aggregate_retention", self.history.aggregate_retention),
        ] {
            if keep.is_zero() {
                errors.push((
                    path(&["history", key]),
                    "must be longer than 0 (it is how long the history keeps its rows)".into(),
                ));
            }
        }
        if !(0.0..1.0).contains(&self.power.out_share) {
            errors.push((
                path(&["power", "out_share"]),
                format!(
                    "is {} but must be at least 0 and less than 1 (0.5: out when more than half the devices are silent)",
                    self.power.out_share
                ),
            ));
        }
        {
            // An address with credentials is not quoted back (it holds a
            // password); `hint` says what to do with them instead.
            let mut check_address = |key: Vec<String>, address: &str, hint: &str| {
                if let Err(e) = base_url(address) {
                    let message = match e {
                        AddressError::Credentials => format!("{e}: {hint}"),
                        AddressError::Invalid(_) => e.to_string(),
                    };
                    errors.push((key, message));
                }
            };
            for (name, address) in &self.power.devices {
                check_address(
                    vec!["power".into(), "devices".into(), name.clone()],
                    address,
                    "remove them; any answer, a login page too, means the device has power",
                );
            }
            for (name, device) in &self.devices {
                check_address(
                    vec!["devices".into(), name.clone(), "address".into()],
                    &device.address,
                    &format!(
                        "give them as `username` and `password` in [devices.{name}], which are never shown"
                    ),
                );
            }
        }
        if !self.power.devices.is_empty() && self.power.timeout >= self.power.interval {
            errors.push((
                path(&["power", "timeout"]),
                "must be shorter than power.interval".into(),
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, target) in self.targets.iter().enumerate() {
            if !names.insert(&target.name) {
                errors.push((
                    vec!["targets".into(), i.to_string(), "name".into()],
                    format!("`{}` is the name of an earlier target", target.name),
                ));
            }
            let key = |k: &str| vec!["targets".into(), i.to_string(), k.to_string()];
            target.check_destination(&key, &mut errors);
            match (target.kind, target.port) {
                (ProbeKind::Https, Some(_)) => errors.push((
                    key("port"),
                    "an https target takes its port from its `url` (e.g. \"https://example.com:8443/\")".into(),
                )),
                (ProbeKind::Icmp, Some(_)) => {
                    errors.push((
                        key("port"),
                        "ICMP has no ports: only tcp, http and dns targets take one".into(),
                    ));
                }
                (ProbeKind::Tcp, None) => errors.push((
                    key("kind"),
                    "a tcp target needs a `port` (e.g. 443 for a web server)".into(),
                )),
                (_, Some(0)) => errors.push((key("port"), "must be 1 to 65535".into())),
                _ => {}
            }
            match (&target.query, target.kind) {
                (Some(_), kind) if kind != ProbeKind::Dns => {
                    errors.push((key("query"), "only dns targets take a `query`".into()))
                }
                (Some(name), _) => {
                    if let Err(e) = crate::probe::valid_dns_name(name) {
                        errors.push((key("query"), e));
                    }
                }
                (None, _) => {}
            }
        }
        for (name, plugin) in &self.plugins {
            let key = |k: &str| vec!["plugins".to_string(), name.clone(), k.to_string()];
            if plugin.file.is_none() && builtin::wasm(name).is_none() {
                let builtins: Vec<&str> = builtin::names().collect();
                errors.push((
                    vec!["plugins".to_string(), name.clone()],
                    format!(
                        "has no `file`, and `{name}` is not a built-in plugin (built in: {})",
                        builtins.join(", ")
                    ),
                ));
            }
            for device in &plugin.devices {
                if !self.devices.contains_key(device) {
                    let known = if self.devices.is_empty() {
                        "no devices are configured".to_string()
                    } else {
                        let names: Vec<&str> = self.devices.keys().map(String::as_str).collect();
                        format!("configured devices: {}", names.join(", "))
                    };
                    errors.push((
                        key("devices"),
                        format!("grants device `{device}`, which is not configured ({known})"),
                    ));
                }
            }
            if plugin.deadline.is_zero() {
                errors.push((key("deadline"), "must be longer than 0".into()));
            }
            if plugin.memory_mib == 0 {
                errors.push((key("memory_mib"), "must be at least 1".into()));
            }
        }
        errors.extend(self.http.check());
        if let Some(mqtt) = &self.mqtt {
            errors.extend(mqtt.check(self.devices.keys().cloned()));
        }
        errors
    }
}

/// Reads a TOML file, with the error as a [`ConfigError`].
pub(crate) fn read(path: &Path) -> Result<String, Vec<ConfigError>> {
    std::fs::read_to_string(path).map_err(|e| {
        vec![ConfigError {
            file: path.to_owned(),
            position: None,
            key: String::new(),
            message: format!("cannot read the file: {e}"),
        }]
    })
}

/// Deserializes TOML text, with the error located in `file` and named by
/// its key. Shared with the simulator's scenario files.
pub(crate) fn deserialize<T: serde::de::DeserializeOwned>(
    file: &Path,
    text: &str,
) -> Result<T, Vec<ConfigError>> {
    let located = |key: String, span: Option<Range<usize>>, message: String| ConfigError {
        file: file.to_owned(),
        position: span.map(|s| line_column(text, s.start)),
        key,
        message,
    };
    let de = toml::Deserializer::parse(text)
        .map_err(|e| vec![located(String::new(), e.span(), e.message().to_owned())])?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        // serde_path_to_error writes "." for the root.
        let key = if key == "." { String::new() } else { key };
        vec![located(key, inner.span(), inner.message().to_owned())]
    })
}

/// Locates the errors of a semantic check (key path, message) in `text`.
pub(crate) fn located_errors(
    file: &Path,
    text: &str,
    errors: Vec<(Vec<String>, String)>,
) -> Vec<ConfigError> {
    errors
        .into_iter()
        .map(|(path, message)| ConfigError {
            file: file.to_owned(),
            position: locate(text, &path).map(|s| line_column(text, s.start)),
            key: dotted(&path),
            message,
        })
        .collect()
}

/// `targets[1].port`, as serde's errors name keys: array indices in brackets.
fn dotted(path: &[String]) -> String {
    let mut key = String::new();
    for part in path {
        if !key.is_empty() && part.parse::<usize>().is_ok() {
            key += &format!("[{part}]");
        } else {
            if !key.is_empty() {
                key.push('.');
            }
            key += part;
        }
    }
    key
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The span of the value at a key path (keys and array indices), found by
/// walking the spanned parse tree.
fn locate(text: &str, path: &[String]) -> Option<Range<usize>> {
    use toml::de::{DeTable, DeValue};
    let root = DeTable::parse(text).ok()?;
    let mut span = root.span();
    let mut value = DeValue::Table(root.into_inner());
    for part in path {
        let next = match value {
            DeValue::Table(table) => table
                .into_iter()
                .find(|(k, _)| k.get_ref() == part)
                .map(|(_, v)| v),
            DeValue::Array(array) => part
                .parse::<usize>()
                .ok()
                .and_then(|i| array.into_iter().nth(i)),
            _ => None,
        };
        let Some(next) = next else { break };
        span = next.span();
        value = next.into_inner();
    }
    Some(span)
}

/// Durations written as "2s", "500ms", "3m", "1h 30m".
pub(crate) mod human_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| {
            serde::de::Error::custom(format!(
                "`{s}` is not a duration ({e}); write e.g. \"2s\", \"500ms\", \"3m\""
            ))
        })
    }
}

/// `human_duration` for an optional key: `#[serde(default, with = ...)]`.
pub(crate) mod human_duration_opt {
    use std::time::Duration;

    use serde::Deserializer;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::human_duration::deserialize(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, Vec<ConfigError>> {
        Config::parse(Path::new("wanwatch.toml"), text)
    }

    fn error(text: &str) -> String {
        describe(&parse(text).expect_err("the config should be rejected"))
    }

    #[test]
    fn empty_config_gives_the_defaults() {
        let config = parse("").unwrap();
        assert_eq!(config.probe.interval, Duration::from_secs(2));
        assert_eq!(config.probe.timeout, Duration::from_secs(1));
        assert_eq!(config.probe.down_after, Duration::from_secs(9));
        assert_eq!(config.probe.min_ok, 1);
        assert!(config.targets.is_empty());
        assert!(config.plugins.is_empty());
        assert_eq!(config.safety.max_cycles_per_hour, 4);
    }

    #[test]
    fn full_config_parses() {
        let config = parse(
            r#"
state_dir = "/tmp/ww"
[probe]
interval = "1s"
timeout = "300ms"
down_after = "5s"
min_ok = 2
[[targets]]
name = "gateway"
address = "gateway"
role = "lan"
[[targets]]
name = "a"
address = "127.0.0.1"
[[targets]]
name = "b"
address = "::1"
[devices.modem]
kind = "shelly"
address = "192.0.2.10"
password = "hunter2"
[plugins.powercycle]
devices = ["modem"]
notify = true
deadline = "50ms"
memory_mib = 16
[plugins.powercycle.settings]
off_seconds = 20
"#,
        )
        .unwrap();
        assert_eq!(config.probe.timeout, Duration::from_millis(300));
        assert_eq!(config.targets[0].address, Some(TargetAddress::Gateway));
        assert_eq!(config.targets[0].role, Role::Lan);
        assert_eq!(
            config.targets[2].address,
            Some(TargetAddress::Ip("::1".parse().unwrap()))
        );
        assert_eq!(config.targets[2].role, Role::Wan);
        let plugin = &config.plugins["powercycle"];
        assert_eq!(plugin.deadline, Duration::from_millis(50));
        assert_eq!(plugin.settings["off_seconds"].as_integer(), Some(20));
        assert!(!format!("{:?}", config.devices["modem"]).contains("hunter2"));
    }

    #[test]
    fn plugins_keep_the_order_of_their_sections() {
        let config = parse(
            "[plugins.zeta]\nfile = \"z.wasm\"\n[plugins.alpha]\nfile = \"a.wasm\"\n[plugins.mid]\nfile = \"m.wasm\"\n",
        )
        .unwrap();
        assert_eq!(
            config.plugins.keys().collect::<Vec<_>>(),
            ["zeta", "alpha", "mid"]
        );
    }

    #[test]
    fn unknown_key_names_file_line_column_and_key() {
        assert_eq!(
            error("[probe]\ninterval = \"2s\"\nintervall = \"3s\"\n"),
            "wanwatch.toml:3:1: probe.intervall: unknown field `intervall`, expected one of `interval`, `timeout`, `down_after`, `min_ok`, `quality_window`, `degraded_loss`, `degraded_rtt`, `degraded_hold`"
        );
    }

    #[test]
    fn wrong_type_names_the_key() {
        assert_eq!(
            error("[probe]\nmin_ok = \"two\"\n"),
            "wanwatch.toml:2:10: probe.min_ok: invalid type: string \"two\", expected usize"
        );
    }

    #[test]
    fn bad_duration_says_how_to_write_one() {
        assert_eq!(
            error("[probe]\ndown_after = \"9 parsecs\"\n"),
            "wanwatch.toml:2:14: probe.down_after: `9 parsecs` is not a duration (unknown time unit \"parsecs\", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations)); write e.g. \"2s\", \"500ms\", \"3m\""
        );
    }

    #[test]
    fn link_quality_keys_default_off_and_parse() {
        let probe = parse("").unwrap().probe;
        let q = probe.quality(probe.interval);
        assert_eq!((q.window, q.hold_ms), (150, 60_000));
        assert_eq!((q.degraded_loss_percent, q.degraded_rtt_us), (None, None));
        assert!(!q.judges());
        let probe = parse(
            "[probe]\ninterval = \"1s\"\ntimeout = \"500ms\"\nquality_window = \"90s\"\ndegraded_loss = \"2.5%\"\ndegraded_rtt = \"250ms\"\ndegraded_hold = \"10m\"\n",
        )
        .unwrap()
        .probe;
        let q = probe.quality(probe.interval);
        assert_eq!(q.window, 90);
        assert_eq!(q.degraded_loss_percent, Some(2.5));
        assert_eq!(q.degraded_rtt_us, Some(250_000));
        assert_eq!(q.hold_ms, 600_000);
    }

    #[test]
    fn bad_link_quality_keys_are_located() {
        assert_eq!(
            error("[probe]\ndegraded_loss = \"150%\"\n"),
            "wanwatch.toml:2:17: probe.degraded_loss: `150%` is out of range: more than 0% and at most 100%"
        );
        assert_eq!(
            error("[probe]\ndegraded_loss = \"0%\"\n"),
            "wanwatch.toml:2:17: probe.degraded_loss: `0%` is out of range: more than 0% and at most 100%"
        );
        assert_eq!(
            error("[probe]\ndegraded_loss = \"10\"\n"),
            "wanwatch.toml:2:17: probe.degraded_loss: `10` is not a percentage; write e.g. \"10%\" or \"2.5%\""
        );
        assert_eq!(
            error("[probe]\ndegraded_loss = 10\n"),
            "wanwatch.toml:2:17: probe.degraded_loss: invalid type: integer `10`, expected a string"
        );
        assert!(
            error("[probe]\ndegraded_rtt = \"-1ms\"\n")
                .starts_with("wanwatch.toml:2:16: probe.degraded_rtt: `-1ms` is not a duration"),
        );
        assert_eq!(
            error("[probe]\ndegraded_rtt = \"0ms\"\n"),
            "wanwatch.toml:2:16: probe.degraded_rtt: must be longer than 0 (every round trip would be degraded)"
        );
        assert_eq!(
            error("[probe]\ninterval = \"2s\"\nquality_window = \"3s\"\n"),
            "wanwatch.toml:3:18: probe.quality_window: must be at least two probe intervals (4s): jitter needs two answers"
        );
        assert_eq!(
            error("[probe]\ninterval = \"2s\"\nquality_window = \"1day\"\n"),
            "wanwatch.toml:3:18: probe.quality_window: holds 43200 probes at one every 2s: at most 10000 (a longer interval, or a shorter window)"
        );
    }

    #[test]
    fn history_defaults_and_retentions() {
        let history = parse("").unwrap().history;
        assert!(history.database);
        assert_eq!(history.raw_retention, Duration::from_secs(7 * 86_400));
        assert_eq!(
            history.aggregate_retention,
            humantime::parse_duration("2y").unwrap()
        );
        let history = parse(
            "[history]\ndatabase = false\nraw_retention = \"36h\"\naggregate_retention = \"90days\"\n",
        )
        .unwrap()
        .history;
        assert!(!history.database);
        assert_eq!(history.raw_retention, Duration::from_secs(36 * 3600));
        assert_eq!(
            history.aggregate_retention,
            Duration::from_secs(90 * 86_400)
        );
    }

    #[test]
    fn bad_history_retentions_are_located() {
        assert_eq!(
            error("[history]\nraw_retention = \"a week\"\n"),
            "wanwatch.toml:2:17: history.raw_retention: `a week` is not a duration (expected number at 0); write e.g. \"2s\", \"500ms\", \"3m\""
        );
        assert_eq!(
            error("[history]\naggregate_retention = \"0s\"\n"),
            "wanwatch.toml:2:23: history.aggregate_retention: must be longer than 0 (it is how long the history keeps its rows)"
        );
        assert_eq!(
            error("[history]\ndatabase = \"yes\"\n"),
            "wanwatch.toml:2:12: history.database: invalid type: string \"yes\", expected a boolean"
        );
    }

    #[test]
    fn grant_of_a_missing_device_is_located() {
        assert_eq!(
            error(
                "[devices.modem]\nkind = \"shelly\"\naddress = \"192.0.2.1\"\n\n[plugins.powercycle]\ndevices = [\"modme\"]\n"
            ),
            "wanwatch.toml:6:11: plugins.powercycle.devices: grants device `modme`, which is not configured (configured devices: modem)"
        );
    }

    #[test]
    fn credentials_in_a_device_address_are_located_and_not_repeated() {
        let e = error(
            "[devices.modem]\nkind = \"shelly\"\naddress = \"http://admin:hunter2@192.0.2.1\"\n",
        );
        assert!(
            e.starts_with("wanwatch.toml:3:11: devices.modem.address: ")
                && e.contains("`username` and `password`"),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
        // Even when the rest of the address is wrong too.
        let e = error("[devices.modem]\nkind = \"shelly\"\naddress = \"admin:hunter2@[bad\"\n");
        assert!(e.contains("devices.modem.address: "), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let e = error("[power.devices]\nnas = \"http://u:hunter2@192.0.2.2:5000\"\n");
        assert!(
            e.starts_with("wanwatch.toml:2:7: power.devices.nas: "),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn grant_with_no_devices_at_all() {
        assert_eq!(
            error("[plugins.powercycle]\ndevices = [\"modem\"]\n"),
            "wanwatch.toml:2:11: plugins.powercycle.devices: grants device `modem`, which is not configured (no devices are configured)"
        );
    }

    #[test]
    fn timeout_must_be_shorter_than_interval() {
        assert_eq!(
            error("[probe]\ninterval = \"1s\"\ntimeout = \"1s\"\n"),
            "wanwatch.toml:3:11: probe.timeout: must be shorter than probe.interval (1s), so that a round ends before the next begins"
        );
    }

    #[test]
    fn unknown_plugin_without_file() {
        assert_eq!(
            error("[plugins.mine]\nnotify = true\n"),
            "wanwatch.toml:1:1: plugins.mine: has no `file`, and `mine` is not a built-in plugin (built in: powercycle, notify)"
        );
    }

    #[test]
    fn duplicate_target_names_are_located() {
        assert_eq!(
            error(
                "[[targets]]\nname = \"a\"\naddress = \"127.0.0.1\"\n[[targets]]\nname = \"a\"\naddress = \"::1\"\n"
            ),
            "wanwatch.toml:5:8: targets[1].name: `a` is the name of an earlier target"
        );
    }

    #[test]
    fn bad_target_address_and_index_in_key() {
        assert_eq!(
            error(
                "[[targets]]\nname = \"a\"\naddress = \"127.0.0.1\"\n[[targets]]\nname = \"b\"\naddress = \"one.one\"\n"
            ),
            "wanwatch.toml:6:11: targets[1].address: `one.one` is not an IP address (or \"gateway\" for the autodetected LAN gateway)"
        );
    }

    #[test]
    fn each_kind_of_probe_gets_what_it_needs() {
        let config = parse(
            r#"
[[targets]]
name = "ping"
address = "127.0.0.1"
[[targets]]
name = "web"
address = "127.0.0.1"
kind = "http"
[[targets]]
name = "tls"
address = "::1"
kind = "tcp"
port = 443
[[targets]]
name = "resolver"
address = "127.0.0.53"
kind = "dns"
[[targets]]
name = "resolver-too"
address = "127.0.0.53"
kind = "dns"
port = 5353
query = "wanwatch.example."
[[targets]]
name = "router"
address = "gateway"
[[targets]]
name = "app"
kind = "https"
url = "https://example.com:8443/health?token=s3cret"
"#,
        )
        .unwrap();
        let gateway = "192.0.2.1".parse().unwrap();
        let probes: Vec<Probe> = config
            .targets
            .iter()
            .map(|t| t.probe(Some(gateway)).unwrap())
            .collect();
        let (v4, v6) = ("127.0.0.1".parse().unwrap(), "::1".parse().unwrap());
        let resolver = "127.0.0.53".parse().unwrap();
        assert_eq!(
            probes,
            [
                Probe::Icmp { address: v4 },
                Probe::Http {
                    address: v4,
                    port: 80
                },
                Probe::Tcp {
                    address: v6,
                    port: 443
                },
                Probe::Dns {
                    address: resolver,
                    port: 53,
                    query: Probe::DEFAULT_DNS_QUERY.into()
                },
                Probe::Dns {
                    address: resolver,
                    port: 5353,
                    query: "wanwatch.example.".into()
                },
                Probe::Icmp { address: gateway },
                Probe::Https(
                    HttpsProbe::new("https://example.com:8443/health?token=s3cret", None).unwrap()
                ),
            ]
        );
        let e = config.targets[5].probe(None).unwrap_err();
        assert!(
            e.starts_with("address is \"gateway\" but no default gateway"),
            "{e}"
        );
    }

    #[test]
    fn an_https_target_needs_an_https_url_and_no_address() {
        let target = |rest: &str| format!("[[targets]]\nname = \"t\"\nkind = \"https\"\n{rest}");
        assert_eq!(
            error(&target("")),
            "wanwatch.toml:3:8: targets[0].kind: an https target needs a `url` (e.g. \"https://example.com/\")"
        );
        assert_eq!(
            error(&target(
                "url = \"https://example.com/\"\naddress = \"127.0.0.1\"\n"
            )),
            "wanwatch.toml:5:11: targets[0].address: an https target goes where its `url` says: remove `address`"
        );
        assert_eq!(
            error(&target("url = \"http://example.com/?token=s3cret\"\n")),
            "wanwatch.toml:4:7: targets[0].url: must be an https:// URL, not http:// (plain HTTP is kind = \"http\" with an `address`)"
        );
        let e = error(&target("url = \"https://user:s3cret@example.com/\"\n"));
        assert!(
            e.starts_with("wanwatch.toml:4:7: targets[0].url: holds credentials"),
            "{e}"
        );
        assert!(!e.contains("s3cret"), "{e}");
        assert_eq!(
            error(&target("url = \"example.com\"\n")),
            "wanwatch.toml:4:7: targets[0].url: is not a URL (relative URL without a base): write e.g. \"https://example.com/\""
        );
        assert_eq!(
            error(&target("url = \"https://example.com/\"\nport = 443\n")),
            "wanwatch.toml:5:8: targets[0].port: an https target takes its port from its `url` (e.g. \"https://example.com:8443/\")"
        );
        let other = "[[targets]]\nname = \"t\"\naddress = \"127.0.0.1\"\nurl = \"https://example.com/\"\nca_file = \"/r.pem\"\n";
        let e = describe(&parse(other).unwrap_err());
        assert!(
            e.contains("wanwatch.toml:4:7: targets[0].url: only https targets take a `url`"),
            "{e}"
        );
        assert!(
            e.contains(
                "wanwatch.toml:5:11: targets[0].ca_file: only https targets take a `ca_file`"
            ),
            "{e}"
        );
        assert_eq!(
            error("[[targets]]\nname = \"t\"\n"),
            "wanwatch.toml:1:1: targets[0].address: needs an `address` (an IP address, or \"gateway\"); only https targets go by `url`"
        );
    }

    #[test]
    fn an_https_ca_file_is_read_relative_to_the_config_and_must_hold_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("wanwatch.toml");
        let text = "[[targets]]\nname = \"t\"\nkind = \"https\"\nurl = \"https://example.com/\"\nca_file = \"root.pem\"\n";
        std::fs::write(&config, text).unwrap();
        let e = describe(&Config::load(&config).unwrap_err());
        let at = format!(
            "{}:5:11: targets[0].ca_file: {}",
            config.display(),
            dir.path().join("root.pem").display()
        );
        assert!(e.starts_with(&at), "{e}");
        std::fs::write(dir.path().join("root.pem"), "not PEM at all\n").unwrap();
        let e = describe(&Config::load(&config).unwrap_err());
        assert!(
            e.starts_with(&at) && e.ends_with("holds no PEM certificate"),
            "{e}"
        );
    }

    #[test]
    fn a_probe_without_what_it_needs_or_with_what_it_cannot_use_is_located() {
        let target =
            |rest: &str| format!("[[targets]]\nname = \"t\"\naddress = \"127.0.0.1\"\n{rest}");
        assert_eq!(
            error(&target("kind = \"tcp\"\n")),
            "wanwatch.toml:4:8: targets[0].kind: a tcp target needs a `port` (e.g. 443 for a web server)"
        );
        assert_eq!(
            error(&target("port = 80\n")),
            "wanwatch.toml:4:8: targets[0].port: ICMP has no ports: only tcp, http and dns targets take one"
        );
        assert_eq!(
            error(&target("kind = \"http\"\nport = 0\n")),
            "wanwatch.toml:5:8: targets[0].port: must be 1 to 65535"
        );
        assert_eq!(
            error(&target("kind = \"http\"\nquery = \"example.com\"\n")),
            "wanwatch.toml:5:9: targets[0].query: only dns targets take a `query`"
        );
        assert_eq!(
            error(&target("kind = \"dns\"\nquery = \"https://example.com\"\n")),
            "wanwatch.toml:5:9: targets[0].query: `https://example.com` is not a DNS name: use labels of 1 to 63 letters, digits, `-` and `_`, separated by dots"
        );
        assert_eq!(
            error(&target("kind = \"smtp\"\n")),
            "wanwatch.toml:4:8: targets[0].kind: unknown variant `smtp`, expected one of `icmp`, `dns`, `http`, `tcp`, `https`"
        );
    }

    #[test]
    fn min_ok_beyond_wan_targets() {
        assert_eq!(
            error("[probe]\nmin_ok = 2\n[[targets]]\nname = \"a\"\naddress = \"127.0.0.1\"\n"),
            "wanwatch.toml:2:10: probe.min_ok: is 2 but only 1 target(s) have role \"wan\": no round could ever succeed"
        );
    }

    #[test]
    fn syntax_error_is_located() {
        let e = error("[probe\n");
        assert!(e.starts_with("wanwatch.toml:1:"), "{e}");
    }

    #[test]
    fn several_errors_are_all_reported() {
        let errors =
            parse("[probe]\ninterval = \"1s\"\ntimeout = \"2s\"\nmin_ok = 0\n").unwrap_err();
        assert_eq!(errors.len(), 2);
    }

    fn parse_ok(text: &str) -> Config {
        parse(text).unwrap()
    }

    fn grants(config: &Config) -> Vec<(String, Vec<String>)> {
        config
            .plugins()
            .into_iter()
            .map(|(name, plugin)| (name, plugin.devices))
            .collect()
    }

    #[test]
    fn without_a_plug_the_builtin_powercycle_is_granted_the_device_it_would_cycle() {
        let want = |powercycle: &str| {
            vec![
                ("powercycle".to_owned(), vec![powercycle.to_owned()]),
                ("notify".to_owned(), vec![]),
            ]
        };
        assert_eq!(grants(&parse_ok("")), want("modem"));
        let config = parse_ok(
            "[plugins.powercycle.settings]\ndevice = \"router\"\n[plugins.notify]\nnotify = true\n",
        );
        assert_eq!(grants(&config), want("router"));
    }

    #[test]
    fn with_a_plug_the_grants_are_the_configs() {
        let plug = "[devices.modem]\nkind = \"shelly\"\naddress = \"192.0.2.1\"\n";
        assert_eq!(
            grants(&parse_ok(plug)),
            [
                ("powercycle".to_owned(), vec!["modem".to_owned()]),
                ("notify".to_owned(), vec![]),
            ]
        );
        let config = parse_ok(&format!("{plug}[plugins.powercycle]\nnotify = true\n"));
        assert_eq!(grants(&config), [("powercycle".to_owned(), vec![])]);
    }
}
