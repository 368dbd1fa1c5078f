//! Fuzz harnesses, shared by the cargo-fuzz targets in `fuzz/` and by the
//! test that replays their seed corpus under `cargo test`. Each harness
//! panics exactly when it finds a bug. Not part of the stable API.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::log::frame::FRAME_HEADER_SIZE;
use crate::log::segment::{SegmentHeader, segment_path};
use crate::testing::FaultyStorage;
use crate::types::SegmentId;
use crate::{Config, Db, Durability, Error, HistoryQuery, Op, TxId};

/// A directory removed on drop (the library has no `tempfile`).
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> ScratchDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("timecask-fuzz-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create scratch dir");
        ScratchDir(path)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Opens whatever is in `dir`; if it opens, everything in it must read and
/// verify without a panic, and a new commit must work.
fn open_and_read_everything(dir: &Path) {
    let Ok(db) = Db::open(dir) else { return };
    if let Ok(log) = db.log(..) {
        for record in log {
            let _ = record;
        }
    }
    let _ = db.verify();
    let view = db.snapshot();
    for table in view.tables() {
        if let Ok(iter) = view.iter(&table) {
            for kv in iter.rev() {
                let _ = kv;
            }
        }
        let _ = view.count(&table);
    }
    let mut tx = db.begin();
    tx.put("fuzz", b"k", b"v").expect("put");
    match tx.commit() {
        Ok(_) | Err(Error::Io { .. }) => {}
        Err(e) => panic!("commit after opening fuzzed files failed: {e}"),
    }
}

/// Raw bytes as segment files. `data[0]` picks the layout: bit 0 puts a
/// valid segment header first (so frames get explored), bit 1 splits the
/// rest into two segments at `data[1]`.
pub fn open_raw_segments(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let dir = ScratchDir::new();
    let with_header = |id: u32, first: u64, body: &[u8]| {
        let mut bytes = Vec::new();
        if mode & 1 == 1 {
            bytes.extend_from_slice(
                &SegmentHeader {
                    id: SegmentId(id),
                    first_txid: TxId(first),
                }
                .encode(),
            );
        }
        bytes.extend_from_slice(body);
        bytes
    };
    if mode & 2 == 2 && !rest.is_empty() {
        let cut = usize::from(rest[0]).min(rest.len() - 1) + 1;
        let (a, b) = rest.split_at(cut);
        std::fs::write(segment_path(&dir.0, SegmentId(1)), with_header(1, 1, a)).expect("write");
        std::fs::write(segment_path(&dir.0, SegmentId(2)), with_header(2, 2, b)).expect("write");
    } else {
        std::fs::write(segment_path(&dir.0, SegmentId(1)), with_header(1, 1, rest)).expect("write");
    }
    open_and_read_everything(&dir.0);
}

/// Payloads wrapped in frames with correct lengths and checksums, so the
/// fuzzer reaches payload decoding and index building. Input: repeated
/// `u8 len | len bytes`; if a payload has 8+ bytes its txid is set to the
/// expected one unless the length byte's top bit is set.
pub fn open_framed_payloads(data: &[u8]) {
    let dir = ScratchDir::new();
    let mut bytes = SegmentHeader {
        id: SegmentId(1),
        first_txid: TxId(1),
    }
    .encode()
    .to_vec();
    let mut rest = data;
    let mut txid = 1u64;
    while let Some((&len_byte, tail)) = rest.split_first() {
        let len = usize::from(len_byte & 0x7f).min(tail.len());
        let mut payload = tail[..len].to_vec();
        rest = &tail[len..];
        if payload.len() >= 8 && len_byte & 0x80 == 0 {
            payload[..8].copy_from_slice(&txid.to_le_bytes());
        }
        txid += 1;
        let mut frame = Vec::with_capacity(FRAME_HEADER_SIZE + payload.len());
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        frame.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        frame.extend_from_slice(&payload);
        bytes.extend_from_slice(&frame);
    }
    std::fs::write(segment_path(&dir.0, SegmentId(1)), bytes).expect("write");
    open_and_read_everything(&dir.0);
}

/// The reference model: key → txid → value (`None`: deleted).
#[derive(Default)]
struct Model {
    versions: BTreeMap<u8, BTreeMap<u64, Option<Vec<u8>>>>,
    latest: u64,
}

impl Model {
    fn get(&self, key: u8, at: u64) -> Option<Vec<u8>> {
        self.versions.get(&key)?.range(..=at).next_back()?.1.clone()
    }

    /// Net changes of `writes` against the latest state.
    fn plan(&self, writes: &BTreeMap<u8, Option<Vec<u8>>>) -> Vec<(u8, Option<Vec<u8>>)> {
        writes
            .iter()
            .filter(|(k, v)| self.get(**k, self.latest) != **v)
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }

    fn apply(&mut self, changes: &[(u8, Option<Vec<u8>>)]) {
        self.latest += 1;
        for (k, v) in changes {
            self.versions
                .entry(*k)
                .or_default()
                .insert(self.latest, v.clone());
        }
    }
}

const VALUES: [&[u8]; 4] = [b"", b"a", b"bb", &[b'c'; 300]];

fn check_state(db: &Db, model: &Model, at: u64) {
    let view = db.as_of(TxId(at)).expect("as_of a committed txid");
    for key in 0..6u8 {
        assert_eq!(
            view.get("t", [key]).expect("get"),
            model.get(key, at),
            "key {key} as of {at}"
        );
    }
}

fn check_history(db: &Db, model: &Model, key: u8) {
    let got = db
        .snapshot()
        .history("t", [key], HistoryQuery::all())
        .expect("history");
    let want: Vec<_> = model
        .versions
        .get(&key)
        .map(|m| m.iter().collect())
        .unwrap_or_default();
    assert_eq!(got.len(), want.len(), "history length of key {key}");
    let mut live = false;
    for (v, (txid, value)) in got.iter().zip(want) {
        assert_eq!((v.txid.0, &v.value), (*txid, value), "history of key {key}");
        let op = match (live, value.is_some()) {
            (false, true) => Op::Insert,
            (true, true) => Op::Update,
            _ => Op::Delete,
        };
        assert_eq!(v.op, op);
        live = value.is_some();
    }
}

/// A sequence of API operations with reopens and injected I/O faults,
/// checked against the model after every step that can change state.
pub fn run_ops(data: &[u8]) {
    let dir = ScratchDir::new();
    let open = |storage: &FaultyStorage| {
        let config = Config {
            durability: Durability::Buffered,
            segment_roll_bytes: 4096,
            storage: Arc::new(storage.clone()),
            ..Config::default()
        };
        Db::open_with(&dir.0, config).expect("open after a clean drop")
    };
    let mut storage = FaultyStorage::default();
    let mut db = open(&storage);
    let mut model = Model::default();
    let mut writes: BTreeMap<u8, Option<Vec<u8>>> = BTreeMap::new();
    // Changes of a failed commit that may or may not have reached the log.
    let mut uncertain: Option<Vec<(u8, Option<Vec<u8>>)>> = None;
    let mut failed = false;
    let mut bytes = data.iter().copied();
    while let Some(op) = bytes.next() {
        let arg = bytes.next().unwrap_or(0);
        match op % 9 {
            0 => {
                writes.insert(arg % 6, Some(VALUES[usize::from(arg / 6 % 4)].to_vec()));
            }
            1 => {
                writes.insert(arg % 6, None);
            }
            2 => {
                let mut tx = db.begin();
                for (k, v) in &writes {
                    match v {
                        Some(v) => tx.put("t", [*k], v).expect("put"),
                        None => {
                            tx.delete("t", [*k]).expect("delete");
                        }
                    }
                }
                if arg & 1 == 1 {
                    tx.set_durability(Durability::Immediate);
                }
                let changes = model.plan(&writes);
                writes.clear();
                match tx.commit() {
                    Ok(Some(txid)) => {
                        // A failed commit before this one did not land.
                        uncertain = None;
                        assert!(!changes.is_empty());
                        assert_eq!(txid, TxId(model.latest + 1));
                        model.apply(&changes);
                    }
                    Ok(None) => assert!(changes.is_empty(), "changes vanished"),
                    // An I/O error means this attempt wrote (part of) its
                    // frame at the next txid: it replaces any earlier
                    // candidate, whose frame was cut off or overwritten.
                    Err(Error::Io { .. }) if failed || storage.armed() => {
                        failed = true;
                        uncertain = (!changes.is_empty()).then_some(changes);
                    }
                    // Refused before writing anything.
                    Err(Error::Poisoned { .. }) if failed || storage.armed() => failed = true,
                    Err(e) => panic!("commit failed with no fault injected: {e}"),
                }
                check_state(&db, &model, model.latest);
            }
            3 => writes.clear(),
            4 => {
                drop(db);
                storage = FaultyStorage::default();
                db = open(&storage);
                if let Some(changes) = uncertain.take()
                    && db.latest_txid() == TxId(model.latest + 1)
                {
                    model.apply(&changes);
                }
                failed = false;
                writes.clear();
                assert_eq!(db.latest_txid(), TxId(model.latest), "txids after reopen");
                check_state(&db, &model, model.latest);
            }
            5 => {
                let at = u64::from(arg) % (model.latest + 2);
                if at > model.latest {
                    assert!(matches!(db.as_of(TxId(at)), Err(Error::FutureTxid { .. })));
                } else {
                    check_state(&db, &model, at);
                }
            }
            6 => storage.arm(|plan| match arg % 3 {
                0 => plan.fail_write_at = Some(1),
                1 => plan.fail_sync_at = Some(1),
                _ => {
                    plan.fail_write_at = Some(1);
                    plan.partial_write_bytes = usize::from(arg);
                    plan.fail_set_len_at = Some(1);
                }
            }),
            7 => check_history(&db, &model, arg % 6),
            // Compaction (possibly hit by an armed fault) changes no answer;
            // after a failure the database stays readable.
            _ => {
                match db.compact() {
                    Ok(_) => {}
                    Err(Error::Io { .. } | Error::Poisoned { .. }) if failed || storage.armed() => {
                        failed = true;
                    }
                    Err(e) => panic!("compaction failed with no fault injected: {e}"),
                }
                check_state(&db, &model, model.latest);
            }
        }
    }
}
