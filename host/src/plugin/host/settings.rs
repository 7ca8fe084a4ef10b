//! `settings`: the plugin's `[plugins.NAME.settings]` table, as JSON.

use super::PluginState;
use super::bindings::wanwatch::policy::settings::Host;

impl Host for PluginState {
    fn get(&mut self) -> String {
        self.plugin.settings_json.clone()
    }
}
