//! `notify`: notifications to people, when the plugin is granted them.

use super::bindings::wanwatch::policy::notify::Host;
use super::{PluginState, shown, toml_key};

/// Bounds on what a plugin can push at people (and at a notification
/// service): longer text is cut.
const MAX_TITLE: usize = 256;
const MAX_BODY: usize = 4096;

impl Host for PluginState {
    fn notify(&mut self, title: String, body: String, priority: u8) -> Result<(), String> {
        let plugin = &self.plugin;
        let title = shown(&title, MAX_TITLE);
        if !plugin.grants.notify {
            let reason = format!(
                "notify refused: notifications are not granted to plugin `{}`: add `notify = true` to [plugins.{}]",
                plugin.name,
                toml_key(&plugin.name)
            );
            self.refused(&reason);
            return Err(reason);
        }
        self.admit_action()?;
        let body = cut(body, MAX_BODY);
        // The notifier may be a network round trip.
        self.blocking(|state| {
            let plugin = &state.plugin;
            plugin
                .host
                .actions
                .notify(&plugin.name, &title, &body, priority)
        })
    }
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let end = (0..=max)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        text.truncate(end);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn cut_keeps_short_text_and_respects_char_boundaries() {
        assert_eq!(super::cut("short".into(), 10), "short");
        assert_eq!(super::cut("ééé".into(), 3), "é…");
    }
}
