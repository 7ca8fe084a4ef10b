//! `wanwatch simulate` through the real binary: every shipped scenario
//! passes its expectations, a wrong expectation fails readably, a run is
//! deterministic, and times it cannot write are refused, located.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/scenarios")
}

fn simulate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wanwatch"))
        .arg("simulate")
        .args(args)
        .output()
        .expect("the wanwatch binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn every_example_scenario_meets_its_expectations() {
    let mut seen = 0;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(scenarios_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    entries.sort();
    for path in entries {
        let out = simulate(&[path.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}: exit {:?}\n{}{}",
            path.display(),
            out.status.code(),
            text(&out.stdout),
            text(&out.stderr)
        );
        assert!(
            text(&out.stdout).contains(" met\n"),
            "{}",
            text(&out.stdout)
        );
        seen += 1;
    }
    assert!(seen >= 8, "found {seen} scenarios");
}

#[test]
fn a_wrong_expectation_fails_with_a_diff() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wrong.toml");
    std::fs::write(
        &path,
        r#"description = "modem hang, expecting too much"
duration = "1h"
interval = "2s"

[[cause]]
kind = "modem-hang"
at = "10m"

[[expect]]
power_cycles = 2

[[expect]]
state = "down"
at = "50m"

[[expect]]
outages = 1
"#,
    )
    .unwrap();
    let out = simulate(&[path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let file = path.display();
    assert!(
        stdout.contains(&format!(
            "expectation not met: {file}:9:1: power_cycles\n  - expected: 2\n  + actual:   1\n"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "expectation not met: {file}:12:1: state at +0:50:00\n  - expected: down\n  + actual:   up\n"
        )),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("expectations: 1 of 3 met (FAILED)\n"),
        "{stdout}"
    );
}

#[test]
fn a_broken_scenario_is_located_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(
        &path,
        "duration = \"1h\"\n[[cause]]\nkind = \"meteor\"\nat = \"1m\"\n",
    )
    .unwrap();
    let out = simulate(&[path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "{}:3:8: cause[0].kind: unknown variant `meteor`",
            path.display()
        )),
        "{stderr}"
    );
}

#[test]
fn runs_are_deterministic() {
    // Lossy segments (the seeded generator) and every kind of event.
    for scenario in ["flapping.toml", "blackout.toml", "wan-monitor-log.toml"] {
        let path = scenarios_dir().join(scenario);
        let path = path.to_str().unwrap();
        for json in [false, true] {
            let args: Vec<&str> = if json {
                vec![path, "--json"]
            } else {
                vec![path]
            };
            let first = simulate(&args);
            let second = simulate(&args);
            assert!(first.status.success(), "{}", text(&first.stdout));
            assert!(!first.stdout.is_empty());
            assert_eq!(
                text(&first.stdout),
                text(&second.stdout),
                "{scenario} --json {json}"
            );
        }
    }
}

#[test]
fn json_is_one_object_per_line() {
    let path = scenarios_dir().join("modem-hang.toml");
    let out = simulate(&[path.to_str().unwrap(), "--json"]);
    assert!(out.status.success());
    let events: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object"))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds[0], "start");
    assert!(kinds.contains(&"transition") && kinds.contains(&"action"));
    let cycle = events
        .iter()
        .find(|e| e["action"] == "power-cycle")
        .expect("a power cycle");
    assert_eq!(cycle["plugin"], "powercycle");
    assert_eq!(cycle["device"], "modem");
    let summary = events.iter().find(|e| e["event"] == "summary").unwrap();
    assert_eq!(summary["power_cycles"], 1);
    assert!(
        events
            .iter()
            .filter(|e| e["event"] == "expectation")
            .all(|e| e["met"] == true)
    );
}

#[test]
fn until_stops_early() {
    let path = scenarios_dir().join("isp-outage.toml");
    let out = simulate(&[path.to_str().unwrap(), "--until", "30m"]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("summary: 30m00s simulated, 900 probe rounds"),
        "{stdout}"
    );
    // The outage lies beyond: its expectations are not met.
    assert_eq!(out.status.code(), Some(1));
}

/// They cannot be written as RFC 3339 dates: rejected where they come in
/// rather than failing (once a panic) when the report prints them.
#[test]
fn times_past_the_year_9999_are_located_errors() {
    let dir = tempfile::tempdir().unwrap();
    let late = dir.path().join("late.toml");
    std::fs::write(
        &late,
        "start = \"9999-12-31T23:59:00Z\"\nduration = \"1h\"\n[[cause]]\nkind = \"isp-outage\"\nat = \"10s\"\nduration = \"10m\"\n",
    )
    .unwrap();
    let out = simulate(&[late.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "{}:2:12: duration: 1h from start 9999-12-31T23:59:00Z runs past the year 9999",
            late.display()
        )),
        "{stderr}"
    );

    // The failed probe would be printed, as a transition, past the year 9999.
    let csv = dir.path().join("wan-9999-12-31.csv");
    std::fs::write(
        &csv,
        "timestamp,datetime,status,ping_ms,target\n253402300799.000,x,ok,9.4,cloudflare\n253402300801.000,x,fail,,cloudflare\n",
    )
    .unwrap();
    let replay = dir.path().join("replay.toml");
    std::fs::write(&replay, "[replay]\nfiles = [\"wan-9999-12-31.csv\"]\n").unwrap();
    let out = simulate(&[replay.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "{}:3: timestamp `253402300801.000` is after the year 9999",
            csv.display()
        )),
        "{stderr}"
    );
}

/// WASI's random sources are seeded from the scenario: a plugin that draws
/// from them (a `HashMap` does) runs the same twice; another seed, other draws.
#[test]
fn plugin_randomness_follows_the_scenario_seed() {
    let dir = tempfile::tempdir().unwrap();
    let probe = wanwatch_tests::plugin_wasm("probe-plugin");
    let scenario = |seed: &str| {
        format!(
            r#"duration = "20m"
interval = "2s"
{seed}
[[cause]]
kind = "modem-hang"
at = "5m"

[config.plugins.probe]
file = {probe:?}
notify = true

[config.plugins.probe.settings]
on-wan-sick = {{ random = true }}
on-wan-down = {{ random = true }}
"#
        )
    };
    let path = dir.path().join("random.toml");
    std::fs::write(&path, scenario("")).unwrap();
    let first = simulate(&[path.to_str().unwrap()]);
    let second = simulate(&[path.to_str().unwrap()]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let first = text(&first.stdout);
    assert!(first.contains("notify \"on-wan-down random "), "{first}");
    assert_eq!(first, text(&second.stdout));

    std::fs::write(&path, scenario("seed = 7")).unwrap();
    let other = simulate(&[path.to_str().unwrap()]);
    assert_ne!(first, text(&other.stdout));
}

/// A shipped scenario run with another policy: its expectations are about
/// the built-in one, so `--no-expect` runs it without them.
#[test]
fn no_expect_runs_a_scenario_without_its_expectations() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mine.toml");
    std::fs::write(&config, "[plugins.notify]\n").unwrap();
    let path = scenarios_dir().join("modem-hang.toml");
    let path = path.to_str().unwrap();
    let config = config.to_str().unwrap();

    let expecting = simulate(&[path, "--config", config]);
    assert_eq!(
        expecting.status.code(),
        Some(1),
        "{}",
        text(&expecting.stderr)
    );

    let out = simulate(&[path, "--config", config, "--no-expect"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("WAN down"), "{stdout}");
    assert!(stdout.contains("summary: "), "{stdout}");
    assert!(!stdout.contains("expectation"), "{stdout}");
}
