//! The status file (`wanwatch status`, and the daemon resuming): read, it
//! renders, and written again it reads back the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wanwatch::status::StatusFile;

fuzz_target!(|bytes: &[u8]| {
    let dir = wanwatch_fuzz::scratch();
    let file = StatusFile::new(dir.join("status.json"));
    std::fs::write(file.path(), bytes).unwrap();
    let Ok(Some(status)) = file.read() else {
        return;
    };
    for now in [0, status.updated_at_ms, status.since_ms, u64::MAX] {
        let _ = status.render(now);
    }
    file.write(&status).expect("a scratch file is written");
    assert_eq!(file.read().unwrap(), Some(status));
});
