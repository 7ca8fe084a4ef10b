//! `heartbeats`: the heartbeat receivers as the daemon sees them, read-only.
//! Names are the status's, which never include the secret part of a URL.

use super::PluginState;
use super::bindings::wanwatch::policy::heartbeats::{Host, Receiver};

impl Host for PluginState {
    fn receivers(&mut self) -> Vec<Receiver> {
        self.plugin
            .host
            .heartbeats
            .status()
            .into_iter()
            .map(|h| Receiver {
                name: h.name,
                reachable: h.failing.is_none(),
                last_ok_ms: h.last_ok_at_ms,
                error: h.failing,
            })
            .collect()
    }
}
