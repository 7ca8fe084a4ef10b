//! The running watcher: the tracker, the database and the notifier behind
//! one lock, fed by the HTTP handlers and a ticking loop.
//!
//! Everything goes through [`Watcher`] one call at a time: a heartbeat is
//! a few microseconds of tracking and one small SQLite write, so even a
//! thousand sites at a minute's interval keep the lock idle almost always
//! (host/benches/watcher.rs), and one order of events is easy to reason
//! about. The calls block (SQLite, the queue's fsync): the handlers make
//! them on blocking threads.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::alerts;
use super::api;
use super::config::WatcherConfig;
use super::protocol::{Heartbeat, OutageReport, valid_site};
use super::store::{self, OutageRecord, SiteRecord, Store, Stored};
use super::tracker::{Event, Now, Tracker, offset_ms};
use crate::actions::{DryRun, Notifier};
use crate::api::Server;
use crate::api::auth::Token;
use crate::clock::{Clock, SystemClock};
use crate::human;
use crate::notify::Outbox;
use crate::state::Millis;

/// How often a refused address is logged, per site it named.
const REFUSAL_LOG_EVERY_MS: Millis = 60_000;
/// Refusals remembered for that, at most: a scan from many addresses must
/// not grow the map without end.
const REFUSALS_KEPT: usize = 4096;

/// The watcher, shared by the handlers and the ticking loop.
pub struct Watcher {
    core: Mutex<Core>,
    clock: SystemClock,
    /// Each site's token; the sites in config order.
    tokens: BTreeMap<String, Token>,
    names: Vec<String>,
    /// Compared against when the site is unknown, so that an unknown site
    /// costs the same time as a wrong token.
    nobody: Token,
    /// The viewer token, for the read API and the dashboard.
    pub(super) viewer: Option<Arc<Token>>,
    /// When each (site, address) refused was last logged.
    refusals: Mutex<HashMap<(String, IpAddr), Millis>>,
}

struct Core {
    tracker: Tracker,
    store: Store,
    notifier: Arc<dyn Notifier>,
}

/// Why a site's request was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    UnknownSite,
    WrongToken,
    NoToken,
}

impl Watcher {
    /// Opens the database in `config`'s state directory and restores what
    /// it remembers; DOWN and RESTORED go to `notifier`.
    pub fn open(config: &WatcherConfig, notifier: Arc<dyn Notifier>) -> Result<Watcher, String> {
        let clock = SystemClock;
        let now = now(&clock);
        let path = store::path(&config.state_dir_or_default());
        let store = Store::open(&path, now.wall).map_err(|e| e.to_string())?;
        let mut tracker = Tracker::new(
            config.sites.iter().map(|(name, site)| {
                (
                    name.clone(),
                    config.missed_after(site).as_millis() as Millis,
                )
            }),
            config.remind_every.map(|r| r.as_millis() as Millis),
            config.max_clock_skew.as_millis() as Millis,
            now,
        );
        for name in config.sites.keys() {
            let remembered = store
                .remembered(name)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            tracker.restore(name, &remembered, now);
        }
        Ok(Watcher {
            core: Mutex::new(Core {
                tracker,
                store,
                notifier,
            }),
            clock,
            tokens: config
                .sites
                .iter()
                .map(|(name, site)| (name.clone(), Token::new(site.token.expose())))
                .collect(),
            names: config.sites.keys().cloned().collect(),
            nobody: Token::new("\0no site has this token\0"),
            viewer: config
                .token
                .as_ref()
                .map(|t| Arc::new(Token::new(t.expose()))),
            refusals: Mutex::new(HashMap::new()),
        })
    }

    /// Whether `offered` is `site`'s token, in constant time either way.
    /// A refusal is logged (never with the token), once a minute per site
    /// and address at most.
    pub fn authenticate(
        &self,
        site: &str,
        offered: Option<&str>,
        from: IpAddr,
    ) -> Result<(), Refused> {
        let token = self.tokens.get(site);
        let admitted = token
            .unwrap_or(&self.nobody)
            .admits(offered.unwrap_or_default());
        let refused = match (token, offered) {
            (Some(_), Some(_)) if admitted => return Ok(()),
            (None, _) => Refused::UnknownSite,
            (Some(_), None) => Refused::NoToken,
            (Some(_), Some(_)) => Refused::WrongToken,
        };
        let now = self.clock.now_ms();
        let named = if valid_site(site) {
            site.to_owned()
        } else {
            // Whatever was in the path is not written to the log.
            "(an invalid name)".to_owned()
        };
        let mut refusals = lock(&self.refusals);
        if refusals.len() >= REFUSALS_KEPT {
            refusals.retain(|_, at| now.saturating_sub(*at) < REFUSAL_LOG_EVERY_MS);
            if refusals.len() >= REFUSALS_KEPT {
                refusals.clear();
            }
        }
        let last = refusals.get(&(named.clone(), from)).copied();
        if last.is_none_or(|at| now.saturating_sub(at) >= REFUSAL_LOG_EVERY_MS) {
            refusals.insert((named.clone(), from), now);
            let why = match refused {
                Refused::UnknownSite => "no such site",
                Refused::WrongToken => "wrong token",
                Refused::NoToken => "no token",
            };
            tracing::warn!(
                "refused a request for site {named} from {from}: {why} (logged once a minute per site and address)"
            );
        }
        Err(refused)
    }

    /// A heartbeat from an authenticated `site`.
    pub fn heartbeat(&self, site: &str, heartbeat: &Heartbeat) {
        let now = now(&self.clock);
        let mut core = lock(&self.core);
        let events = core.tracker.heartbeat(site, heartbeat.sent_at_ms, now);
        let offset = offset_ms(heartbeat.sent_at_ms, now.wall);
        let skewed = core.tracker.view(site).is_some_and(|v| v.skewed);
        if let Err(e) = core
            .store
            .heartbeat(site, heartbeat, offset, skewed, now.wall)
        {
            tracing::error!("cannot record the heartbeat of {site}: {e}");
        }
        core.apply(events, now);
    }

    /// A report from an authenticated `site`: stored once per id, joined
    /// with the watcher's outage; a sign of life too.
    pub fn report(&self, site: &str, report: &OutageReport) -> rusqlite::Result<Stored> {
        let now = now(&self.clock);
        let mut core = lock(&self.core);
        let stored = core.store.report(site, report, now.wall)?;
        if stored == Stored::New {
            tracing::info!(
                "{site} reported its outage {} ({}, {}, cause {})",
                report.id,
                human::timestamp(report.started_at_ms),
                human::duration_ms(report.duration_ms),
                report.cause
            );
        }
        if let Err(e) = core.store.seen(site, now.wall) {
            tracing::error!("cannot record that {site} was seen: {e}");
        }
        let events = core.tracker.alive(site, now).into_iter().collect();
        core.apply(events, now);
        Ok(stored)
    }

    /// Declares DOWN and reminds, as due.
    pub fn tick(&self) {
        let now = now(&self.clock);
        let mut core = lock(&self.core);
        let events = core.tracker.tick(now);
        core.apply(events, now);
    }

    pub fn tick_every(&self) -> Duration {
        Duration::from_millis(lock(&self.core).tracker.tick_every_ms())
    }

    /// The configured sites as recorded.
    pub fn sites(&self) -> rusqlite::Result<Vec<SiteRecord>> {
        lock(&self.core).store.sites(&self.names)
    }

    /// `site` as recorded; None when it is not configured.
    pub fn site(&self, site: &str) -> rusqlite::Result<Option<SiteRecord>> {
        if !self.tokens.contains_key(site) {
            return Ok(None);
        }
        lock(&self.core).store.site(site).map(Some)
    }

    /// The latest `limit` outages of `site`, or of every site.
    pub fn outages(&self, site: Option<&str>, limit: usize) -> rusqlite::Result<Vec<OutageRecord>> {
        lock(&self.core).store.outages(site, limit)
    }

    pub fn is_site(&self, site: &str) -> bool {
        self.tokens.contains_key(site)
    }
}

impl Core {
    /// Records and announces what the tracker decided.
    fn apply(&mut self, events: Vec<Event>, now: Now) {
        for event in events {
            match event {
                Event::Down {
                    site,
                    last_seen,
                    silent_ms,
                } => {
                    tracing::warn!(
                        "{site}: DOWN, no heartbeat for {}",
                        human::duration_ms(silent_ms)
                    );
                    self.notify(&alerts::down(&site, last_seen, silent_ms, false, now.wall));
                    if let Err(e) = self.store.down(&site, last_seen, now.wall) {
                        tracing::error!("cannot record that {site} is DOWN: {e}");
                    }
                }
                Event::Reminder {
                    site,
                    last_seen,
                    silent_ms,
                } => {
                    self.notify(&alerts::down(&site, last_seen, silent_ms, true, now.wall));
                    if let Err(e) = self.store.reminded(&site, now.wall) {
                        tracing::error!("cannot record the reminder for {site}: {e}");
                    }
                }
                Event::Restored {
                    site,
                    back,
                    duration_ms,
                    ..
                } => {
                    tracing::info!("{site}: RESTORED after {}", human::duration_ms(duration_ms));
                    let outage = self
                        .store
                        .restored(&site, back, duration_ms)
                        .unwrap_or_else(|e| {
                            tracing::error!("cannot record that {site} is back: {e}");
                            None
                        });
                    self.notify(&alerts::restored(
                        &site,
                        duration_ms,
                        outage.as_ref(),
                        now.wall,
                    ));
                }
                Event::ClockSkew {
                    site,
                    offset_ms,
                    skewed,
                } => {
                    let off = human::duration_ms(offset_ms.unsigned_abs());
                    let way = if offset_ms < 0 { "behind" } else { "ahead of" };
                    if skewed {
                        tracing::warn!("{site}: its clock is {off} {way} the watcher's");
                    } else {
                        tracing::info!(
                            "{site}: its clock is right again ({off} {way} the watcher's)"
                        );
                    }
                }
            }
        }
    }

    fn notify(&self, notification: &crate::actions::Notification) {
        if let Err(e) = self.notifier.notify(notification) {
            tracing::error!("notification {:?}: {e}", notification.title);
        }
    }
}

fn now(clock: &SystemClock) -> Now {
    Now {
        at: clock.now_ms(),
        wall: clock.wall_ms(),
    }
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs the watcher until `shutdown` completes.
pub async fn run(config: &WatcherConfig, shutdown: impl Future<Output = ()>) -> Result<(), String> {
    let state_dir = config.state_dir_or_default();
    let outbox = if crate::notify::is_configured(&config.notify) {
        // No heartbeats: a watcher sends no reports to another watcher.
        let outbox = Outbox::new(
            &config.notify,
            &[],
            &state_dir,
            tokio::runtime::Handle::current(),
        )
        .map_err(|e| e.to_string())?;
        Some(Arc::new(outbox))
    } else {
        tracing::warn!("no [notify] sink configured: DOWN and RESTORED are only logged");
        None
    };
    let notifier: Arc<dyn Notifier> = match &outbox {
        Some(outbox) => outbox.clone(),
        None => Arc::new(DryRun),
    };
    let watcher = Arc::new(Watcher::open(config, notifier)?);
    let server = Server::serve("watcher", &config.listen, |_| api::router(watcher.clone())).ok_or(
        "the watcher cannot listen on any of its addresses (see the errors above; change `listen`)",
    )?;
    for address in server.addresses() {
        tracing::info!(
            "watcher on http://{address}/: heartbeats and reports under /api/v1/sites/<site>/"
        );
    }
    tracing::info!(
        "watching {} site(s); nothing is declared DOWN during the first {} (the grace after a start)",
        watcher.names.len(),
        humantime::format_duration(config.missed_after)
    );
    // Listening: heartbeats that come now are taken.
    let mut supervisor = crate::systemd::Supervisor::from_env(None);
    supervisor.ready(&format!("watching {} site(s)", watcher.names.len()));
    let mut ticks = tokio::time::interval(watcher.tick_every());
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = ticks.tick() => {
                let watcher = watcher.clone();
                if let Err(e) = tokio::task::spawn_blocking(move || watcher.tick()).await {
                    tracing::error!("the watcher's tick failed: {e}");
                }
            }
        }
    }
    supervisor.stopping();
    tracing::info!("stopping");
    tokio::task::spawn_blocking(move || server.stop())
        .await
        .map_err(|e| e.to_string())?;
    drop(outbox);
    Ok(())
}
