//! The status file: what the daemon knows now, for `wanwatch status`, for
//! other tools, and for the daemon itself after a restart.
//!
//! Written atomically (see [`crate::fsutil::write_atomic`]) so a reader never
//! sees half a file. On start the daemon reads it back and resumes the state
//! and its "since", so a restart causes no spurious transition; a corrupt
//! file is moved aside and the daemon starts fresh.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::actions::{ActionRecord, RefusalCount};
use crate::heartbeat::HeartbeatStatus;
use crate::human;
use crate::notify::OutboxStatus;
use crate::plugin::PluginHealth;
use crate::power::PowerState;
use crate::quality::{LinkQuality, Quality};
use crate::state::{Evidence, HttpsEvidence, Millis, Transition, WanState};

/// How many transitions the file keeps.
const RECENT_TRANSITIONS: usize = 20;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub state: WanState,
    pub since_ms: Millis,
    pub updated_at_ms: Millis,
    /// True when no action is really performed (`--dry-run`, or no plug).
    pub dry_run: bool,
    /// Mains power, when power detection is configured.
    #[serde(default)]
    pub power: Option<PowerState>,
    /// The most recent transitions, oldest first, without their evidence.
    #[serde(default)]
    pub transitions: VecDeque<TransitionSummary>,
    /// The last round, per target.
    #[serde(default)]
    pub targets: Vec<TargetStatus>,
    /// The most recent action requests, oldest first.
    #[serde(default)]
    pub actions: Vec<ActionRecord>,
    #[serde(default)]
    pub plugins: Vec<PluginHealth>,
    /// The notification queue, when notifications are configured.
    #[serde(default)]
    pub notifications: Option<OutboxStatus>,
    /// When the last probe round was judged: a watchdog whose rounds have
    /// stopped shows it here.
    #[serde(default)]
    pub last_round_at_ms: Option<Millis>,
    /// Probe rounds dropped because probing itself failed (a bug, never the
    /// link): such a round is not judged, so it cannot fake an outage.
    #[serde(default)]
    pub dropped_rounds: u64,
    /// Power cycles performed since the WAN was last up, carried over a
    /// restart so the outage's count stays whole.
    #[serde(default)]
    pub outage_cycles: u32,
    /// Requests refused for want of a grant, per plugin: kept apart from
    /// `actions` so that a plugin's flood of refusals never pushes real
    /// actions out of view.
    #[serde(default)]
    pub refusals: Vec<RefusalCount>,
    /// Each `[[heartbeat]]` sink: when a heartbeat last got through, and
    /// why they fail, while they do.
    #[serde(default)]
    pub heartbeats: Vec<HeartbeatStatus>,
    /// The MQTT broker connection, when `[mqtt]` is configured.
    #[serde(default)]
    pub mqtt: Option<crate::mqtt::MqttStatus>,
    /// Link quality: the degraded signal and every target's window.
    #[serde(default)]
    pub quality: Option<QualityStatus>,
}

/// The link's quality now (see [`crate::quality`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QualityStatus {
    #[serde(flatten)]
    pub link: LinkQuality,
    /// When the link became degraded, or normal (the daemon's start, if it
    /// never changed).
    pub since_ms: Millis,
    /// The thresholds (`[probe] degraded_loss`, `degraded_rtt`); with
    /// neither, the link is never degraded.
    pub degraded_loss_percent: Option<f32>,
    pub degraded_rtt_us: Option<u32>,
}

impl QualityStatus {
    /// Whether a threshold is set: without one the link is never degraded.
    pub fn judged(&self) -> bool {
        self.degraded_loss_percent.is_some() || self.degraded_rtt_us.is_some()
    }

    /// The figures the judgement reads, beside their thresholds:
    /// "loss 23.0% (degraded at 10%), rtt p50 41.50 ms".
    fn figures(&self) -> String {
        let mut loss = format!("loss {:.1}%", self.link.loss_percent);
        if let Some(limit) = self.degraded_loss_percent {
            loss += &format!(" (degraded at {limit}%)");
        }
        let mut rtt = match self.link.rtt_p50_us {
            Some(us) => format!("rtt p50 {}", human::round_trip(us)),
            None => "rtt p50 -".into(),
        };
        if let Some(limit) = self.degraded_rtt_us {
            rtt += &format!(" (degraded at {})", human::rtt_threshold(limit));
        }
        format!("{loss}, {rtt}")
    }

    pub fn of(quality: &Quality) -> QualityStatus {
        let settings = quality.settings();
        QualityStatus {
            link: quality.snapshot(),
            since_ms: quality.since_ms(),
            degraded_loss_percent: settings.degraded_loss_percent,
            degraded_rtt_us: settings.degraded_rtt_us,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransitionSummary {
    pub previous: WanState,
    pub current: WanState,
    pub at_ms: Millis,
    pub previous_duration_ms: Millis,
    pub local_fault: bool,
}

impl From<&Transition> for TransitionSummary {
    fn from(t: &Transition) -> Self {
        TransitionSummary {
            previous: t.previous,
            current: t.current,
            at_ms: t.at_ms,
            previous_duration_ms: t.previous_duration_ms,
            local_fault: t.local_fault,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetStatus {
    pub address: String,
    #[serde(flatten)]
    pub last: Evidence,
    pub at_ms: Millis,
}

impl Status {
    pub fn new(state: WanState, since_ms: Millis, dry_run: bool) -> Self {
        Status {
            state,
            since_ms,
            updated_at_ms: since_ms,
            dry_run,
            power: None,
            transitions: VecDeque::new(),
            targets: Vec::new(),
            actions: Vec::new(),
            plugins: Vec::new(),
            notifications: None,
            last_round_at_ms: None,
            dropped_rounds: 0,
            outage_cycles: 0,
            refusals: Vec::new(),
            heartbeats: Vec::new(),
            mqtt: None,
            quality: None,
        }
    }

    /// The same status with every timestamp moved by `by` ms: from the
    /// daemon's timeline to the wall clock when written, and back when
    /// resumed (see [`crate::clock`]).
    pub fn shifted(&self, by: i64) -> Status {
        let at = |ms: Millis| crate::clock::shift(ms, by);
        let mut status = self.clone();
        status.since_ms = at(status.since_ms);
        status.updated_at_ms = at(status.updated_at_ms);
        status.last_round_at_ms = status.last_round_at_ms.map(at);
        for t in &mut status.transitions {
            t.at_ms = at(t.at_ms);
        }
        for t in &mut status.targets {
            t.at_ms = at(t.at_ms);
        }
        for a in &mut status.actions {
            a.at_ms = at(a.at_ms);
        }
        for r in &mut status.refusals {
            r.last_at_ms = at(r.last_at_ms);
        }
        for p in &mut status.plugins {
            p.loaded_at_ms = at(p.loaded_at_ms);
            p.last_error_at_ms = p.last_error_at_ms.map(at);
        }
        for h in &mut status.heartbeats {
            h.last_ok_at_ms = h.last_ok_at_ms.map(at);
        }
        if let Some(q) = &mut status.quality {
            q.since_ms = at(q.since_ms);
        }
        status
    }

    pub fn record_transition(&mut self, t: &Transition) {
        self.state = t.current;
        self.since_ms = t.at_ms;
        if self.transitions.len() == RECENT_TRANSITIONS {
            self.transitions.pop_front();
        }
        self.transitions.push_back(t.into());
    }

    /// How many times the WAN went down since `at_ms`; None when the
    /// transitions kept may not reach back that far.
    pub fn downs_since(&self, at_ms: Millis) -> Option<u32> {
        let whole = self.transitions.len() < RECENT_TRANSITIONS
            || self.transitions.front().is_some_and(|t| t.at_ms < at_ms);
        whole.then(|| {
            self.transitions
                .iter()
                .filter(|t| t.current == WanState::Down && t.at_ms >= at_ms)
                .count() as u32
        })
    }

    /// How long the WAN was down the last time it was.
    pub fn last_down_ms(&self) -> Option<Millis> {
        self.transitions
            .iter()
            .rev()
            .find(|t| t.previous == WanState::Down)
            .map(|t| t.previous_duration_ms)
    }

    /// A human summary, as `wanwatch status` prints it.
    pub fn render(&self, now_ms: Millis) -> String {
        let mut out = format!(
            "WAN {} since {} ({}){}\n",
            self.state,
            human::timestamp(self.since_ms),
            human::duration_ms(now_ms.saturating_sub(self.since_ms)),
            if self.dry_run { ", dry run" } else { "" }
        );
        if let Some(power) = self.power {
            out += &format!("mains power {power}\n");
        }
        if let Some(q) = self.quality.as_ref().filter(|q| q.judged()) {
            out += &format!(
                "link {} since {} ({}): {}\n",
                if q.link.degraded {
                    "DEGRADED"
                } else {
                    "normal"
                },
                human::timestamp(q.since_ms),
                human::duration_ms(now_ms.saturating_sub(q.since_ms)),
                q.figures(),
            );
        }
        let age = now_ms.saturating_sub(self.updated_at_ms);
        out += &format!("updated {} ago", human::duration_ms(age));
        if let Some(at) = self.last_round_at_ms {
            let age = now_ms.saturating_sub(at);
            out += &format!(", last probe round {} ago", human::duration_ms(age));
        }
        if self.dropped_rounds > 0 {
            out += &format!(
                ", {} round(s) dropped (probing failed)",
                self.dropped_rounds
            );
        }
        out += "\n";
        if !self.targets.is_empty() {
            out += "\ntargets:\n";
            for t in &self.targets {
                let rtt = match (t.last.ok, t.last.rtt_us, &t.last.https) {
                    (true, Some(us), _) => human::round_trip(us),
                    (true, None, _) => "ok".into(),
                    // Which step of an https probe failed tells DNS from
                    // blocked HTTPS from a dead link.
                    (
                        false,
                        _,
                        Some(HttpsEvidence {
                            failed: Some(step),
                            error,
                            ..
                        }),
                    ) => {
                        format!(
                            "failed at {step}: {}",
                            error.as_deref().unwrap_or("no reason given")
                        )
                    }
                    (false, _, _) => "no answer".into(),
                };
                out += &format!(
                    "  {:<12} {:<4} {:<40} {rtt}\n",
                    t.last.target, t.last.role, t.address
                );
            }
        }
        if let Some(q) = self.quality.as_ref().filter(|q| !q.link.targets.is_empty()) {
            out += "\nlink quality over the window:\n";
            let ms = |us: Option<u32>| us.map_or_else(|| "-".into(), human::round_trip);
            for t in &q.link.targets {
                out += &format!(
                    "  {:<12} {:<4} {:>4} probes  loss {:>5.1}%  p50 {:>10}  p95 {:>10}  jitter {:>10}\n",
                    t.target,
                    t.role,
                    t.probes,
                    t.loss_percent,
                    ms(t.rtt_p50_us),
                    ms(t.rtt_p95_us),
                    ms(t.jitter_us),
                );
            }
        }
        if !self.transitions.is_empty() {
            out += "\nrecent transitions:\n";
            for t in &self.transitions {
                out += &format!(
                    "  {}  {} -> {} after {}{}\n",
                    human::timestamp(t.at_ms),
                    t.previous,
                    t.current,
                    human::duration_ms(t.previous_duration_ms),
                    if t.local_fault { " (local fault)" } else { "" }
                );
            }
        }
        if !self.actions.is_empty() {
            out += "\nrecent actions:\n";
            for a in &self.actions {
                let what = match &a.action {
                    crate::actions::Action::PowerCycle {
                        device,
                        off_seconds,
                    } => format!("power-cycle {device} for {off_seconds} s"),
                    crate::actions::Action::Notify { title, .. } => format!("notify \"{title}\""),
                };
                out += &format!(
                    "  {}  {}: {what}: {}\n",
                    human::timestamp(a.at_ms),
                    a.plugin,
                    a.outcome
                );
            }
        }
        if !self.refusals.is_empty() {
            out += "\nrefused (not granted):\n";
            for r in &self.refusals {
                out += &format!(
                    "  {:<12} {} request(s), the last {}: {}\n",
                    r.plugin,
                    r.count,
                    human::timestamp(r.last_at_ms),
                    r.last_reason
                );
            }
        }
        if !self.plugins.is_empty() {
            out += "\nplugins:\n";
            for p in &self.plugins {
                out += &format!(
                    "  {:<12} {} calls, {} failures",
                    p.name, p.calls, p.failures
                );
                if !p.version.is_empty() {
                    out += &format!(
                        ", version {} loaded {}",
                        p.version,
                        human::timestamp(p.loaded_at_ms)
                    );
                }
                if !p.contract.is_empty() {
                    out += &format!(", contract {}", p.contract);
                }
                if p.quarantined {
                    out += ", QUARANTINED until its file changes";
                }
                if let Some(e) = &p.last_error {
                    out += ", last error";
                    if let Some(at) = p.last_error_at_ms {
                        out += &format!(" at {}", human::timestamp(at));
                    }
                    out += &format!(": {e}");
                }
                out += "\n";
            }
        }
        if !self.heartbeats.is_empty() {
            out += "\nheartbeats:\n";
            for h in &self.heartbeats {
                out += &format!("  {}: {} sent", h.name, h.sent);
                if let Some(at) = h.last_ok_at_ms {
                    out += &format!(", the last {}", human::timestamp(at));
                }
                if let Some(why) = &h.failing {
                    out += &format!(", FAILING: {why}");
                }
                out += "\n";
            }
        }
        if let Some(mqtt) = &self.mqtt {
            let state = match &mqtt.error {
                None if mqtt.connected => "connected".to_owned(),
                None => "connecting".to_owned(),
                Some(e) => format!("not connected: {e}"),
            };
            out += &format!("\nMQTT {}: {state}\n", mqtt.broker);
        }
        out
    }
}

/// The status file on disk.
#[derive(Clone, Debug)]
pub struct StatusFile {
    path: PathBuf,
}

impl StatusFile {
    pub fn new(path: PathBuf) -> Self {
        StatusFile { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file. `Ok(None)` when there is none yet.
    pub fn read(&self) -> anyhow::Result<Option<Status>> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(anyhow::anyhow!(
                    "cannot read the status file {}: {e}",
                    self.path.display()
                ));
            }
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            anyhow::anyhow!("the status file {} is not valid: {e}", self.path.display())
        })
    }

    /// Reads the file for a daemon that is starting. A corrupt file is moved
    /// aside with a warning, so that one bad write never stops the watchdog
    /// from starting; the daemon then starts fresh.
    pub fn resume(&self, now_ms: Millis) -> Option<Status> {
        match self.read() {
            Ok(status) => status,
            Err(e) => {
                let aside = self.path.with_extension(format!("corrupt-{now_ms}"));
                let moved = std::fs::rename(&self.path, &aside);
                tracing::warn!(
                    "{e}; moved it to {} and starting fresh{}",
                    aside.display(),
                    moved
                        .err()
                        .map(|e| format!(" (move failed: {e})"))
                        .unwrap_or_default()
                );
                None
            }
        }
    }

    pub fn write(&self, status: &Status) -> std::io::Result<()> {
        let mut json = serde_json::to_vec_pretty(status).map_err(std::io::Error::other)?;
        json.push(b'\n');
        crate::fsutil::write_atomic(&self.path, &json)
    }
}

/// Writes the status file on a thread of its own: each write fsyncs the file
/// and its directory, which on an SD card can take a good part of a second,
/// and must not hold up the daemon's event loop. Writes queued faster than
/// the disk takes them are coalesced: only the newest status is written.
pub struct StatusWriter {
    queue: Option<std::sync::mpsc::Sender<(Status, Option<AfterWrite>)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What must happen only once a status is on disk (or its write failed).
pub type AfterWrite = Box<dyn FnOnce() + Send>;

impl StatusWriter {
    pub fn start(file: StatusFile) -> std::io::Result<StatusWriter> {
        let (queue, queued) = std::sync::mpsc::channel::<(Status, Option<AfterWrite>)>();
        let thread = std::thread::Builder::new()
            .name("status-writer".into())
            .spawn(move || {
                let mut failing = crate::fsutil::Failing::default();
                while let Ok((mut status, then)) = queued.recv() {
                    let mut after: Vec<AfterWrite> = then.into_iter().collect();
                    while let Ok((newer, then)) = queued.try_recv() {
                        status = newer;
                        after.extend(then);
                    }
                    // Disk trouble must not stop the watchdog: log it once
                    // and carry on; the next write tries again.
                    failing.outcome(
                        format_args!("the status file {}", file.path().display()),
                        file.write(&status),
                    );
                    after.into_iter().for_each(|then| then());
                }
            })?;
        Ok(StatusWriter {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Queues `status` to be written; never blocks.
    pub fn write(&self, status: Status) {
        self.send(status, None);
    }

    /// Queues `status` to be written, and `then` to run once it has been
    /// (or could not be); never blocks.
    pub fn write_then(&self, status: Status, then: AfterWrite) {
        self.send(status, Some(then));
    }

    fn send(&self, status: Status, then: Option<AfterWrite>) {
        if let Some(queue) = &self.queue {
            let _ = queue.send((status, then));
        }
    }

    /// Writes what is queued and stops the thread.
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the status writer thread panicked");
        }
    }
}

impl Drop for StatusWriter {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quality::TargetQuality;
    use crate::state::{HttpsStep, ProbeKind, Role};

    fn transition(at_ms: Millis, current: WanState) -> Transition {
        Transition {
            previous: WanState::Up,
            current,
            at_ms,
            previous_duration_ms: 1_000,
            local_fault: false,
            evidence: vec![],
        }
    }

    #[test]
    fn round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = StatusFile::new(dir.path().join("status.json"));
        assert_eq!(file.read().unwrap(), None);
        let mut status = Status::new(WanState::Up, 1_000, true);
        status.record_transition(&transition(5_000, WanState::Sick));
        status.targets.push(TargetStatus {
            address: "127.0.0.1".into(),
            last: Evidence {
                target: "lo".into(),
                role: Role::Wan,
                kind: ProbeKind::Icmp,
                ok: true,
                rtt_us: Some(40),
                https: None,
            },
            at_ms: 5_000,
        });
        file.write(&status).unwrap();
        assert_eq!(file.read().unwrap(), Some(status.clone()));
        assert_eq!(file.resume(6_000), Some(status));
    }

    #[test]
    fn the_writer_writes_the_newest_status_and_flushes_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let file = StatusFile::new(dir.path().join("status.json"));
        let writer = StatusWriter::start(file.clone()).unwrap();
        for since in 0..100 {
            writer.write(Status::new(WanState::Sick, since, false));
        }
        writer.finish();
        assert_eq!(file.read().unwrap().unwrap().since_ms, 99);
    }

    #[test]
    fn shifting_moves_every_timestamp_and_back() {
        let mut status = Status::new(WanState::Down, 10_000, false);
        status.record_transition(&transition(10_000, WanState::Down));
        status.last_round_at_ms = Some(12_000);
        let wall = status.shifted(3_600_000);
        assert_eq!(wall.since_ms, 3_610_000);
        assert_eq!(wall.transitions[0].at_ms, 3_610_000);
        assert_eq!(wall.last_round_at_ms, Some(3_612_000));
        assert_eq!(wall.shifted(-3_600_000), status);
    }

    #[test]
    fn keeps_only_recent_transitions() {
        let mut status = Status::new(WanState::Up, 0, false);
        for i in 0..25 {
            status.record_transition(&transition(i * 1000, WanState::Sick));
        }
        assert_eq!(status.transitions.len(), RECENT_TRANSITIONS);
        assert_eq!(status.transitions[0].at_ms, 5_000);
        assert_eq!(status.since_ms, 24_000);
    }

    #[test]
    fn corrupt_file_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        std::fs::write(&path, b"{\"state\": \"up\", \"since").unwrap();
        let file = StatusFile::new(path.clone());
        assert_eq!(file.resume(77), None);
        assert!(!path.exists());
        assert_eq!(
            std::fs::read(dir.path().join("status.corrupt-77")).unwrap(),
            b"{\"state\": \"up\", \"since"
        );
    }

    #[test]
    fn a_status_file_without_heartbeats_loads_and_they_render() {
        let old = r#"{"state": "up", "since_ms": 1000, "updated_at_ms": 2000, "dry_run": false}"#;
        let mut status: Status = serde_json::from_str(old).unwrap();
        assert!(status.heartbeats.is_empty());
        status.heartbeats = vec![
            HeartbeatStatus {
                name: "heartbeat[0] healthchecks https://hc-ping.com/…".into(),
                last_ok_at_ms: Some(1_700_000_000_000),
                failing: None,
                sent: 12,
            },
            HeartbeatStatus {
                name: "heartbeat[1] pushgateway http://pgw:9091".into(),
                last_ok_at_ms: None,
                failing: Some("HTTP 502: Bad Gateway".into()),
                sent: 0,
            },
        ];
        let text = status.render(1_700_000_060_000);
        assert!(
            text.ends_with(
                "\nheartbeats:\n  heartbeat[0] healthchecks https://hc-ping.com/…: 12 sent, the last 2023-11-14T22:13:20Z\n  \
                 heartbeat[1] pushgateway http://pgw:9091: 0 sent, FAILING: HTTP 502: Bad Gateway\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn render_says_which_step_of_a_failing_https_target_failed() {
        let mut status = Status::new(WanState::Up, 0, false);
        let https = |failed: Option<HttpsStep>, error: &str| Evidence {
            target: "app".into(),
            role: Role::Wan,
            kind: ProbeKind::Https,
            ok: failed.is_none(),
            rtt_us: failed.is_none().then_some(12_340),
            https: Some(HttpsEvidence {
                failed,
                error: (!error.is_empty()).then(|| error.into()),
                ..HttpsEvidence::default()
            }),
        };
        for last in [
            https(
                Some(HttpsStep::Tls),
                "certificate is not valid for name example.com",
            ),
            https(None, ""),
        ] {
            status.targets.push(TargetStatus {
                address: "https://example.com/".into(),
                last,
                at_ms: 0,
            });
        }
        let text = status.render(1_000);
        assert!(
            text.contains("https://example.com/                     failed at tls: certificate is not valid for name example.com\n"),
            "{text}"
        );
        assert!(
            text.contains("https://example.com/                     12.34 ms\n"),
            "{text}"
        );
    }

    #[test]
    fn render_shows_the_link_quality_and_each_window() {
        let mut status = Status::new(WanState::Up, 0, false);
        let target = |name: &str, role, loss_percent, rtt: Option<u32>| TargetQuality {
            target: name.into(),
            role,
            probes: 150,
            loss_percent,
            rtt_p50_us: rtt,
            rtt_p95_us: rtt.map(|us| us * 2),
            jitter_us: rtt.map(|us| us / 10),
        };
        status.quality = Some(QualityStatus {
            link: LinkQuality {
                degraded: true,
                loss_percent: 23.0,
                rtt_p50_us: Some(41_500),
                targets: vec![
                    target("gateway", Role::Lan, 0.0, Some(800)),
                    target("cloudflare", Role::Wan, 23.0, Some(41_500)),
                    target("google", Role::Wan, 100.0, None),
                ],
            },
            since_ms: 1_700_000_000_000,
            degraded_loss_percent: Some(10.0),
            degraded_rtt_us: None,
        });
        let text = status.render(1_700_000_720_000);
        assert!(
            text.contains("\nlink DEGRADED since 2023-11-14T22:13:20Z (12m00s): loss 23.0% (degraded at 10%), rtt p50 41.50 ms\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "\nlink quality over the window:\n  gateway      lan   150 probes  loss   0.0%  p50    0.80 ms  p95    1.60 ms  jitter    0.08 ms\n  cloudflare   wan   150 probes  loss  23.0%  p50   41.50 ms  p95   83.00 ms  jitter    4.15 ms\n  google       wan   150 probes  loss 100.0%  p50          -  p95          -  jitter          -\n"
            ),
            "{text}"
        );
        // Without a threshold the windows show, the signal does not.
        let q = status.quality.as_mut().unwrap();
        q.degraded_loss_percent = None;
        let text = status.render(1_700_000_720_000);
        assert!(
            !text.contains("since 2023-11-14T22:13:20Z (12m00s)"),
            "{text}"
        );
        assert!(text.contains("link quality over the window:"), "{text}");
    }

    #[test]
    fn render_names_state_and_transitions() {
        let mut status = Status::new(WanState::Up, 0, false);
        status.record_transition(&transition(1_700_000_000_000, WanState::Down));
        let text = status.render(1_700_000_060_000);
        assert!(
            text.starts_with("WAN down since 2023-11-14T22:13:20Z (1m00s)\n"),
            "{text}"
        );
        assert!(text.contains("up -> down after 1.0s"), "{text}");
    }

    #[test]
    fn render_shows_plugin_version_and_quarantine() {
        let mut status = Status::new(WanState::Up, 0, false);
        status.plugins.push(PluginHealth {
            name: "mine".into(),
            calls: 5,
            failures: 5,
            consecutive_failures: 5,
            last_error: Some("plugin `mine`: on-wan-down trapped".into()),
            last_error_at_ms: Some(1_700_000_000_000),
            version: "0123456789ab".into(),
            contract: "0.2.0".into(),
            loaded_at_ms: 1_700_000_000_000,
            reloads: 1,
            quarantined: true,
            callback_us: 1_500,
        });
        let text = status.render(1_700_000_060_000);
        assert!(
            text.contains(
                "mine         5 calls, 5 failures, version 0123456789ab loaded 2023-11-14T22:13:20Z, contract 0.2.0, QUARANTINED until its file changes, last error at 2023-11-14T22:13:20Z: plugin `mine`: on-wan-down trapped"
            ),
            "{text}"
        );
    }
}
