"""Transactions: the context manager, writes, reads of own writes, one-shot writes."""

import pytest

import timecask
from conftest import commit


def test_context_manager_commits_and_exposes_txid(db):
    with db.transaction(meta={"user": "ann"}) as tx:
        assert tx.state == "open"
        tx.insert("user", "1", b"Alice")
        assert tx.txid is None
    assert tx.state == "committed"
    assert tx.txid == 1
    assert db.latest_txid() == 1
    assert db.get("user", "1") == b"Alice"
    assert db.transaction_record(1).meta == {"user": "ann"}


def test_context_manager_rolls_back_on_exception(db):
    with pytest.raises(RuntimeError, match="boom"):
        with db.transaction() as tx:
            tx.put("t", "k", b"v")
            raise RuntimeError("boom")
    assert tx.state == "rolled_back"
    assert tx.txid is None
    assert db.latest_txid() == 0
    assert db.get("t", "k") is None


def test_empty_transaction_consumes_no_txid(db):
    with db.transaction() as tx:
        pass
    assert tx.state == "committed" and tx.txid is None
    assert db.latest_txid() == 0


def test_explicit_commit_and_rollback(db):
    tx = db.transaction()
    tx.put("t", b"k", b"v")
    assert tx.commit() == 1
    with pytest.raises(timecask.ClosedError):
        tx.put("t", b"k", b"w")
    with pytest.raises(timecask.ClosedError):
        tx.commit()
    tx2 = db.transaction()
    tx2.put("t", b"k", b"w")
    tx2.rollback()
    tx2.rollback()  # idempotent
    with pytest.raises(timecask.ClosedError):
        tx2.get("t", b"k")
    assert db.get("t", b"k") == b"v"


def test_commit_inside_with_block_is_kept(db):
    with db.transaction() as tx:
        tx.put("t", "k", b"v")
        assert tx.commit() == 1
    assert tx.txid == 1


def test_reads_own_writes_and_isolation(db):
    commit(db, "t", "a", b"1")
    with db.transaction() as tx:
        tx.put("t", "b", b"2")
        tx.delete("t", "a")
        assert tx.get("t", "b") == b"2"
        assert tx.get("t", "a") is None
        assert tx.contains("t", "b") and not tx.contains("t", "a")
        assert tx.range("t") == [(b"b", b"2")]
        assert db.get("t", "b") is None  # not visible before commit
        assert db.get("t", "a") == b"1"
        assert tx.base_txid == 1


def test_transaction_range_and_prefix(db):
    with db.transaction() as tx:
        for k in ["aa", "ab", "b", "c"]:
            tx.put("t", k, k.encode())
    with db.transaction() as tx:
        tx.put("t", "ac", b"new")
        assert [k for k, _ in tx.range("t", "ab", "c")] == [b"ab", b"ac", b"b"]
        assert [k for k, _ in tx.prefix("t", "a", reverse=True)] == [b"ac", b"ab", b"aa"]
        tx.rollback()


def test_insert_update_delete_semantics(db):
    with db.transaction() as tx:
        tx.insert("t", "k", b"1")
    with pytest.raises(timecask.KeyExistsError):
        with db.transaction() as tx:
            tx.insert("t", "k", b"2")
    with pytest.raises(timecask.KeyNotFoundError):
        with db.transaction() as tx:
            tx.update("t", "missing", b"2")
    with db.transaction() as tx:
        tx.update("t", "k", b"2")
        assert tx.delete("t", "k") is True
        assert tx.delete("t", "never") is False
    ops = [v.op for v in db.snapshot().history("t", "k")]
    assert ops == ["insert", "delete"]


def test_one_shot_writes_return_txids(db):
    assert db.insert("t", "k", b"1", meta={"user": "ann"}) == 1
    assert db.update("t", "k", b"2") == 2
    assert db.put("t", "k", b"2") is None  # identical update records nothing
    assert db.put("t", "k", b"3") == 3
    assert db.delete("t", "k") == 4
    assert db.delete("t", "k") is None
    assert db.transaction_record(1).meta == {"user": "ann"}


def test_keys_and_values_types(db):
    db.put("t", b"\x00\xff", bytearray(b"raw"))
    db.put("t", "é", b"utf8")
    assert db.get("t", bytearray(b"\x00\xff")) == b"raw"
    assert db.get("t", "é".encode()) == b"utf8"
    with pytest.raises(TypeError, match="a value is bytes"):
        db.put("t", "k", "text")
    with pytest.raises(TypeError, match="a key is bytes or str"):
        db.put("t", 1, b"v")
    with pytest.raises(TypeError, match="meta is a dict"):
        db.transaction(meta={"user": 1})


def test_durability_and_flush(path):
    with timecask.open(path, durability="buffered") as db:
        db.put("t", "k", b"v")
        db.flush()
        with db.transaction(durability="immediate") as tx:
            tx.set_durability("buffered")
            tx.set_meta("reason", "test")
            tx.put("t", "k", b"w")
    with timecask.open(path) as db:
        assert db.get("t", "k") == b"w"
        assert db.transaction_record(2).meta == {"reason": "test"}
    with pytest.raises(ValueError, match="durability"):
        timecask.open(path, durability="sometimes")


def test_record_identical_updates(path):
    with timecask.open(path, record_identical_updates=True) as db:
        db.put("t", "k", b"v")
        assert db.put("t", "k", b"v") == 2


def test_create_table_and_tables(db):
    with db.transaction() as tx:
        tx.create_table("empty")
        tx.put("full", "k", b"v")
    assert db.tables() == ["empty", "full"]
    assert db.snapshot().count("empty") == 0


def test_close_and_reopen(path):
    db = timecask.open(path)
    db.put("t", "k", b"v")
    assert not db.closed
    db.close()
    db.close()
    assert db.closed
    with pytest.raises(timecask.ClosedError):
        db.get("t", "k")
    with timecask.open(path) as again:
        assert again.get("t", "k") == b"v"
        assert again.path.endswith("db")
        assert "timecask.Db" in repr(again)
