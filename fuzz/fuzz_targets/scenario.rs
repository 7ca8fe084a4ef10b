//! Simulator scenario files (`wanwatch simulate`): TOML text to a checked
//! `Scenario`, or located errors.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wanwatch::sim::scenario::Scenario;

fuzz_target!(|text: &str| {
    match Scenario::parse(std::path::Path::new("scenario.toml"), text, None) {
        Err(errors) => wanwatch_fuzz::assert_located(text, &errors),
        Ok(scenario) => {
            let _ = scenario.config();
        }
    }
});
