//! The daemon's config: TOML text to a `Config`, or located errors.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wanwatch::config::Config;

fuzz_target!(|text: &str| {
    match Config::parse(std::path::Path::new("wanwatch.toml"), text) {
        Err(errors) => wanwatch_fuzz::assert_located(text, &errors),
        // What the daemon derives from a config it accepted.
        Ok(config) => {
            let _ = config.probe.thresholds();
            let _ = config.target_evidence();
            let _ = config.plugins();
            let _ = config.state_dir_or_default();
            let _ = format!("{config:?}");
        }
    }
});
