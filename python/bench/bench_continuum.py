"""The issue-15 workload through three stacks, measured in one run:

1. the plain Python API (one ``db.put`` transaction per update),
2. SQLAlchemy + ``timecask.sqlalchemy`` (SQLite for the rows, timecask for history),
3. SQLAlchemy + SQLAlchemy-Continuum on SQLite (the stack it replaces).

Workload: N users inserted in one commit, then U single-row updates, one
commit each (round-robin over users, a changing ``age`` and ``name``);
then as-of reads of one row at random past txids and full histories of one
user (U/N + 1 versions). Each stack runs in its own process (Continuum
patches SQLAlchemy globally). Durability: fsync per commit everywhere
(timecask ``immediate``; SQLite's default ``synchronous=FULL``).

    python python/bench/bench_continuum.py [--users 1000] [--updates 20000]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

READS = 2000
HISTORIES = 500


def _timed(fn, n):
    samples = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1e6


def plain(users, updates, workdir):
    import msgpack

    import timecask

    db = timecask.open(Path(workdir) / "plain")
    t = db.table("user", codec="msgpack", key="u64")
    with db.transaction() as tx:
        h = tx.table("user", codec="msgpack", key="u64")
        for i in range(users):
            h.insert(i, {"id": i, "name": f"user{i}", "email": f"u{i}@example.com", "age": 0})
    start = time.perf_counter()
    for n in range(updates):
        i = n % users
        t.put(i, {"id": i, "name": f"user{i}-{n}", "email": f"u{i}@example.com", "age": n})
    commits = updates / (time.perf_counter() - start)
    latest = db.latest_txid()
    rng = random.Random(7)
    txids = [rng.randint(1, latest) for _ in range(READS)]
    raw_key = (1).to_bytes(8, "big")
    as_of = _timed(lambda i: msgpack.unpackb(db.as_of(txids[i]).get("user", raw_key)), READS)
    history = _timed(lambda i: t.history(1), HISTORIES)
    n_versions = len(t.history(1))
    db.close()
    return {"commits_per_s": commits, "as_of_us": as_of, "history_us": history, "n_versions": n_versions}


def _models(continuum):
    import sqlalchemy as sa
    from sqlalchemy.orm import declarative_base

    Base = declarative_base()

    class User(Base):
        __tablename__ = "user"
        if continuum:
            __versioned__ = {}
        id = sa.Column(sa.Integer, primary_key=True)
        name = sa.Column(sa.String)
        email = sa.Column(sa.String)
        age = sa.Column(sa.Integer)

    return Base, User


def _orm_workload(Session, engine, User, users, updates):
    with Session(engine) as s:
        s.add_all([User(id=i, name=f"user{i}", email=f"u{i}@example.com", age=0) for i in range(users)])
        s.commit()
        objs = {u.id: u for u in s.query(User)}
        start = time.perf_counter()
        for n in range(updates):
            u = objs[n % users]
            u.name = f"user{u.id}-{n}"
            u.age = n
            s.commit()
        return updates / (time.perf_counter() - start)


def sqlalchemy_timecask(users, updates, workdir):
    import sqlalchemy as sa
    from sqlalchemy.orm import Session

    import timecask
    from timecask.sqlalchemy import versioned

    Base, User = _models(False)
    engine = sa.create_engine(f"sqlite:///{Path(workdir) / 'app.db'}")
    Base.metadata.create_all(engine)
    db = timecask.open(Path(workdir) / "history")
    history = versioned(Base, db, user=lambda: "bench")
    commits = _orm_workload(Session, engine, User, users, updates)
    latest = db.latest_txid()
    rng = random.Random(7)
    txids = [rng.randint(1, latest) for _ in range(READS)]
    as_of = _timed(lambda i: history.version_at(User, txids[i], pk=1), READS)
    hist = _timed(lambda i: history.versions(User, 1), HISTORIES)
    n_versions = len(history.versions(User, 1))
    return {"commits_per_s": commits, "as_of_us": as_of, "history_us": hist, "n_versions": n_versions}


def continuum(users, updates, workdir):
    import sqlalchemy as sa
    from sqlalchemy.orm import Session, configure_mappers
    from sqlalchemy_continuum import make_versioned, version_class

    make_versioned(user_cls=None)
    Base, User = _models(True)
    configure_mappers()
    engine = sa.create_engine(f"sqlite:///{Path(workdir) / 'continuum.db'}")
    Base.metadata.create_all(engine)
    commits = _orm_workload(Session, engine, User, users, updates)
    UserVersion = version_class(User)
    with Session(engine) as s:
        latest = s.execute(sa.text('SELECT max(id) FROM "transaction"')).scalar()
        rng = random.Random(7)
        txids = [rng.randint(1, latest) for _ in range(READS)]

        def as_of(i):
            t = txids[i]
            s.query(UserVersion).filter(
                UserVersion.id == 1,
                UserVersion.transaction_id <= t,
                sa.or_(UserVersion.end_transaction_id > t, UserVersion.end_transaction_id.is_(None)),
            ).one_or_none()

        def history(_):
            s.query(UserVersion).filter(UserVersion.id == 1).order_by(UserVersion.transaction_id).all()

        a = _timed(as_of, READS)
        h = _timed(history, HISTORIES)
        n_versions = s.query(UserVersion).filter(UserVersion.id == 1).count()
    return {"commits_per_s": commits, "as_of_us": a, "history_us": h, "n_versions": n_versions}


STACKS = {"plain": plain, "sqlalchemy+timecask": sqlalchemy_timecask, "sqlalchemy-continuum": continuum}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--updates", type=int, default=20000)
    parser.add_argument("--stack", choices=list(STACKS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stack:
        with tempfile.TemporaryDirectory() as d:
            print(json.dumps(STACKS[args.stack](args.users, args.updates, d)))
        return
    print(f"{args.users} users, {args.updates} single-row updates, fsync per commit; medians")
    print(f"{'stack':<22} {'commits/s':>10} {'as-of read':>12} {'history':>12} {'versions':>9}")
    for name in STACKS:
        out = subprocess.run(
            [sys.executable, __file__, "--stack", name, "--users", str(args.users), "--updates", str(args.updates)],
            check=True, capture_output=True, text=True,
        ).stdout
        r = json.loads(out)
        print(f"{name:<22} {r['commits_per_s']:>10.0f} {r['as_of_us']:>10.1f}µs {r['history_us']:>10.1f}µs {r['n_versions']:>9}")


if __name__ == "__main__":
    main()
