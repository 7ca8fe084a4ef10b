//! `wanwatch plugin build`: runs the language's own compiler and puts the
//! component in `dist/NAME.wasm`. When a tool is missing it says how to
//! install it rather than failing in the tool's words.
//!
//! JavaScript and Python tools are looked for in the project first
//! (`node_modules/`, `PATH`), then under `$WANWATCH_TOOLS` (`npm/` as made by
//! `npm install --prefix`, `python/` as made by `pip install --target`),
//! which is how CI keeps them out of the system.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use super::{Lang, Project};

/// The Rust target of components.
const TARGET: &str = "wasm32-wasip2";

/// Builds `project` into [`Project::component`] and returns its path.
///
/// The component is written beside its final name, then renamed over it: a
/// daemon running the plugin sees one complete new file, never a
/// half-written one, and loads it at once (see `plugin::HotReload`).
pub fn build(project: &Project) -> Result<PathBuf, String> {
    let out = project.component();
    if let Some(dist) = out.parent() {
        std::fs::create_dir_all(dist)
            .map_err(|e| format!("cannot create {}: {e}", dist.display()))?;
    }
    let partial = out.with_extension("wasm.partial");
    match project.lang {
        Lang::Rust => build_rust(project, &partial)?,
        Lang::Js => build_js(project, &partial)?,
        Lang::Python => build_python(project, &partial)?,
    }
    std::fs::rename(&partial, &out).map_err(|e| {
        format!(
            "cannot move {} to {}: {e}",
            partial.display(),
            out.display()
        )
    })?;
    Ok(out)
}

fn build_rust(project: &Project, out: &Path) -> Result<(), String> {
    const RUSTUP: &str =
        "install Rust with rustup (https://rustup.rs), then: rustup target add wasm32-wasip2";
    // rustc, not cargo, knows whether the target's standard library is
    // there; asked in the project so that its toolchain file counts.
    let libdir = Command::new("rustc")
        .current_dir(&project.dir)
        .args(["--print", "target-libdir", "--target", TARGET])
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run rustc ({e}): {RUSTUP}"))?;
    let libdir = String::from_utf8_lossy(&libdir.stdout).trim().to_owned();
    if libdir.is_empty() || !Path::new(&libdir).is_dir() {
        return Err(format!(
            "the Rust target {TARGET} is not installed: rustup target add {TARGET}"
        ));
    }
    let output = Command::new("cargo")
        .current_dir(&project.dir)
        .args(["build", "--release", "--target", TARGET])
        .arg("--message-format=json-render-diagnostics")
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo ({e}): {RUSTUP}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo could not build {} (see above)",
            project.dir.display()
        ));
    }
    // Where cargo put the component depends on the workspace and on
    // CARGO_TARGET_DIR: it says so in its messages.
    let built = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| m["target"]["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "cdylib")))
        .flat_map(|m| m["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f.as_str().map(PathBuf::from))
        .find(|f| f.extension().is_some_and(|e| e == "wasm"))
        .ok_or_else(|| {
            format!(
                "cargo built no component in {}: its Cargo.toml needs `crate-type = [\"cdylib\"]` under [lib]",
                project.dir.display()
            )
        })?;
    std::fs::copy(&built, out)
        .map(drop)
        .map_err(|e| format!("cannot copy {} to {}: {e}", built.display(), out.display()))
}

/// Run by node: ComponentizeJS's API, as its CLI mishandles paths.
const COMPONENTIZE_JS: &str = include_str!("../../templates/js/componentize.mjs");

fn build_js(project: &Project, out: &Path) -> Result<(), String> {
    const PACKAGE: &str = "@bytecodealliance/componentize-js";
    let module = [project.dir.join("node_modules")]
        .into_iter()
        .chain(tools_dir("npm/node_modules"))
        .map(|modules| modules.join(PACKAGE))
        .find_map(|package| entry_point(&package))
        .ok_or_else(|| {
            format!(
                "ComponentizeJS ({PACKAGE}) is not installed: run `npm install` in {} (its package.json lists it), \
                 or install it elsewhere with `npm install --prefix $WANWATCH_TOOLS/npm {PACKAGE}` and set WANWATCH_TOOLS",
                project.dir.display()
            )
        })?;
    check_js_syntax(project)?;
    let mut node = Command::new("node");
    node.current_dir(&project.dir)
        .args(["--input-type=module", "-e", COMPONENTIZE_JS, "--"])
        .arg(module)
        .arg(project.dir.join("policy.js"))
        .arg(project.dir.join("wit"))
        .arg(out);
    run(node, "node", NODE_INSTALL)
}

/// `node --check` on the policy: a syntax error is reported with its file,
/// line and column, which ComponentizeJS does not say.
fn check_js_syntax(project: &Project) -> Result<(), String> {
    let mut check = Command::new("node");
    check
        .current_dir(&project.dir)
        .args(["--check", "policy.js"]);
    if status(&mut check, "node", NODE_INSTALL)?.success() {
        Ok(())
    } else {
        Err(format!(
            "{} does not parse (node says where, above)",
            project.dir.join("policy.js").display()
        ))
    }
}

const NODE_INSTALL: &str =
    "install Node.js 18 or later (https://nodejs.org, or apt install nodejs npm)";

/// The file a package's `import` resolves to, from its package.json.
fn entry_point(package: &Path) -> Option<PathBuf> {
    let manifest = std::fs::read_to_string(package.join("package.json")).ok()?;
    let manifest: serde_json::Value = serde_json::from_str(&manifest).ok()?;
    let exports = &manifest["exports"];
    let entry = exports["import"]
        .as_str()
        .or_else(|| exports["."]["import"].as_str())
        .or_else(|| manifest["main"].as_str())?;
    Some(package.join(entry)).filter(|p| p.is_file())
}

fn build_python(project: &Project, out: &Path) -> Result<(), String> {
    const INSTALL: &str = "pip install componentize-py, or install it elsewhere with `pip install --target $WANWATCH_TOOLS/python componentize-py` and set WANWATCH_TOOLS";
    let local = tools_dir("python");
    let mut command = match local.as_ref().map(|dir| dir.join("bin/componentize-py")) {
        Some(script) if script.is_file() && !on_path("componentize-py") => {
            let mut command = Command::new("python3");
            command.arg(script);
            command.env("PYTHONPATH", python_path(local.as_deref()));
            command
        }
        _ => Command::new("componentize-py"),
    };
    command
        .current_dir(&project.dir)
        .args([
            "-d",
            "wit",
            "-w",
            "policy",
            "componentize",
            "-p",
            ".",
            "app",
            "-o",
        ])
        .arg(out);
    run(command, "componentize-py", INSTALL)
}

/// `dir` under `$WANWATCH_TOOLS`, if that is set.
fn tools_dir(dir: &str) -> Option<PathBuf> {
    std::env::var_os("WANWATCH_TOOLS").map(|tools| PathBuf::from(tools).join(dir))
}

/// PYTHONPATH with `dir` in front.
fn python_path(dir: Option<&Path>) -> OsString {
    let inherited = std::env::var_os("PYTHONPATH").unwrap_or_default();
    let paths = dir
        .map(Path::to_path_buf)
        .into_iter()
        .chain(std::env::split_paths(&inherited));
    std::env::join_paths(paths).unwrap_or_default()
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Runs a build tool; its output goes to the user as it comes.
fn run(mut command: Command, tool: &str, install: &str) -> Result<(), String> {
    if status(&mut command, tool, install)?.success() {
        Ok(())
    } else {
        Err(format!("{tool} failed to build the plugin (see above)"))
    }
}

/// Runs `command` to its end; a tool that is not there is named, with how
/// to install it.
fn status(command: &mut Command, tool: &str, install: &str) -> Result<ExitStatus, String> {
    command.status().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("{tool} is not installed: {install}"),
        _ => format!("cannot run {tool}: {e}"),
    })
}
