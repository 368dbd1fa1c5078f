//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};

/// The segment files of the database in `dir`, in order.
#[allow(
    dead_code,
    reason = "not every test file that includes this module uses it"
)]
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "tcseg"))
        .collect();
    paths.sort();
    paths
}

/// How many history-run files (`*.tcrun`) the database in `dir` holds.
#[allow(
    dead_code,
    reason = "not every test file that includes this module uses it"
)]
pub fn run_file_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .expect("read dir")
        .filter(|e| {
            e.as_ref()
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .ends_with(".tcrun")
        })
        .count()
}

/// Where the valid frames of the segment file at `path` end: its logical
/// end. While a writer has the segment open, the file is longer by the
/// zeros preallocated after its frames.
#[allow(
    dead_code,
    reason = "not every test file that includes this module uses it"
)]
pub fn frames_end(path: &Path) -> u64 {
    let bytes = std::fs::read(path).expect("read segment");
    let u32_at =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let mut at = 32;
    while at + 8 <= bytes.len() {
        let len = u32_at(at) as usize;
        let end = at + 8 + len;
        if len < 32 || end > bytes.len() || crc32fast::hash(&bytes[at + 8..end]) != u32_at(at + 4) {
            break;
        }
        at = end;
    }
    at as u64
}
