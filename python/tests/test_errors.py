"""The exception hierarchy and the fields each exception carries."""

import os
import pickle

import pytest

import timecask
from conftest import commit


def test_hierarchy():
    for name in ["ConflictError", "HistoryPurgedError", "FutureTxidError", "LockedError", "CorruptError",
                 "ReadOnlyError", "NotFoundError", "KeyExistsError", "KeyNotFoundError", "ClosedError",
                 "KeyTooLargeError", "ValueTooLargeError", "IoError", "NotADatabaseError", "CodecError"]:
        assert issubclass(getattr(timecask, name), timecask.Error), name
    assert issubclass(timecask.KeyTooLargeError, timecask.LimitError)
    assert issubclass(timecask.Error, Exception)


def test_conflict_first_committer_wins(db):
    commit(db, "t", "k", b"0")
    a = db.transaction()
    b = db.transaction()
    a.put("t", "k", b"a")
    b.put("t", "k", b"b")
    assert a.commit() == 2
    with pytest.raises(timecask.ConflictError) as e:
        b.commit()
    assert (e.value.table, e.value.key) == ("t", b"k")
    assert "retry" in str(e.value)
    assert b.state == "rolled_back"
    assert db.get("t", "k") == b"a"


def test_key_exists_and_not_found_fields(db):
    db.put("t", b"\x00k", b"v")
    with pytest.raises(timecask.KeyExistsError) as e:
        db.insert("t", b"\x00k", b"w")
    assert (e.value.table, e.value.key) == ("t", b"\x00k")
    with pytest.raises(timecask.KeyNotFoundError) as e:
        db.update("t", "nope", b"w")
    assert (e.value.table, e.value.key) == ("t", b"nope")
    assert e.value.fields == {"table": "t", "key": b"nope"}


def test_future_txid_fields(db):
    with pytest.raises(timecask.FutureTxidError) as e:
        db.as_of(7)
    assert (e.value.requested, e.value.latest) == (7, 0)
    assert "FutureTxidError(" in repr(e.value)


def test_locked(path):
    with timecask.open(path):
        with pytest.raises(timecask.LockedError) as e:
            timecask.open(path)
        assert e.value.path == str(path)
        with pytest.raises(timecask.LockedError):
            timecask.open(path, lock_timeout=0.05)


def test_read_only(path):
    with timecask.open(path) as writer:
        writer.put("t", "k", b"v1")
        with timecask.open(path, read_only=True) as reader:
            assert reader.read_only
            assert reader.get("t", "k") == b"v1"
            with pytest.raises(timecask.ReadOnlyError) as e:
                reader.put("t", "k", b"v2")
            assert e.value.path == str(path)
            with pytest.raises(timecask.ReadOnlyError):
                reader.compact()


def test_not_found(tmp_path):
    with pytest.raises(timecask.NotFoundError) as e:
        timecask.open(tmp_path / "missing", read_only=True)
    assert e.value.path == str(tmp_path / "missing")
    with pytest.raises(timecask.NotFoundError):
        timecask.open(tmp_path / "missing", create_if_missing=False)


def test_not_a_database(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(timecask.NotADatabaseError) as e:
        timecask.open(tmp_path)
    assert e.value.path == str(tmp_path)


def test_corrupt_names_file_and_offset(path):
    with timecask.open(path, checkpoint_on_close=False) as db:
        for i in range(3):
            commit(db, "t", "k", bytes([i]) * 64)
    segment = sorted(p for p in os.listdir(path) if p[0].isdigit())[0]
    data = bytearray((path / segment).read_bytes())
    data[60] ^= 0xFF  # inside the first frame, which later frames follow
    (path / segment).write_bytes(bytes(data))
    with pytest.raises(timecask.CorruptError) as e:
        timecask.open(path)
    assert e.value.path.endswith(segment)
    assert isinstance(e.value.offset, int) and e.value.offset < 60
    assert e.value.reason


def test_limits(db):
    with pytest.raises(timecask.KeyTooLargeError) as e:
        db.put("t", b"k" * (64 * 1024 + 1), b"v")
    assert e.value.size == 64 * 1024 + 1 and e.value.max == 64 * 1024
    with pytest.raises(timecask.InvalidTableNameError) as e:
        db.put("", "k", b"v")
    assert e.value.name == "" and e.value.reason
    with pytest.raises(timecask.MetadataTooLargeError):
        db.transaction(meta={"note": "x" * (65 * 1024)})


def test_invalid_config(tmp_path):
    with pytest.raises(timecask.InvalidConfigError) as e:
        timecask.open(tmp_path / "db", segment_roll_bytes=1)
    assert "segment_roll_bytes" in e.value.reason
    with pytest.raises(ValueError):
        timecask.open(tmp_path / "db", lock_timeout=-1)
    with pytest.raises(ValueError):
        timecask.open(tmp_path / "db", run_compression="gzip")
    with pytest.raises(timecask.InvalidConfigError):
        timecask.open(tmp_path / "db", memory_budget=1024)


def test_exceptions_pickle(db):
    with pytest.raises(timecask.FutureTxidError) as e:
        db.as_of(3)
    again = pickle.loads(pickle.dumps(e.value))
    assert type(again) is timecask.FutureTxidError
    assert (again.requested, again.latest, str(again)) == (3, 0, str(e.value))
