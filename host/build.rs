//! Builds the built-in policy plugins (plugins/) for wasm32-wasip2, so that
//! the binary can embed them and the default setup needs no extra file.

include!("../plugins/guest_build.rs");

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let built = build_guests(&root.join("plugins"), &["powercycle"]);
    println!("cargo:rustc-env=WANWATCH_POWERCYCLE_WASM={}", built[0].display());
}
