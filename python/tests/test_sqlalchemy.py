"""The SQLAlchemy integration: ORM commits recorded as timecask transactions."""

import datetime
import decimal

import pytest

sa = pytest.importorskip("sqlalchemy")
from sqlalchemy import Integer, String, delete, select, update  # noqa: E402
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column  # noqa: E402

from timecask.sqlalchemy import versioned  # noqa: E402


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "user"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String)
    email: Mapped[str] = mapped_column(String, default="")
    age: Mapped[int] = mapped_column(Integer, default=0)


class Event(Base):
    __tablename__ = "event"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime.datetime] = mapped_column(sa.DateTime)
    day: Mapped[datetime.date] = mapped_column(sa.Date)
    amount: Mapped[decimal.Decimal] = mapped_column(sa.Numeric(10, 2))


class Membership(Base):
    __tablename__ = "membership"
    user_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group: Mapped[str] = mapped_column(String, primary_key=True)
    role: Mapped[str] = mapped_column(String)


class Note(Base):
    __tablename__ = "note"
    __versioned__ = False
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(String)


@pytest.fixture
def orm(db, tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    Base.metadata.create_all(engine)
    who = {"user": "ann", "addr": "10.0.0.1"}
    history = versioned(Base, db, user=lambda: who["user"], remote_addr=lambda: who["addr"])
    yield engine, history, who
    history.remove()
    engine.dispose()


def test_seed_scenario(orm, db):
    engine, history, _ = orm
    with Session(engine) as s:
        alice = User(id=1, name="Alice", email="alice@example.com", age=30)
        s.add(alice)
        s.commit()
        t1 = history.last_txid
        alice.name = "Bob"
        s.commit()
        t2 = history.last_txid
        assert (t1, t2) == (1, 2)
        # the current row, the row as of the first commit
        assert s.get(User, 1).name == "Bob"
        assert history.version_at(alice, t1) == {"id": 1, "name": "Alice", "email": "alice@example.com", "age": 30}
        # the history and the changeset
        versions = history.versions(alice)
        assert [(v.txid, v.end_txid, v.op) for v in versions] == [(1, 2, "insert"), (2, None, "update")]
        assert versions[0].meta == {"user": "ann", "remote_addr": "10.0.0.1"}
        assert history.changeset(versions[1]) == {"name": ("Alice", "Bob")}
        assert versions[0].changeset["name"] == (None, "Alice")
        # revert to the first commit: a third transaction
        history.revert(s, alice, t1)
        s.commit()
        assert history.last_txid == 3
        assert s.get(User, 1).name == "Alice"
        assert history.versions(User, 1)[-1].changeset == {"name": ("Bob", "Alice")}


def test_one_commit_is_one_transaction_with_every_change(orm, db):
    engine, history, who = orm
    with Session(engine) as s:
        s.add_all([User(id=i, name=f"u{i}") for i in range(1, 4)])
        s.add(Note(id=1, text="not versioned"))
        s.commit()
        who["user"] = "bob"
        s.get(User, 1).age = 41
        s.delete(s.get(User, 2))
        s.commit()
    changes = history.transaction_changes(2)
    assert [(c.op, c.value) for c in changes["user"]] == [("update", {"id": 1, "name": "u1", "email": "", "age": 41}), ("delete", None)]
    assert "note" not in db.tables()
    assert db.transaction_record(2).meta == {"user": "bob", "remote_addr": "10.0.0.1"}
    assert [row["id"] for row in history.as_of(User, 1)] == [1, 2, 3]
    assert [row["id"] for row in history.as_of(User, 2)] == [1, 3]


def test_delete_and_insert_in_one_flush_is_an_update(orm):
    engine, history, _ = orm
    with Session(engine) as s:
        s.add(User(id=1, name="Alice"))
        s.commit()
        s.delete(s.get(User, 1))
        s.flush()
        s.add(User(id=1, name="Alicia"))
        s.commit()
    versions = history.versions(User, 1)
    assert [(v.op, v.value["name"]) for v in versions] == [("insert", "Alice"), ("update", "Alicia")]


def test_rollback_records_nothing(orm, db):
    engine, history, _ = orm
    with Session(engine) as s:
        s.add(User(id=1, name="Alice"))
        s.flush()
        s.rollback()
        s.add(User(id=2, name="Bea"))
        s.commit()
    assert db.latest_txid() == 1
    assert [c.key for c in db.transaction_record(1).changes] == [bytes([0x80, 0, 0, 0, 0, 0, 0, 2])]  # i64 key 2
    assert history.versions(User, 1) == []


def test_bulk_update_and_delete_are_recorded(orm):
    engine, history, _ = orm
    with Session(engine) as s:
        s.add_all([User(id=i, name=f"u{i}", age=i * 10) for i in range(1, 6)])
        s.commit()
        s.execute(update(User).where(User.age >= 30).values(age=User.age + 1))
        s.commit()
        t_update = history.last_txid
        s.execute(delete(User).where(User.id <= 2))
        s.commit()
        t_delete = history.last_txid
    changes = history.transaction_changes(t_update)["user"]
    assert sorted(c.value["age"] for c in changes) == [31, 41, 51]
    assert all(c.op == "update" for c in changes)
    deleted = history.transaction_changes(t_delete)["user"]
    assert [c.op for c in deleted] == ["delete", "delete"]
    assert [row["id"] for row in history.as_of(User, t_delete)] == [3, 4, 5]
    with Session(engine) as s:
        assert [u.age for u in s.scalars(select(User).order_by(User.id))] == [31, 41, 51]


def test_primary_key_change_deletes_the_old_key(orm):
    engine, history, _ = orm
    with Session(engine) as s:
        u = User(id=1, name="Alice")
        s.add(u)
        s.commit()
        u.id = 7
        s.commit()
    assert [v.op for v in history.versions(User, 1)] == ["insert", "delete"]
    assert [v.op for v in history.versions(User, 7)] == ["insert"]


def test_column_types_round_trip_through_revert(orm):
    engine, history, _ = orm
    first = dict(at=datetime.datetime(2025, 1, 31, 12, 30), day=datetime.date(2025, 1, 31), amount=decimal.Decimal("9.99"))
    with Session(engine) as s:
        e = Event(id=1, **first)
        s.add(e)
        s.commit()
        t1 = history.last_txid
        e.at, e.day, e.amount = datetime.datetime(2026, 1, 1), datetime.date(2026, 1, 1), decimal.Decimal("1.00")
        s.commit()
        stored = history.version_at(e, t1)
        assert stored["at"] == datetime.datetime(2025, 1, 31, 12, 30, tzinfo=datetime.timezone.utc)  # naive taken as UTC
        history.revert(s, e, t1)
        s.commit()
        s.expire_all()
        again = s.get(Event, 1)
        assert (again.at, again.day, again.amount) == (first["at"], first["day"], first["amount"])


def test_composite_primary_keys(orm):
    engine, history, _ = orm
    with Session(engine) as s:
        m = Membership(user_id=1, group="admins", role="owner")
        s.add(m)
        s.commit()
        m.role = "member"
        s.commit()
        assert [v.value["role"] for v in history.versions(Membership, (1, "admins"))] == ["owner", "member"]
        assert history.versions(m)[-1].changeset == {"role": ("owner", "member")}
        history.revert(s, m, 0)  # before it existed: deleted
        s.commit()
        assert s.get(Membership, (1, "admins")) is None
    assert history.as_of(Membership, history.last_txid) == []
