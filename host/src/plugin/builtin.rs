//! The policy plugins built into the binary, so that the default setup needs
//! no file beside it. host/build.rs compiles them from plugins/.

/// Name and component bytes of each built-in plugin.
const BUILTIN: &[(&str, &[u8])] = &[
    (
        "powercycle",
        include_bytes!(env!("WANWATCH_POWERCYCLE_WASM")),
    ),
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
