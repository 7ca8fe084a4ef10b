//! What can go wrong loading a plugin, and calling one.

use std::fmt;
use std::path::PathBuf;

/// A plugin that cannot be loaded. Each message names the plugin, where its
/// component came from, and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error(
        "plugin `{plugin}`: has no `file`, and `{plugin}` is not a built-in plugin (built in: {builtin})"
    )]
    NotBuiltin { plugin: String, builtin: String },

    #[error(
        "plugin `{plugin}`: the name must be letters, digits, `-`, `_` or `.` (not starting with `.`): it names the plugin's key-value store file"
    )]
    BadName { plugin: String },

    #[error("plugin `{plugin}` ({origin}): cannot read file: {error}")]
    Read {
        plugin: String,
        origin: String,
        error: std::io::Error,
    },

    #[error("plugin `{plugin}` ({origin}): is not WebAssembly (it does not begin with `\\0asm`)")]
    NotWasm { plugin: String, origin: String },

    #[error(
        "plugin `{plugin}` ({origin}): is not a component (a core wasm module?): build it for wasm32-wasip2, or wrap it with `wasm-tools component new`"
    )]
    NotComponent { plugin: String, origin: String },

    #[error("plugin `{plugin}` ({origin}): is not a valid component: {message}")]
    Invalid {
        plugin: String,
        origin: String,
        message: String,
    },

    #[error(
        "plugin `{plugin}` ({origin}): does not implement wanwatch:policy@{contract}: {message}"
    )]
    WrongWorld {
        plugin: String,
        origin: String,
        /// The version it was checked against: the one it names, or the
        /// latest ("0.2.x").
        contract: String,
        message: String,
    },

    #[error(
        "plugin `{plugin}` ({origin}): was built for wanwatch:policy@{found}, this host supports {supported}"
    )]
    WrongVersion {
        plugin: String,
        origin: String,
        found: String,
        supported: String,
    },

    #[error("plugin `{plugin}` ({origin}): failed to start: {}", .error.reason())]
    Start {
        plugin: String,
        origin: String,
        error: Box<CallError>,
    },

    #[error("plugin `{plugin}`: cannot load its key-value store {}: {error}", path.display())]
    Kv {
        plugin: String,
        path: PathBuf,
        error: std::io::Error,
    },
}

/// Why a callback failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallErrorKind {
    /// The guest trapped: a panic, `unreachable`, an out-of-bounds access...
    Trap,
    /// The guest ran past its deadline and was interrupted.
    Deadline,
    /// The guest tried to grow its memory beyond its limit.
    OutOfMemory,
    /// The guest returned an error string. Unlike the others, this leaves
    /// the instance in place.
    GuestError,
    /// The plugin was not called: it is quarantined after failing too often
    /// in a row (see [`QUARANTINE_AFTER`](super::QUARANTINE_AFTER)).
    Quarantined,
}

/// A failed callback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallError {
    pub plugin: String,
    /// The export that was called, as in the .wit (`on-wan-down`...), or
    /// `instantiate` when a fresh instance could not be created.
    pub callback: &'static str,
    pub kind: CallErrorKind,
    /// What happened, in one line.
    pub message: String,
    /// The end of what the guest wrote to stderr during the call, if
    /// anything (where a Rust guest's panic message lands).
    pub stderr: Option<String>,
}

impl CallError {
    /// What went wrong, without who: "trapped: ...", then the stderr tail.
    fn reason(&self) -> String {
        let what = match self.kind {
            CallErrorKind::Trap => "trapped",
            CallErrorKind::Deadline => "exceeded its deadline",
            CallErrorKind::OutOfMemory => "ran out of memory",
            CallErrorKind::GuestError => "failed",
            CallErrorKind::Quarantined => "skipped",
        };
        let mut reason = format!("{what}: {}", self.message);
        if let Some(stderr) = &self.stderr {
            reason.push_str("\n  plugin stderr:");
            for line in stderr.lines() {
                reason.push_str("\n    ");
                reason.push_str(line);
            }
        }
        reason
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "plugin `{}`: {} {}",
            self.plugin,
            self.callback,
            self.reason()
        )
    }
}

impl std::error::Error for CallError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_error_is_one_line_plus_the_stderr_tail() {
        let mut error = CallError {
            plugin: "p".into(),
            callback: "on-wan-down",
            kind: CallErrorKind::Trap,
            message: "wasm trap: wasm `unreachable` instruction executed".into(),
            stderr: None,
        };
        assert_eq!(
            error.to_string(),
            "plugin `p`: on-wan-down trapped: wasm trap: wasm `unreachable` instruction executed"
        );
        error.stderr = Some("panicked at src/lib.rs:3:5:\nboom".into());
        assert_eq!(
            error.to_string(),
            "plugin `p`: on-wan-down trapped: wasm trap: wasm `unreachable` instruction executed\n  plugin stderr:\n    panicked at src/lib.rs:3:5:\n    boom"
        );
    }
}
