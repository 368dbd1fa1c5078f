//! Files of a database directory: their size on disk, and their pages in
//! the OS page cache (evicting them for a cold open, and checking).

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// Every regular file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let entry = entry.expect("dir entry");
            let ty = entry.file_type().expect("file type");
            if ty.is_dir() {
                todo.push(entry.path());
            } else if ty.is_file() {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    out
}

/// Sizes of `files`: (apparent bytes, bytes allocated on disk).
pub fn disk_usage(files: &[PathBuf]) -> (u64, u64) {
    let mut apparent = 0;
    let mut allocated = 0;
    for f in files {
        if let Ok(m) = std::fs::metadata(f) {
            apparent += m.len();
            allocated += m.blocks() * 512;
        }
    }
    (apparent, allocated)
}

/// Writes back and drops `files`' pages from the page cache
/// (`fdatasync` + `posix_fadvise(DONTNEED)`): only these files, not the
/// whole machine's cache.
pub fn evict(files: &[PathBuf]) {
    for f in files {
        let Ok(file) = File::open(f) else { continue };
        let fd = file.as_raw_fd();
        // SAFETY: `fd` is an open descriptor owned by `file` for this call.
        unsafe {
            libc::fdatasync(fd);
            libc::posix_fadvise(fd, 0, 0, libc::POSIX_FADV_DONTNEED);
        }
    }
}

/// Fraction of `files`' pages that are in the page cache (`mincore`).
pub fn resident_fraction(files: &[PathBuf]) -> f64 {
    let page = 4096usize;
    let (mut resident, mut total) = (0usize, 0usize);
    for f in files {
        let Ok(file) = File::open(f) else { continue };
        let len = file.metadata().map(|m| m.len() as usize).unwrap_or(0);
        if len == 0 {
            continue;
        }
        let pages = len.div_ceil(page);
        // SAFETY: a read-only shared mapping of an open file, unmapped below;
        // its memory is never touched, only queried with mincore.
        unsafe {
            let addr = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            );
            if addr == libc::MAP_FAILED {
                continue;
            }
            let mut vec = vec![0u8; pages];
            if libc::mincore(addr, len, vec.as_mut_ptr()) == 0 {
                resident += vec.iter().filter(|b| **b & 1 == 1).count();
                total += pages;
            }
            libc::munmap(addr, len);
        }
    }
    if total == 0 {
        0.0
    } else {
        resident as f64 / total as f64
    }
}
