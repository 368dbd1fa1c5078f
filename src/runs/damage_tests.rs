//! Damaged runs: every flipped bit and every truncation of a small run is
//! `Corrupt` on open, on a read or on verify, never wrong data or a panic;
//! foreign files are `Corrupt`, newer ones `UnsupportedFormat`.

use std::path::Path;

use super::tests::{config, model_history, model_of, open};
use super::testutil::{MemStorage, build, medium_history, small_history};
use super::{Direction, RunConfig, TxEntry, VersionEntry};
use crate::error::Error;
use crate::types::TxId;

/// Every read of a damaged run is `Corrupt` or exactly the right answer,
/// and `verify` (or `open`) reports every flipped bit.
#[track_caller]
fn check_damaged(
    storage: &MemStorage,
    path: &Path,
    versions: &[VersionEntry],
    txs: &[TxEntry],
    what: &str,
) {
    let run = match open(storage, path) {
        Ok(run) => run,
        Err(Error::Corrupt { .. }) => return,
        Err(e) => panic!("{what}: open failed with {e}"),
    };
    let is_corrupt = |e: &Error| matches!(e, Error::Corrupt { .. });
    let model = model_of(versions);
    let last = txs.len() as u64;
    for ((table, key), chain) in &model {
        for t in 0..=last + 1 {
            let expected = chain.range(..=TxId(t)).next_back().map(|(_, v)| v.clone());
            match run.get_at(*table, key, TxId(t)) {
                Ok(got) => assert_eq!(got, expected, "{what}: get_at"),
                Err(e) => assert!(is_corrupt(&e), "{what}: {e}"),
            }
            for dir in [Direction::Forward, Direction::Reverse] {
                match run.history(*table, key, TxId(t)..=TxId(t + 2), usize::MAX, dir) {
                    Ok(got) => assert_eq!(
                        got,
                        model_history(chain, t, t + 2, usize::MAX, dir),
                        "{what}: history"
                    ),
                    Err(e) => assert!(is_corrupt(&e), "{what}: {e}"),
                }
            }
        }
    }
    for t in 0..=last + 1 {
        let expected = (1..=last)
            .contains(&t)
            .then(|| txs[(t - 1) as usize].clone());
        match run.tx(TxId(t)) {
            Ok(got) => assert_eq!(got, expected, "{what}: tx"),
            Err(e) => assert!(is_corrupt(&e), "{what}: {e}"),
        }
    }
    let err = run.verify().expect_err(what);
    assert!(is_corrupt(&err), "{what}: verify says {err}");
}

#[test]
fn every_flipped_bit_and_every_truncation_is_corrupt_never_wrong_data() {
    let cases = [
        (small_history(), 64, false),
        (small_history(), 64, true),
        (medium_history(), 4096, false),
        (medium_history(), 4096, true),
    ];
    let lz4 = [(medium_history(), 4096, 2)];
    let cases = cases
        .into_iter()
        .map(|(h, b, zstd)| (h, b, u8::from(zstd)))
        .chain(lz4);
    let cases: Vec<_> = cases.collect();
    // Through `read_exact_at` and through a map (grouped blocks decoded
    // group by group).
    let both = [false, true]
        .into_iter()
        .flat_map(|m| cases.iter().map(move |c| (c, m)));
    for (((versions, txs), block_target, codec_id), maps) in both {
        let (block_target, codec_id) = (*block_target, *codec_id);
        let storage = if maps {
            MemStorage::mapping()
        } else {
            MemStorage::default()
        };
        let path = Path::new("good");
        let cfg = RunConfig {
            compression: super::tests::codec(codec_id),
            ..config(block_target, false)
        };
        build(&storage, path, cfg, versions, txs);
        let good = storage.bytes(path);
        for offset in 0..good.len() {
            let mut bad = good.clone();
            bad[offset] ^= 1 << (offset % 8);
            storage.put(Path::new("bad"), bad);
            let what =
                format!("flip at {offset} (block {block_target}, codec {codec_id}, mapped {maps})");
            check_damaged(&storage, Path::new("bad"), versions, txs, &what);
        }
        for len in 0..good.len() {
            storage.put(Path::new("cut"), good[..len].to_vec());
            let err = open(&storage, Path::new("cut")).expect_err("a cut run does not open");
            assert!(matches!(err, Error::Corrupt { .. }), "cut at {len}: {err}");
        }
    }
}

/// A directory key that is not its group's first entry, under a valid
/// directory CRC (a writer bug, not a flipped bit): `verify` and a point
/// read of the key are `Corrupt`.
#[test]
fn a_wrong_directory_key_with_a_valid_crc_is_corrupt_on_verify() {
    let (versions, txs) = medium_history();
    let storage = MemStorage::default();
    build(
        &storage,
        Path::new("r"),
        config(4096, false),
        &versions,
        &txs,
    );
    let mut bytes = storage.bytes(Path::new("r"));
    // The first version block starts after the 16-byte header.
    let at = 16;
    assert_eq!(bytes[at + 4], 3, "grouped");
    let n_groups =
        u32::from_le_bytes(bytes[at + 13..at + 17].try_into().expect("4 bytes")) as usize;
    let keys_len_at = at + 17 + 21 * n_groups;
    let keys_len = u32::from_le_bytes(
        bytes[keys_len_at..keys_len_at + 4]
            .try_into()
            .expect("4 bytes"),
    ) as usize;
    let keys_at = keys_len_at + 4;
    // Group 0's key: varint table, varint key length, key bytes; change
    // its last key byte.
    let key_len = bytes[keys_at + 1] as usize;
    bytes[keys_at + 1 + key_len] ^= 0x01;
    let dir_end = keys_at + keys_len;
    let crc = crc32fast::hash(&bytes[at + 4..dir_end]);
    bytes[at..at + 4].copy_from_slice(&crc.to_le_bytes());
    storage.put(Path::new("bad"), bytes);
    let run = open(&storage, Path::new("bad")).expect("opens: the block is read on demand");
    let err = run.verify().expect_err("verify");
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    let first = &versions[0];
    let mapped = MemStorage::mapping();
    mapped.put(Path::new("bad"), storage.bytes(Path::new("bad")));
    let run = open(&mapped, Path::new("bad")).expect("open");
    let err = run
        .get_at(first.table, &first.key, first.txid)
        .expect_err("point read");
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
}

#[test]
fn a_foreign_file_is_corrupt_and_a_newer_run_unsupported() {
    let (versions, txs) = small_history();
    let storage = MemStorage::default();
    build(&storage, Path::new("r"), config(64, false), &versions, &txs);
    let good = storage.bytes(Path::new("r"));
    storage.put(Path::new("foreign"), vec![b'x'; good.len()]);
    assert!(matches!(
        open(&storage, Path::new("foreign")),
        Err(Error::Corrupt { offset: 0, .. })
    ));
    let mut newer = good.clone();
    newer[8..12].copy_from_slice(&4u32.to_le_bytes());
    let crc = crc32fast::hash(&newer[..12]);
    newer[12..16].copy_from_slice(&crc.to_le_bytes());
    storage.put(Path::new("newer"), newer);
    let err = open(&storage, Path::new("newer")).expect_err("newer");
    assert!(
        matches!(
            err,
            Error::UnsupportedFormat {
                found: 4,
                supported: 3,
                ..
            }
        ),
        "{err}"
    );
}

/// Builds a run, returning the first error instead of panicking.
fn try_build(
    storage: &dyn crate::storage::Storage,
    path: &Path,
    versions: &[VersionEntry],
    txs: &[TxEntry],
) -> crate::error::Result<super::RunSummary> {
    let range = super::RunRange {
        first_txid: txs[0].txid,
        last_txid: txs[txs.len() - 1].txid,
        first_commit_time: txs[0].commit_time,
    };
    let mut w = super::RunWriter::create(storage, path, range, config(64, true))?;
    for v in versions {
        w.add_version(v)?;
    }
    for tx in txs {
        w.add_tx(tx)?;
    }
    w.finish()
}

#[test]
fn a_failed_write_or_fsync_while_building_is_an_io_error_and_leaves_no_readable_run() {
    let (versions, txs) = medium_history();
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = crate::testing::FaultyStorage::default();
    let cache = std::sync::Arc::new(super::BlockCache::new(0));
    for (n, sync) in (1..=3).map(|n| (n, false)).chain([(1, true)]) {
        storage.arm(|plan| {
            plan.partial_write_bytes = 7;
            if sync {
                plan.fail_sync_at = Some(n);
            } else {
                plan.fail_write_at = Some(n);
            }
        });
        let path = dir.path().join(format!("{n}-{sync}.tcrun"));
        match try_build(&storage, &path, &versions, &txs) {
            Err(Error::Io { path: p, .. }) => {
                assert_eq!(p, path);
                // A run whose build failed is never mistaken for a whole one.
                if !sync {
                    let err =
                        super::Run::open(&storage, &path, n, cache.clone()).expect_err("torn");
                    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
                }
            }
            Err(e) => panic!("write {n}: {e}"),
            // Fewer writes than `n`: the build did not hit the fault.
            Ok(_) => assert!(n > 1 && !sync, "the first write always fails"),
        }
    }
}
