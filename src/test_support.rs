//! Helpers for unit tests.

use std::path::PathBuf;

/// Reads the golden fixture `tests/fixtures/<name>`. With
/// `TIMECASK_BLESS=1` it writes `actual` there first (only ever do that
/// together with a format version bump).
pub(crate) fn golden(name: &str, actual: &[u8]) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    if std::env::var_os("TIMECASK_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().expect("fixture path has a parent"))
            .expect("create fixture dir");
        std::fs::write(&path, actual).expect("write fixture");
    }
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("golden fixture {} missing: {e}", path.display()))
}
