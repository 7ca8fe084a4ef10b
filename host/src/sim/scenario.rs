//! Scenario files: what the simulated world does, and what to expect.
//!
//! TOML, documented key by key in `docs/simulation.md`. Parsed with the
//! config's machinery, so errors read alike: file, line, column, key.
//! Times in the timeline are offsets from `start` ("90s", "2h 30m").

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::config::{self, Config, ConfigError, human_duration};
use crate::human::LAST_MS;
use crate::state::{Evidence, Millis, WanState};

/// 2026-01-01T00:00:00Z: where a synthetic timeline starts by default.
const DEFAULT_START_MS: Millis = 1_767_225_600_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// One line for people; printed at the top of the output.
    #[serde(default)]
    pub description: String,
    /// When virtual time begins (RFC 3339). Replays start at their data.
    #[serde(default = "default_start", deserialize_with = "rfc3339")]
    pub start: Millis,
    /// How long the synthetic timeline runs. Required without `replay`.
    #[serde(default, deserialize_with = "some_duration")]
    pub duration: Option<Duration>,
    /// Time between probe rounds. Default: the config's `probe.interval`.
    #[serde(default, deserialize_with = "some_duration")]
    pub interval: Option<Duration>,
    /// Seeds the generator behind `"N% loss"`: same seed, same losses.
    #[serde(default = "default_seed")]
    pub seed: u64,
    #[serde(default)]
    pub modem: Modem,
    /// The baseline of what each target does, piecewise from each `at`.
    #[serde(default)]
    pub segment: Vec<Segment>,
    /// Faults that react (or not) to what the plugins do.
    #[serde(default)]
    pub cause: Vec<Cause>,
    /// Recorded probes instead of a synthetic timeline.
    pub replay: Option<Replay>,
    /// A wanwatch config inline, used when `--config` is not given.
    pub config: Option<Config>,
    #[serde(default)]
    pub expect: Vec<Expect>,
    /// Where each `[[expect]]` is written ("file:line:column"), for the
    /// verdicts.
    #[serde(skip)]
    pub expect_at: Vec<String>,
}

/// The modem behind the plug.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Modem {
    /// The config's device (`[devices.NAME]`) that powers the modem.
    pub device: String,
    /// How long the modem takes to boot and resync once powered.
    #[serde(with = "human_duration")]
    pub boot: Duration,
}

impl Default for Modem {
    fn default() -> Self {
        Modem {
            device: "modem".into(),
            boot: Duration::from_secs(90),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    #[serde(with = "human_duration")]
    pub at: Duration,
    /// Every `wan` target, unless named in `targets`.
    #[serde(default)]
    pub wan: Outcome,
    /// Every `lan` target, unless named in `targets`.
    #[serde(default)]
    pub lan: Outcome,
    /// Targets by name.
    #[serde(default)]
    pub targets: BTreeMap<String, Outcome>,
}

/// What a target does: `"answers"`, `"silent"` or `"N% loss"`, optionally
/// followed by its round-trip time: `"answers 40ms"`, `"20% loss 80ms"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Percentage of probes lost, 0 to 100.
    pub loss: u8,
    /// None: the default for the target's role.
    pub rtt: Option<Duration>,
}

impl std::str::FromStr for Outcome {
    type Err = String;

    fn from_str(text: &str) -> Result<Outcome, String> {
        let bad = || {
            format!(
                "`{text}` is not an outcome: write \"answers\", \"silent\" or \"30% loss\", optionally followed by a round trip such as \"40ms\""
            )
        };
        let mut words = text.split_whitespace().peekable();
        let loss = match words.next().ok_or_else(bad)? {
            "answers" => 0,
            "silent" => 100,
            word => {
                let percent = word.strip_suffix('%').ok_or_else(bad)?;
                let loss: u8 = percent.parse().ok().filter(|p| *p <= 100).ok_or_else(bad)?;
                if words.next() != Some("loss") {
                    return Err(bad());
                }
                loss
            }
        };
        let rtt = match words.next() {
            None => None,
            Some(word) => Some(humantime::parse_duration(word).map_err(|_| bad())?),
        };
        if words.next().is_some() {
            return Err(bad());
        }
        Ok(Outcome { loss, rtt })
    }
}

impl<'de> Deserialize<'de> for Outcome {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CauseKind {
    /// The WAN is dead until the modem is power-cycled (or loses mains
    /// power), then back once the modem has booted.
    ModemHang,
    /// The WAN is dead for `duration` whatever is done; a power cycle only
    /// adds the modem's boot time.
    IspOutage,
    /// Mains power gone for `duration`: the WAN dead, the power-detection
    /// devices and the modem's plug silent; the modem boots when it is back.
    PowerOutage,
    /// The LAN gateway (and so everything behind it) silent for `duration`.
    LanFault,
    /// The modem's plug does not answer.
    PlugUnreachable,
    /// The modem's plug refuses the password.
    PlugWrongPassword,
    /// The modem's plug answers only after `delay`.
    PlugSlow,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cause {
    pub kind: CauseKind,
    #[serde(with = "human_duration")]
    pub at: Duration,
    /// How long it lasts; every kind but `modem-hang` needs one.
    #[serde(default, deserialize_with = "some_duration")]
    pub duration: Option<Duration>,
    /// `plug-slow` only: how long the plug takes to confirm.
    #[serde(default, deserialize_with = "some_duration")]
    pub delay: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replay {
    /// History CSV files, or directories of them (read in name order).
    /// Relative to the scenario file.
    pub files: Vec<PathBuf>,
}

/// One expectation: exactly one check, with its time range or instant.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Power cycles performed.
    pub power_cycles: Option<Count>,
    /// Notifications sent.
    pub notifications: Option<Count>,
    /// Action requests of any kind and outcome, refused ones included.
    pub actions: Option<Count>,
    /// Action requests that were refused or failed.
    pub refused: Option<Count>,
    /// Changes of WAN state.
    pub transitions: Option<Count>,
    /// Transitions to down.
    pub outages: Option<Count>,
    /// Failed plugin callbacks.
    pub plugin_errors: Option<Count>,
    /// Times the link became degraded (see `[probe] degraded_loss`).
    pub degraded: Option<Count>,
    /// The WAN state at `at`.
    pub state: Option<WanState>,
    /// The link's quality at `at`: "degraded" or "normal".
    pub link: Option<Link>,
    #[serde(default, deserialize_with = "some_duration")]
    pub at: Option<Duration>,
    /// The range the counts look at: [from, to). Default: the whole run.
    #[serde(default, deserialize_with = "some_duration")]
    pub from: Option<Duration>,
    #[serde(default, deserialize_with = "some_duration")]
    pub to: Option<Duration>,
}

/// An expected count: a number, or `{ min = 1, max = 3 }` (either bound
/// optional).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Count {
    pub min: u64,
    pub max: u64,
}

impl Count {
    pub fn admits(&self, n: u64) -> bool {
        (self.min..=self.max).contains(&n)
    }
}

impl std::fmt::Display for Count {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.min, self.max) {
            (min, max) if min == max => write!(f, "{min}"),
            (0, max) => write!(f, "at most {max}"),
            (min, u64::MAX) => write!(f, "at least {min}"),
            (min, max) => write!(f, "{min} to {max}"),
        }
    }
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Range {
            min: Option<u64>,
            max: Option<u64>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Spec {
            Exact(u64),
            Range(Range),
        }
        match Spec::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected a count: a number, or { min = 1, max = 3 }")
        })? {
            Spec::Exact(n) => Ok(Count { min: n, max: n }),
            Spec::Range(Range { min, max }) => Ok(Count {
                min: min.unwrap_or(0),
                max: max.unwrap_or(u64::MAX),
            }),
        }
    }
}

/// The link-quality signal, as an expectation names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Link {
    Degraded,
    Normal,
}

impl Link {
    pub fn of(degraded: bool) -> Link {
        if degraded {
            Link::Degraded
        } else {
            Link::Normal
        }
    }
}

impl std::fmt::Display for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Link::Degraded => "degraded",
            Link::Normal => "normal",
        })
    }
}

/// What an expectation checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    Count(Counted, Count),
    State(WanState, Millis),
    Link(Link, Millis),
}

/// What a count expectation counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counted {
    PowerCycles,
    Notifications,
    Actions,
    Refused,
    Transitions,
    Outages,
    PluginErrors,
    Degraded,
}

impl Counted {
    pub fn key(self) -> &'static str {
        match self {
            Counted::PowerCycles => "power_cycles",
            Counted::Notifications => "notifications",
            Counted::Actions => "actions",
            Counted::Refused => "refused",
            Counted::Transitions => "transitions",
            Counted::Outages => "outages",
            Counted::PluginErrors => "plugin_errors",
            Counted::Degraded => "degraded",
        }
    }
}

impl Expect {
    /// The one check this entry makes, or why it is malformed.
    pub fn check(&self) -> Result<Check, String> {
        let counts = [
            (Counted::PowerCycles, self.power_cycles),
            (Counted::Notifications, self.notifications),
            (Counted::Actions, self.actions),
            (Counted::Refused, self.refused),
            (Counted::Transitions, self.transitions),
            (Counted::Outages, self.outages),
            (Counted::PluginErrors, self.plugin_errors),
            (Counted::Degraded, self.degraded),
        ];
        let mut checks: Vec<Check> = counts
            .into_iter()
            .filter_map(|(what, count)| Some(Check::Count(what, count?)))
            .collect();
        let counts = checks.len();
        let at = |key: &str| {
            self.at
                .map(millis)
                .ok_or_else(|| format!("`{key}` needs `at`, the time to look at"))
        };
        if let Some(state) = self.state {
            checks.push(Check::State(state, at("state")?));
        }
        if let Some(link) = self.link {
            checks.push(Check::Link(link, at("link")?));
        }
        if checks.len() == counts && self.at.is_some() {
            return Err("`at` goes with `state` or `link`; counts use `from` and `to`".into());
        }
        if counts == 0 && !checks.is_empty() && (self.from.is_some() || self.to.is_some()) {
            return Err("`from` and `to` go with counts; `state` and `link` use `at`".into());
        }
        match checks[..] {
            [check] => Ok(check),
            [] => Err("checks nothing: give one of power_cycles, notifications, actions, refused, transitions, outages, plugin_errors, degraded, or state or link with at".into()),
            _ => Err("makes more than one check: write one [[expect]] per check".into()),
        }
    }

    /// The range of a count, in offsets from the start.
    pub fn range(&self) -> (Millis, Millis) {
        (
            self.from.map_or(0, millis),
            self.to.map_or(Millis::MAX, millis),
        )
    }
}

pub fn millis(d: Duration) -> Millis {
    u64::try_from(d.as_millis()).unwrap_or(Millis::MAX)
}

fn default_start() -> Millis {
    DEFAULT_START_MS
}

fn default_seed() -> u64 {
    0x5eed
}

fn some_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    human_duration::deserialize(d).map(Some)
}

fn rfc3339<'de, D: Deserializer<'de>>(d: D) -> Result<Millis, D::Error> {
    let s = String::deserialize(d)?;
    let t = humantime::parse_rfc3339_weak(&s).map_err(|e| {
        serde::de::Error::custom(format!(
            "`{s}` is not a time ({e}); write e.g. \"2026-01-01T00:00:00Z\""
        ))
    })?;
    Ok(t.duration_since(std::time::UNIX_EPOCH).map_or(0, millis))
}

impl Scenario {
    /// Reads and validates a scenario; relative paths in it (replay files,
    /// plugin files of the inline config) become relative to its directory.
    pub fn load(path: &Path, targets: Option<&[Evidence]>) -> Result<Scenario, Vec<ConfigError>> {
        let text = config::read(path)?;
        let mut scenario = Scenario::parse(path, &text, targets)?;
        let base = path.parent().unwrap_or(Path::new("."));
        if let Some(config) = &mut scenario.config {
            config.resolve_files(base);
        }
        if let Some(replay) = &mut scenario.replay {
            for file in &mut replay.files {
                *file = base.join(&*file);
            }
        }
        Ok(scenario)
    }

    /// Parses and validates scenario text; `file` is used only in errors.
    /// `targets`: the probe targets the named ones are checked against;
    /// None: those of the scenario's own config.
    pub fn parse(
        file: &Path,
        text: &str,
        targets: Option<&[Evidence]>,
    ) -> Result<Scenario, Vec<ConfigError>> {
        let mut scenario: Scenario = config::deserialize(file, text)?;
        let paths = (0..scenario.expect.len())
            .map(|i| (vec!["expect".to_string(), i.to_string()], String::new()))
            .collect();
        scenario.expect_at = config::located_errors(file, text, paths)
            .into_iter()
            .map(|e| match e.position {
                Some((line, column)) => format!("{}:{line}:{column}", file.display()),
                None => format!("{}: {}", file.display(), e.key),
            })
            .collect();
        let own;
        let targets = match targets {
            Some(targets) => targets,
            None => {
                own = scenario.config().target_evidence();
                &own
            }
        };
        let errors = config::located_errors(file, text, scenario.validate(targets));
        if errors.is_empty() {
            Ok(scenario)
        } else {
            Err(errors)
        }
    }

    /// The config the scenario runs with when none is given: its inline
    /// `[config]`, else the built-in defaults with a plug for the modem
    /// (without one the policy could only ever be refused).
    pub fn config(&self) -> Config {
        match &self.config {
            Some(config) => config.clone(),
            None => {
                let mut config = Config::default();
                let plug = toml::from_str(
                    "kind = \"shelly\"\naddress = \"192.0.2.1\"  # simulated: never contacted\n",
                )
                .expect("the built-in plug section parses");
                config.devices.insert(self.modem.device.clone(), plug);
                config
            }
        }
    }

    fn validate(&self, targets: &[Evidence]) -> Vec<(Vec<String>, String)> {
        let mut errors = Vec::new();
        let key = |parts: &[&str]| parts.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        if let Some(config) = &self.config {
            errors.extend(config.check().into_iter().map(|(mut path, message)| {
                path.insert(0, "config".into());
                (path, message)
            }));
        }
        if self.interval.is_some_and(|i| i.is_zero()) {
            errors.push((key(&["interval"]), "must be longer than 0".into()));
        }
        match (&self.replay, self.duration) {
            (None, None) => errors.push((
                key(&["duration"]),
                "is needed: how long the synthetic timeline runs (or give [replay] files)".into(),
            )),
            // RFC 3339 has four-digit years: the report could not say when.
            // The timeline stops short of its end, hence the + 1.
            (None, Some(duration)) if self.start.saturating_add(millis(duration)) > LAST_MS + 1 => {
                errors.push((
                    key(&["duration"]),
                    format!(
                        "{} from start {} runs past the year 9999, the last one RFC 3339 can write",
                        humantime::format_duration(duration),
                        crate::human::timestamp(self.start)
                    ),
                ))
            }
            (Some(_), _) if !self.segment.is_empty() || !self.cause.is_empty() => errors.push((
                key(&["replay"]),
                "replays recorded data: it cannot have [[segment]] or [[cause]] entries too".into(),
            )),
            _ => {}
        }
        if let Some(replay) = &self.replay
            && replay.files.is_empty()
        {
            errors.push((key(&["replay", "files"]), "names no file".into()));
        }
        let mut last_at = None;
        for (i, segment) in self.segment.iter().enumerate() {
            let path = |k: &str| vec!["segment".into(), i.to_string(), k.to_string()];
            if last_at.is_some_and(|last| segment.at < last) {
                errors.push((path("at"), "is earlier than the segment before it".into()));
            }
            last_at = Some(segment.at);
            for name in segment.targets.keys() {
                if !targets.iter().any(|t| &t.target == name) {
                    let known: Vec<&str> = targets.iter().map(|t| t.target.as_str()).collect();
                    errors.push((
                        vec![
                            "segment".into(),
                            i.to_string(),
                            "targets".into(),
                            name.clone(),
                        ],
                        format!(
                            "`{name}` is not a probe target (targets: {})",
                            known.join(", ")
                        ),
                    ));
                }
            }
        }
        for (i, cause) in self.cause.iter().enumerate() {
            let path = |k: &str| vec!["cause".into(), i.to_string(), k.to_string()];
            match (cause.kind, cause.duration) {
                (CauseKind::ModemHang, Some(_)) => errors.push((
                    path("duration"),
                    "a modem hang lasts until the modem is power-cycled: it has no duration".into(),
                )),
                (CauseKind::ModemHang, None) | (_, Some(_)) => {}
                (_, None) => errors.push((path("kind"), "needs a `duration`".into())),
            }
            match (cause.kind, cause.delay) {
                (CauseKind::PlugSlow, None) => {
                    errors.push((path("kind"), "needs a `delay`".into()))
                }
                (CauseKind::PlugSlow, Some(_)) | (_, None) => {}
                (_, Some(_)) => errors.push((path("delay"), "goes with plug-slow only".into())),
            }
        }
        for (i, expect) in self.expect.iter().enumerate() {
            if let Err(message) = expect.check() {
                errors.push((vec!["expect".into(), i.to_string()], message));
            }
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        let targets = crate::sim::world::tests::targets();
        crate::config::describe(
            &Scenario::parse(Path::new("s.toml"), text, Some(&targets))
                .expect_err("the scenario should be rejected"),
        )
    }

    #[test]
    fn outcomes_parse() {
        assert_eq!("answers".parse(), Ok(Outcome { loss: 0, rtt: None }));
        assert_eq!(
            "30% loss 80ms".parse(),
            Ok(Outcome {
                loss: 30,
                rtt: Some(Duration::from_millis(80))
            })
        );
        assert_eq!("silent".parse::<Outcome>().unwrap().loss, 100);
        assert!("130% loss".parse::<Outcome>().is_err());
        assert!("loud".parse::<Outcome>().is_err());
    }

    #[test]
    fn errors_name_file_line_column_and_key() {
        assert_eq!(
            error("duration = \"1h\"\n[[segment]]\nat = \"0s\"\nwan = \"loud\"\n"),
            "s.toml:4:7: segment[0].wan: `loud` is not an outcome: write \"answers\", \"silent\" or \"30% loss\", optionally followed by a round trip such as \"40ms\""
        );
        assert_eq!(
            error("duration = \"1h\"\n[[cause]]\nkind = \"isp-outage\"\nat = \"1m\"\n"),
            "s.toml:3:8: cause[0].kind: needs a `duration`"
        );
        assert_eq!(
            error("duration = \"1h\"\n[[segment]]\nat = \"0s\"\ntargets.googel = \"silent\"\n"),
            "s.toml:4:18: segment[0].targets.googel: `googel` is not a probe target (targets: gateway, google)"
        );
        assert_eq!(
            error("duration = \"1h\"\n[[expect]]\npower_cycles = 1\nnotifications = 1\n"),
            "s.toml:2:1: expect[0]: makes more than one check: write one [[expect]] per check"
        );
        assert!(
            error("durration = \"1h\"\n")
                .starts_with("s.toml:1:1: durration: unknown field `durration`")
        );
        assert!(error("").contains("duration: is needed"));
        assert_eq!(
            error("start = \"9999-12-31T23:00:00Z\"\nduration = \"1h 1s\"\n"),
            "s.toml:2:12: duration: 1h 1s from start 9999-12-31T23:00:00Z runs past the year 9999, the last one RFC 3339 can write"
        );
    }

    #[test]
    fn counts_are_numbers_or_ranges() {
        let targets = crate::sim::world::tests::targets();
        let s = Scenario::parse(
            Path::new("s.toml"),
            "duration = \"1h\"\n[[expect]]\npower_cycles = { max = 3 }\n[[expect]]\nstate = \"up\"\nat = \"5m\"\n",
            Some(&targets),
        )
        .unwrap();
        assert_eq!(
            s.expect[0].check(),
            Ok(Check::Count(Counted::PowerCycles, Count { min: 0, max: 3 }))
        );
        assert_eq!(s.expect[1].check(), Ok(Check::State(WanState::Up, 300_000)));
    }

    #[test]
    fn link_expectations_parse_and_bad_ones_are_located() {
        let targets = crate::sim::world::tests::targets();
        let s = Scenario::parse(
            Path::new("s.toml"),
            "duration = \"1h\"\n[[expect]]\ndegraded = 1\n[[expect]]\nlink = \"degraded\"\nat = \"5m\"\n",
            Some(&targets),
        )
        .unwrap();
        assert_eq!(
            s.expect[0].check(),
            Ok(Check::Count(Counted::Degraded, Count { min: 1, max: 1 }))
        );
        assert_eq!(
            s.expect[1].check(),
            Ok(Check::Link(Link::Degraded, 300_000))
        );
        assert_eq!(
            error("duration = \"1h\"\n[[expect]]\nlink = \"degraded\"\n"),
            "s.toml:2:1: expect[0]: `link` needs `at`, the time to look at"
        );
        assert!(
            error("duration = \"1h\"\n[[expect]]\nlink = \"slow\"\nat = \"5m\"\n")
                .starts_with("s.toml:3:8: expect[0].link: unknown variant `slow`, expected `degraded` or `normal`"),
        );
        assert_eq!(
            error("duration = \"1h\"\n[[expect]]\nlink = \"normal\"\nat = \"5m\"\nfrom = \"1m\"\n"),
            "s.toml:2:1: expect[0]: `from` and `to` go with counts; `state` and `link` use `at`"
        );
        assert_eq!(
            error("duration = \"1h\"\n[[expect]]\ndegraded = 1\nat = \"5m\"\n"),
            "s.toml:2:1: expect[0]: `at` goes with `state` or `link`; counts use `from` and `to`"
        );
    }
}
