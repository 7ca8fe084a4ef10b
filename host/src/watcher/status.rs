//! `wanwatch watcher status`: the sites and their outages, read from the
//! watcher's database (which the running watcher keeps writing), as text
//! or JSON.

use serde::Serialize;

use super::alerts::minutes;
use super::config::WatcherConfig;
use super::store::{self, OutageRecord, SiteRecord, Store};
use crate::human;
use crate::state::Millis;

/// Recent outages shown (every open one is among them: they are the
/// newest of their site).
const RECENT: usize = 20;

#[derive(Debug, Serialize)]
pub struct Report {
    pub sites: Vec<SiteRecord>,
    /// Newest first.
    pub outages: Vec<OutageRecord>,
}

/// What the database of `config`'s state directory says.
pub fn read(config: &WatcherConfig) -> Result<Report, String> {
    let path = store::path(&config.state_dir_or_default());
    let store = Store::open_reader(&path)?;
    let names: Vec<String> = config.sites.keys().cloned().collect();
    let sites = store.sites(&names).map_err(|e| e.to_string())?;
    let outages = store.outages(None, RECENT).map_err(|e| e.to_string())?;
    Ok(Report { sites, outages })
}

impl Report {
    /// For people, at `now` (wall clock).
    pub fn render(&self, now: Millis) -> String {
        let mut text = String::new();
        if self.sites.is_empty() {
            text += "no site configured ([sites.<name>])\n";
        }
        for site in &self.sites {
            let seen = match site.last_seen_ms {
                Some(at) => format!(
                    "last seen {} ({} ago)",
                    human::timestamp(at),
                    human::duration_ms(now.saturating_sub(at))
                ),
                None => "never heard from".to_owned(),
            };
            let clock = match (site.clock_skewed, site.clock_offset_ms) {
                (true, Some(off)) => format!(
                    ", CLOCK OFF by {} ({})",
                    human::duration_ms(off.unsigned_abs()),
                    if off < 0 { "behind" } else { "ahead" }
                ),
                _ => String::new(),
            };
            text += &format!(
                "{:<16} {:<8} {seen}{clock}\n",
                site.name,
                site.state.to_uppercase()
            );
        }
        if self.outages.is_empty() {
            text += "\nno outage recorded\n";
            return text;
        }
        text += "\noutages, newest first:\n";
        for outage in &self.outages {
            text += &format!("  {:<16} {}\n", outage.site, describe(outage));
        }
        text
    }
}

/// One outage on a line: the watcher's view, then the site's report.
fn describe(outage: &OutageRecord) -> String {
    let mut parts = Vec::new();
    if let Some(w) = &outage.watcher {
        parts.push(match w.duration_ms {
            Some(d) => format!(
                "{}: silent {} (watcher)",
                human::timestamp(w.last_seen_ms),
                minutes(d)
            ),
            None => format!(
                "{}: DOWN now, no heartbeat since",
                human::timestamp(w.last_seen_ms)
            ),
        });
    }
    if let Some(r) = &outage.report {
        let cycles = match (r.power_cycles.len(), r.fixed_by_cycle) {
            (0, _) => String::new(),
            (n, Some(fixed)) => format!(", {n} power cycle(s), back after cycle {fixed}"),
            (n, None) => format!(", {n} power cycle(s)"),
        };
        parts.push(format!(
            "reported {}: {}, cause {}{cycles}",
            human::timestamp(r.started_at_ms),
            human::duration_ms(r.duration_ms),
            r.cause
        ));
    } else if outage.watcher.as_ref().is_some_and(|w| w.back_ms.is_some()) {
        parts.push("no report yet".to_owned());
    }
    parts.join("; ")
}
