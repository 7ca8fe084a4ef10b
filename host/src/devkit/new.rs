//! `wanwatch plugin new`: a ready project, whose scenario passes as it is.

use std::path::{Path, PathBuf};

use super::{Lang, MANIFEST, NAME_RULE, valid_name};

/// The contract, copied into every project: the reference for authors, and
/// what the JavaScript and Python tools generate their bindings from.
const WIT: &str = include_str!("../../../wit/since_v0.2.0/policy.wit");

/// Where this build of wanwatch found the Rust SDK: the repository's copy.
const SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/wanwatch-plugin");

/// Creates the project `name` in `parent/name`. `sdk`: the Rust SDK's
/// directory, for Rust projects (default: the repository wanwatch was built
/// from). Returns the project's directory.
pub fn new(name: &str, lang: Lang, parent: &Path, sdk: Option<&Path>) -> Result<PathBuf, String> {
    if !valid_name(name) {
        return Err(format!("`{name}`: {NAME_RULE}"));
    }
    let dir = parent.join(name);
    let occupied = std::fs::read_dir(&dir).is_ok_and(|mut entries| entries.next().is_some());
    if occupied {
        return Err(format!("{} exists and is not empty", dir.display()));
    }
    let files = files(lang, sdk)?;
    for (path, template) in files {
        let text = template
            .0
            .replace("{{name}}", name)
            .replace("{{lang}}", lang.key());
        let text = template
            .1
            .iter()
            .fold(text, |text, (key, value)| text.replace(key, value));
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(dir)
}

/// A template's text and the language's replacements for its placeholders.
type Template = (&'static str, Vec<(&'static str, String)>);

/// The project's files: (path in the project, template).
fn files(lang: Lang, sdk: Option<&Path>) -> Result<Vec<(&'static str, Template)>, String> {
    // Interpreted guests (a JavaScript engine, a Python interpreter) start
    // bigger and slower than the defaults (32 MiB, 100 ms) allow.
    let limits = match lang {
        Lang::Rust => String::new(),
        Lang::Js | Lang::Python => {
            "# An interpreter inside: more memory and time than the defaults.\nmemory_mib = 128\ndeadline = \"1s\"\n".to_owned()
        }
    };
    let (language, source, setup) = match lang {
        Lang::Rust => (
            "Rust",
            "src/lib.rs",
            "Needs Rust with the `wasm32-wasip2` target (`rustup target add wasm32-wasip2`).\n",
        ),
        Lang::Js => (
            "JavaScript",
            "policy.js",
            "Needs Node.js; `npm install` once installs ComponentizeJS, the compiler.\n",
        ),
        Lang::Python => (
            "Python",
            "app.py",
            "Needs Python 3 and componentize-py (`pip install componentize-py`).\n",
        ),
    };
    let common = vec![
        ("{{language}}", language.to_owned()),
        ("{{source}}", source.to_owned()),
        ("{{setup}}", setup.to_owned()),
        ("{{limits}}", limits),
    ];
    let template = |text: &'static str| (text, common.clone());
    let mut files = vec![
        (
            MANIFEST,
            template(include_str!("../../templates/common/plugin.toml")),
        ),
        (
            "README.md",
            template(include_str!("../../templates/common/README.md")),
        ),
        (
            "scenarios/modem-hang.toml",
            template(include_str!(
                "../../templates/common/scenarios/modem-hang.toml"
            )),
        ),
        ("wit/policy.wit", (WIT, Vec::new())),
    ];
    match lang {
        Lang::Rust => {
            let sdk = sdk_path(sdk)?;
            // As a TOML string: quoted and escaped, whatever the path holds.
            let sdk = toml::Value::String(sdk.display().to_string()).to_string();
            files.extend([
                (
                    "Cargo.toml",
                    (
                        include_str!("../../templates/rust/Cargo.toml"),
                        vec![("{{sdk}}", sdk)],
                    ),
                ),
                (
                    "src/lib.rs",
                    template(include_str!("../../templates/rust/src/lib.rs")),
                ),
                (
                    ".gitignore",
                    template(include_str!("../../templates/rust/gitignore")),
                ),
            ]);
        }
        Lang::Js => files.extend([
            (
                "policy.js",
                template(include_str!("../../templates/js/policy.js")),
            ),
            (
                "package.json",
                template(include_str!("../../templates/js/package.json")),
            ),
            (
                ".gitignore",
                template(include_str!("../../templates/js/gitignore")),
            ),
        ]),
        Lang::Python => files.extend([
            (
                "app.py",
                template(include_str!("../../templates/python/app.py")),
            ),
            (
                ".gitignore",
                template(include_str!("../../templates/python/gitignore")),
            ),
        ]),
    }
    Ok(files)
}

/// The Rust SDK's directory, absolute: a Rust project depends on it by path.
fn sdk_path(given: Option<&Path>) -> Result<PathBuf, String> {
    let path = given.unwrap_or(Path::new(SDK));
    std::fs::canonicalize(path)
        .ok()
        .filter(|p| p.join("Cargo.toml").is_file())
        .ok_or_else(|| {
            format!(
                "the Rust SDK (wanwatch-plugin) is not at {}: pass --sdk with the path of plugins/wanwatch-plugin in a wanwatch checkout",
                path.display()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_gets_a_complete_project() {
        let parent = tempfile::tempdir().unwrap();
        for lang in [Lang::Rust, Lang::Js, Lang::Python] {
            let name = format!("p-{}", lang.key());
            let dir = new(&name, lang, parent.path(), None).unwrap();
            let project = super::super::Project::open(&dir).unwrap();
            assert_eq!((project.name.as_str(), project.lang), (name.as_str(), lang));
            for file in walk(&dir) {
                let text = std::fs::read_to_string(&file).unwrap();
                assert!(
                    !text.contains("{{"),
                    "a placeholder is left in {}",
                    file.display()
                );
            }
            let scenario = std::fs::read_to_string(dir.join("scenarios/modem-hang.toml")).unwrap();
            assert!(scenario.contains(&format!("file = \"../dist/{name}.wasm\"")));
        }
        let again = new("p-rust", Lang::Rust, parent.path(), None).unwrap_err();
        assert!(again.contains("exists and is not empty"), "{again}");
        let bad = new("Bad Name", Lang::Rust, parent.path(), None).unwrap_err();
        assert!(bad.contains("lower-case"), "{bad}");
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .unwrap()
            .flat_map(|entry| {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path)
                } else {
                    vec![path]
                }
            })
            .collect()
    }
}
