//! Builds the test plugins (tests/plugins/, a guest workspace of its own) for
//! wasm32-wasip2 and hands their paths to the tests as
//! `WANWATCH_TEST_PLUGIN_<NAME>` (upper case, `-` → `_`).

include!("../plugins/guest_build.rs");

/// The test plugins, by package name.
const PLUGINS: &[&str] = &["init-trap", "latest-probe", "probe-plugin", "wrong-version"];

fn main() {
    require_wasm_target();
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let built = build_guests(&manifest.join("plugins"), PLUGINS);
    // The guests are generated from the contract, `latest-probe` through
    // the SDK: rebuild them when either changes.
    for input in ["../wit", "../plugins/wanwatch-plugin"] {
        println!("cargo:rerun-if-changed={}", manifest.join(input).display());
    }
    for (name, wasm) in PLUGINS.iter().zip(built) {
        let var = format!(
            "WANWATCH_TEST_PLUGIN_{}",
            name.to_uppercase().replace('-', "_")
        );
        println!("cargo:rustc-env={var}={}", wasm.display());
    }
}

/// Fails the build up front, with the fix, when the toolchain lacks the
/// wasm32-wasip2 standard library: the nested cargo's own error ("can't find
/// crate for `core`") does not say what to do.
fn require_wasm_target() {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let libdir = std::process::Command::new(rustc)
        .args(["--print", "target-libdir", "--target", "wasm32-wasip2"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned());
    if !libdir.is_some_and(|dir| std::path::Path::new(&dir).is_dir()) {
        panic!(
            "the wasm32-wasip2 target is not installed, and the test plugins are built for it; \
             run: rustup target add wasm32-wasip2"
        );
    }
}
