//! What the fuzz targets share: checks on located errors, and a scratch
//! directory for the parsers that read files.

use std::path::{Path, PathBuf};

use wanwatch::config::ConfigError;

/// Every located error points inside `text`: a line it has, a column on it.
pub fn assert_located(text: &str, errors: &[ConfigError]) {
    assert!(!errors.is_empty(), "an Err without errors");
    let lines: Vec<&str> = text.split('\n').collect();
    for e in errors {
        assert!(!e.message.is_empty(), "{e:?}");
        if let Some((line, column)) = e.position {
            assert!(
                line >= 1 && line <= lines.len(),
                "{e:?} in {} lines",
                lines.len()
            );
            let width = lines[line - 1].chars().count();
            assert!(
                column >= 1 && column <= width + 1,
                "{e:?}: line {line} is {width} wide"
            );
        }
        let _ = e.to_string();
    }
}

/// A directory of this process's own, emptied for each input: on a tmpfs
/// when there is one, as the parsers that read files fsync what they write.
pub fn scratch() -> PathBuf {
    let base = Path::new("/dev/shm");
    let base = if base.is_dir() {
        base.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("wanwatch-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}
