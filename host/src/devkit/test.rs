//! `wanwatch plugin test`: builds the project, then runs each of its
//! `scenarios/*.toml` through the simulator, as `wanwatch simulate` would.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Project, build};
use crate::config::Config;
use crate::sim::{self, scenario::Scenario};

/// Builds `project` and runs its scenarios, writing their reports to `out`.
/// Ok(true) when every expectation of every scenario is met.
pub fn test(project: &Project, mut out: impl Write) -> Result<bool, String> {
    let component = build(project)?;
    let scenarios = scenarios(&project.dir)?;
    let mut failed = Vec::new();
    for path in &scenarios {
        let config = config_for(project, &component, path)?;
        let passed = sim::run(path, config, &sim::Options::default(), &mut out)?;
        if !passed {
            failed.push(path.display().to_string());
        }
    }
    let io = |e: std::io::Error| format!("cannot write the report: {e}");
    writeln!(out).map_err(io)?;
    if failed.is_empty() {
        writeln!(
            out,
            "{}: {} scenarios passed",
            project.name,
            scenarios.len()
        )
        .map_err(io)?;
    } else {
        writeln!(
            out,
            "{}: {} of {} scenarios failed: {}",
            project.name,
            failed.len(),
            scenarios.len(),
            failed.join(", ")
        )
        .map_err(io)?;
    }
    Ok(failed.is_empty())
}

/// The project's scenario files, in name order.
fn scenarios(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let scenarios = dir.join("scenarios");
    let entries = std::fs::read_dir(&scenarios).map_err(|e| {
        format!(
            "{}: {e}; a plugin's tests are scenarios/*.toml",
            scenarios.display()
        )
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!(
            "no scenarios in {}: add a *.toml (see docs/simulation.md)",
            scenarios.display()
        ));
    }
    Ok(files)
}

/// The config a scenario runs with: its own `[config]` if it has one (which
/// loads the plugin from `dist/`), else the built-in defaults with only this
/// plugin, granted the modem's plug and notifications.
fn config_for(
    project: &Project,
    component: &Path,
    scenario: &Path,
) -> Result<Option<Config>, String> {
    let parsed =
        Scenario::load(scenario, None).map_err(|errors| crate::config::describe(&errors))?;
    if parsed.config.is_some() {
        return Ok(None);
    }
    let device = &parsed.modem.device;
    let quote = |text: &str| toml::Value::String(text.to_owned()).to_string();
    let text = format!(
        "[devices.{device}]\nkind = \"shelly\"\naddress = \"192.0.2.1\"\n\n[plugins.{name}]\nfile = {file}\ndevices = [{device_q}]\nnotify = true\n",
        device = quote(device),
        device_q = quote(device),
        name = project.name,
        file = quote(&component.display().to_string()),
    );
    Config::parse(Path::new("(plugin test)"), &text)
        .map(Some)
        .map_err(|errors| crate::config::describe(&errors))
}
