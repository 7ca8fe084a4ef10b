//! The Debian package, installed, upgraded and purged by the real dpkg in a
//! scratch root: the files and their modes, the conffile, the system user
//! and group, the state directory, the units, an upgrade that keeps an
//! edited config, a purge that removes the state.
//!
//! The package is the one `.ci/package` builds, named by `WANWATCH_DEB`;
//! ignored by a plain `cargo test` (no package built yet), run by
//! `.ci/package` with `--ignored`.
//!
//! `dpkg --root --force-script-chrootless`: dpkg runs the maintainer
//! scripts without chroot, with `DPKG_ROOT` naming the root, as Debian's
//! chrootless bootstraps do. The scripts honour it (systemd-sysusers and
//! systemd-tmpfiles with `--root`, deb-systemd-helper), so the scripts a
//! real install runs are the ones tested, and the scratch root needs no
//! copy of a system. A `policy-rc.d` in the root refuses to start
//! anything, as in any image build. dpkg needs root.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use wanwatch_tests::skip;

const CONF: &str = "etc/wanwatch/wanwatch.toml";

/// Runs `command`, panicking with its output if it fails; its stdout.
fn run(command: &mut Command) -> String {
    let out = command.output().expect("start the command");
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `dpkg` acting on the scratch `root`. `--force-depends`: the root holds
/// no other package (the dependencies are checked in the control file).
fn dpkg(root: &Path, args: &[&str]) -> String {
    run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args(["--force-script-chrootless", "--force-depends"])
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// An empty root with a dpkg database, the base system's accounts and a
/// policy that starts no service.
fn scratch_root(root: &Path) {
    for dir in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/dpkg/triggers",
        "var/log",
        "usr/sbin",
        "etc",
    ] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    let files = [
        ("etc/passwd", "root:x:0:0:root:/root:/bin/bash\n", 0o644),
        ("etc/group", "root:x:0:\n", 0o644),
        ("etc/shadow", "root:*:20000:0:99999:7:::\n", 0o640),
        ("etc/gshadow", "root:*::\n", 0o640),
        ("usr/sbin/policy-rc.d", "#!/bin/sh\nexit 101\n", 0o755),
    ];
    for (path, text, mode) in files {
        std::fs::write(root.join(path), text).unwrap();
        std::fs::set_permissions(root.join(path), std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

/// The `name` entry of a passwd or group file: its fields.
fn entry(file: &Path, name: &str) -> Option<Vec<String>> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(|l| l.split(':').map(str::to_owned).collect::<Vec<_>>())
        .find(|fields| fields[0] == name)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().mode() & 0o7777
}

/// The package rebuilt as a later version, its shipped config changed too
/// when `new_config`: what an upgrade brings.
fn later_version(deb: &Path, dir: &Path, new_config: Option<&str>) -> PathBuf {
    let tree = dir.join("tree");
    let _ = std::fs::remove_dir_all(&tree);
    run(Command::new("dpkg-deb").arg("-R").arg(deb).arg(&tree));
    let control = tree.join("DEBIAN/control");
    let text = std::fs::read_to_string(&control).unwrap();
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("Version: "))
        .unwrap()
        .to_owned();
    std::fs::write(
        &control,
        text.replace(
            &format!("Version: {version}"),
            &format!("Version: {version}+upgrade"),
        ),
    )
    .unwrap();
    if let Some(config) = new_config {
        std::fs::write(tree.join(CONF), config).unwrap();
    }
    let out = dir.join("wanwatch-upgrade.deb");
    // Uncompressed: compressing the binary again would take most of the test.
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Znone", "-b"])
        .arg(&tree)
        .arg(&out));
    out
}

#[test]
#[ignore = "needs the package: run by .ci/package with WANWATCH_DEB"]
fn installs_upgrades_and_purges_in_a_scratch_root() {
    let Some(deb) = std::env::var_os("WANWATCH_DEB").map(PathBuf::from) else {
        skip("WANWATCH_DEB names no package (.ci/package builds it and sets it)");
        return;
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        skip("dpkg installs only as root");
        return;
    }

    // The control file: the conffile is marked as one; the dependencies
    // were computed ($auto found libc) and name what the scripts run.
    let control = tempfile::tempdir().unwrap();
    run(Command::new("dpkg-deb")
        .arg("-e")
        .arg(&deb)
        .arg(control.path()));
    let conffiles = std::fs::read_to_string(control.path().join("conffiles")).unwrap();
    assert_eq!(
        conffiles.lines().collect::<Vec<_>>(),
        ["/etc/wanwatch/wanwatch.toml"]
    );
    let depends = run(Command::new("dpkg-deb").arg("-f").arg(&deb).arg("Depends"));
    for needed in ["libc6", "systemd-sysusers", "systemd-tmpfiles"] {
        assert!(
            depends.contains(needed),
            "Depends lacks {needed}: {depends}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    scratch_root(&root);
    dpkg(&root, &["--install", deb.to_str().unwrap()]);

    // The files, with their modes.
    let binary = root.join("usr/bin/wanwatch");
    assert_eq!(mode(&binary), 0o755);
    let version = run(Command::new(&binary).arg("--version"));
    assert!(
        version.starts_with(&format!("wanwatch {}", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    let units = ["lib/systemd/system", "usr/lib/systemd/system"]
        .iter()
        .map(|dir| root.join(dir))
        .find(|dir| dir.join("wanwatch.service").is_file())
        .expect("wanwatch.service installed");
    assert!(units.join("wanwatch-watcher.service").is_file());
    for doc in ["README.md", "copyright", "examples/wanwatch.toml"] {
        assert!(
            root.join("usr/share/doc/wanwatch").join(doc).is_file(),
            "{doc}"
        );
    }

    // The system user and group, made by the postinst.
    let user = entry(&root.join("etc/passwd"), "wanwatch").expect("a wanwatch user");
    let group = entry(&root.join("etc/group"), "wanwatch").expect("a wanwatch group");
    let (uid, gid): (u32, u32) = (user[2].parse().unwrap(), group[2].parse().unwrap());
    assert!(uid > 0 && uid < 1000, "a system user: {user:?}");
    assert_eq!(user[3], group[2], "the user's group is its own");
    assert_eq!(user[5], "/var/lib/wanwatch");
    assert!(user[6].ends_with("nologin"), "no login shell: {user:?}");

    // The config: a secret-holding conffile, readable by the daemon's group
    // only; the state directory the daemon's.
    let conf = root.join(CONF);
    assert_eq!(mode(&conf), 0o640);
    let meta = std::fs::metadata(&conf).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (0, gid));
    let state = root.join("var/lib/wanwatch");
    assert_eq!(mode(&state), 0o750);
    let meta = std::fs::metadata(&state).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (uid, gid));
    let listed =
        std::fs::read_to_string(root.join("var/lib/dpkg/info/wanwatch.conffiles")).unwrap();
    assert!(listed.contains("/etc/wanwatch/wanwatch.toml"), "{listed}");
    run(Command::new(&binary).args(["check", "--config"]).arg(&conf));

    // The daemon's unit enabled, as a Debian daemon's is; the watcher's
    // installed but not.
    let wants = root.join("etc/systemd/system/multi-user.target.wants");
    assert!(wants.join("wanwatch.service").is_symlink());
    assert!(!wants.join("wanwatch-watcher.service").exists());
    // The installed unit verifies, its binary the installed one (the root
    // has no systemd of its own to verify against: the machine's checks it).
    let unit = std::fs::read_to_string(units.join("wanwatch.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/wanwatch run"), "{unit}");
    let verified = dir.path().join("wanwatch.service");
    std::fs::write(
        &verified,
        unit.replace("/usr/bin/wanwatch", binary.to_str().unwrap()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&verified)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "{stderr}");

    // An upgrade keeps the user's edit: silently when the package's config
    // did not change, and with --force-confold (what an unattended upgrade
    // passes) when it did, the package's new one put beside it.
    let shipped = std::fs::read_to_string(&conf).unwrap();
    let edited = format!("{shipped}\n[probe]\ninterval = \"3s\"  # edited\n");
    std::fs::write(&conf, &edited).unwrap();
    let upgrade = later_version(&deb, dir.path(), None);
    dpkg(&root, &["--install", upgrade.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), edited);
    let changed = format!("{shipped}\n# a later version's config\n");
    let upgrade = later_version(&deb, dir.path(), Some(&changed));
    dpkg(
        &root,
        &["--force-confold", "--install", upgrade.to_str().unwrap()],
    );
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), edited);
    assert_eq!(
        std::fs::read_to_string(root.join("etc/wanwatch/wanwatch.toml.dpkg-dist")).unwrap(),
        changed
    );
    assert_eq!(mode(&conf), 0o640);
    assert_eq!(std::fs::metadata(&conf).unwrap().gid(), gid);
    assert_eq!(
        entry(&root.join("etc/passwd"), "wanwatch").unwrap()[2],
        uid.to_string(),
        "the same user after the upgrade"
    );

    // Purge: the state and the config go, the account stays (see
    // debian/postrm), the unit is no longer enabled.
    std::fs::write(state.join("status.json"), "{}").unwrap();
    dpkg(&root, &["--purge", "wanwatch"]);
    assert!(!state.exists());
    assert!(!conf.exists());
    assert!(!binary.exists());
    assert!(!wants.join("wanwatch.service").exists());
    assert!(entry(&root.join("etc/passwd"), "wanwatch").is_some());
}
