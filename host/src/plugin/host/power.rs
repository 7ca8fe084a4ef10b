//! `power`: power cycles, for the devices granted to the plugin only.

use super::bindings::wanwatch::policy::power::Host;
use super::{PluginState, shown, toml_key};

impl Host for PluginState {
    fn power_cycle(&mut self, device: String, off_seconds: u32) -> Result<(), String> {
        let plugin = &self.plugin;
        if !plugin.grants.devices.contains(&device) {
            let device = shown(&device, 64);
            let reason = format!(
                "power-cycle of `{device}` refused: the device is not granted to plugin `{}`: add `devices = [\"{device}\"]` to [plugins.{}]",
                plugin.name,
                toml_key(&plugin.name)
            );
            self.refused(&reason);
            return Err(reason);
        }
        self.admit_action()?;
        // Written ahead: what the plugin has recorded so far (that the
        // WAN is down, that it cycles now) is on disk before the modem goes
        // dark, so that a daemon killed during the cycle does not cycle
        // again once restarted. A failure is logged and the cycle goes on.
        let clock = self.plugin.host.clock.clone();
        let name = self.plugin.name.clone();
        let _ = self.kept.save(&name, &*clock);
        // A cycle waits for the device to confirm, which can take seconds.
        self.blocking(|state| {
            let plugin = &state.plugin;
            plugin
                .host
                .actions
                .power_cycle(&plugin.name, &device, off_seconds)
        })
    }
}
