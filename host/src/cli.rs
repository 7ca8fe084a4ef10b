//! The `wanwatch` command line: `run`, `check`, `status`, `stats`,
//! `history`, `simulate`, `plug`, `plugin`, and `watcher`, the other half
//! that runs outside the house.
//!
//! In the library rather than in main.rs so that the integration tests can
//! build the same binary (tests/src/bin/wanwatch.rs) and run the real daemon.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};

use crate::actions::Actions;
use crate::clock::{Clock, SystemClock};
use crate::config::{self, Config};
use crate::daemon::{self, Daemon};
use crate::devkit::{self, Lang, Project};
use crate::drivers::shelly::{BackOn, PlugStatus, RelayState, Shelly, or_unknown};
use crate::history::{self, HistoryDb};
use crate::plugin::Runtime;

/// The config read when --config is not given, if it exists.
const DEFAULT_CONFIG: &str = "/etc/wanwatch/wanwatch.toml";
/// The watcher's, for `wanwatch watcher status`.
const DEFAULT_WATCHER_CONFIG: &str = "/etc/wanwatch/watcher.toml";

#[derive(Parser)]
#[command(
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("WANWATCH_GIT_COMMIT"), ")"),
    about = "WAN watchdog: probes the link and power-cycles a stuck modem, as WebAssembly policy plugins decide"
)]
struct Cli {
    /// Log level or filter (overrides RUST_LOG), e.g. "debug" or "wanwatch=trace".
    #[arg(long, global = true)]
    log_level: Option<String>,
    /// Log format: text for people, json for log shippers. Started by
    /// systemd, text goes to the journal, with priorities.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the watchdog.
    Run {
        #[command(flatten)]
        config: ConfigArg,
        /// Probe for real but perform no action; log what would be done.
        #[arg(long)]
        dry_run: bool,
    },
    /// Validates the config and loads every plugin, then exits.
    Check {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Shows what the running daemon knows (reads its status file).
    Status {
        #[command(flatten)]
        config: ConfigArg,
        /// Print the status file's JSON as it is.
        #[arg(long)]
        json: bool,
    },
    /// Runs the daemon's state machine and plugins in virtual time against
    /// a simulated world or recorded probes (see docs/simulation.md). Exit
    /// status: 0 when every expectation is met, 1 when one is not, 2 when
    /// the scenario, config or a plugin cannot be used.
    Simulate {
        /// The scenario file (TOML).
        scenario: PathBuf,
        /// The config to run with [default: the scenario's [config], else
        /// the built-in defaults with a plug named `modem`].
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// One JSON object per event instead of text.
        #[arg(long)]
        json: bool,
        /// Stop this long after the start ("6h", "30d").
        #[arg(long, value_parser = humantime::parse_duration)]
        until: Option<std::time::Duration>,
        /// Run without the scenario's expectations, e.g. a shipped scenario
        /// (written for the built-in policies) with your own config.
        #[arg(long)]
        no_expect: bool,
    },
    /// Statistics of the history database over a window: uptime, outages
    /// by cause, downtime, MTTR and MTBF, power cycles, loss and round trips
    /// per target (see docs/history.md).
    Stats {
        #[command(flatten)]
        config: ConfigArg,
        /// The window's start: a duration ago ("30d", "12h") or an instant
        /// (RFC 3339, "2026-11-01T00:00:00Z").
        #[arg(long, default_value = "30d", value_parser = instant)]
        since: u64,
        /// The window's end, written as --since [default: now].
        #[arg(long, value_parser = instant)]
        until: Option<u64>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The history database.
    History {
        #[command(subcommand)]
        command: HistoryCommand,
    },
    /// Talks to a configured power plug directly.
    Plug {
        #[command(subcommand)]
        command: PlugCommand,
    },
    /// Writing policy plugins: scaffold, build, test, inspect (see
    /// docs/plugins.md).
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Runs the watcher, the half on a small cloud machine: it expects the
    /// sites' heartbeats and notifies when they stop (see docs/watcher.md).
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Watcher {
        #[command(subcommand)]
        command: Option<WatcherCommand>,
        /// The watcher's config file.
        #[arg(long, short, required = true)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum WatcherCommand {
    /// Shows the sites and their outages (reads the watcher's database).
    Status {
        /// The watcher's config file [default: /etc/wanwatch/watcher.toml].
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Validates a watcher config, then exits.
    Check {
        /// The watcher's config file.
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum HistoryCommand {
    /// Writes the raw probe rows of a window as daily CSV files
    /// (wan-YYYY-MM-DD.csv), the format `wanwatch simulate` replays.
    Export {
        #[command(flatten)]
        config: ConfigArg,
        /// The window's start: a duration ago ("7d") or an instant (RFC 3339).
        #[arg(long, default_value = "7d", value_parser = instant)]
        since: u64,
        /// The window's end, written as --since [default: now].
        #[arg(long, value_parser = instant)]
        until: Option<u64>,
        /// Daily CSV files (the one format there is, asked for explicitly).
        #[arg(long, required = true)]
        csv: bool,
        /// The directory to write to; existing files are not overwritten.
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Creates a plugin project NAME in the current directory: the policy
    /// with its callbacks, build configuration, a README and a scenario
    /// that passes as it is.
    New {
        /// The plugin's name: lower-case letters, digits, `-`, `_`.
        name: String,
        #[arg(long, value_enum, default_value_t = Lang::Rust)]
        lang: Lang,
        /// Create it in this directory instead of the current one.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The Rust SDK (plugins/wanwatch-plugin of a wanwatch checkout)
        /// [default: the one this wanwatch was built from].
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Builds the project into dist/NAME.wasm with the language's tool.
    Build {
        /// The project [default: the current directory].
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Builds the project, then runs its scenarios/*.toml through the
    /// simulator. Exit status 1 when an expectation is not met.
    Test {
        /// The project [default: the current directory].
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Shows a component's contract version, exports, imports and size,
    /// and whether this host accepts it (exit status 1 when not).
    Inspect {
        /// The component (.wasm).
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum PlugCommand {
    /// Shows the plug's generation, model, firmware, relay, timer and
    /// power-on setting.
    Status {
        #[command(flatten)]
        config: ConfigArg,
        /// The device, as named in the config (`[devices.NAME]`).
        name: String,
    },
    /// Power-cycles the plug: off, then back on by the plug's own timer;
    /// waits until the plug is confirmed back on.
    Cycle {
        #[command(flatten)]
        config: ConfigArg,
        /// The device, as named in the config (`[devices.NAME]`).
        name: String,
        /// How long the plug stays off, in whole seconds ("10s", "1m").
        #[arg(long, default_value = "10s", value_parser = off_seconds)]
        off: u32,
        /// Read the plug but switch nothing; say what would be done.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(clap::Args)]
struct ConfigArg {
    /// The config file [default: /etc/wanwatch/wanwatch.toml if it exists,
    /// else built-in defaults].
    #[arg(long, short)]
    config: Option<PathBuf>,
}

impl ConfigArg {
    /// The config file to read, if any.
    fn path(&self) -> Option<&Path> {
        match &self.config {
            Some(path) => Some(path.as_path()),
            None if Path::new(DEFAULT_CONFIG).exists() => Some(Path::new(DEFAULT_CONFIG)),
            None => None,
        }
    }

    /// The config, or the errors to print.
    fn load(&self) -> Result<Config, String> {
        let Some(path) = self.path() else {
            return Ok(Config::default());
        };
        Config::load(path).map_err(|errors| config::describe(&errors))
    }
}

/// Runs the command line given to the process.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // A simulation's output is its timeline (`plugin test` runs them too);
    // the plugins' log lines, in wall-clock time, would only clutter it.
    let quiet = matches!(
        cli.command,
        Command::Simulate { .. } | Command::Plugin { .. }
    )
    .then_some("error");
    init_logging(cli.log_level.as_deref().or(quiet), cli.log_format);
    let result = match cli.command {
        Command::Simulate {
            scenario,
            config,
            json,
            until,
            no_expect,
        } => {
            let options = crate::sim::Options {
                json,
                until,
                no_expect,
            };
            return simulate(&scenario, config.as_deref(), &options);
        }
        Command::Run { config, dry_run } => {
            config.load().and_then(|c| run(&c, config.path(), dry_run))
        }
        Command::Check { config } => config.load().and_then(|c| check(&c)),
        Command::Status { config, json } => config.load().and_then(|c| status(&c, json)),
        Command::Stats {
            config,
            since,
            until,
            json,
        } => config.load().and_then(|c| stats(&c, since, until, json)),
        Command::History {
            command:
                HistoryCommand::Export {
                    config,
                    since,
                    until,
                    csv: _,
                    out,
                },
        } => config.load().and_then(|c| export(&c, since, until, &out)),
        Command::Plug { command } => plug(command),
        Command::Plugin { command } => return plugin(command),
        Command::Watcher { command, config } => watcher(command, config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn simulate(scenario: &Path, config: Option<&Path>, options: &crate::sim::Options) -> ExitCode {
    let config = match config.map(Config::load).transpose() {
        Ok(config) => config,
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            return ExitCode::from(2);
        }
    };
    let out = std::io::BufWriter::new(std::io::stdout().lock());
    match crate::sim::run(scenario, config, options, out) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::from(2)
        }
    }
}

fn plugin(command: PluginCommand) -> ExitCode {
    let result = match command {
        PluginCommand::New {
            name,
            lang,
            dir,
            sdk,
        } => devkit::new(&name, lang, &dir, sdk.as_deref()).map(|dir| {
            println!(
                "created {}: next, `wanwatch plugin test {}`",
                dir.display(),
                dir.display()
            );
            true
        }),
        PluginCommand::Build { dir } => Project::open(&dir)
            .and_then(|project| devkit::build(&project))
            .map(|out| {
                println!("built {}", out.display());
                true
            }),
        PluginCommand::Test { dir } => {
            Project::open(&dir).and_then(|project| devkit::test(&project, std::io::stdout().lock()))
        }
        PluginCommand::Inspect { file } => devkit::inspect(&file).map(|(report, accepted)| {
            print!("{report}");
            accepted
        }),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::from(2)
        }
    }
}

fn init_logging(level: Option<&str>, format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = match level {
        Some(level) => EnvFilter::new(level),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    // Text on the journal's stream: its native protocol instead, so that
    // each line keeps its priority and fields (json is for log shippers,
    // who asked for it on stderr).
    let journal = match format {
        LogFormat::Text if crate::systemd::stderr_is_journal() => tracing_journald::layer()
            .inspect_err(|e| {
                eprintln!("cannot log to the journal ({e}): logging to stderr instead")
            })
            .ok(),
        _ => None,
    };
    match journal {
        Some(journal) => journal_logger(filter, journal).init(),
        None => logger(filter, format, std::io::stderr, in_colour()).init(),
    }
}

/// The subscriber that sends the log lines `filter` lets through to the
/// journal, each with its priority: error 3, warning 4, info 6, debug and
/// trace 7 (the crate's default puts info at "notice", 5, which would make
/// every routine line stand out in `journalctl -p notice`).
fn journal_logger(
    filter: tracing_subscriber::EnvFilter,
    journal: tracing_journald::Layer,
) -> Box<dyn tracing::Subscriber + Send + Sync> {
    use tracing_journald::{Priority, PriorityMappings};
    use tracing_subscriber::layer::SubscriberExt;
    let journal = journal
        .with_syslog_identifier("wanwatch".into())
        .with_priority_mappings(PriorityMappings {
            info: Priority::Informational,
            debug: Priority::Debug,
            ..PriorityMappings::new()
        });
    let quiet = tracing_subscriber::filter::filter_fn(not_per_file_event);
    Box::new(
        tracing_subscriber::registry()
            .with(filter)
            .with(quiet)
            .with(journal),
    )
}

/// Colour codes only on a terminal, and not even there when `NO_COLOR` asks
/// for none (no-color.org): in a file or the journal they are noise.
fn in_colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The subscriber that writes the log lines `filter` lets through to
/// `writer`, in `format`, with colour codes if `ansi`.
fn logger<W>(
    filter: tracing_subscriber::EnvFilter,
    format: LogFormat,
    writer: W,
    ansi: bool,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::layer::SubscriberExt;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    let quiet = tracing_subscriber::filter::filter_fn(not_per_file_event);
    match format {
        LogFormat::Text => Box::new(builder.finish().with(quiet)),
        LogFormat::Json => Box::new(builder.json().finish().with(quiet)),
    }
}

/// Drops the file watcher's (the `notify` crate's) debug and trace lines,
/// whatever the level: they log every event in the watched directories, and
/// the daemon's own log file may be in one (beside the config, say), where
/// each line written is an event to log again, without end.
fn not_per_file_event(line: &tracing::Metadata<'_>) -> bool {
    let target = line.target();
    let watcher = target == "notify" || target.starts_with("notify::");
    !watcher || *line.level() <= tracing::Level::INFO
}

fn run(config: &Config, path: Option<&Path>, dry_run: bool) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        let daemon = Daemon::start(config, path, dry_run)
            .await
            .map_err(|e| format!("{e:#}"))?;
        daemon
            .run(shutdown_signal())
            .await
            .map_err(|e| format!("{e:#}"))
    })
}

/// Completes on SIGINT or SIGTERM. The handlers are installed at the call,
/// not when the future is first polled: a SIGTERM right after READY=1 must
/// stop the service cleanly, not kill it. Call it within the runtime.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let signals = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    );
    on_signals(signals)
}

async fn on_signals(
    signals: (
        std::io::Result<tokio::signal::unix::Signal>,
        std::io::Result<tokio::signal::unix::Signal>,
    ),
) {
    match signals {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        // Without signal handlers the daemon still runs; it is then stopped
        // the hard way, like any process.
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!("cannot install signal handlers: {e}");
            std::future::pending::<()>().await
        }
    }
}

fn check(config: &Config) -> Result<(), String> {
    let targets = daemon::targets(config).map_err(|e| format!("{e:#}"))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let actions = Arc::new(Actions::dry_run(
        clock.clone(),
        config.safety.max_cycles_per_hour,
    ));
    let runtime = Runtime::new().map_err(|e| format!("cannot start the plugin runtime: {e:#}"))?;
    // No key-value directory: checking must not touch the daemon's state.
    daemon::load_plugins(
        &runtime,
        config,
        &actions,
        &clock,
        None,
        &Default::default(),
    )
    .map_err(|e| format!("{e:#}"))?;
    println!("config OK");
    for t in &targets {
        println!(
            "  target {:<12} {} {} ({})",
            t.name,
            t.probe.kind(),
            t.endpoint(),
            t.role
        );
    }
    for (name, plugin) in config.plugins() {
        let grants = match (plugin.devices.is_empty(), plugin.notify) {
            (true, false) => "no grants".to_string(),
            (devices_empty, notify) => {
                let mut g = Vec::new();
                if !devices_empty {
                    g.push(format!("devices {}", plugin.devices.join(", ")));
                }
                if notify {
                    g.push("notify".into());
                }
                g.join("; ")
            }
        };
        println!("  plugin {name:<12} loaded ({grants})");
    }
    if let Some(reason) = daemon::dry_run_reason(config, false) {
        println!("note: {reason}");
    }
    // The plugs are asked too: a wrong password or a power-on setting that
    // leaves the modem dark after a blackout is a config error in practice.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    for warning in runtime.block_on(daemon::preflight(config)) {
        println!("warning: {warning}");
    }
    Ok(())
}

fn status(config: &Config, json: bool) -> Result<(), String> {
    let file = daemon::status_file(config);
    let status = file.read().map_err(|e| format!("{e:#}"))?.ok_or_else(|| {
        format!(
            "no status file at {}: the daemon has not run with this state directory",
            file.path().display()
        )
    })?;
    if json {
        let text = serde_json::to_string_pretty(&status).map_err(|e| e.to_string())?;
        println!("{text}");
    } else {
        print!("{}", status.render(SystemClock.now_ms()));
    }
    Ok(())
}

fn watcher(command: Option<WatcherCommand>, config: Option<PathBuf>) -> Result<(), String> {
    let load = |path: &Path| {
        crate::watcher::WatcherConfig::load(path).map_err(|errors| config::describe(&errors))
    };
    match command {
        None => {
            let path = config.ok_or("--config is required")?;
            let config = load(&path)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the async runtime: {e}"))?;
            let _entered = runtime.enter();
            runtime.block_on(crate::watcher::run(&config, shutdown_signal()))
        }
        Some(WatcherCommand::Check { config }) => {
            let config = load(&config)?;
            println!("config OK: {} site(s)", config.sites.len());
            for (name, site) in &config.sites {
                println!(
                    "  site {name:<16} DOWN after {} of silence",
                    humantime::format_duration(config.missed_after(site))
                );
            }
            Ok(())
        }
        Some(WatcherCommand::Status { config, json }) => {
            let path = config.unwrap_or_else(|| PathBuf::from(DEFAULT_WATCHER_CONFIG));
            let report = crate::watcher::status::read(&load(&path)?)?;
            if json {
                let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
                println!("{text}");
            } else {
                print!("{}", report.render(SystemClock.wall_ms()));
            }
            Ok(())
        }
    }
}

/// `--since`, `--until`: an instant (RFC 3339) or a duration before now,
/// as Unix milliseconds.
fn instant(text: &str) -> Result<u64, String> {
    crate::human::parse_instant(text, SystemClock.wall_ms()).ok_or_else(|| {
        format!("`{text}` is neither a duration (\"30d\", \"12h\") nor an instant (\"2026-11-01T00:00:00Z\", Unix milliseconds)")
    })
}

/// The history database of `config`, to read.
fn history_db(config: &Config) -> Result<HistoryDb, String> {
    let path = history::database_path(&config.state_dir_or_default());
    if !path.exists() {
        return Err(format!(
            "no history database at {}: the daemon has not run with this state directory, or with [history] database = false",
            path.display()
        ));
    }
    HistoryDb::open(&path).map_err(|e| e.to_string())
}

fn stats(config: &Config, since: u64, until: Option<u64>, json: bool) -> Result<(), String> {
    let until = until.unwrap_or_else(|| SystemClock.wall_ms());
    if since >= until {
        return Err("--since must be before --until".into());
    }
    let stats = history_db(config)?
        .stats(since, until)
        .map_err(|e| e.to_string())?;
    if json {
        let text = serde_json::to_string_pretty(&stats).map_err(|e| e.to_string())?;
        println!("{text}");
    } else {
        print!("{}", stats.render());
    }
    Ok(())
}

fn export(config: &Config, since: u64, until: Option<u64>, out: &Path) -> Result<(), String> {
    let until = until.unwrap_or_else(|| SystemClock.wall_ms());
    if since >= until {
        return Err("--since must be before --until".into());
    }
    let files = history::export::export_csv(&history_db(config)?, since, until, out)?;
    if files.is_empty() {
        println!("no probe rows in that window");
    }
    for file in files {
        println!("{}", file.display());
    }
    Ok(())
}

/// `--off`: a duration of whole seconds, at least 1 ("10s", "1m", or "10").
fn off_seconds(text: &str) -> Result<u32, String> {
    let duration = match text.parse::<u64>() {
        Ok(seconds) => std::time::Duration::from_secs(seconds),
        Err(_) => humantime::parse_duration(text)
            .map_err(|e| format!("not a duration ({e}); write e.g. \"10s\""))?,
    };
    if duration.subsec_nanos() != 0 || duration.is_zero() {
        return Err("the off time must be a whole number of seconds, at least 1 s".into());
    }
    u32::try_from(duration.as_secs()).map_err(|_| "the off time is too long".into())
}

fn plug(command: PlugCommand) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    match command {
        PlugCommand::Status { config, name } => {
            let plug = configured_plug(&config.load()?, &name)?;
            runtime.block_on(plug_status(&plug))
        }
        PlugCommand::Cycle {
            config,
            name,
            off,
            dry_run,
        } => {
            let plug = configured_plug(&config.load()?, &name)?;
            runtime.block_on(plug_cycle(&plug, off, dry_run))
        }
    }
}

fn configured_plug(config: &Config, name: &str) -> Result<Shelly, String> {
    let device = config.devices.get(name).ok_or_else(|| {
        let known: Vec<&str> = config.devices.keys().map(String::as_str).collect();
        if known.is_empty() {
            format!("no device named `{name}`: the config has no [devices.NAME] section")
        } else {
            format!(
                "no device named `{name}` (configured: {})",
                known.join(", ")
            )
        }
    })?;
    Ok(Shelly::new(name, device))
}

async fn plug_status(plug: &Shelly) -> Result<(), String> {
    let status = plug.status().await.map_err(|e| e.to_string())?;
    print!("{}", render_plug_status(plug, &status));
    Ok(())
}

fn render_plug_status(plug: &Shelly, status: &PlugStatus) -> String {
    let id = &status.identity;
    let timer = match status.state.timer {
        None => "none".to_owned(),
        Some(t) => t.to_string(),
    };
    let mut text = format!(
        "plug {} ({})\n  generation  Gen{}\n  model       {}\n  firmware    {}\n  login       {}\n  relay {:<5} {}\n  timer       {timer}\n  power-on    {}\n",
        plug.name(),
        plug.address(),
        id.generation,
        or_unknown(&id.model),
        or_unknown(&id.firmware),
        if id.auth { "enabled" } else { "disabled" },
        status.relay,
        if status.state.output { "on" } else { "off" },
        status.power_on,
    );
    if let Some(warning) = status.power_on_warning() {
        text += &format!("warning: {warning}\n");
    }
    text
}

async fn plug_cycle(plug: &Shelly, off: u32, dry_run: bool) -> Result<(), String> {
    let name = plug.name();
    // Read first: it shows the plug answers, and its power-on setting.
    let status = plug.status().await.map_err(|e| e.to_string())?;
    if let Some(warning) = status.power_on_warning() {
        println!("warning: {warning}");
    }
    if dry_run {
        let refusal = match status.state {
            RelayState {
                output: false,
                timer: Some(_),
            } => " (it would be refused now: a cycle is under way)",
            RelayState {
                output: false,
                timer: None,
            } => " (it is off now, so it would be switched on instead)",
            RelayState { output: true, .. } => "",
        };
        println!(
            "dry run: would switch plug {name} (Gen{}, relay {}) off for {off} s, with its own timer switching it back on{refusal}",
            status.identity.generation, status.relay
        );
        return Ok(());
    }
    let started = plug.power_cycle(off).await.map_err(|e| e.to_string())?;
    println!(
        "plug {name}: off; the plug switches itself back on in ~{} s",
        started.back_on_in.as_secs_f64().ceil()
    );
    match plug
        .await_back_on(&started)
        .await
        .map_err(|e| e.to_string())?
    {
        BackOn::ByItself => println!("plug {name}: back on"),
        BackOn::SwitchedOn => {
            println!("plug {name}: was still off without a timer; switched it on")
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_watcher_does_not_log_each_event() {
        #[derive(Clone, Default)]
        struct Lines(Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Lines {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let lines = Lines::default();
        for format in [LogFormat::Text, LogFormat::Json] {
            let writer = lines.clone();
            let filter = tracing_subscriber::EnvFilter::new("trace");
            let logger = logger(filter, format, move || writer.clone(), false);
            tracing::subscriber::with_default(logger, || {
                tracing::trace!(target: "notify::inotify", "inotify event: a write");
                tracing::debug!(target: "notify::inotify", "inotify event with unknown descriptor");
                tracing::warn!(target: "notify::inotify", "watch removed");
                tracing::trace!(target: "notify_like", "someone else's trace");
                tracing::trace!("our own trace");
            });
        }
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains("inotify event"), "{text}");
        for kept in ["watch removed", "someone else's trace", "our own trace"] {
            assert_eq!(text.matches(kept).count(), 2, "{kept}: {text}");
        }
    }
}
