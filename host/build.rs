//! Builds the built-in policy plugins (plugins/) for wasm32-wasip2, so that
//! the binary can embed them and the default setup needs no extra file.

include!("../plugins/guest_build.rs");

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let plugins = ["powercycle", "notify"];
    let built = build_guests(&root.join("plugins"), &plugins);
    for (name, wasm) in plugins.iter().zip(built) {
        println!(
            "cargo:rustc-env=WANWATCH_{}_WASM={}",
            name.to_uppercase(),
            wasm.display()
        );
    }
}
