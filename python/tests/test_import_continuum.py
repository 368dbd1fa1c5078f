"""The importer, against a database written by the real SQLAlchemy-Continuum."""

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy_continuum")

import timecask  # noqa: E402
from timecask.import_continuum import import_continuum, main  # noqa: E402
from timecask._rows import decode_row as _decode  # noqa: E402
from timecask._rows import row_key as _key  # noqa: E402

OPS = {0: "insert", 1: "update", 2: "delete"}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    d = tmp_path_factory.mktemp("continuum")
    db_file, answers = d / "example.db", d / "answers.json"
    script = Path(__file__).with_name("continuum_source.py")
    subprocess.run([sys.executable, str(script), str(db_file), str(answers)], check=True)
    return db_file, json.loads(answers.read_text())


def _pk(table, pk):
    return _key((int(pk),)) if table == "user" else _key((pk,))


def test_every_as_of_and_history_answer_matches_continuum(source, tmp_path):
    db_file, expected = source
    report = import_continuum(str(db_file), str(tmp_path / "tc"))
    assert report.ok, str(report)
    assert report.n_transactions == expected["latest"] == 8
    assert sorted(report.tables) == ["article", "user"]
    with timecask.open(tmp_path / "tc") as db:
        assert db.latest_txid() == expected["latest"]
        for name, row in expected["as_of"].items():
            table, pk, t = name.split("/")
            got = _decode(db.as_of(int(t)).get(table, _pk(table, pk)))
            assert got == row, name
        for name, versions in expected["history"].items():
            table, pk = name.split("/")
            got = db.snapshot().history(table, _pk(table, pk))
            assert [v.txid for v in got] == [v[0] for v in versions], name
            assert [v.end_txid for v in got] == [v[1] for v in versions], name
            assert [v.op for v in got] == [OPS[v[2]] for v in versions], name
            live = [(_decode(g.value), v[3]) for g, v in zip(got, versions) if v[2] != 2]
            assert all(a == b for a, b in live), name
        meta = db.transaction_record(1).meta
        assert meta["continuum_transaction_id"] == "1" and "issued_at" in meta


def test_cli_reports_and_refuses_a_non_empty_target(source, tmp_path, capsys):
    db_file, _ = source
    assert main([str(db_file), str(tmp_path / "tc")]) == 0
    out = capsys.readouterr()
    assert "imported 8 transactions" in out.out
    assert "importing [" in out.err  # the progress bar
    assert main([str(db_file), str(tmp_path / "tc"), "--quiet"]) == 1
    assert "already holds transactions" in capsys.readouterr().err
    assert main([str(tmp_path / "nothing.db"), str(tmp_path / "x")]) == 1


def test_gaps_and_inconsistent_validity_are_reported(source, tmp_path):
    db_file, _ = source
    broken = tmp_path / "broken.db"
    broken.write_bytes(db_file.read_bytes())
    with sqlite3.connect(broken) as conn:
        conn.execute('DELETE FROM "transaction" WHERE id = 3')  # a gap (its versions are orphans now)
        conn.execute("UPDATE user_version SET end_transaction_id = 6 WHERE id = 1 AND transaction_id = 2")
        conn.execute("UPDATE user_version SET operation_type = 0 WHERE id = 1 AND transaction_id = 4")
    report = import_continuum(str(broken), str(tmp_path / "tc"))
    assert not report.ok
    assert report.gaps == [3]
    text = str(report)
    assert "names transaction 3, which does not exist" in text
    assert "ends at 6, but the next version is at transaction 4" in text
    assert "insert of a row that already exists" in text
    assert "delete of a row that does not exist" in text  # user 2, whose insert was in the lost transaction
    assert "transaction 5 changed nothing" in text
    with timecask.open(tmp_path / "tc") as db:
        assert db.latest_txid() == 8  # the ids still line up
        assert db.transaction_record(8).meta["continuum_transaction_id"] == "8"
