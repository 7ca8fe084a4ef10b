//! The policy plugins built into the binary, so that the default setup needs
//! no file beside it. host/build.rs compiles them from plugins/.

/// The name of the built-in power-cycling policy.
pub const POWERCYCLE: &str = "powercycle";

/// Name and component bytes of each built-in plugin.
const BUILTIN: &[(&str, &[u8])] = &[
    (POWERCYCLE, include_bytes!(env!("WANWATCH_POWERCYCLE_WASM"))),
    ("notify", include_bytes!(env!("WANWATCH_NOTIFY_WASM"))),
];

/// The component of the built-in plugin `name`.
pub fn wasm(name: &str) -> Option<&'static [u8]> {
    BUILTIN
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, bytes)| *bytes)
}

/// The names of the built-in plugins.
pub fn names() -> impl Iterator<Item = &'static str> {
    BUILTIN.iter().map(|(name, _)| *name)
}

/// The device the built-in `powercycle` cycles with `settings`: its `device`
/// setting, `modem` by default, as plugins/powercycle/src/lib.rs reads them.
pub fn powercycle_device(settings: &toml::Table) -> String {
    settings
        .get("device")
        .and_then(toml::Value::as_str)
        .unwrap_or("modem")
        .to_owned()
}
