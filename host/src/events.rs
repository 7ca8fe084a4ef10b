//! What the daemon lives through, for everything that watches it from
//! outside: the history database, the HTTP API and its event stream, the
//! Prometheus exporter.
//!
//! Those hang off these events; they never reach into the core. The daemon
//! hands each event to its [`Observers`] as it happens, with every instant
//! already on the wall clock (people and other machines read them; the
//! daemon's own timeline is for durations, see [`crate::clock`]). An
//! observer must return at once: it runs on the daemon's event loop, or on
//! a plugin's thread for actions. Slow work (the disk) goes to a thread of
//! its own.

use std::sync::Arc;

use serde::Serialize;

use crate::actions::ActionRecord;
use crate::monitor::WanEvent;
use crate::plugin::PluginHealth;
use crate::power::PowerTransition;
use crate::quality::QualityChange;
use crate::state::Round;

/// One thing that happened, its times on the wall clock.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Observed {
    /// A probe round, judged.
    Round(Round),
    /// A change of WAN state.
    Wan(WanEvent),
    /// A change of mains power.
    Power(PowerTransition),
    /// The link became degraded, or is back to normal.
    Quality(QualityChange),
    /// A request a plugin (or the API) made, with its outcome.
    Action(ActionRecord),
    /// A plugin whose health changed (a failure, a recovery, a new version,
    /// quarantine).
    Plugin(PluginHealth),
}

impl Observed {
    /// The event's name, as the history and the event stream call it.
    pub fn kind(&self) -> &'static str {
        match self {
            Observed::Round(_) => "round",
            Observed::Wan(_) => "wan",
            Observed::Power(_) => "power",
            Observed::Quality(_) => "quality",
            Observed::Action(_) => "action",
            Observed::Plugin(_) => "plugin",
        }
    }
}

/// Receives every event. Must not block (see the module's comment).
pub trait Observer: Send + Sync {
    fn observe(&self, event: &Observed);
}

/// Every observer the daemon feeds, in the order they were added.
#[derive(Clone, Default)]
pub struct Observers(Vec<Arc<dyn Observer>>);

impl Observers {
    pub fn add(&mut self, observer: Arc<dyn Observer>) {
        self.0.push(observer);
    }

    pub fn observe(&self, event: &Observed) {
        for observer in &self.0 {
            observer.observe(event);
        }
    }
}
