"""Sharing one Db, views, transactions and feeds between threads."""

import threading
from concurrent.futures import ThreadPoolExecutor

import timecask


def test_concurrent_writers_on_distinct_keys(db):
    def write(n):
        txids = []
        for i in range(20):
            with db.transaction(meta={"thread": str(n)}) as tx:
                tx.put("t", f"{n}-{i}", str(i).encode())
            txids.append(tx.txid)
        return txids

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(write, range(8)))
    txids = sorted(t for r in results for t in r)
    assert txids == list(range(1, 161))  # dense, none lost, none repeated
    assert db.snapshot().count("t") == 160
    assert db.verify().n_frames == 160


def test_conflicting_writers_retry_until_done(db):
    db.put("t", "counter", b"0")

    def increment(_):
        while True:
            try:
                with db.transaction() as tx:
                    n = int(tx.get("t", "counter"))
                    tx.put("t", "counter", str(n + 1).encode())
                return
            except timecask.ConflictError:
                continue

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(increment, range(40)))
    assert db.get("t", "counter") == b"40"
    assert [v.value for v in db.snapshot().history("t", "counter")] == [str(i).encode() for i in range(41)]


def test_readers_see_stable_snapshots_while_writers_commit(db):
    db.put("t", "a", b"0")
    db.put("t", "b", b"0")
    stop = threading.Event()
    errors = []

    def writer():
        i = 0
        while not stop.is_set():
            i += 1
            with db.transaction() as tx:  # a and b always change together
                tx.put("t", "a", str(i).encode())
                tx.put("t", "b", str(i).encode())

    def reader():
        for _ in range(200):
            view = db.snapshot()
            pairs = dict(view.range("t"))
            if pairs[b"a"] != pairs[b"b"]:
                errors.append(pairs)

    w = threading.Thread(target=writer)
    w.start()
    readers = [threading.Thread(target=reader) for _ in range(3)]
    for r in readers:
        r.start()
    for r in readers:
        r.join()
    stop.set()
    w.join()
    assert errors == []


def test_one_transaction_shared_between_threads(db):
    with db.transaction() as tx:
        threads = [threading.Thread(target=lambda n=n: tx.put("t", str(n), b"v")) for n in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert db.snapshot().count("t") == 10
    assert tx.txid == 1


def test_iterator_shared_between_threads(db):
    with db.transaction() as tx:
        for i in range(500):
            tx.put("t", f"{i:04}", b"v")
    it = db.snapshot().range("t")
    seen = []
    lock = threading.Lock()

    def drain():
        for k, _ in it:
            with lock:
                seen.append(k)

    threads = [threading.Thread(target=drain) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seen) == [f"{i:04}".encode() for i in range(500)]


def test_feed_consumer_thread_gets_every_commit(db):
    feed = db.changes_since(0)
    got = []

    def consume():
        while len(got) < 30:
            record = feed.wait_next(timeout=30)
            if record is None:
                return
            got.append(record.txid)

    consumer = threading.Thread(target=consume)
    consumer.start()
    for i in range(30):
        db.put("t", "k", str(i).encode())
    consumer.join()
    assert got == list(range(1, 31))
