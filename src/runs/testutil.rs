//! Test doubles for runs: an in-memory storage (fast corruption sweeps)
//! whose files count their reads, and helpers that build runs.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::{MetaRef, RunConfig, RunRange, RunSummary, RunWriter, TxChange, TxEntry, VersionEntry};
use crate::storage::{MappedFile, Storage, StorageFile};
use crate::types::{Op, TableId, Timestamp, TxId};

/// Files in memory; every read through any of them is counted (reads
/// through a map, with `maps`, are not).
#[derive(Debug, Default)]
pub(super) struct MemStorage {
    files: Mutex<HashMap<PathBuf, Arc<MemFile>>>,
    pub reads: Arc<AtomicU64>,
    /// Whether `map_read_only` hands out files' bytes (as `FileStorage`
    /// maps them) or declines (reads go through `read_exact_at`).
    maps: bool,
}

#[derive(Debug)]
pub(super) struct MemFile {
    bytes: Mutex<Vec<u8>>,
    reads: Arc<AtomicU64>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl MemStorage {
    /// A storage that maps files (`maps`).
    pub(super) fn mapping() -> MemStorage {
        MemStorage {
            maps: true,
            ..MemStorage::default()
        }
    }

    pub(super) fn bytes(&self, path: &Path) -> Vec<u8> {
        lock(&lock(&self.files)[path].bytes).clone()
    }

    pub(super) fn put(&self, path: &Path, bytes: Vec<u8>) {
        let file = MemFile {
            bytes: Mutex::new(bytes),
            reads: Arc::clone(&self.reads),
        };
        lock(&self.files).insert(path.to_path_buf(), Arc::new(file));
    }

    pub(super) fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }
}

impl Storage for MemStorage {
    fn open(&self, path: &Path, create_new: bool) -> io::Result<Arc<dyn StorageFile>> {
        let mut files = lock(&self.files);
        match files.get(path) {
            Some(_) if create_new => Err(io::ErrorKind::AlreadyExists.into()),
            Some(f) => Ok(Arc::clone(f) as Arc<dyn StorageFile>),
            None if create_new => {
                let f = Arc::new(MemFile {
                    bytes: Mutex::new(Vec::new()),
                    reads: Arc::clone(&self.reads),
                });
                files.insert(path.to_path_buf(), Arc::clone(&f));
                Ok(f)
            }
            None => Err(io::ErrorKind::NotFound.into()),
        }
    }

    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }

    fn map_read_only(&self, path: &Path) -> io::Result<Option<MappedFile>> {
        if !self.maps {
            return Ok(None);
        }
        let files = lock(&self.files);
        let file = files.get(path).ok_or(io::ErrorKind::NotFound)?;
        Ok(Some(MappedFile::from_bytes(lock(&file.bytes).clone())))
    }
}

impl StorageFile for MemFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let bytes = lock(&self.bytes);
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| bytes.get(start..end))
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut bytes = lock(&self.bytes);
        let start = offset as usize;
        if bytes.len() < start + buf.len() {
            bytes.resize(start + buf.len(), 0);
        }
        bytes[start..start + buf.len()].copy_from_slice(buf);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        lock(&self.bytes).resize(len as usize, 0);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(lock(&self.bytes).len() as u64)
    }
}

/// The commit time of `txid` in test runs.
pub(super) fn time_of(txid: u64) -> Timestamp {
    Timestamp::from_micros(1_000_000 + txid * 10)
}

/// The tx records of `versions` (sorted by key) for every txid of `range`:
/// changes in key order, metadata as given per txid.
pub(super) fn tx_records(
    versions: &[VersionEntry],
    first: u64,
    last: u64,
    meta: impl Fn(u64) -> Vec<u8>,
) -> Vec<TxEntry> {
    let mut txs: Vec<TxEntry> = (first..=last)
        .map(|t| TxEntry {
            txid: TxId(t),
            commit_time: time_of(t),
            meta: meta(t),
            changes: Vec::new(),
        })
        .collect();
    for v in versions {
        txs[(v.txid.0 - first) as usize].changes.push(TxChange {
            table: v.table,
            key: v.key.clone(),
            op: v.op,
        });
    }
    txs
}

/// Builds a run of `versions` (sorted) and `txs` at `path`.
pub(super) fn build(
    storage: &dyn Storage,
    path: &Path,
    config: RunConfig,
    versions: &[VersionEntry],
    txs: &[TxEntry],
) -> RunSummary {
    let first = txs.first().expect("a run has a tx");
    let range = RunRange {
        first_txid: first.txid,
        last_txid: txs.last().expect("a run has a tx").txid,
        first_commit_time: first.commit_time,
    };
    let mut w = RunWriter::create(storage, path, range, config).expect("create");
    for v in versions {
        w.add_version(v).expect("add version");
    }
    for tx in txs {
        w.add_tx(tx).expect("add tx");
    }
    w.finish().expect("finish")
}

/// The metadata section of `{user: <name>}` in the log's encoding.
pub(super) fn meta_of(user: &str) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&1u32.to_le_bytes());
    for s in ["user", user] {
        b.extend_from_slice(&(s.len() as u32).to_le_bytes());
        b.extend_from_slice(s.as_bytes());
    }
    b
}

/// The `MetaRef` every version of a tx with metadata `meta` carries.
pub(super) fn meta_ref(meta: &[u8]) -> MetaRef {
    MetaRef::for_tx_meta(meta)
}

/// A small fixed history: three keys over two tables, eight txids, one of
/// them with no change and one with large (not inline) metadata.
pub(super) fn small_history() -> (Vec<VersionEntry>, Vec<TxEntry>) {
    let big = meta_of(&"y".repeat(300));
    let meta = |t: u64| match t {
        3 => big.clone(),
        5 => super::EMPTY_META.to_vec(),
        _ => meta_of("ann"),
    };
    let plan: [(u32, &[u8], u64, Op); 9] = [
        (0, b"alice", 1, Op::Insert),
        (0, b"alice", 2, Op::Update),
        (0, b"alice", 6, Op::Delete),
        (0, b"alicia", 3, Op::Insert),
        (0, b"alicia", 4, Op::Update),
        (0, b"alicia", 7, Op::Update),
        (1, b"bob", 1, Op::Insert),
        (1, b"bob", 5, Op::Update),
        (1, b"bob", 8, Op::Delete),
    ];
    let versions: Vec<VersionEntry> = plan
        .iter()
        .map(|&(table, key, txid, op)| VersionEntry {
            table: TableId(table),
            key: key.to_vec(),
            txid: TxId(txid),
            op,
            commit_time: time_of(txid),
            meta: meta_ref(&meta(txid)),
            value: (op != Op::Delete).then(|| format!("{{\"v\":{txid}}}").into_bytes()),
        })
        .collect();
    let txs = tx_records(&versions, 1, 9, meta);
    (versions, txs)
}

/// 48 versions of six keys over 20 txids: one block of 4 KiB holds them
/// all, so reads seek through several restart points.
pub(super) fn medium_history() -> (Vec<VersionEntry>, Vec<TxEntry>) {
    let mut versions = Vec::new();
    for table in 0..2u32 {
        for k in 0..3u64 {
            for v in 0..8u64 {
                let txid = 1 + (v * 3 + k * 2 + u64::from(table)) % 20;
                versions.push((table, k, txid, v));
            }
        }
    }
    versions.sort_unstable();
    versions.dedup_by_key(|&mut (table, k, txid, _)| (table, k, txid));
    let versions: Vec<VersionEntry> = versions
        .into_iter()
        .map(|(table, k, txid, v)| VersionEntry {
            table: TableId(table),
            key: format!("key{k}").into_bytes(),
            txid: TxId(txid),
            op: if v == 0 { Op::Insert } else { Op::Update },
            commit_time: time_of(txid),
            meta: meta_ref(&meta_of("ann")),
            value: Some(vec![b'a' + v as u8; 3]),
        })
        .collect();
    let txs = tx_records(&versions, 1, 20, |_| meta_of("ann"));
    (versions, txs)
}
