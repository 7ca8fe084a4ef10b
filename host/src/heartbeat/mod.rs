//! Heartbeats: proof of life sent out of the house while the WAN is up, so
//! that something outside notices when they stop.
//!
//! Each `[[heartbeat]]` sink gets its own task, sending every `interval`
//! while the daemon runs and the WAN is up. A heartbeat that cannot leave
//! is dropped, never queued nor retried: a late heartbeat would only say
//! the house was alive when it was not, and the next one comes an interval
//! later anyway.
//!
//! What a heartbeat says comes from the daemon's published status (the
//! `status_now` channel): the state, the `wan` targets' last round, and
//! whether the daemon is degraded (see [`troubles`]). Each kind has its
//! module: [`wanwatch`], [`healthchecks`], [`uptime_kuma`],
//! [`pushgateway`].
//!
//! A failing sink is logged once when it starts failing, once when its
//! reason changes and once when it recovers, never every beat; its state
//! is in the status ([`HeartbeatStatus`]). Secrets (tokens, the paths of
//! Healthchecks and Uptime Kuma URLs) never reach either.

mod config;
mod healthchecks;
mod pushgateway;
mod uptime_kuma;
mod wanwatch;

use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

pub use config::{HeartbeatConfig, HeartbeatKind};

use crate::clock::Clock;
use crate::human;
use crate::notify::{DeliveryError, NotifyError, Tuning, answer_text};
use crate::secrets::Secrets;
use crate::state::{Millis, Role, WanState};
use crate::status::Status;

/// One sink, as the status shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatStatus {
    /// `heartbeat[0] healthchecks https://hc-ping.com/…`: never the secret
    /// path.
    pub name: String,
    /// When a heartbeat last got through.
    pub last_ok_at_ms: Option<Millis>,
    /// Why the last heartbeat failed, while they fail.
    pub failing: Option<String>,
    /// Heartbeats the sink took since the daemon started.
    pub sent: u64,
}

/// The running heartbeat tasks; they stop when this is dropped.
pub struct Heartbeats {
    shown: Vec<Arc<Mutex<HeartbeatStatus>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Heartbeats {
    /// Starts one task per sink on `handle`, reading what to say from
    /// `status` (wall-clock times, as published). `clock` dates the
    /// heartbeats (its wall clock) and the status (its timeline, like the
    /// rest of the daemon's status).
    pub fn start(
        configs: &[HeartbeatConfig],
        status: watch::Receiver<Status>,
        clock: Arc<dyn Clock>,
        handle: &tokio::runtime::Handle,
    ) -> Result<Heartbeats, NotifyError> {
        let client = crate::notify::http_client(&Tuning::default())?;
        let mut heartbeats = Heartbeats {
            shown: Vec::new(),
            tasks: Vec::new(),
        };
        for (index, config) in configs.iter().enumerate() {
            let sink = Sink {
                name: config.name(index),
                secrets: Secrets::of_heartbeat(config),
                config: config.clone(),
                client: client.clone(),
            };
            let shown = Arc::new(Mutex::new(HeartbeatStatus {
                name: sink.name.clone(),
                ..HeartbeatStatus::default()
            }));
            tracing::info!(
                "{}: every {} while the WAN is up",
                sink.name,
                humantime::format_duration(config.interval)
            );
            heartbeats.tasks.push(handle.spawn(run(
                sink,
                status.clone(),
                clock.clone(),
                shown.clone(),
            )));
            heartbeats.shown.push(shown);
        }
        Ok(heartbeats)
    }

    /// Each sink's state, in config order.
    pub fn status(&self) -> Vec<HeartbeatStatus> {
        read(&self.shown)
    }

    /// Stops sending; the status stays as it was.
    pub fn stop(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Drop for Heartbeats {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The sinks' states for readers beside the daemon's loop (the plugins'
/// `heartbeats` import): loaded before the sinks start, so empty until
/// [`show`](HeartbeatBoard::show) is given them; stays empty with none
/// configured, and in simulation. Cheap to clone: clones share the board.
#[derive(Clone, Default)]
pub struct HeartbeatBoard(Arc<Mutex<Vec<Arc<Mutex<HeartbeatStatus>>>>>);

impl HeartbeatBoard {
    /// From now on, shows the sinks of `heartbeats`.
    pub fn show(&self, heartbeats: &Heartbeats) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = heartbeats.shown.clone();
    }

    /// Each sink's state, in config order.
    pub fn status(&self) -> Vec<HeartbeatStatus> {
        read(&self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

fn read(shown: &[Arc<Mutex<HeartbeatStatus>>]) -> Vec<HeartbeatStatus> {
    shown
        .iter()
        .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).clone())
        .collect()
}

/// One configured sink.
struct Sink {
    config: HeartbeatConfig,
    name: String,
    secrets: Secrets,
    client: reqwest::Client,
}

impl Sink {
    /// Sends one heartbeat saying `status`, dated `sent_at_ms` (wall clock).
    async fn beat(&self, status: &Status, sent_at_ms: Millis) -> Result<(), DeliveryError> {
        let request = match self.config.kind {
            HeartbeatKind::Wanwatch => {
                wanwatch::request(&self.client, &self.config, status, sent_at_ms)
            }
            HeartbeatKind::Healthchecks => {
                healthchecks::request(&self.client, &self.config, status)
            }
            HeartbeatKind::UptimeKuma => uptime_kuma::request(&self.client, &self.config, status),
            HeartbeatKind::Pushgateway => pushgateway::request(&self.client, &self.config, status),
        };
        let request = request.timeout(self.config.timeout);
        crate::notify::send(&self.name, &self.secrets, request, |code, body| {
            DeliveryError {
                // Meaningless here: a heartbeat is never retried.
                permanent: false,
                message: format!(
                    "{}: HTTP {}: {}",
                    self.name,
                    code.as_u16(),
                    answer_text(code, body)
                ),
            }
        })
        .await
    }
}

/// Beats every `interval` while the published status says the WAN is up,
/// and at once when it comes back up (the next beat a full interval
/// later). Ends when the daemon drops the status channel.
async fn run(
    sink: Sink,
    mut status: watch::Receiver<Status>,
    clock: Arc<dyn Clock>,
    shown: Arc<Mutex<HeartbeatStatus>>,
) {
    let mut ticker = tokio::time::interval(sink.config.interval);
    // After a stall, one beat and on at the normal cadence: a burst of
    // missed beats says nothing more.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut was_up = up(&status.borrow());
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            changed = status.changed() => {
                if changed.is_err() {
                    return;
                }
                let is_up = up(&status.borrow_and_update());
                let back = is_up && !was_up;
                was_up = is_up;
                if !back {
                    continue;
                }
                ticker.reset();
            }
        }
        let now = status.borrow_and_update().clone();
        was_up = up(&now);
        if !was_up {
            continue;
        }
        let outcome = sink.beat(&now, clock.wall_ms()).await;
        record(
            &mut shown.lock().unwrap_or_else(PoisonError::into_inner),
            outcome,
            clock.now_ms(),
        );
    }
}

/// Whether `status` says the WAN is up, from a probe round: a daemon that
/// has just started says nothing before its first round.
fn up(status: &Status) -> bool {
    status.state == WanState::Up && status.last_round_at_ms.is_some()
}

/// Notes a beat's outcome in `shown`, and logs a change: the first failure,
/// a new reason, the recovery.
fn record(shown: &mut HeartbeatStatus, outcome: Result<(), DeliveryError>, now_ms: Millis) {
    match outcome {
        Ok(()) => {
            shown.sent += 1;
            shown.last_ok_at_ms = Some(now_ms);
            if shown.failing.take().is_some() {
                tracing::info!("{}: heartbeats get through again", shown.name);
            }
        }
        Err(e) => {
            if shown.failing.as_deref() != Some(e.message.as_str()) {
                tracing::warn!(
                    "heartbeat failed: {} (logged again only when this changes)",
                    e.message
                );
                shown.failing = Some(e.message);
            }
        }
    }
}

/// The `wan` targets' last round: the median round trip of those that
/// answered, in ms, and the share that did not, in %. None without `wan`
/// targets (or answers, for the round trip).
fn wan_round(status: &Status) -> (Option<f64>, Option<f64>) {
    let wan: Vec<_> = status
        .targets
        .iter()
        .filter(|t| t.last.role == Role::Wan)
        .collect();
    if wan.is_empty() {
        return (None, None);
    }
    let failed = wan.iter().filter(|t| !t.last.ok).count();
    let loss = 100.0 * failed as f64 / wan.len() as f64;
    let mut rtts: Vec<f64> = wan
        .iter()
        .filter(|t| t.last.ok)
        .filter_map(|t| t.last.rtt_us)
        .map(|us| f64::from(us) / 1000.0)
        .collect();
    rtts.sort_by(f64::total_cmp);
    let mid = rtts.len() / 2;
    let median = match rtts.len() {
        0 => None,
        n if n % 2 == 1 => Some(rtts[mid]),
        _ => Some((rtts[mid - 1] + rtts[mid]) / 2.0),
    };
    (median, Some(loss))
}

/// What makes the daemon degraded although the WAN is up, as the status
/// shows it: a plugin quarantined (a policy that no longer runs), a
/// notification sink failing (an outage would go unreported). Empty when
/// all is well. A dry run is not a trouble: it is how a house without a
/// plug runs.
fn troubles(status: &Status) -> Vec<String> {
    let plugins = status
        .plugins
        .iter()
        .filter(|p| p.quarantined)
        .map(|p| format!("plugin {} quarantined", p.name));
    let sinks = status
        .notifications
        .iter()
        .flat_map(|n| &n.sinks)
        .filter(|s| s.failing.is_some())
        .map(|s| format!("notifications to {} failing", s.name));
    plugins.chain(sinks).collect()
}

/// A line for people: "WAN up since 2026-11-24T01:29:40Z, round trip
/// 12.3 ms, loss 0 %", then "; degraded: …" with the troubles.
fn summary_line(status: &Status, troubles: &[String]) -> String {
    let mut line = format!(
        "WAN {} since {}",
        status.state,
        human::timestamp(status.since_ms)
    );
    let (rtt, loss) = wan_round(status);
    if let Some(rtt) = rtt {
        line += &format!(", round trip {rtt:.1} ms");
    }
    if let Some(loss) = loss {
        line += &format!(", loss {loss:.0} %");
    }
    if status.dry_run {
        line += ", dry run";
    }
    if !troubles.is_empty() {
        line += &format!("; degraded: {}", troubles.join(", "));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::{OutboxStatus, SinkStatus};
    use crate::state::{Evidence, ProbeKind};
    use crate::status::TargetStatus;

    pub(super) fn target(name: &str, role: Role, rtt_us: Option<u32>) -> TargetStatus {
        TargetStatus {
            address: "192.0.2.1".into(),
            last: Evidence {
                target: name.into(),
                role,
                kind: ProbeKind::Icmp,
                ok: rtt_us.is_some(),
                rtt_us,
                https: None,
            },
            at_ms: 1_700_000_000_000,
        }
    }

    /// Up since 2023-11-14T22:13:20Z; a LAN gateway and three `wan`
    /// targets, one silent.
    pub(super) fn status() -> Status {
        let mut status = Status::new(WanState::Up, 1_700_000_000_000, false);
        status.targets = vec![
            target("gateway", Role::Lan, Some(500)),
            target("a", Role::Wan, Some(12_000)),
            target("b", Role::Wan, None),
            target("c", Role::Wan, Some(14_000)),
        ];
        status
    }

    #[test]
    fn heartbeat_wan_round_is_the_median_and_loss_of_wan_targets() {
        let mut status = status();
        let (rtt, loss) = wan_round(&status);
        assert_eq!(rtt, Some(13.0));
        assert!((loss.unwrap() - 100.0 / 3.0).abs() < 1e-9);
        status.targets.push(target("d", Role::Wan, Some(20_000)));
        assert_eq!(wan_round(&status).0, Some(14.0));
        status.targets.retain(|t| t.last.role == Role::Lan);
        assert_eq!(wan_round(&status), (None, None));
    }

    #[test]
    fn heartbeat_troubles_are_quarantined_plugins_and_failing_sinks() {
        let mut status = status();
        assert!(troubles(&status).is_empty());
        status.dry_run = true;
        assert!(troubles(&status).is_empty());
        status.notifications = Some(OutboxStatus {
            queued: 1,
            sinks: vec![SinkStatus {
                name: "ntfy https://ntfy.sh/…".into(),
                failing: Some("HTTP 500".into()),
                ..SinkStatus::default()
            }],
        });
        status.plugins.push(crate::plugin::PluginHealth {
            name: "powercycle".into(),
            calls: 3,
            failures: 3,
            consecutive_failures: 3,
            last_error: Some("trapped".into()),
            last_error_at_ms: None,
            version: String::new(),
            contract: String::new(),
            loaded_at_ms: 0,
            reloads: 0,
            quarantined: true,
            callback_us: 0,
        });
        let troubles = troubles(&status);
        assert_eq!(
            troubles,
            [
                "plugin powercycle quarantined",
                "notifications to ntfy https://ntfy.sh/… failing"
            ]
        );
        assert_eq!(
            summary_line(&status, &troubles),
            "WAN up since 2023-11-14T22:13:20Z, round trip 13.0 ms, loss 33 %, dry run; \
             degraded: plugin powercycle quarantined, notifications to ntfy https://ntfy.sh/… failing"
        );
    }

    #[test]
    fn heartbeat_failures_are_logged_once_per_change() {
        let mut shown = HeartbeatStatus {
            name: "heartbeat[0] healthchecks http://127.0.0.1".into(),
            ..HeartbeatStatus::default()
        };
        let failure = |message: &str| {
            Err(DeliveryError {
                permanent: false,
                message: message.into(),
            })
        };
        record(&mut shown, Ok(()), 1_000);
        record(&mut shown, failure("HTTP 500"), 2_000);
        assert_eq!(shown.failing.as_deref(), Some("HTTP 500"));
        record(&mut shown, failure("HTTP 500"), 3_000);
        record(&mut shown, failure("no answer: timed out"), 4_000);
        assert_eq!(shown.failing.as_deref(), Some("no answer: timed out"));
        record(&mut shown, Ok(()), 5_000);
        assert_eq!(
            shown,
            HeartbeatStatus {
                name: shown.name.clone(),
                last_ok_at_ms: Some(5_000),
                failing: None,
                sent: 2,
            }
        );
    }
}
