//! The watcher's config: TOML text to a `WatcherConfig`, or located errors.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wanwatch::watcher::config::WatcherConfig;

fuzz_target!(|text: &str| {
    match WatcherConfig::parse(std::path::Path::new("watcher.toml"), text) {
        Err(errors) => wanwatch_fuzz::assert_located(text, &errors),
        Ok(config) => {
            let _ = format!("{config:?}");
        }
    }
});
