//! Tooling for plugin authors, behind `wanwatch plugin`: [`new`] scaffolds
//! a project in Rust, JavaScript or Python, [`build`] turns it into a
//! component with the language's own tool, [`test`] runs its scenarios
//! through the simulator, and [`inspect`] shows what a component imports
//! and exports and whether this host accepts it.
//!
//! A project is a directory with a `plugin.toml` naming the plugin and its
//! language; whatever the language, the component is built into
//! `dist/NAME.wasm`, which is what the project's scenarios load.

mod build;
mod inspect;
mod new;
mod test;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use self::build::build;
pub use self::inspect::inspect;
pub use self::new::new;
pub use self::test::test;

/// The languages a project can be written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Rust, on the SDK in plugins/wanwatch-plugin.
    Rust,
    /// JavaScript, built with ComponentizeJS.
    Js,
    /// Python, built with componentize-py.
    Python,
}

impl Lang {
    /// As written in `plugin.toml` and on the command line.
    pub fn key(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Js => "js",
            Lang::Python => "python",
        }
    }
}

/// The file that makes a directory a plugin project.
const MANIFEST: &str = "plugin.toml";

/// A plugin project, as its `plugin.toml` describes it.
#[derive(Clone, Debug)]
pub struct Project {
    pub dir: PathBuf,
    pub name: String,
    pub lang: Lang,
}

impl Project {
    /// Reads the project in `dir`.
    pub fn open(dir: &Path) -> Result<Project, String> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Manifest {
            name: String,
            lang: Lang,
        }
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "{}: {e}; a plugin project has a {MANIFEST} (create one with `wanwatch plugin new NAME`)",
                path.display()
            )
        })?;
        let manifest: Manifest =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if !valid_name(&manifest.name) {
            return Err(format!("{}: {}", path.display(), NAME_RULE));
        }
        // Absolute: the build tools run in the project, and are given paths.
        let dir = std::fs::canonicalize(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Project {
            dir,
            name: manifest.name,
            lang: manifest.lang,
        })
    }

    /// Where the built component goes.
    pub fn component(&self) -> PathBuf {
        self.dir.join("dist").join(format!("{}.wasm", self.name))
    }
}

const NAME_RULE: &str = "a plugin name is a lower-case letter, then lower-case letters, digits, `-` or `_` (it names the crate, the config section and the store file)";

/// Whether `name` is usable as a plugin name in every language: a Rust
/// crate, a TOML key, a file name.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_'))
        && name.len() <= 64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_names() {
        for good in ["quiet-hours", "p2", "my_policy"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "2fast", "Quiet", "a b", "../x", "é", "-x"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
