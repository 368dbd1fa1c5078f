"""Transaction records, the log, diffs, the change feed, revert/undo, retention and maintenance."""

import os
import threading
from datetime import timedelta

import pytest

import timecask
from conftest import commit


def test_transaction_record(db):
    with db.transaction(meta={"user": "ann", "reason": "import"}) as tx:
        tx.put("b", "2", b"x")
        tx.put("a", "1", b"y")
    commit(db, "a", "1", None)
    rec = db.transaction_record(1)
    assert rec.txid == 1
    assert rec.meta == {"user": "ann", "reason": "import"}
    assert rec.commit_time.tzinfo is not None
    assert [(c.table, c.key, c.op, c.value) for c in rec.changes] == [("a", b"1", "insert", b"y"), ("b", b"2", "insert", b"x")]
    assert [(c.op, c.value) for c in db.transaction_record(2).changes] == [("delete", None)]
    with pytest.raises(timecask.NoSuchTransactionError) as e:
        db.transaction_record(0)
    assert e.value.txid == 0
    with pytest.raises(timecask.FutureTxidError):
        db.transaction_record(3)


def test_log(db):
    for i in range(5):
        commit(db, "t", "k", str(i).encode())
    assert [r.txid for r in db.log()] == [1, 2, 3, 4, 5]
    assert [r.txid for r in db.log(2, 4)] == [2, 3, 4]
    assert [r.txid for r in db.log(first=4)] == [4, 5]
    assert [r.changes[0].value for r in db.log(last=2)] == [b"0", b"1"]
    with pytest.raises(timecask.FutureTxidError) as e:
        db.log(1, 9)
    assert (e.value.requested, e.value.latest) == (9, 5)


def test_diff(db):
    with db.transaction() as tx:
        tx.put("t", "a", b"1")
        tx.put("t", "b", b"1")
        tx.put("t", "c", b"1")
    with db.transaction() as tx:
        tx.put("t", "a", b"2")
        tx.delete("t", "b")
        tx.put("t", "d", b"new")
    diff = db.diff("t", 1, 2)
    assert [(d.key, d.before, d.after) for d in diff] == [(b"a", b"1", b"2"), (b"b", b"1", None), (b"d", None, b"new")]
    back = db.diff("t", 2, 1)
    assert [(d.key, d.before, d.after) for d in back] == [(b"a", b"2", b"1"), (b"b", None, b"1"), (b"d", b"new", None)]
    assert db.diff("t", 2, 2) == []
    with pytest.raises(timecask.FutureTxidError):
        db.diff("t", 1, 7)


def test_change_feed_iterates_then_resumes(db):
    commit(db, "t", "a", b"1")
    commit(db, "t", "b", b"2")
    feed = db.changes_since(0)
    assert [r.txid for r in feed] == [1, 2]
    assert feed.position == 2
    assert list(feed) == []  # caught up
    assert feed.try_next() is None
    commit(db, "t", "c", b"3")
    assert [r.changes[0].key for r in feed] == [b"c"]  # iterating again picks up new commits
    # resume from a saved position, as after a restart
    resumed = db.changes_since(feed.position - 1)
    assert [r.txid for r in resumed] == [3]


def test_change_feed_wait_next_blocks_until_a_commit(db):
    feed = db.changes_since(db.latest_txid())
    assert feed.wait_next(timeout=0.05) is None
    got = []
    ready = threading.Event()

    def consume():
        ready.set()
        got.append(feed.wait_next(timeout=30))

    waiter = threading.Thread(target=consume)
    waiter.start()
    ready.wait()
    # The waiter blocks without the GIL: this thread can commit meanwhile.
    commit(db, "t", "k", b"v", user="ann")
    waiter.join()
    assert got[0].txid == 1 and got[0].meta == {"user": "ann"}
    assert feed.position == 1
    with pytest.raises(ValueError):
        feed.wait_next(timeout=-1)


def test_revert(db):
    t1 = commit(db, "user", "1", b"Alice")
    commit(db, "user", "1", b"Bob")
    t3 = db.revert("user", "1", t1, meta={"reason": "undo rename"})
    assert t3 == 3
    assert db.get("user", "1") == b"Alice"
    assert db.transaction_record(t3).meta == {"reason": "undo rename"}
    assert db.revert("user", "1", t1) is None  # nothing to change
    with db.transaction() as tx:
        assert tx.revert("user", "1", 0) is True  # before it existed: a delete
    assert db.get("user", "1") is None
    with pytest.raises(timecask.FutureTxidError):
        db.revert("user", "1", 99)


def test_undo(db):
    with db.transaction() as tx:
        tx.put("t", "a", b"1")
        tx.put("t", "b", b"1")
    oops = commit(db, "t", "a", b"2")
    assert db.undo(oops) == 3
    assert db.get("t", "a") == b"1"
    # undoing tx 1 now conflicts: tx 2 and 3 touched key a later
    with pytest.raises(timecask.ConflictError) as e:
        db.undo(1)
    assert (e.value.table, e.value.key) == ("t", b"a")
    with db.transaction() as tx:
        with pytest.raises(timecask.NoSuchTransactionError):
            tx.undo(0)


def test_purge_history(db):
    for v in [b"a", b"b", b"c"]:
        commit(db, "t", "k", v)
    view = db.as_of(1)
    with pytest.raises(timecask.HistoryInUseError) as e:
        db.purge_history(2)
    assert (e.value.requested, e.value.oldest_view) == (2, 1)
    view.close()
    assert db.purge_history(2) == 4
    assert db.purge_history(2) is None
    with pytest.raises(timecask.HistoryPurgedError) as e:
        db.as_of(1)
    assert (e.value.requested, e.value.horizon) == (1, 2)
    assert db.as_of(2).get("t", "k") == b"b"
    assert db.stats().horizon == 2
    report = db.compact()
    assert report.versions_dropped >= 1
    assert report.segments_scanned >= 1
    assert [v.txid for v in db.snapshot().history("t", "k")] == [2, 3]


def test_tx_purge_and_retention(db):
    for v in [b"a", b"b", b"c", b"d"]:
        commit(db, "t", "k", v)
    with db.transaction() as tx:
        tx.set_retention("t", keep_last=2)
    with db.transaction() as tx:
        tx.set_retention("u", keep_for=3600.0)
        tx.set_retention("v", keep_last=5, keep_for=timedelta(days=30))
    with pytest.raises(timecask.InvalidConfigError):
        with db.transaction() as tx:
            tx.set_retention("t")
    db.compact()
    assert [v.value for v in db.snapshot().history("t", "k")] == [b"c", b"d"]
    with db.transaction() as tx:
        tx.purge_history(db.latest_txid())
    with pytest.raises(timecask.FutureTxidError):
        with db.transaction() as tx:
            tx.purge_history(999)


def test_erase(db):
    t1 = commit(db, "users", "ann", b"ann@example.com")
    commit(db, "users", "bob", b"bob@example.com")
    txid = db.erase("users", "ann")
    assert db.as_of(t1).get("users", "ann") is None
    assert db.snapshot().history("users", "ann") == []
    assert db.get("users", "bob") == b"bob@example.com"
    with db.transaction(meta={"reason": "GDPR"}) as tx:
        tx.erase("users", "bob")
    assert tx.txid == txid + 1
    db.compact()
    assert db.get("users", "bob") is None


def test_verify_backup_checkpoint_stats(db, tmp_path):
    for i in range(3):
        commit(db, "t", str(i), b"v")
    report = db.verify()
    assert (report.txid, report.n_frames, report.n_versions) == (3, 3, 3)
    assert report.n_segments == 1 and report.n_bytes > 0
    assert db.backup(tmp_path / "copy") == 3
    with pytest.raises(timecask.InvalidConfigError, match="not empty"):
        db.backup(tmp_path / "copy")
    with timecask.open(tmp_path / "copy") as copy:
        assert copy.latest_txid() == 3
        assert copy.get("t", "2") == b"v"
    cp = db.checkpoint()
    assert cp.txid == 3 and cp.bytes > 0
    stats = db.stats()
    assert (stats.latest_txid, stats.n_versions, stats.n_tables, stats.horizon) == (3, 3, 1, 0)
    assert stats.torn_tail_bytes == 0
    assert "Stats(latest_txid=3" in repr(stats)


def test_seal_keeps_runs_apart_and_compact_merges_them(path):
    with timecask.open(path) as db:
        # Incompressible values: the second run is far smaller than the
        # first, so sealing keeps them apart.
        for n in (1000, 10):
            with db.transaction() as tx:
                for i in range(n):
                    tx.put("t", i.to_bytes(4, "big"), os.urandom(8))
            db.seal()
        assert db.stats().history_runs == 2
        db.compact()
        assert db.stats().history_runs == 1
        assert len(db.snapshot().history("t", (1).to_bytes(4, "big"))) == 2


def test_run_settings(tmp_path):
    # No background sealing, zstd runs: the history is sealed only on
    # demand, and reads back the same.
    with timecask.open(
        tmp_path / "db", seal_log_bytes=0, run_compression="zstd", memory_budget=64 << 20
    ) as db:
        for i in range(30):
            commit(db, "t", b"k", b"v%d" % i)
        assert db.stats().history_runs == 0
        db.seal()
        assert db.stats().history_runs == 1
        assert [v.value for v in db.snapshot().history("t", b"k")] == [
            b"v%d" % i for i in range(30)
        ]
    with timecask.open(tmp_path / "plain", history_runs=False) as db:
        commit(db, "t", b"k", b"v")
        db.compact()
        assert db.stats().history_runs == 0


def test_checkpoint_is_used_on_reopen(path):
    with timecask.open(path) as db:
        commit(db, "t", "k", b"v")
        db.checkpoint()
    with timecask.open(path) as db:
        assert db.stats().opened_from_checkpoint
        assert db.stats().frames_replayed == 0
