//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};

/// The segment files of the database in `dir`, in order.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "tcseg"))
        .collect();
    paths.sort();
    paths
}
