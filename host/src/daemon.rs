//! The daemon: drives the data path in real time.
//!
//! probe round → state machine → transition → plugin callbacks → actions.
//!
//! The loop here only moves data between the parts; each decision lives in
//! its own module (the rules in [`crate::state`], the policy in the plugins,
//! the limits in [`crate::actions`]). Plugins run on their own threads
//! ([`crate::plugin::Runner`]), so a slow or broken plugin never delays a
//! probe round.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::actions::{Actions, Notifier, PowerSwitch};
use crate::clock::{self, Clock, SystemClock};
use crate::config::{Config, PluginConfig};
use crate::config_watch::{ConfigWatch, Trigger};
use crate::drivers::Plugs;
use crate::events::{Observed, Observers};
use crate::heartbeat::{HeartbeatBoard, Heartbeats};
use crate::history::{self, History, Recorder};
use crate::human;
use crate::monitor::Monitor;
use crate::notify::{self, Outbox};
use crate::outage_report::Reporter;
use crate::plugin::{
    Event, HostContext, HotReload, Mailbox, Plugin, PluginSpec, Runner, Runtime, WanEvent,
};
use crate::power::{Poller, PowerMonitor, PowerRound, PowerTransition};
use crate::probe::{Probe, Prober, Target, gateway};
use crate::quality::{Quality, QualityChange};
use crate::state::{Role, Round, StateMachine, Transition, WanState};
use crate::status::{
    QualityStatus, Status, StatusFile, StatusWriter, TargetStatus, TransitionSummary,
};
use crate::systemd::{self, Supervisor};

/// How often the status file is rewritten when nothing changes (it is
/// written at once after every transition and action, and at the next
/// round after a plugin's health changed).
const STATUS_EVERY: Duration = Duration::from_secs(5);

/// The safety cap's record of recent cycles, in the state directory.
const CAP_FILE: &str = "power-cycles.json";

pub fn status_file(config: &Config) -> StatusFile {
    StatusFile::new(config.state_dir_or_default().join("status.json"))
}

/// The probe targets: the configured ones with `"gateway"` resolved, or the
/// defaults (the LAN gateway, then two internet resolvers).
pub fn targets(config: &Config) -> anyhow::Result<Vec<Target>> {
    let gateways = gateway::default_gateways();
    if config.targets.is_empty() {
        let lan = gateways.first().map(|&address| Target {
            name: "gateway".into(),
            role: Role::Lan,
            probe: Probe::Icmp { address },
        });
        if lan.is_none() {
            tracing::warn!(
                "no default gateway in /proc/net/route or /proc/net/ipv6_route: local faults cannot be told from WAN outages"
            );
        }
        let wan = crate::config::DEFAULT_WAN_TARGETS
            .iter()
            .map(|(name, ip)| Target {
                name: (*name).into(),
                role: Role::Wan,
                probe: Probe::Icmp {
                    address: IpAddr::from(*ip),
                },
            });
        return Ok(lan.into_iter().chain(wan).collect());
    }
    config
        .targets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let probe = t
                .probe(gateways.first().copied())
                .map_err(|e| anyhow::anyhow!("targets[{i}] ({}): {e}", t.name))?;
            Ok(Target {
                name: t.name.clone(),
                role: t.role,
                probe,
            })
        })
        .collect()
}

/// Why actions are not performed for real, if they are not.
pub fn dry_run_reason(config: &Config, dry_run: bool) -> Option<&'static str> {
    if dry_run {
        Some("--dry-run: probing for real, performing no action")
    } else if config.devices.is_empty() {
        Some("no power plug is configured: acting as dry run (add a [devices.modem] section)")
    } else {
        None
    }
}

/// The gateway to the world: the real plug drivers and notifiers unless
/// this is a dry run, and the outbox of notifications if one is configured.
/// The drivers run on `handle`, the daemon's runtime.
pub fn actions(
    config: &Config,
    dry_run: bool,
    clock: Arc<dyn Clock>,
    handle: tokio::runtime::Handle,
) -> anyhow::Result<(Actions, Option<Arc<Outbox>>)> {
    let cap = config.safety.max_cycles_per_hour;
    if dry_run {
        return Ok((Actions::dry_run(clock, cap), None));
    }
    let switch = (!config.devices.is_empty())
        .then(|| Arc::new(Plugs::new(&config.devices, handle.clone())) as Arc<dyn PowerSwitch>);
    let notifying = notify::is_configured(&config.notify);
    if !notifying {
        tracing::info!("no [notify] section: notifications are only logged");
    }
    // Also for outage reports to a watcher alone.
    let outbox = if notify::is_wanted(&config.notify, &config.heartbeat) {
        let outbox = Outbox::new(
            &config.notify,
            &config.heartbeat,
            &config.state_dir_or_default(),
            handle,
        )
        .context("cannot open the notification queue")?;
        Some(Arc::new(outbox))
    } else {
        None
    };
    let notifier = outbox
        .clone()
        .filter(|_| notifying)
        .map(|o| o as Arc<dyn Notifier>);
    Ok((Actions::new(switch, notifier, clock, cap), outbox))
}

/// Reads every plug's identity and power-on setting, and logs what a user
/// must know before trusting it with the modem.
pub async fn preflight(config: &Config) -> Vec<String> {
    let plugs = Plugs::new(&config.devices, tokio::runtime::Handle::current());
    plugs.preflight().await
}

/// Loads every plugin, or says which one failed and why.
pub fn load_plugins(
    runtime: &Runtime,
    config: &Config,
    actions: &Arc<Actions>,
    clock: &Arc<dyn Clock>,
    kv_dir: Option<PathBuf>,
    heartbeats: &HeartbeatBoard,
) -> anyhow::Result<Vec<crate::plugin::Plugin>> {
    config
        .plugins()
        .into_iter()
        .map(|(name, plugin_config)| {
            let spec = PluginSpec::from_config(&name, &plugin_config)?;
            let host = HostContext {
                actions: actions.clone(),
                clock: clock.clone(),
                kv_dir: kv_dir.clone(),
                heartbeats: heartbeats.clone(),
            };
            Ok(runtime.load(spec, host)?)
        })
        .collect()
}

pub struct Daemon {
    clock: Arc<dyn Clock>,
    monitor: Monitor,
    /// The round sources; `run` moves them into tasks of their own.
    prober: Option<Prober>,
    poller: Option<(Poller, Duration)>,
    targets: Vec<Target>,
    runners: Vec<Runner>,
    /// Swaps in new versions of the plugins' files; None if it could not start.
    hot_reload: Option<HotReload>,
    /// What the plugins were loaded with, to apply a new config's plugins.
    plugins: PluginSet,
    actions: Arc<Actions>,
    outbox: Option<Arc<Outbox>>,
    status: Status,
    /// Writes the status file off the event loop.
    status_writer: StatusWriter,
    /// A config reload under way (compiling off the event loop), and
    /// whether another was asked for meanwhile.
    reload: ReloadState,
    /// The probe log (`[history]`), if configured.
    history: Option<History>,
    last_status_write_ms: u64,
    /// The [`Actions::generation`] the status file last showed.
    actions_shown: u64,
    interval: Duration,
    /// History, API, exporters and MQTT: told of everything as it happens.
    observers: Observers,
    /// The status as last written (wall clock), for those that show it live.
    status_now: tokio::sync::watch::Sender<Status>,
    /// Asks the probe loop for a round now (the API's `POST /api/v1/probe`).
    probe_now: Arc<tokio::sync::Notify>,
    /// The HTTP API; None when off or it could not listen.
    api: Option<crate::api::Server>,
    /// Writes the history database (`[history] database`).
    recorder: Option<Recorder>,
    /// Sends the outage reports; stops when dropped.
    _reporter: Option<Reporter>,
    /// The `[[heartbeat]]` senders; None without any (or a client).
    heartbeats: Option<Heartbeats>,
    /// Publishes to an MQTT broker (`[mqtt]`).
    mqtt: Option<crate::mqtt::Mqtt>,
    /// systemd, told when the daemon is ready, reloads and stops, and fed
    /// its watchdog by the rounds this loop handles.
    supervisor: Supervisor,
}

impl Daemon {
    /// Sets everything up: targets, status (resumed), actions, plugins,
    /// prober. Fails with a clear message on anything that would make the
    /// watchdog useless. Runs inside the daemon's tokio runtime.
    /// `config_path`: the file `config` came from, reloaded on SIGHUP and
    /// when it changes; None when running on the built-in defaults.
    pub async fn start(
        config: &Config,
        config_path: Option<&Path>,
        dry_run: bool,
    ) -> anyhow::Result<Daemon> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let now = clock.now_ms();
        let targets = targets(config)?;
        let reason = dry_run_reason(config, dry_run);
        match reason {
            Some(reason) => tracing::warn!("{reason}"),
            // A plug that cannot be reached or would leave the modem dark
            // after a blackout is worth knowing now, not during an outage.
            None => {
                for warning in preflight(config).await {
                    tracing::warn!("{warning}");
                }
            }
        }
        let handle = tokio::runtime::Handle::current();
        let (actions, outbox) = actions(config, dry_run, clock.clone(), handle)?;
        let actions = Arc::new(actions);

        // Atomic writes cut short by a crash or a power cut leave their
        // temporary files behind.
        let removed = crate::fsutil::remove_stale_temp_files(&config.state_dir_or_default());
        if removed > 0 {
            tracing::info!("removed {removed} temporary file(s) left by an earlier run");
        }
        let status_file = status_file(config);
        // The file has wall-clock times (see `flush_status`).
        let resumed = status_file
            .resume(clock.wall_ms())
            .map(|s| s.shifted(clock::offset(&*clock).saturating_neg()));
        let thresholds = config.probe.thresholds();
        let machine = match &resumed {
            Some(s) => {
                tracing::info!(
                    "resuming: WAN {} since {} (from {})",
                    s.state,
                    human::timestamp(s.since_ms),
                    status_file.path().display()
                );
                StateMachine::resume(thresholds, s.state, s.since_ms)
            }
            None => StateMachine::new(thresholds, now),
        };
        actions.set_wan_state(machine.state(), machine.since_ms());
        let mut status = resumed.unwrap_or_else(|| Status::new(machine.state(), now, true));
        status.dry_run = reason.is_some();
        actions.resume(std::mem::take(&mut status.actions));
        actions.keep_cap_in(config.state_dir_or_default().join(CAP_FILE));

        let status_now = tokio::sync::watch::Sender::new(status.shifted(clock::offset(&*clock)));
        let metrics = Arc::new(crate::metrics::Metrics::new(status_now.subscribe()));
        // Observed before the plugins start: a timer of theirs that fell
        // due while the daemon was stopped fires at once. Every observer is
        // added before the list is shared: a clone sees no later addition.
        let mut observers = Observers::default();
        observers.add(metrics.clone());
        let recorder = config.history.database.then(|| {
            Recorder::start(
                history::database_path(&config.state_dir_or_default()),
                &config.history,
            )
        });
        if let Some(recorder) = &recorder {
            observers.add(Arc::new(recorder.clone()));
        }
        let mqtt = config.mqtt.as_ref().map(|mqtt| {
            crate::mqtt::Mqtt::start(mqtt, config, actions.clone(), &status_now.borrow())
        });
        if let Some(mqtt) = &mqtt {
            observers.add(mqtt.observer());
        }
        {
            let (observers, clock) = (observers.clone(), clock.clone());
            actions.on_record(move |record| {
                let mut record = record.clone();
                record.at_ms = clock::wall_of(&*clock, record.at_ms);
                observers.observe(&Observed::Action(record));
            });
        }

        // Compiled plugins are cached, so a restart with unchanged plugins
        // does not compile them again.
        let runtime = Runtime::with_cache(config.state_dir_or_default().join("cache"))
            .context("cannot start the plugin runtime")?;
        let kv_dir = Some(config.state_dir_or_default().join("plugins"));
        // Filled once the heartbeats start, below.
        let board = HeartbeatBoard::default();
        // On a thread of its own, outside the async runtime: wasmtime-wasi
        // runs a guest's WASI calls (a trapping guest's stderr flushed, say)
        // on a runtime of its own, which cannot start inside this one.
        let loaded = std::thread::scope(|scope| {
            scope
                .spawn(|| load_plugins(&runtime, config, &actions, &clock, kv_dir.clone(), &board))
                .join()
        })
        .map_err(|_| anyhow::anyhow!("loading the plugins panicked"))??;
        let runners: Vec<Runner> = loaded
            .into_iter()
            .map(|plugin| start_runner(plugin, &clock, None))
            .collect();
        runtime.prune_cache();
        give_back_compile_memory();
        let hot_reload = watch_plugins(&runtime, &runners);
        let plugins = PluginSet {
            runtime,
            kv_dir,
            heartbeats: board.clone(),
            configs: config.plugins(),
            config_path: config_path.map(Path::to_owned),
            raw: config_path.and_then(raw_config),
        };

        let prober = Prober::new(targets.clone(), config.probe.interval, config.probe.timeout)
            .context("cannot open the ICMP sockets (wanwatch needs root or CAP_NET_RAW)")?;
        let (power, poller) = if config.power.devices.is_empty() {
            (None, None)
        } else {
            let poller = Poller::new(&config.power.devices, config.power.timeout)
                .map_err(|e| anyhow::anyhow!("power detection: {e}"))?;
            let power = PowerMonitor::new(config.power.out_share, now);
            (Some(power), Some((poller, config.power.interval)))
        };
        let quality = Quality::new(
            config.probe.quality(config.probe.interval),
            targets.iter().map(|t| (t.name.clone(), t.role)),
            now,
        );
        let mut monitor = Monitor::new(machine, quality, power);
        monitor.carry_cycles(status.outage_cycles);
        let names: BTreeSet<String> = targets
            .iter()
            .map(|t| {
                format!(
                    "{} {} {} ({})",
                    t.name,
                    t.probe.kind(),
                    t.endpoint(),
                    t.role
                )
            })
            .collect();
        tracing::info!(
            "probing every {} with a {} timeout: {}",
            humantime::format_duration(config.probe.interval),
            humantime::format_duration(config.probe.timeout),
            names.into_iter().collect::<Vec<_>>().join(", ")
        );
        let status_writer =
            StatusWriter::start(status_file.clone()).context("cannot start the status writer")?;
        let probe_now = Arc::new(tokio::sync::Notify::new());
        let api = crate::api::Server::start(
            &config.http,
            crate::api::Parts {
                status: status_now.subscribe(),
                actions: actions.clone(),
                devices: config.devices.keys().cloned().collect(),
                probe_now: probe_now.clone(),
                history: recorder.clone(),
                metrics,
            },
        );
        let reporter = Reporter::start(
            &config.reports,
            &config.state_dir_or_default(),
            recorder.clone(),
            outbox.clone(),
            status_now.subscribe(),
        );
        // Proof of life, read off the published status; a client that
        // cannot be built leaves the watchdog running, without them.
        let heartbeats = (!config.heartbeat.is_empty())
            .then(|| {
                Heartbeats::start(
                    &config.heartbeat,
                    status_now.subscribe(),
                    clock.clone(),
                    &tokio::runtime::Handle::current(),
                )
                .inspect_err(|e| tracing::error!("heartbeats are not sent: {e}"))
                .ok()
            })
            .flatten();
        if let Some(heartbeats) = &heartbeats {
            board.show(heartbeats);
        }
        let daemon = Daemon {
            clock,
            monitor,
            prober: Some(prober),
            targets,
            poller,
            runners,
            hot_reload,
            plugins,
            actions,
            outbox,
            status,
            status_writer,
            reload: ReloadState::default(),
            history: config.history.dir.clone().map(History::new),
            last_status_write_ms: 0,
            actions_shown: 0,
            interval: config.probe.interval,
            observers,
            status_now,
            probe_now,
            api,
            recorder,
            _reporter: reporter,
            heartbeats,
            mqtt,
            supervisor: Supervisor::from_env(Some(config.probe.interval)),
        };
        daemon.tell_the_state_it_starts_in();
        Ok(daemon)
    }

    /// Delivers the last transition again, so that plugins learn the state
    /// the daemon resumes in: a restart in the middle of an outage must not
    /// leave a policy waiting for a "down" that already happened. With
    /// contract 0.1 this is the one way to say it; the transition is the
    /// same one (same `at-ms`), so a policy that keeps state can tell it
    /// from a new one (see wit/since_v0.2.0/policy.wit).
    fn tell_the_state_it_starts_in(&self) {
        let Some(last) = self
            .status
            .transitions
            .back()
            .filter(|t| t.current == self.status.state)
        else {
            return;
        };
        let TransitionSummary {
            previous,
            current,
            at_ms,
            previous_duration_ms,
            local_fault,
        } = *last;
        let transition = Transition {
            previous,
            current,
            at_ms,
            previous_duration_ms,
            local_fault,
            evidence: Vec::new(),
        };
        tracing::info!(
            "telling the plugins the state they start in: {}",
            human::wan_change(&self.shown(&transition), human::When::Said)
        );
        self.broadcast(&Event::Wan(WanEvent {
            transition,
            power: self.monitor.power_state(),
            power_cycles: self.status.outage_cycles,
            quality: self.monitor.quality().snapshot(),
        }));
    }

    /// `t` with its instant on the wall clock, for people.
    fn shown(&self, t: &Transition) -> Transition {
        Transition {
            at_ms: clock::wall_of(&*self.clock, t.at_ms),
            evidence: Vec::new(),
            ..t.clone()
        }
    }

    /// Runs until `shutdown` completes, then stops the plugins and flushes
    /// the status file.
    ///
    /// Probing and power polling run as tasks of their own that send their
    /// rounds here, so neither ever waits for the other or for this loop;
    /// nor does this loop wait for anything slow (the disk, a compiler, a
    /// plugin's thread): those run on threads of their own. If a task that
    /// feeds it ends, the watchdog is blind: it stops with an error, so that
    /// its supervisor (systemd) restarts it, rather than go on as if it
    /// were watching.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        tokio::pin!(shutdown);
        let (round_tx, mut rounds) = tokio::sync::mpsc::channel(4);
        let mut probing = self.prober.take().map(|prober| {
            let probe_now = self.probe_now.clone();
            tokio::spawn(probe_loop(prober, self.interval, probe_now, round_tx))
        });
        let (power_tx, mut power_rounds) = tokio::sync::mpsc::channel(4);
        let mut polling = self.poller.take().map(|(poller, every)| {
            tokio::spawn(power_loop(poller, every, self.clock.clone(), power_tx))
        });
        let (reload_tx, mut reloads) = tokio::sync::mpsc::channel(1);
        let (validated_tx, mut validated) = tokio::sync::mpsc::channel(1);
        let _config_watch = self
            .plugins
            .config_path
            .as_deref()
            .map(|path| ConfigWatch::start(path, reload_tx));
        let outcome = loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break Ok(()),
                round = rounds.recv(), if probing.is_some() => match round {
                    Some(Some(round)) => self.on_round(&round),
                    Some(None) => self.on_dropped_round(),
                    None => break Err(ended("probing", probing.take()).await),
                },
                Some(trigger) = reloads.recv() => self.begin_reload(trigger, &validated_tx),
                Some(reload) = validated.recv() => {
                    self.apply_reload(reload);
                    if let Some(trigger) = self.reload.again.take() {
                        self.begin_reload(trigger, &validated_tx);
                    }
                }
                round = power_rounds.recv(), if polling.is_some() => match round {
                    Some(round) => {
                        if let Some(t) = self.monitor.on_power_round(&round) {
                            self.on_power_transition(&t);
                        }
                    }
                    None => break Err(ended("power detection", polling.take()).await),
                },
            }
        };
        self.supervisor.stopping();
        match &outcome {
            Ok(()) => tracing::info!("stopping"),
            Err(e) => tracing::error!("{e:#}; stopping, so that the supervisor restarts wanwatch"),
        }
        for task in probing.into_iter().chain(polling) {
            task.abort();
        }
        if let Some(api) = self.api.take() {
            api.stop();
        }
        // No heartbeat after "stopping": the house may be going dark.
        if let Some(heartbeats) = &self.heartbeats {
            heartbeats.stop();
        }
        // Joins its thread, which may be compiling a new version: not
        // waited for (the runners it would send to are being stopped).
        if let Some(hot_reload) = self.hot_reload.take() {
            std::thread::spawn(move || drop(hot_reload));
        }
        // Each waits at most `STOP_WAIT` for a callback under way; they are
        // stopped together, so shutdown takes that long at most, however
        // many plugins are busy.
        let stopping: Vec<_> = std::mem::take(&mut self.runners)
            .into_iter()
            .map(|runner| std::thread::spawn(move || runner.shutdown()))
            .collect();
        let last_health = stopping
            .into_iter()
            .filter_map(|thread| thread.join().ok())
            .collect();
        self.refresh_status();
        // The runners are gone: their last words are what they returned.
        self.status.plugins = last_health;
        self.flush_status();
        self.status_writer.finish();
        // Commits the probe rounds gathered since the last commit.
        if let Some(recorder) = &self.recorder {
            recorder.stop();
        }
        if let Some(mqtt) = self.mqtt.take() {
            mqtt.stop().await;
        }
        outcome
    }

    /// Starts applying a changed config file: read and checked, and every
    /// new or changed plugin compiled and loaded once, on a thread of its
    /// own (compiling a large JavaScript plugin takes seconds, and probe
    /// rounds must keep their cadence meanwhile); the result comes back to
    /// [`apply_reload`](Daemon::apply_reload). One reload at a time: a
    /// request during one is applied after it.
    fn begin_reload(
        &mut self,
        trigger: Trigger,
        done: &tokio::sync::mpsc::Sender<Option<Validated>>,
    ) {
        let Some(path) = self.plugins.config_path.clone() else {
            return;
        };
        if self.reload.running {
            self.reload.again = Some(trigger);
            return;
        }
        tracing::info!("reloading {} ({trigger:?})", path.display());
        self.supervisor.reloading();
        self.reload.running = true;
        let running = self.plugins.configs.clone();
        let runtime = self.plugins.runtime.clone();
        let host = self.host_context();
        let done = done.clone();
        std::thread::spawn(move || {
            let validated = validate(&path, &running, &runtime, &host);
            let _ = done.blocking_send(validated);
        });
    }

    /// Applies a config checked by [`validate`] (None: it was rejected, and
    /// the running one stays): plugins are added, removed, re-granted or
    /// re-configured without a restart. Nothing here waits: a plugin being
    /// replaced is stopped by its successor's thread, before the successor
    /// starts, so that its last key-value writes are on disk first.
    fn apply_reload(&mut self, validated: Option<Validated>) {
        self.reload.running = false;
        // Rejected or not, the daemon runs on a config, and is ready. Told
        // before the plugins change: nothing below waits.
        self.supervisor.reloaded();
        let Some(Validated {
            wanted,
            mut loaded,
            raw,
        }) = validated
        else {
            return;
        };
        if let Some(hot_reload) = self.hot_reload.take() {
            std::thread::spawn(move || drop(hot_reload));
        }
        let mut kept: Vec<(String, Runner)> = Vec::new();
        // Plugins to stop, by name: a re-configured one hands over to its
        // successor.
        let mut stopping: Vec<(String, Runner)> = Vec::new();
        let old = std::mem::take(&mut self.plugins.configs);
        for (runner, (name, plugin_config)) in
            std::mem::take(&mut self.runners).into_iter().zip(old)
        {
            if wanted.contains(&(name.clone(), plugin_config)) {
                kept.push((name, runner));
            } else {
                tracing::info!(plugin = %name, "plugin stopped");
                stopping.push((name, runner));
            }
        }
        for (name, plugin_config) in &wanted {
            let runner = if let Some(i) = kept.iter().position(|(n, _)| n == name) {
                kept.swap_remove(i).1
            } else if let Some(i) = loaded.iter().position(|(n, _)| n == name) {
                let plugin = loaded.swap_remove(i).1;
                let predecessor = stopping
                    .iter()
                    .position(|(n, _)| n == name)
                    .map(|i| stopping.swap_remove(i).1);
                start_runner(plugin, &self.clock, predecessor)
            } else {
                continue;
            };
            self.runners.push(runner);
            self.plugins
                .configs
                .push((name.clone(), plugin_config.clone()));
        }
        for (_, runner) in stopping {
            std::thread::spawn(move || runner.stop());
        }
        self.hot_reload = watch_plugins(&self.plugins.runtime, &self.runners);
        for section in changed_sections(self.plugins.raw.as_ref(), raw.as_ref()) {
            tracing::warn!("config reload: changes to [{section}] take effect at the next restart");
        }
        self.plugins.raw = raw;
        give_back_compile_memory();
        tracing::info!(
            "config reloaded: plugins {}",
            self.plugins
                .configs
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        self.write_status();
    }

    fn host_context(&self) -> HostContext {
        HostContext {
            actions: self.actions.clone(),
            clock: self.clock.clone(),
            kv_dir: self.plugins.kv_dir.clone(),
            heartbeats: self.plugins.heartbeats.clone(),
        }
    }

    /// A round whose probing failed (see [`Prober::round`]): not judged.
    fn on_dropped_round(&mut self) {
        self.status.dropped_rounds += 1;
        self.write_status();
    }

    fn on_round(&mut self, round: &Round) {
        // A log people read, and replay: on the wall clock.
        let shown = Round {
            at_ms: clock::wall_of(&*self.clock, round.at_ms),
            results: round.results.clone(),
        };
        if let Some(history) = &mut self.history {
            history.record(&shown);
        }
        self.observers.observe(&Observed::Round(shown));
        self.status.last_round_at_ms = Some(round.at_ms);
        self.status.targets = self
            .targets
            .iter()
            .zip(&round.results)
            .map(|(target, evidence)| TargetStatus {
                address: target.endpoint(),
                last: evidence.clone(),
                at_ms: round.at_ms,
            })
            .collect();
        let changes = self.monitor.on_round(round, self.actions.cycles_done());
        let changed = changes.wan.is_some() || changes.quality.is_some();
        if let Some(event) = changes.wan {
            let transition = &event.transition;
            log_transition(&self.shown(transition));
            self.status.record_transition(transition);
            self.actions
                .set_wan_state(transition.current, transition.at_ms);
            if let Some(outbox) = self
                .outbox
                .as_ref()
                .filter(|_| transition.current == WanState::Up)
            {
                // What was queued while the WAN was down can leave now.
                outbox.wan_up();
            }
            // With its evidence: the history tells causes by it.
            let observed = Observed::Wan(WanEvent {
                transition: Transition {
                    at_ms: clock::wall_of(&*self.clock, transition.at_ms),
                    ..transition.clone()
                },
                ..event.clone()
            });
            self.write_status_then_tell(observed, Event::Wan(event));
        }
        if let Some(change) = changes.quality {
            let shown = QualityChange {
                at_ms: clock::wall_of(&*self.clock, change.at_ms),
                ..change.clone()
            };
            tracing::info!(
                degraded = change.degraded,
                previous_ms = change.previous_duration_ms,
                "{}",
                human::quality_change(&shown, self.monitor.quality().settings(), human::When::Said)
            );
            self.write_status_then_tell(Observed::Quality(shown), Event::Quality(change));
        }
        if !changed {
            let stale = self
                .clock
                .now_ms()
                .saturating_sub(self.last_status_write_ms)
                >= STATUS_EVERY.as_millis() as u64;
            // A plugin's health changes off this path (a callback
            // done, a new version refused): shown at the next round.
            let plugins_changed = self.runners.iter().map(Runner::health).ne(self
                .status
                .plugins
                .iter()
                .cloned());
            if stale || self.actions.generation() != self.actions_shown || plugins_changed {
                self.write_status();
            }
        }
        // Only here, once a round has gone all the way through: the pings
        // stop when rounds stop reaching this loop, whatever the cause.
        let (state, since_ms) = (self.status.state, self.status.since_ms);
        let describe = || {
            let since = human::timestamp(clock::wall_of(&*self.clock, since_ms));
            systemd::wan_status(state, &since, self.targets.len(), self.status.dry_run)
        };
        self.supervisor
            .round_handled(std::time::Instant::now(), state, since_ms, describe);
    }

    fn on_power_transition(&mut self, t: &PowerTransition) {
        let silent: Vec<&str> = t.silent().collect();
        let shown = PowerTransition {
            at_ms: clock::wall_of(&*self.clock, t.at_ms),
            ..t.clone()
        };
        tracing::info!(
            power = %t.current,
            "{} (silent: {})",
            human::power_change(&shown, human::When::Said),
            if silent.is_empty() { "none".to_string() } else { silent.join(", ") }
        );
        self.status.power = Some(t.current);
        self.write_status_then_tell(Observed::Power(shown), Event::Power(t.clone()));
    }

    fn broadcast(&self, event: &Event) {
        for runner in &self.runners {
            runner.send(event.clone());
        }
    }

    fn write_status(&mut self) {
        self.refresh_status();
        self.flush_status();
    }

    /// Writes the status with a transition, and only then tells the
    /// observers (`observed`: history, MQTT...) and the plugins (`event`):
    /// a daemon killed in between resumes from a status that is never
    /// behind what they recorded or acted on, and tells the plugins the
    /// transition again (see `tell_the_state_it_starts_in`). Told first, a
    /// policy could act on a "down" (power-cycle), or record an "up", that
    /// the restarted daemon then knows nothing of, and act again; and the
    /// history would show the transition twice.
    fn write_status_then_tell(&mut self, observed: Observed, event: Event) {
        self.refresh_status();
        let shown = self.shown_status();
        let observers = self.observers.clone();
        let mailboxes: Vec<Mailbox> = self.runners.iter().map(Runner::mailbox).collect();
        self.status_writer.write_then(
            shown,
            Box::new(move || {
                observers.observe(&observed);
                for mailbox in &mailboxes {
                    mailbox.send(event.clone());
                }
            }),
        );
    }

    /// Gathers what the status file shows from the parts that know it.
    fn refresh_status(&mut self) {
        self.status.updated_at_ms = self.clock.now_ms();
        self.actions_shown = self.actions.generation();
        self.status.actions = self.actions.recent();
        self.status.refusals = self.actions.refusals();
        self.status.outage_cycles = self.monitor.outage_cycles(self.actions.cycles_done());
        self.status.quality = Some(QualityStatus::of(self.monitor.quality()));
        let plugins: Vec<_> = self.runners.iter().map(Runner::health).collect();
        for health in &plugins {
            let before = self.status.plugins.iter().find(|p| p.name == health.name);
            if before.is_none_or(|b| !b.same_condition(health)) {
                let mut shown = health.clone();
                shown.loaded_at_ms = clock::wall_of(&*self.clock, shown.loaded_at_ms);
                shown.last_error_at_ms = shown
                    .last_error_at_ms
                    .map(|at| clock::wall_of(&*self.clock, at));
                self.observers.observe(&Observed::Plugin(shown));
            }
        }
        self.status.plugins = plugins;
        self.status.notifications = self.outbox.as_ref().map(|o| o.status());
        self.status.heartbeats = self
            .heartbeats
            .as_ref()
            .map(Heartbeats::status)
            .unwrap_or_default();
        self.status.mqtt = self.mqtt.as_ref().map(crate::mqtt::Mqtt::status);
    }

    /// Queues the status for the writer thread, its times on the wall clock
    /// (people read them; the daemon's own timeline is for durations).
    fn flush_status(&mut self) {
        let shown = self.shown_status();
        self.status_writer.write(shown);
    }

    /// The status as published and written, on the wall clock; published.
    fn shown_status(&mut self) -> Status {
        let offset = clock::offset(&*self.clock);
        let shown = self.status.shifted(offset);
        self.status_now.send_replace(shown.clone());
        self.last_status_write_ms = self.status.updated_at_ms;
        shown
    }
}

/// What the daemon needs to apply a new config's plugins.
struct PluginSet {
    runtime: Runtime,
    kv_dir: Option<PathBuf>,
    /// What plugins read of the heartbeat receivers.
    heartbeats: HeartbeatBoard,
    /// Name and config of each running plugin, in the order of the runners.
    configs: Vec<(String, PluginConfig)>,
    config_path: Option<PathBuf>,
    /// The config file as a plain TOML table, to tell which sections changed.
    raw: Option<toml::Table>,
}

/// Returns to the system the heap that compiling the plugins freed: glibc
/// keeps freed memory in its per-thread arenas (the compiler runs on
/// several threads), and a daemon that compiled its plugins once at start
/// would hold several megabytes it never uses again.
fn give_back_compile_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it has no
    // preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A config reload in progress.
#[derive(Default)]
struct ReloadState {
    running: bool,
    /// A request that came during it, to apply after it.
    again: Option<Trigger>,
}

/// A new config, checked, with its new and changed plugins loaded.
struct Validated {
    /// Every plugin the config wants, in its order.
    wanted: Vec<(String, PluginConfig)>,
    /// The new and changed ones, loaded.
    loaded: Vec<(String, Plugin)>,
    /// The config file as a plain TOML table.
    raw: Option<toml::Table>,
}

/// Reads the config at `path` and loads every plugin that is not running
/// as configured already. A config with any error, or a plugin that does
/// not load, rejects the reload as a whole (None), with the same errors as
/// `wanwatch check`, and the running config stays. Runs off the event loop.
fn validate(
    path: &Path,
    running: &[(String, PluginConfig)],
    runtime: &Runtime,
    host: &HostContext,
) -> Option<Validated> {
    let reject = |errors: &[String]| {
        for e in errors {
            tracing::error!("config reload rejected: {e}");
        }
        tracing::warn!("keeping the running config");
    };
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(errors) => {
            reject(&errors.iter().map(ToString::to_string).collect::<Vec<_>>());
            return None;
        }
    };
    let wanted = config.plugins();
    let mut loaded = Vec::new();
    for (name, plugin_config) in wanted.iter().filter(|p| !running.contains(p)) {
        let plugin = PluginSpec::from_config(name, plugin_config)
            .map_err(anyhow::Error::from)
            .and_then(|spec| Ok(runtime.load(spec, host.clone())?));
        match plugin {
            Ok(plugin) => loaded.push((name.clone(), plugin)),
            Err(e) => {
                reject(&[format!("{e:#}")]);
                return None;
            }
        }
    }
    Some(Validated {
        wanted,
        loaded,
        raw: raw_config(path),
    })
}

/// Why a task that fed the event loop ended.
async fn ended(what: &str, task: Option<tokio::task::JoinHandle<()>>) -> anyhow::Error {
    let why = match task {
        Some(task) => match task.await {
            Err(e) if e.is_panic() => format!("it panicked: {e}"),
            Err(e) => e.to_string(),
            Ok(()) => "it returned".to_owned(),
        },
        None => "it was not running".to_owned(),
    };
    anyhow::anyhow!("the {what} task ended ({why}): wanwatch is no longer watching")
}

/// Starts a plugin's runner; with a `predecessor` (the same plugin, loaded
/// before with another config), once that one has stopped and handed over.
fn start_runner(plugin: Plugin, clock: &Arc<dyn Clock>, predecessor: Option<Runner>) -> Runner {
    tracing::info!(
        plugin = plugin.name(),
        version = plugin.health().version,
        "plugin loaded"
    );
    match predecessor {
        Some(predecessor) => Runner::succeed(plugin, clock.clone(), predecessor),
        None => Runner::spawn(plugin, clock.clone()),
    }
}

/// Starts watching the plugins' files. Without hot reload the watchdog
/// still works: say so and go on.
fn watch_plugins(runtime: &Runtime, runners: &[Runner]) -> Option<HotReload> {
    HotReload::start(runtime.clone(), runners)
        .inspect_err(|e| tracing::error!("plugin files are not watched for new versions: {e}"))
        .ok()
}

fn raw_config(path: &Path) -> Option<toml::Table> {
    toml::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// The top-level sections, other than `plugins`, that differ.
fn changed_sections(old: Option<&toml::Table>, new: Option<&toml::Table>) -> Vec<String> {
    let empty = toml::Table::new();
    let (old, new) = (old.unwrap_or(&empty), new.unwrap_or(&empty));
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .filter(|k| *k != "plugins" && old.get(*k) != new.get(*k))
        .cloned()
        .collect()
}

/// Probes on the configured cadence, and at once when `now` is notified,
/// and sends each round to the daemon (None: a round lost to a failure of
/// probing itself).
async fn probe_loop(
    mut prober: Prober,
    every: Duration,
    now: Arc<tokio::sync::Notify>,
    rounds: tokio::sync::mpsc::Sender<Option<Round>>,
) {
    let mut ticker = tokio::time::interval(every);
    // After a stall, carry on at the normal cadence rather than firing the
    // missed rounds back to back.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            // A round asked for: the next regular one comes a full
            // interval after it, never back to back with it.
            () = now.notified() => ticker.reset(),
        }
        if rounds.send(prober.round().await).await.is_err() {
            return;
        }
    }
}

/// Polls the power-detection devices and sends each round to the daemon.
async fn power_loop(
    poller: Poller,
    every: Duration,
    clock: Arc<dyn Clock>,
    rounds: tokio::sync::mpsc::Sender<PowerRound>,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let devices = poller.round().await;
        let round = PowerRound {
            at_ms: clock.now_ms(),
            devices,
        };
        if rounds.send(round).await.is_err() {
            return;
        }
    }
}

/// One line per transition, as the original wan-monitor log had: the new
/// state, when, and how long the previous state lasted.
fn log_transition(t: &Transition) {
    tracing::info!(
        state = %t.current,
        previous = %t.previous,
        previous_ms = t.previous_duration_ms,
        local_fault = t.local_fault,
        "{}",
        human::wan_change(t, human::When::Said),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_feeding_task_that_ends_is_an_error_that_says_why() {
        let panicked = tokio::spawn(async { panic!("a probe's bug") });
        let error = ended("probing", Some(panicked)).await.to_string();
        assert!(
            error.starts_with("the probing task ended (it panicked")
                && error.ends_with("wanwatch is no longer watching"),
            "{error}"
        );
        let returned = tokio::spawn(async {});
        let error = ended("power detection", Some(returned)).await.to_string();
        assert!(error.contains("(it returned)"), "{error}");
    }
}
