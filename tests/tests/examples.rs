//! The shipped example configs are valid configs: a user copies them first.
//! Parsed only: `wanwatch check` would contact the example plug addresses.

use std::path::Path;

use wanwatch::config::Config;

#[test]
fn every_example_config_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            if let Err(errors) = Config::load(&path) {
                panic!("{}", wanwatch::config::describe(&errors));
            }
            seen += 1;
        }
    }
    assert!(
        seen >= 2,
        "found {seen} example configs in {}",
        dir.display()
    );
}

#[test]
fn the_complete_example_sets_up_every_part() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/wanwatch.toml");
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(config.devices.contains_key("modem"));
    assert!(config.notify.ntfy.is_some());
    assert_eq!(config.power.devices.len(), 3);
    assert_eq!(
        config.plugins.keys().collect::<Vec<_>>(),
        ["powercycle", "notify"]
    );
}
