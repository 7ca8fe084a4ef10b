// Builds a workspace of guest plugins for wasm32-wasip2 from a build script.
//
// Shared by host/build.rs (the built-in plugins) and tests/build.rs (the test
// plugins) through `include!`, so there is one copy of the fiddly part: a
// nested cargo must not inherit the outer build's flags, target or target
// directory, or it would build for the wrong target or deadlock on the outer
// build's lock.

/// Builds `workspace` in release for wasm32-wasip2 and returns the path of
/// each package's component, in the order given.
fn build_guests(workspace: &std::path::Path, packages: &[&str]) -> Vec<std::path::PathBuf> {
    const TARGET: &str = "wasm32-wasip2";
    // Under rustup, the guests build with the toolchain rust-toolchain.toml
    // pins, whichever one builds the host: the fuzz builds' nightly has no
    // wasm32-wasip2 standard library.
    let rustup = std::env::var_os("RUSTUP_TOOLCHAIN").is_some();
    let cargo = match std::env::var_os("CARGO") {
        Some(cargo) if !rustup => cargo,
        _ => "cargo".into(),
    };
    let target_dir = workspace.join("target");
    let mut command = std::process::Command::new(cargo);
    command
        .current_dir(workspace)
        .args(["build", "--release", "--target", TARGET, "--target-dir"])
        .arg(&target_dir)
        .args(packages.iter().flat_map(|p| ["-p", p]));
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let leaks = key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_MAKEFLAGS";
        let toolchain = rustup && (key == "RUSTUP_TOOLCHAIN" || key == "RUSTC" || key == "RUSTDOC");
        if leaks || toolchain || key == "RUSTFLAGS" || key == "RUSTC_WRAPPER" || key == "RUSTC_WORKSPACE_WRAPPER" {
            command.env_remove(&*key);
        }
    }
    let status = command.status().unwrap_or_else(|e| panic!("cannot run cargo to build the plugins in {}: {e}", workspace.display()));
    if !status.success() {
        panic!(
            "building the plugins in {} for {TARGET} failed (see above). \
             If the target is missing: rustup target add {TARGET}",
            workspace.display()
        );
    }
    println!("cargo:rerun-if-changed={}", workspace.join("Cargo.toml").display());
    println!("cargo:rerun-if-changed={}", workspace.join("Cargo.lock").display());
    for package in packages {
        println!("cargo:rerun-if-changed={}", workspace.join(package).display());
    }
    let wit = workspace.parent().map(|root| root.join("wit"));
    if let Some(wit) = wit.filter(|w| w.is_dir()) {
        println!("cargo:rerun-if-changed={}", wit.display());
    }
    packages
        .iter()
        .map(|p| target_dir.join(TARGET).join("release").join(format!("{}.wasm", p.replace('-', "_"))))
        .collect()
}
