"""Typed table handles: the msgpack, json and custom codecs, order-preserving keys."""

from datetime import datetime, timedelta, timezone

import msgpack
import pytest

import timecask
from timecask.codec import KeyCodec


def test_msgpack_round_trip(db):
    users = db.table("user", codec="msgpack", key="u64")
    when = datetime(2025, 1, 31, 12, 0, 0, 123456, tzinfo=timezone.utc)
    alice = {"name": "Alice", "email": "a@example.com", "age": 30, "tags": ["x", 1, 2.5, None, True],
             "photo": b"\x89PNG", "joined": when, "nested": {"k": [1, {"deep": False}]}}
    t1 = users.insert(1, alice, meta={"user": "ann"})
    assert users.get(1) == alice
    assert users[1]["joined"] == when
    assert users.get(2) is None and users.get(2, "dflt") == "dflt"
    with pytest.raises(KeyError):
        users[2]
    assert 1 in users and 2 not in users
    # the stored bytes are plain MessagePack: a map with named fields, the timestamp extension -1
    raw = db.get("user", (1).to_bytes(8, "big"))
    assert msgpack.unpackb(raw, timestamp=3)["joined"] == when
    assert b"\xa6joined\xd7\xff" in raw  # fixext 8, type -1: timestamp 64
    assert db.transaction_record(t1).meta == {"user": "ann"}


def test_datetimes_in_other_zones_read_back_as_utc(db):
    t = db.table("t", codec="msgpack")
    eastern = datetime(2025, 6, 1, 8, 0, tzinfo=timezone(timedelta(hours=-4)))
    t.put("k", {"at": eastern})
    got = t.get("k")["at"]
    assert got == eastern and got.utcoffset() == timedelta(0)
    with pytest.raises(timecask.CodecError):
        t.put("k", {"at": datetime(2025, 1, 1)})  # naive: refused
    with pytest.raises(timecask.CodecError):
        t.put("k", {"bad": object()})


def test_msgpack_history_changeset_diff_and_changes(db):
    users = db.table("user", codec="msgpack", key="u64")
    t1 = users.insert(1, {"name": "Alice", "email": "a@example.com", "age": 30})
    t2 = users.update(1, {"name": "Bob", "email": "a@example.com", "age": 31})
    history = users.history(1)
    assert [(v.txid, v.op, v.value["name"]) for v in history] == [(t1, "insert", "Alice"), (t2, "update", "Bob")]
    assert history[0].end_txid == t2
    assert users.changeset(1, t2) == {"name": ("Alice", "Bob"), "age": (30, 31)}
    assert users.changeset(1, t1) == {"name": (None, "Alice"), "email": (None, "a@example.com"), "age": (None, 30)}
    assert users.changeset(2, t2) == {}
    [entry] = users.diff(t1, t2)
    assert (entry.key, entry.before["name"], entry.after["name"]) == (1, "Alice", "Bob")
    [change] = users.changes(db.transaction_record(t2))
    assert (change.key, change.op, change.value["age"]) == (1, "update", 31)
    assert users.get_version(1).value["name"] == "Bob"
    assert db.as_of(t1).table("user", codec="msgpack", key="u64").get(1)["name"] == "Alice"
    t3 = users.revert(1, t1)
    assert users.get(1)["name"] == "Alice" and t3 == 3


def test_tables_in_transactions_and_views(db):
    with db.transaction(meta={"user": "ann"}) as tx:
        t = tx.table("t", codec="json", key="str")
        t.put("a", {"n": 1})
        t["b"] = [1, 2]
        assert t.get("a") == {"n": 1}
        assert dict(t.items()) == {"a": {"n": 1}, "b": [1, 2]}
        assert len(t) == 2
        del t["b"]
        with pytest.raises(TypeError, match="set_meta"):
            t.put("c", 1, meta={"user": "x"})
    view_table = db.snapshot().table("t", codec="json", key="str")
    assert list(view_table) == ["a"]
    assert len(view_table) == 1
    with pytest.raises(TypeError, match="read-only"):
        view_table.put("z", 1)
    assert db.get("t", "a") == b'{"n":1}'  # json readable by the CLI


def test_int_keys_sort_numerically(db):
    signed = db.table("s", codec="str", key="i64")
    for n in [5, -1, 300, -70000, 0, 2**63 - 1, -(2**63)]:
        signed.put(n, str(n))
    assert [k for k, _ in signed.items()] == sorted([5, -1, 300, -70000, 0, 2**63 - 1, -(2**63)])
    assert [k for k, _ in signed.range(-1, 300)] == [-1, 0, 5]
    assert [k for k, _ in signed.range(reverse=True)][:2] == [2**63 - 1, 300]
    with pytest.raises(OverflowError):
        signed.put(2**63, "too big")
    with pytest.raises(TypeError):
        signed.put("1", "not an int")


@pytest.mark.parametrize("name,value,encoded", [
    ("u16", 7, b"\x00\x07"),
    ("u64", 1, b"\x00" * 7 + b"\x01"),
    ("i8", -1, b"\x7f"),
    ("i8", 0, b"\x80"),
    ("i32", -2, b"\x7f\xff\xff\xfe"),
    ("str", "alice", b"alice"),
    ("bytes", b"\x00", b"\x00"),
])
def test_key_encodings_match_the_rust_typed_layer(name, value, encoded):
    codec = KeyCodec(name)
    assert codec.encode(value) == encoded
    assert codec.decode(encoded) == value


def test_key_codec_errors():
    with pytest.raises(ValueError):
        KeyCodec("u7")
    with pytest.raises(timecask.CodecError):
        KeyCodec("u32").decode(b"\x00")


def test_custom_codec_and_unknown_names(db):
    class Upper:
        name = "upper"

        def encode(self, obj):
            return obj.upper().encode()

        def decode(self, data):
            return data.decode().lower()

    t = db.table("t", codec=Upper())
    t.put("k", "hello")
    assert db.get("t", "k") == b"HELLO" and t.get("k") == "hello"
    with pytest.raises(ValueError, match="unknown codec"):
        db.table("t", codec="yaml")
    with pytest.raises(TypeError):
        db.table("t", codec=42)
    with pytest.raises(TypeError, match="stores bytes"):
        db.table("t").put("k", "text")
    assert db.table("t").get("k") == b"HELLO"


def test_garbage_is_a_codec_error(db):
    db.put("t", "k", b"\xc1")  # never used in MessagePack
    with pytest.raises(timecask.CodecError) as e:
        db.table("t", codec="msgpack").get("k")
    assert e.value.codec == "msgpack"
