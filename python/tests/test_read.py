"""Views: snapshots, as-of reads, scans, counts, versions and histories."""

from datetime import datetime, timedelta, timezone

import pytest

import timecask
from conftest import commit


@pytest.fixture
def alice_bob(db):
    t1 = commit(db, "user", "1", b"Alice", user="ann")
    t2 = commit(db, "user", "1", b"Bob", user="bob")
    t3 = commit(db, "user", "1", None, user="carl")
    return db, t1, t2, t3


def test_snapshot_never_changes(db):
    commit(db, "t", "k", b"1")
    view = db.snapshot()
    commit(db, "t", "k", b"2")
    assert view.get("t", "k") == b"1"
    assert view.txid == 1
    assert db.snapshot().get("t", "k") == b"2"


def test_as_of(alice_bob):
    db, t1, t2, t3 = alice_bob
    assert db.as_of(0).get("user", "1") is None
    assert db.as_of(t1).get("user", "1") == b"Alice"
    assert db.as_of(t2).get("user", "1") == b"Bob"
    assert db.as_of(t3).get("user", "1") is None
    assert db.as_of(t2).contains("user", "1")


def test_as_of_time(alice_bob):
    db, t1, t2, _ = alice_bob
    times = [db.transaction_record(t).commit_time for t in (t1, t2)]
    assert db.as_of_time(times[0]).txid == t1
    assert db.as_of_time(times[1]).txid >= t2
    assert db.as_of_time(datetime(2000, 1, 1, tzinfo=timezone.utc)).txid == 0
    assert db.as_of_time(datetime.now(timezone.utc) + timedelta(days=1)).txid == db.latest_txid()
    # other time zones are converted
    eastern = times[0].astimezone(timezone(timedelta(hours=-5)))
    assert db.as_of_time(eastern).txid == t1
    with pytest.raises(ValueError, match="aware"):
        db.as_of_time(datetime(2030, 1, 1))
    with pytest.raises(TypeError):
        db.as_of_time(12)


def test_history(alice_bob):
    db, t1, t2, t3 = alice_bob
    history = db.snapshot().history("user", "1")
    assert [(v.txid, v.end_txid, v.op, v.value) for v in history] == [
        (t1, t2, "insert", b"Alice"),
        (t2, t3, "update", b"Bob"),
        (t3, None, "delete", None),
    ]
    assert [v.meta["user"] for v in history] == ["ann", "bob", "carl"]
    for v in history:
        assert v.commit_time.tzinfo is not None
        assert v.commit_time.utcoffset() == timedelta(0)
        assert v.commit_micros == (v.commit_time - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1)
    assert history[0].commit_time <= history[1].commit_time <= history[2].commit_time
    assert "op='insert'" in repr(history[0])


def test_history_queries(alice_bob):
    db, t1, t2, t3 = alice_bob
    view = db.snapshot()
    assert [v.txid for v in view.history("user", "1", newest_first=True)] == [t3, t2, t1]
    assert [v.txid for v in view.history("user", "1", limit=2)] == [t1, t2]
    assert [v.txid for v in view.history("user", "1", first=t2)] == [t2, t3]
    assert [v.txid for v in view.history("user", "1", last=t2)] == [t1, t2]
    assert [v.txid for v in view.history("user", "1", first=t2, last=t2)] == [t2]
    # a past view sees the history up to its txid, the last version open-ended
    past = db.as_of(t2).history("user", "1")
    assert [(v.txid, v.end_txid) for v in past] == [(t1, t2), (t2, None)]
    assert view.history("user", "nobody") == []
    assert view.history("nowhere", "1") == []


def test_get_version(alice_bob):
    db, t1, t2, _ = alice_bob
    v = db.as_of(t2).get_version("user", "1")
    assert (v.txid, v.op, v.value, v.meta) == (t2, "update", b"Bob", {"user": "bob"})
    deleted = db.snapshot().get_version("user", "1")
    assert (deleted.op, deleted.value) == ("delete", None)
    assert db.snapshot().get_version("user", "nobody") is None


@pytest.fixture
def abc(db):
    with db.transaction() as tx:
        for k in ["a", "ab", "abc", "b", "c"]:
            tx.put("t", k, k.upper().encode())
    return db


def test_range_forward_and_reverse(abc):
    view = abc.snapshot()
    assert list(view.range("t")) == [(b"a", b"A"), (b"ab", b"AB"), (b"abc", b"ABC"), (b"b", b"B"), (b"c", b"C")]
    assert [k for k, _ in view.range("t", "ab", "b")] == [b"ab", b"abc"]
    assert [k for k, _ in view.range("t", start="b")] == [b"b", b"c"]
    assert [k for k, _ in view.range("t", end="ab")] == [b"a"]
    assert [k for k, _ in view.range("t", reverse=True)] == [b"c", b"b", b"abc", b"ab", b"a"]
    assert [k for k, _ in view.range("t", "a", "b", reverse=True)] == [b"abc", b"ab", b"a"]
    assert list(view.range("missing")) == []


def test_prefix(abc):
    view = abc.snapshot()
    assert [k for k, _ in view.prefix("t", "ab")] == [b"ab", b"abc"]
    assert [k for k, _ in view.prefix("t", b"a", reverse=True)] == [b"abc", b"ab", b"a"]
    assert list(view.prefix("t", "z")) == []


def test_iterator_holds_its_view(abc):
    it = abc.snapshot().range("t")
    assert next(it) == (b"a", b"A")
    abc.put("t", "aa", b"new")
    assert [k for k, _ in it] == [b"ab", b"abc", b"b", b"c"]
    with pytest.raises(StopIteration):
        next(it)


def test_count_and_tables(abc):
    abc.put("u", "x", b"1")
    view = abc.as_of(1)
    assert view.count("t") == 5
    assert view.tables() == ["t"]
    assert abc.snapshot().tables() == ["t", "u"]
    assert abc.snapshot().count("nothing") == 0


def test_closed_view(abc):
    with abc.snapshot() as view:
        assert view.get("t", "a") == b"A"
    with pytest.raises(timecask.ClosedError):
        view.get("t", "a")
