//! Plugin projects, as authors make them: `wanwatch plugin new` in each
//! language, `plugin test` (build, then the simulator), `plugin inspect`,
//! and `wanwatch check` loading the result; and the example policies of
//! examples/plugins/, each through its own scenarios.
//!
//! The JavaScript and Python tools are installed on first use into the
//! repository's `.tools/` (npm and pip into local folders, nothing system
//! wide); without node or python3 those tests say so and skip (fail, under
//! CI: see `skip`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use wanwatch::plugin::Runtime;
use wanwatch_tests::skip;

const WANWATCH: &str = env!("CARGO_BIN_EXE_wanwatch");

/// The pinned tool versions: known to build components of our WIT.
const COMPONENTIZE_JS: &str = "@bytecodealliance/componentize-js@0.23.0";
const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tools() -> PathBuf {
    repo().join(".tools")
}

/// Runs `wanwatch ARGS`. Rust plugin projects share one cargo target
/// directory, so that the SDK and its dependencies are built once.
fn wanwatch(args: &[&str]) -> Output {
    Command::new(WANWATCH)
        .args(args)
        .env(
            "CARGO_TARGET_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-projects"),
        )
        .env("WANWATCH_TOOLS", tools())
        .output()
        .expect("run wanwatch")
}

/// `wanwatch ARGS`, which must succeed; its stdout.
fn ok(args: &[&str]) -> String {
    let out = wanwatch(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "wanwatch {args:?} failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Scaffolds a project in `lang`, tests it through the simulator, inspects
/// it and loads it with `wanwatch check`. Returns its component.
fn scaffold_test_and_load(lang: &str, dir: &Path) -> PathBuf {
    let name = format!("hello-{lang}");
    let dir_arg = dir.to_str().expect("a UTF-8 temporary directory");
    ok(&["plugin", "new", &name, "--lang", lang, "--dir", dir_arg]);
    let project = dir.join(&name);
    let report = ok(&["plugin", "test", project.to_str().unwrap()]);
    assert!(
        report.contains("1 scenarios passed"),
        "the scaffolded scenario must pass as it is:\n{report}"
    );
    // Every language's template writes durations as the host does.
    assert!(
        report.contains("notify \"WAN back after 1m40s\""),
        "{report}"
    );
    let wasm = project.join("dist").join(format!("{name}.wasm"));
    let inspect = ok(&["plugin", "inspect", wasm.to_str().unwrap()]);
    for expected in [
        "contract  wanwatch:policy@0.2.0 (supported: the one this host implements, 0.2.0)",
        "on-link-quality",
        "verdict   accepted by this host",
        "on-wan-down",
        "wanwatch:policy/power@0.2.0",
    ] {
        assert!(inspect.contains(expected), "{expected}:\n{inspect}");
    }
    // Loaded as the daemon loads it: a loopback-only config.
    let config = dir.join("wanwatch.toml");
    let text = format!(
        "state_dir = {state:?}\n\n[[targets]]\nname = \"lo4\"\naddress = \"127.0.0.1\"\n\n[plugins.{name}]\nfile = {wasm:?}\nnotify = true\nmemory_mib = 128\ndeadline = \"1s\"\n",
        state = dir.join("state"),
    );
    std::fs::write(&config, text).unwrap();
    let check = ok(&["check", "--config", config.to_str().unwrap()]);
    assert!(check.contains(&format!("plugin {name}")), "{check}");
    wasm
}

#[test]
fn a_scaffolded_rust_plugin_builds_passes_its_scenario_and_loads() {
    let dir = tempfile::tempdir().unwrap();
    scaffold_test_and_load("rust", dir.path());
}

#[test]
fn a_scaffolded_javascript_plugin_builds_passes_its_scenario_and_loads() {
    if !install_js_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let wasm = scaffold_test_and_load("js", dir.path());
    report_loads("JavaScript", &wasm);
    reloading_it_keeps_the_probe_cadence(&wasm);
}

/// A live daemon probing every 250 ms is given `wasm` (a JavaScript plugin,
/// over 10 MiB, seconds to compile) by a config reload: the compilation
/// runs off the daemon's event loop, so no round comes late. Were it on the
/// loop, the rounds would stall once the queue between them was full.
fn reloading_it_keeps_the_probe_cadence(wasm: &Path) {
    const INTERVAL_MS: f64 = 250.0;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || for _ in listener.incoming() {});
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history");
    let base = format!(
        "state_dir = {state:?}\n[probe]\ninterval = \"250ms\"\ntimeout = \"200ms\"\n\
         [history]\ndir = {history:?}\n\
         [[targets]]\nname = \"lo\"\naddress = \"127.0.0.1\"\nkind = \"tcp\"\nport = {port}\n",
        state = dir.path(),
    );
    let config = dir.path().join("wanwatch.toml");
    std::fs::write(&config, &base).unwrap();
    let log = dir.path().join("log");
    let _daemon = wanwatch_tests::DaemonProcess(
        Command::new(WANWATCH)
            .args(["run", "--config"])
            .arg(&config)
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start the daemon"),
    );
    let status = dir.path().join("status.json");
    wanwatch_tests::wait_for(&status, "a first round", Duration::from_secs(30), |s| {
        s["last_round_at_ms"].is_u64()
    });
    std::fs::write(
        &config,
        format!("{base}[plugins.big]\nfile = {wasm:?}\nmemory_mib = 128\ndeadline = \"1s\"\n"),
    )
    .unwrap();
    let start = std::time::Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("config reloaded")
    {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no reload:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    // One row per round (one target): when each round ended.
    let mut ends: Vec<f64> = std::fs::read_dir(&history)
        .unwrap()
        .flat_map(|file| {
            std::fs::read_to_string(file.unwrap().path())
                .unwrap()
                .lines()
                .skip(1)
                .filter_map(|row| row.split(',').next()?.parse().ok())
                .collect::<Vec<f64>>()
        })
        .collect();
    ends.sort_by(f64::total_cmp);
    let gaps: Vec<f64> = ends.windows(2).map(|w| (w[1] - w[0]) * 1000.0).collect();
    let longest = gaps.iter().copied().fold(0.0, f64::max);
    eprintln!(
        "reload of a {:.1} MiB plugin in {:.2?}: {} rounds, longest gap {longest:.0} ms",
        std::fs::metadata(wasm).unwrap().len() as f64 / f64::from(1 << 20),
        start.elapsed(),
        ends.len()
    );
    assert!(
        longest < 3.0 * INTERVAL_MS,
        "a round came {longest:.0} ms after the one before: {gaps:?}"
    );
}

#[test]
fn a_scaffolded_python_plugin_builds_passes_its_scenario_and_loads() {
    if !install_python_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let wasm = scaffold_test_and_load("python", dir.path());
    report_loads("Python", &wasm);
}

#[test]
fn the_example_policies_pass_their_scenarios() {
    let examples = repo().join("examples/plugins");
    let mut names: Vec<String> = std::fs::read_dir(&examples)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("plugin.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "degraded-night",
            "dns-vs-ip",
            "escalate",
            "flap-guard",
            "quiet-hours"
        ]
    );
    for name in &names {
        let report = ok(&["plugin", "test", examples.join(name).to_str().unwrap()]);
        assert!(report.contains("scenarios passed"), "{name}:\n{report}");
        // Counts alone cannot tell the two diagnoses apart: the titles can.
        if name == "dns-vs-ip" {
            for title in ["notify \"ISP DNS down\"", "notify \"WAN link down\""] {
                assert!(report.contains(title), "{title}:\n{report}");
            }
        }
    }
}

#[test]
fn inspect_says_why_the_host_refuses_a_component() {
    let wasm = wanwatch_tests::plugin_wasm("wrong-version");
    let out = wanwatch(&["plugin", "inspect", wasm.to_str().unwrap()]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    for expected in [
        "contract  wanwatch:policy@0.9.0 (not supported: this host implements 0.2.0 and loads 0.1.x, 0.2.x)",
        "refused: plugin `wrong_version`",
        "was built for wanwatch:policy@0.9.0, this host supports 0.1.x, 0.2.x",
    ] {
        assert!(report.contains(expected), "{expected}:\n{report}");
    }
    let out = wanwatch(&["plugin", "inspect", "Cargo.toml"]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report.contains("is not WebAssembly"), "{report}");
}

/// Functions are listed with their types, as WIT writes them.
#[test]
fn inspect_shows_the_types_of_functions() {
    let wasm = wanwatch_tests::plugin_wasm("probe-plugin");
    let report = ok(&["plugin", "inspect", wasm.to_str().unwrap()]);
    for expected in [
        "func(name: string) -> result<_, string>",
        "func(transition: record { previous, current, at-ms, previous-duration-ms, local-fault, evidence, power, power-cycles }) -> result<_, string>",
    ] {
        assert!(report.contains(expected), "{expected}:\n{report}");
    }
}

/// Whatever a JavaScript callback throws reaches the host as a message, and
/// a syntax error is reported with its file and line.
#[test]
fn a_javascript_plugin_reports_what_it_throws_and_where_it_does_not_parse() {
    if !install_js_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    ok(&[
        "plugin",
        "new",
        "thrower",
        "--lang",
        "js",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    let project = dir.path().join("thrower");
    let source = project.join("policy.js");
    let policy = std::fs::read_to_string(&source).unwrap();
    let policy = policy
        .replace(
            "export function onWanSick(t) {",
            "import * as kv from 'wanwatch:policy/kv@0.2.0';\n\
             export function onWanSick(t) {\n  kv.set('k', 'v');\n  kv.delete('k');\n  throw new Error('sick of it');",
        )
        .replace(
            "  if (t.previous !== 'down') return;",
            "  if (t.previous !== 'down') return;\n  throw { code: 1 };",
        );
    std::fs::write(&source, &policy).unwrap();
    ok(&["plugin", "build", project.to_str().unwrap()]);
    let out = wanwatch(&[
        "simulate",
        project.join("scenarios/modem-hang.toml").to_str().unwrap(),
    ]);
    let report = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "on-wan-sick failed: Error: sick of it\\nonWanSick@policy.js:",
        "on-wan-up failed: {\"code\":1}",
    ] {
        assert!(report.contains(expected), "{expected}:\n{report}");
    }

    let line = policy.lines().count() + 1;
    std::fs::write(&source, format!("{policy}const = 1;\n")).unwrap();
    let out = wanwatch(&["plugin", "build", project.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&format!("policy.js:{line}")), "{stderr}");
    assert!(stderr.contains("policy.js does not parse"), "{stderr}");
}

/// A build tool that is not installed is named, with both ways to install
/// it: in the project, or under $WANWATCH_TOOLS.
#[test]
fn a_missing_build_tool_says_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for lang in ["js", "python"] {
        let name = format!("toolless-{lang}");
        ok(&[
            "plugin",
            "new",
            &name,
            "--lang",
            lang,
            "--dir",
            dir.path().to_str().unwrap(),
        ]);
        let out = Command::new(WANWATCH)
            .args(["plugin", "build"])
            .arg(dir.path().join(&name))
            .env("WANWATCH_TOOLS", &empty)
            .env("PATH", &empty)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(stderr.contains("is not installed"), "{stderr}");
        assert!(stderr.contains("WANWATCH_TOOLS"), "{stderr}");
    }
}

/// Compiles and links `wasm` twice, as a daemon start and a restart would,
/// with the compile cache in between, and prints both times: interpreted
/// guests are megabytes, and only the cache makes the second load fast.
fn report_loads(language: &str, wasm: &Path) {
    let bytes = std::fs::read(wasm).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let load = || {
        let runtime = Runtime::with_cache(cache.path().to_owned()).unwrap();
        let started = Instant::now();
        runtime.prepare("measured", "test", &bytes).unwrap();
        (started.elapsed(), runtime.compiled())
    };
    let (first, compiled_first) = load();
    let (second, compiled_second) = load();
    eprintln!(
        "{language} plugin, {:.1} MiB: first load {first:.2?} (compiled), second load {second:.2?} (from the cache)",
        bytes.len() as f64 / 1_048_576.0
    );
    assert_eq!((compiled_first, compiled_second), (1, 0));
    assert!(
        second < first / 4 && second < Duration::from_secs(2),
        "the cache must make the second load fast: {first:?}, then {second:?}"
    );
}

/// Installs ComponentizeJS into .tools/npm unless it is there; false (and
/// the test skips) without node and npm.
fn install_js_tools() -> bool {
    let npm = tools().join("npm");
    if npm
        .join("node_modules/@bytecodealliance/componentize-js/package.json")
        .is_file()
    {
        return true;
    }
    if !runs("node", &["--version"]) || !runs("npm", &["--version"]) {
        skip("JavaScript plugins need node and npm");
        return false;
    }
    std::fs::create_dir_all(&npm).unwrap();
    install(
        Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&npm)
            .arg(COMPONENTIZE_JS),
    );
    true
}

/// Installs componentize-py into .tools/python unless it is there; false
/// (and the test skips) without python3 and pip.
fn install_python_tools() -> bool {
    let python = tools().join("python");
    if python.join("bin/componentize-py").is_file() {
        return true;
    }
    if !runs("python3", &["-m", "pip", "--version"]) {
        skip("Python plugins need python3 with pip");
        return false;
    }
    install(
        Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--target"])
            .arg(&python)
            .arg(COMPONENTIZE_PY),
    );
    true
}

fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|out| out.status.success())
}

fn install(command: &mut Command) {
    let out = command.output().expect("run the installer");
    assert!(
        out.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
