import pytest

import timecask


@pytest.fixture
def path(tmp_path):
    return tmp_path / "db"


@pytest.fixture
def db(path):
    with timecask.open(path) as db:
        yield db


def commit(db, table, key, value, **meta):
    """Writes one key in a transaction of its own; returns its txid."""
    with db.transaction(meta=meta or None) as tx:
        if value is None:
            tx.delete(table, key)
        else:
            tx.put(table, key, value)
    return tx.txid
