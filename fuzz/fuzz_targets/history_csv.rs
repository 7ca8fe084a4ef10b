//! The daily probe files (history CSV), as `simulate` replays them: rows
//! read back the same after the recorder writes them again.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wanwatch::fuzzing::history_writer;
use wanwatch::history::{Reader, Row};

fn read(bytes: &[u8]) -> (Vec<(u64, Row)>, bool) {
    let mut reader = Reader::new(bytes);
    let mut rows = Vec::new();
    loop {
        match reader.next_row() {
            Ok(Some(row)) => rows.push(row),
            Ok(None) => return (rows, true),
            Err(e) => {
                assert!(!e.message.is_empty());
                if let (Some(line), Some((last, _))) = (e.line, rows.last()) {
                    assert!(
                        line > *last,
                        "error on line {line}, before row on line {last}"
                    );
                }
                return (rows, false);
            }
        }
    }
}

fuzz_target!(|bytes: &[u8]| {
    let (rows, _) = read(bytes);
    let lines = bytes.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
    for pair in rows.windows(2) {
        assert!(pair[0].0 < pair[1].0, "rows share a line: {pair:?}");
    }
    for (line, _) in &rows {
        assert!((1..=lines).contains(line), "row on line {line} of {lines}");
    }
    let mut out = history_writer(Vec::new());
    for (_, row) in &rows {
        row.write(&mut out)
            .expect("a row that was read can be written");
    }
    let written = out.into_inner().expect("written to memory");
    let (again, complete) = read(&written);
    assert!(complete, "{:?}", String::from_utf8_lossy(&written));
    let again: Vec<Row> = again.into_iter().map(|(_, row)| row).collect();
    let rows: Vec<Row> = rows.into_iter().map(|(_, row)| row).collect();
    assert_eq!(rows, again);
});
