//! Runs against a model: every point read, history window and tx record of
//! a run built from random versions matches a `BTreeMap`; merges equal a
//! run built from all their inputs; damage is `Corrupt`, never wrong data.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;

use super::testutil::{
    MemStorage, build, medium_history, meta_of, meta_ref, small_history, time_of, tx_records,
};
use super::{
    BlockCache, Compression, Direction, Run, RunConfig, RunRange, RunWriter, TxEntry, VersionEntry,
    merge,
};
use crate::error::Error;
use crate::types::{Op, TableId, Timestamp, TxId};

pub(super) type Model = BTreeMap<(TableId, Vec<u8>), BTreeMap<TxId, VersionEntry>>;

pub(super) fn model_of(versions: &[VersionEntry]) -> Model {
    let mut m = Model::new();
    for v in versions {
        m.entry((v.table, v.key.clone()))
            .or_default()
            .insert(v.txid, v.clone());
    }
    m
}

pub(super) fn config(block_target_bytes: usize, zstd: bool) -> RunConfig {
    RunConfig {
        block_target_bytes,
        compression: if zstd {
            Compression::Zstd { level: 3 }
        } else {
            Compression::None
        },
        bloom_bits_per_key: 10,
        // Tiny index pages, so every index of more than a few blocks has
        // several (and the damage sweeps cover pages and top tables).
        index_page_entries: 3,
    }
}

/// Codec `i % 3`: none, zstd, lz4.
pub(super) fn codec(i: u8) -> Compression {
    match i % 3 {
        0 => Compression::None,
        1 => Compression::Zstd { level: 3 },
        _ => Compression::Lz4,
    }
}

/// The expected history window answer.
pub(super) fn model_history(
    chain: &BTreeMap<TxId, VersionEntry>,
    from: u64,
    to: u64,
    limit: usize,
    dir: Direction,
) -> Vec<VersionEntry> {
    let mut out: Vec<VersionEntry> = chain
        .range(..=TxId(from))
        .next_back()
        .map(|(_, v)| v.clone())
        .into_iter()
        .collect();
    if from < to {
        out.extend(
            chain
                .range(TxId(from + 1)..=TxId(to))
                .map(|(_, v)| v.clone()),
        );
    }
    if dir == Direction::Reverse {
        out.reverse();
    }
    out.truncate(limit);
    out
}

/// Every read of `run` agrees with the model built from `versions`/`txs`.
#[track_caller]
pub(super) fn check_run(run: &Run, versions: &[VersionEntry], txs: &[TxEntry]) {
    let model = model_of(versions);
    let last = txs.last().expect("tx").txid.0;
    let absent = [(TableId(0), b"absent".to_vec()), (TableId(9), Vec::new())];
    let keys = model.keys().cloned().chain(absent);
    for (table, key) in keys {
        let empty = BTreeMap::new();
        let chain = model.get(&(table, key.clone())).unwrap_or(&empty);
        for t in 0..=last + 1 {
            let expected = chain.range(..=TxId(t)).next_back().map(|(_, v)| v.clone());
            assert_eq!(
                run.get_at(table, &key, TxId(t)).expect("get_at"),
                expected,
                "get_at {key:?} at {t}"
            );
        }
        for from in 0..=last + 1 {
            for to in [from, from + 1, from + 3, last + 1] {
                for limit in [1, 2, usize::MAX] {
                    for dir in [Direction::Forward, Direction::Reverse] {
                        let got = run
                            .history(table, &key, TxId(from)..=TxId(to), limit, dir)
                            .expect("history");
                        assert_eq!(
                            got,
                            model_history(chain, from, to, limit, dir),
                            "history {key:?} {from}..={to} {limit} {dir:?}"
                        );
                    }
                }
            }
        }
    }
    let first = txs[0].txid.0;
    for t in 0..=last + 1 {
        let expected = (first..=last)
            .contains(&t)
            .then(|| txs[(t - first) as usize].clone());
        assert_eq!(run.tx(TxId(t)).expect("tx"), expected, "tx {t}");
        // Test times are 10 µs apart: at a commit time and just after it.
        for time in [
            time_of(t),
            Timestamp::from_micros(time_of(t).as_micros() + 5),
        ] {
            let expected = (t >= first).then_some(TxId(t.min(last)));
            assert_eq!(
                run.txid_at_time(time).expect("at time"),
                expected,
                "txid_at_time {t}"
            );
        }
    }
    let all: Vec<VersionEntry> = run.iter().collect::<Result<_, _>>().expect("iter");
    assert_eq!(all, versions);
    let all_txs: Vec<TxEntry> = run.tx_iter().collect::<Result<_, _>>().expect("tx_iter");
    assert_eq!(all_txs, txs);
    let summary = run.verify().expect("verify");
    assert_eq!(summary, run.summary());
    assert!(run.summary_bytes() > 0 && !run.path().as_os_str().is_empty());
    assert_eq!(summary.n_versions, versions.len() as u64);
    assert_eq!(summary.n_keys, model.len() as u64);
}

/// Random transactions: per txid, a few changes to keys of three tables.
fn arb_history(max_txs: usize) -> impl Strategy<Value = (Vec<VersionEntry>, Vec<TxEntry>)> {
    let change = (
        0u32..3,
        prop::collection::vec(prop::sample::select(&b"ab\x00\xff"[..]), 0..4),
        0u8..3,
        prop::collection::vec(any::<u8>(), 0..40),
    );
    let tx = (prop::collection::vec(change, 0..4), 0u8..3);
    prop::collection::vec(tx, 1..max_txs).prop_map(|txs| {
        let mut versions = Vec::new();
        let mut metas = Vec::new();
        for (i, (changes, meta_kind)) in txs.into_iter().enumerate() {
            let txid = i as u64 + 1;
            let meta = match meta_kind {
                0 => super::EMPTY_META.to_vec(),
                1 => meta_of("ann"),
                _ => meta_of(&"x".repeat(300)),
            };
            let mut seen = std::collections::BTreeSet::new();
            for (table, key, op, value) in changes {
                if !seen.insert((table, key.clone())) {
                    continue;
                }
                let op = [Op::Insert, Op::Update, Op::Delete][op as usize];
                versions.push(VersionEntry {
                    table: TableId(table),
                    key,
                    txid: TxId(txid),
                    op,
                    commit_time: time_of(txid),
                    meta: meta_ref(&meta),
                    value: (op != Op::Delete).then_some(value),
                });
            }
            metas.push(meta);
        }
        versions.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        let n = metas.len() as u64;
        let txs = tx_records(&versions, 1, n, |t| metas[(t - 1) as usize].clone());
        (versions, txs)
    })
}

pub(super) fn open(storage: &MemStorage, path: &Path) -> Result<Run, Error> {
    Run::open(storage, path, 1, Arc::new(BlockCache::new(1 << 20)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn a_run_answers_every_read_like_the_model(
        (versions, txs) in arb_history(24),
        small in any::<bool>(),
        codec_id in 0u8..3,
        maps in any::<bool>(),
    ) {
        let storage = if maps { MemStorage::mapping() } else { MemStorage::default() };
        let path = Path::new("1.tcrun");
        let cfg = RunConfig { compression: codec(codec_id), ..config(if small { 64 } else { 4096 }, false) };
        build(&storage, path, cfg, &versions, &txs);
        check_run(&open(&storage, path).expect("open"), &versions, &txs);
    }

    #[test]
    fn merging_adjacent_runs_equals_building_from_all_and_keep_drops_versions(
        (versions, txs) in arb_history(24),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 1..4),
        codec_id in 0u8..3,
        filter in any::<bool>(),
    ) {
        let n = txs.len() as u64;
        let cfg = RunConfig { compression: codec(codec_id), ..config(64, false) };
        let storage = MemStorage::default();
        // Part boundaries: the first txid of every part after the first.
        let mut starts: Vec<u64> = cuts.iter().map(|c| 2 + c.index(n as usize) as u64).filter(|&s| s <= n).collect();
        starts.sort_unstable();
        starts.dedup();
        let mut bounds = vec![1];
        bounds.extend(starts);
        bounds.push(n + 1);
        let mut runs = Vec::new();
        for (i, w) in bounds.windows(2).enumerate() {
            let part: Vec<VersionEntry> = versions.iter().filter(|v| (w[0]..w[1]).contains(&v.txid.0)).cloned().collect();
            let path = format!("part{i}.tcrun");
            build(&storage, Path::new(&path), cfg, &part, &txs[(w[0] - 1) as usize..(w[1] - 1) as usize]);
            runs.push(Run::open(&storage, Path::new(&path), i as u64, Arc::new(BlockCache::new(0))).expect("open part"));
        }
        let keep = |e: &VersionEntry, next: Option<&VersionEntry>| !filter || next.is_none() || !(e.txid.0 + e.key.len() as u64).is_multiple_of(3);
        let range = RunRange { first_txid: TxId(1), last_txid: TxId(n), first_commit_time: time_of(1) };
        let out = RunWriter::create(&storage, Path::new("merged.tcrun"), range, cfg).expect("create");
        let inputs: Vec<&Run> = runs.iter().collect();
        merge(&inputs, out, keep).expect("merge");
        // The expected run: the versions `keep` accepts, their changes only.
        let kept: Vec<VersionEntry> = versions.iter().enumerate().filter(|(i, v)| {
            let next = versions.get(i + 1).filter(|n| n.table == v.table && n.key == v.key);
            keep(v, next)
        }).map(|(_, v)| v.clone()).collect();
        let kept_txs = tx_records(&kept, 1, n, |t| txs[(t - 1) as usize].meta.clone());
        build(&storage, Path::new("direct.tcrun"), cfg, &kept, &kept_txs);
        prop_assert_eq!(storage.bytes(Path::new("merged.tcrun")), storage.bytes(Path::new("direct.tcrun")));
        check_run(&open(&storage, Path::new("merged.tcrun")).expect("open"), &kept, &kept_txs);
    }
}

/// A mapped run answers point reads and histories from its map, group by
/// group, without one read call; the same run unmapped answers the same.
#[test]
fn a_mapped_run_reads_groups_from_the_map_without_read_calls() {
    let (versions, txs) = medium_history();
    for codec_id in 0..3 {
        let cfg = RunConfig {
            compression: codec(codec_id),
            ..config(4096, false)
        };
        let mapped = MemStorage::mapping();
        build(&mapped, Path::new("r"), cfg, &versions, &txs);
        let run = open(&mapped, Path::new("r")).expect("open");
        let after_open = mapped.reads();
        let model = model_of(&versions);
        for ((table, key), chain) in &model {
            for t in 0..=txs.len() as u64 + 1 {
                let expected = chain.range(..=TxId(t)).next_back().map(|(_, v)| v.clone());
                assert_eq!(run.get_at(*table, key, TxId(t)).expect("get"), expected);
            }
            let all = run
                .history(
                    *table,
                    key,
                    TxId::ZERO..=TxId(u64::MAX),
                    usize::MAX,
                    Direction::Forward,
                )
                .expect("history");
            assert_eq!(all, chain.values().cloned().collect::<Vec<_>>());
        }
        assert_eq!(mapped.reads(), after_open, "codec {codec_id}: a read call");
        let unmapped = MemStorage::default();
        unmapped.put(Path::new("r"), mapped.bytes(Path::new("r")));
        check_run(
            &open(&unmapped, Path::new("r")).expect("open"),
            &versions,
            &txs,
        );
        check_run(&run, &versions, &txs);
    }
}

/// Runs written in format 1 (version blocks framed whole) and format 2
/// (flat block indexes) keep reading back; their bytes are pinned as they
/// were.
#[test]
fn format_1_and_2_fixture_runs_read_back() {
    let (versions, txs) = small_history();
    let storage = MemStorage::default();
    for version in [1u32, 2] {
        for name in [
            "run-small.tcrun",
            "run-small-lz4.tcrun",
            "run-small-zstd.tcrun",
        ] {
            let bytes = std::fs::read(
                std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join(format!("tests/fixtures/v{version}"))
                    .join(name),
            )
            .expect("fixture");
            assert_eq!(
                u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")),
                version,
                "{name}"
            );
            storage.put(Path::new(name), bytes);
            let run = open(&storage, Path::new(name)).expect("open");
            check_run(&run, &versions, &txs);
            assert_eq!(
                run.verify().expect("verify").n_versions,
                versions.len() as u64
            );
            // Grouped blocks (kind 3 at byte 4 of a block) only from format 2.
            let stored = storage.bytes(Path::new(name));
            assert!(
                run.vindex
                    .all_entries(&run)
                    .iter()
                    .all(|e| (stored[e.handle.offset as usize + 4] == 3) == (version >= 2)),
                "v{version} {name}"
            );
        }
    }
}

#[test]
fn golden_run_bytes_v3() {
    let (versions, txs) = small_history();
    let storage = MemStorage::default();
    let path = Path::new("run-small.tcrun");
    build(&storage, path, config(64, false), &versions, &txs);
    let bytes = storage.bytes(path);
    let golden = crate::test_support::golden("v3/run-small.tcrun", &bytes);
    assert_eq!(
        bytes, golden,
        "run bytes changed: bump the run format version"
    );
    // The pinned file reads back as the history it was built from.
    storage.put(Path::new("fixture.tcrun"), golden);
    check_run(
        &open(&storage, Path::new("fixture.tcrun")).expect("open"),
        &versions,
        &txs,
    );
}

/// An LZ4 run written by this version keeps reading back (bytes not
/// compared, as for zstd: only the block format is pinned).
#[test]
fn lz4_fixture_run_reads_back() {
    let (versions, txs) = small_history();
    let storage = MemStorage::default();
    let cfg = RunConfig {
        compression: Compression::Lz4,
        ..config(64, false)
    };
    build(&storage, Path::new("new"), cfg, &versions, &txs);
    let fixture =
        crate::test_support::golden("v3/run-small-lz4.tcrun", &storage.bytes(Path::new("new")));
    storage.put(Path::new("fixture"), fixture);
    let run = open(&storage, Path::new("fixture")).expect("open");
    check_run(&run, &versions, &txs);
    // Every version block is grouped, and at least one group is stored
    // as LZ4 (codec 2).
    let bytes = storage.bytes(Path::new("fixture"));
    let mut codecs = Vec::new();
    for e in &run.vindex.all_entries(&run) {
        let at = e.handle.offset as usize;
        let stored = &bytes[at..at + e.handle.len as usize];
        let block = super::grouped::GroupedBlock::parse(stored)
            .expect("valid")
            .expect("grouped");
        codecs.extend(block.codecs());
    }
    assert!(codecs.contains(&2), "no LZ4 group: {codecs:?}");
}

/// A zstd run written by this version keeps reading back, whatever zstd
/// version wrote it (its bytes are not compared: another zstd may compress
/// differently without any change to the format).
#[test]
fn zstd_fixture_run_reads_back() {
    let (versions, txs) = small_history();
    let storage = MemStorage::default();
    build(
        &storage,
        Path::new("new"),
        config(64, true),
        &versions,
        &txs,
    );
    let fixture =
        crate::test_support::golden("v3/run-small-zstd.tcrun", &storage.bytes(Path::new("new")));
    assert!(
        fixture.windows(4).any(|w| w == [0x28, 0xb5, 0x2f, 0xfd]),
        "has a zstd frame"
    );
    storage.put(Path::new("fixture"), fixture);
    check_run(
        &open(&storage, Path::new("fixture")).expect("open"),
        &versions,
        &txs,
    );
}

#[test]
fn a_key_the_filter_rules_out_reads_no_block() {
    let versions = inserts_at_txid_1(2000);
    let txs = tx_records(&versions, 1, 1, |_| super::EMPTY_META.to_vec());
    let storage = MemStorage::default();
    build(
        &storage,
        Path::new("r"),
        config(1024, true),
        &versions,
        &txs,
    );
    let run = Run::open(&storage, Path::new("r"), 1, Arc::new(BlockCache::new(0))).expect("open");
    let before = storage.reads();
    for k in 0..1000u32 {
        let key = format!("nope-{k:05}");
        assert_eq!(
            run.get_at(TableId(0), key.as_bytes(), TxId(1))
                .expect("get"),
            None
        );
    }
    let absent_reads = storage.reads() - before;
    // The first 8 cost a block read each, then the filter is read (one
    // more), after which about 1% of absent keys pass a 10-bit filter and
    // cost one block read.
    assert!(
        absent_reads <= 30,
        "{absent_reads} reads for 1000 absent keys"
    );
    for (round, most) in [(0, 2), (1, 1)] {
        let before = storage.reads();
        assert!(
            run.get_at(TableId(0), b"key-00042", TxId(1))
                .expect("get")
                .is_some()
        );
        // The first read may also read the block's index page; no cache,
        // so the second reads the block again (the counter works).
        let reads = storage.reads() - before;
        assert!(
            (1..=most).contains(&reads),
            "a present key's read {round}: {reads} reads"
        );
    }
}

#[test]
fn a_run_with_restart_points_answers_like_the_model() {
    let (versions, txs) = medium_history();
    let storage = MemStorage::default();
    let summary = build(
        &storage,
        Path::new("r"),
        config(4096, true),
        &versions,
        &txs,
    );
    assert_eq!(
        summary.n_version_blocks, 1,
        "one block with several restart points"
    );
    assert!(versions.len() > 2 * super::block::RESTART_INTERVAL as usize);
    check_run(
        &open(&storage, Path::new("r")).expect("open"),
        &versions,
        &txs,
    );
}

#[test]
fn cached_blocks_are_served_without_a_read() {
    let (versions, txs) = small_history();
    let storage = MemStorage::default();
    build(
        &storage,
        Path::new("r"),
        config(4096, true),
        &versions,
        &txs,
    );
    let run = open(&storage, Path::new("r")).expect("open");
    let first = run.get_at(TableId(0), b"alice", TxId(9)).expect("get");
    let before = storage.reads();
    let again = run.get_at(TableId(0), b"alice", TxId(9)).expect("get");
    assert_eq!((storage.reads() - before, again), (0, first));
}

#[test]
fn an_entry_larger_than_the_block_target_gets_a_block_of_its_own() {
    let big_key = vec![b'k'; crate::limits::KEY_SIZE_MAX];
    let versions: Vec<VersionEntry> = [(b"a".to_vec(), 1), (big_key, 2)]
        .into_iter()
        .map(|(key, txid)| VersionEntry {
            table: TableId(0),
            key,
            txid: TxId(txid),
            op: Op::Insert,
            commit_time: time_of(txid),
            meta: super::MetaRef::None,
            value: Some(vec![txid as u8; 200 * 1024]),
        })
        .collect();
    let txs = tx_records(&versions, 1, 2, |_| super::EMPTY_META.to_vec());
    let storage = MemStorage::default();
    let summary = build(&storage, Path::new("r"), config(64, true), &versions, &txs);
    assert_eq!(summary.n_version_blocks, 2);
    check_run(
        &open(&storage, Path::new("r")).expect("open"),
        &versions,
        &txs,
    );
}

#[test]
fn runs_and_the_cache_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Run>();
    assert_send_sync::<BlockCache>();
}

#[test]
fn txid_at_time_finds_the_last_of_equal_commit_times_across_tx_blocks() {
    let txs: Vec<TxEntry> = (1..=10)
        .map(|t| TxEntry {
            txid: TxId(t),
            commit_time: Timestamp::from_micros(if t < 3 { 100 } else { 500 }),
            meta: meta_of("ann"),
            changes: Vec::new(),
        })
        .collect();
    let storage = MemStorage::default();
    let summary = build(&storage, Path::new("r"), config(64, false), &[], &txs);
    assert!(summary.n_tx_blocks >= 3, "records span tx blocks");
    let run = open(&storage, Path::new("r")).expect("open");
    let at = |micros| {
        run.txid_at_time(Timestamp::from_micros(micros))
            .expect("at time")
    };
    assert_eq!(
        (at(99), at(100), at(499), at(500)),
        (None, Some(TxId(2)), Some(TxId(2)), Some(TxId(10)))
    );
    assert_eq!(run.verify().expect("verify").n_versions, 0);
}

#[test]
fn a_merge_that_drops_every_version_keeps_every_tx_record() {
    let (versions, txs) = small_history();
    let storage = MemStorage::default();
    build(&storage, Path::new("in"), config(64, true), &versions, &txs);
    let input = open(&storage, Path::new("in")).expect("open");
    let range = RunRange {
        first_txid: TxId(1),
        last_txid: TxId(9),
        first_commit_time: time_of(1),
    };
    let out =
        RunWriter::create(&storage, Path::new("out"), range, config(64, true)).expect("create");
    let summary = merge(&[&input], out, |_, _| false).expect("merge");
    assert_eq!(
        (summary.n_versions, summary.n_keys, summary.n_txs),
        (0, 0, 9)
    );
    let run = open(&storage, Path::new("out")).expect("open");
    let emptied: Vec<TxEntry> = txs
        .iter()
        .map(|t| TxEntry {
            changes: Vec::new(),
            ..t.clone()
        })
        .collect();
    check_run(&run, &[], &emptied);
}

/// Opening a format-3 run reads its header, footer and the two top tables,
/// whatever its size; a point read then loads the one index page it needs
/// (kept for later reads) and its block.
#[test]
fn open_reads_the_top_tables_and_a_read_loads_one_index_page() {
    let versions = inserts_at_txid_1(600);
    let txs = tx_records(&versions, 1, 1, |_| super::EMPTY_META.to_vec());
    let storage = MemStorage::default();
    build(&storage, Path::new("r"), config(64, false), &versions, &txs);
    let before = storage.reads();
    let run = Run::open(&storage, Path::new("r"), 1, Arc::new(BlockCache::new(0))).expect("open");
    assert_eq!(
        storage.reads() - before,
        4,
        "header, footer, two top tables"
    );
    let pages = run.vindex.page_refs().len();
    assert!(pages > 50, "{pages} version index pages");
    assert!((0..pages).all(|p| !run.vindex.page_loaded(p)));
    let before = storage.reads();
    let got = run.get_at(TableId(0), b"key-00300", TxId(1)).expect("get");
    assert_eq!(got.as_ref().map(|e| &e.key[..]), Some(&b"key-00300"[..]));
    assert_eq!(storage.reads() - before, 2, "one index page and one block");
    let loaded: Vec<usize> = (0..pages).filter(|&p| run.vindex.page_loaded(p)).collect();
    assert_eq!(loaded.len(), 1, "{loaded:?}");
    let before = storage.reads();
    run.get_at(TableId(0), b"key-00300", TxId(1))
        .expect("get again");
    assert_eq!(storage.reads() - before, 1, "the page stays loaded");
    check_run(&run, &versions, &txs);
}

/// `n` keys `key-00000`, `key-00001`, ... of table 0, each inserted at
/// txid 1 with a 10-byte value.
fn inserts_at_txid_1(n: u32) -> Vec<VersionEntry> {
    (0..n)
        .map(|k| VersionEntry {
            table: TableId(0),
            key: format!("key-{k:05}").into_bytes(),
            txid: TxId(1),
            op: Op::Insert,
            commit_time: time_of(1),
            meta: super::MetaRef::None,
            value: Some(vec![7; 10]),
        })
        .collect()
}

/// LZ4 bodies that are not what the writer made (their CRC would have to
/// be forged to get here) are errors: no panic, no read outside the input
/// and no output from outside what the block itself wrote (a match
/// reaching before the start, RUSTSEC-2026-0041's case).
#[test]
fn malformed_lz4_bodies_are_errors() {
    let mut out = vec![0xAA; 64];
    // One literal, then a match 65,535 bytes back.
    let before_start = [0x10, b'a', 0xFF, 0xFF];
    assert!(super::block::decompress_into(2, &before_start, &mut out).is_err());
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for len in 0..2000usize {
        let body: Vec<u8> = (0..len % 97)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let mut out = vec![0; len % 61];
        // Either an error or exactly the output length: never a panic.
        let _ = super::block::decompress_into(2, &body, &mut out);
    }
}
