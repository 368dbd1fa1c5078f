//! SQLite (rusqlite, bundled) with SQLAlchemy-Continuum's schema and its
//! default validity strategy, in WAL mode.
//!
//! Schema as Continuum's `TableBuilder` emits it for a `user(id, name,
//! email, age)` model: `user_version` has the parent's columns plus
//! `transaction_id` (part of the primary key, indexed), `end_transaction_id`
//! (indexed) and `operation_type` (indexed), and the composite indexes
//! `ix_user_version_pk_transaction_id (id, transaction_id DESC)` and
//! `ix_user_version_pk_validity (id, transaction_id, end_transaction_id)`;
//! `transaction(id, issued_at, remote_addr)` records each transaction.
//! Continuum compiles `BigInteger` to `INTEGER` on SQLite, so
//! `transaction.id` is the rowid.
//!
//! One update transaction does what Continuum's unit of work does: insert
//! the transaction row, update the parent row, insert the new version, and
//! close the previous version by setting its `end_transaction_id`
//! (`WHERE transaction_id = (SELECT max(transaction_id) ... < current)`).

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use crate::{Commit, Engine, HistoryLine, OP_DELETE, OP_INSERT, OP_UPDATE, Row};

const FILE: &str = "continuum.sqlite";

const SCHEMA: &str = r#"
CREATE TABLE "transaction" (
    id INTEGER NOT NULL PRIMARY KEY,
    issued_at DATETIME,
    remote_addr VARCHAR(50)
);
CREATE TABLE user (
    id INTEGER NOT NULL PRIMARY KEY,
    name VARCHAR(255),
    email VARCHAR(255),
    age INTEGER
);
CREATE TABLE user_version (
    id INTEGER NOT NULL,
    name VARCHAR(255),
    email VARCHAR(255),
    age INTEGER,
    transaction_id INTEGER NOT NULL,
    end_transaction_id INTEGER,
    operation_type SMALLINT NOT NULL,
    PRIMARY KEY (id, transaction_id)
);
CREATE INDEX ix_user_version_transaction_id ON user_version (transaction_id);
CREATE INDEX ix_user_version_end_transaction_id ON user_version (end_transaction_id);
CREATE INDEX ix_user_version_operation_type ON user_version (operation_type);
CREATE INDEX ix_user_version_pk_transaction_id ON user_version (id, transaction_id DESC);
CREATE INDEX ix_user_version_pk_validity ON user_version (id, transaction_id, end_transaction_id);
"#;

const INSERT_TX: &str =
    r#"INSERT INTO "transaction" (id, issued_at, remote_addr) VALUES (?1, ?2, NULL)"#;
const UPDATE_USER: &str = "UPDATE user SET age = ?2 WHERE id = ?1";
const INSERT_VERSION: &str = "INSERT INTO user_version \
     (id, name, email, age, transaction_id, end_transaction_id, operation_type) \
     VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6)";
const CLOSE_PREVIOUS: &str = "UPDATE user_version SET end_transaction_id = ?1 \
     WHERE id = ?2 AND transaction_id = \
     (SELECT max(transaction_id) FROM user_version WHERE transaction_id < ?1 AND id = ?2)";
/// The issue's as-of read (Continuum's validity strategy).
pub const AS_OF: &str = "SELECT name, email, age FROM user_version \
     WHERE id = ?1 AND transaction_id <= ?2 \
     AND (end_transaction_id > ?2 OR end_transaction_id IS NULL)";
/// Latest: the parent table.
pub const LATEST: &str = "SELECT name, email, age FROM user WHERE id = ?1";
/// History with each version's transaction (for `issued_at`).
pub const HISTORY: &str = r#"SELECT v.transaction_id, v.end_transaction_id, v.operation_type,
     v.name, v.email, v.age, t.issued_at
     FROM user_version v JOIN "transaction" t ON t.id = v.transaction_id
     WHERE v.id = ?1 ORDER BY v.transaction_id"#;
/// Every row as of a transaction, in id order.
pub const SCAN_AS_OF: &str = "SELECT id, name, email, age, operation_type FROM user_version \
     WHERE transaction_id <= ?1 \
     AND (end_transaction_id > ?1 OR end_transaction_id IS NULL) ORDER BY id";

/// A SQLite database with Continuum's tables.
pub struct Sqlite {
    /// The connection.
    pub conn: Connection,
    synchronous: Commit,
}

/// A version row with its transaction's `issued_at`.
pub struct SqlVersion {
    /// `transaction_id`.
    pub txid: u64,
    /// `end_transaction_id`.
    pub end_txid: Option<u64>,
    /// `operation_type`.
    pub op: u8,
    /// The columns.
    pub row: Row,
    /// `transaction.issued_at`, as SQLAlchemy stores a `DateTime` in SQLite.
    pub issued_at: String,
}

/// `YYYY-MM-DD HH:MM:SS.ffffff`, as SQLAlchemy writes a `DateTime` to SQLite.
pub fn sqlalchemy_datetime(micros: u64) -> String {
    let secs = micros / 1_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:06}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        micros % 1_000_000
    )
}

impl Sqlite {
    fn connect(dir: &Path) -> Connection {
        let conn = Connection::open(dir.join(FILE)).expect("sqlite open");
        conn.pragma_update(None, "journal_mode", "WAL")
            .expect("journal_mode");
        conn.pragma_update(None, "synchronous", "NORMAL")
            .expect("synchronous");
        conn.set_prepared_statement_cache_capacity(32);
        conn
    }

    fn set_synchronous(&mut self, commit: Commit) {
        if self.synchronous != commit {
            let value = match commit {
                Commit::Durable => "FULL",
                Commit::Buffered => "NORMAL",
                Commit::Off => "OFF",
            };
            self.conn
                .pragma_update(None, "synchronous", value)
                .expect("synchronous");
            self.synchronous = commit;
        }
    }

    fn write_update(conn: &Connection, txid: u64, id: u64, row: &Row) {
        conn.prepare_cached(INSERT_TX)
            .expect("prepare")
            .execute(params![
                txid as i64,
                sqlalchemy_datetime(crate::now_micros())
            ])
            .expect("insert transaction");
        conn.prepare_cached(UPDATE_USER)
            .expect("prepare")
            .execute(params![id as i64, row.age])
            .expect("update user");
        conn.prepare_cached(INSERT_VERSION)
            .expect("prepare")
            .execute(params![
                id as i64,
                row.name,
                row.email,
                row.age,
                txid as i64,
                OP_UPDATE
            ])
            .expect("insert version");
        let closed = conn
            .prepare_cached(CLOSE_PREVIOUS)
            .expect("prepare")
            .execute(params![txid as i64, id as i64])
            .expect("close previous version");
        assert_eq!(closed, 1, "one previous version closed");
    }

    fn row(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Row> {
        Ok(Row {
            name: r.get(first)?,
            email: r.get(first + 1)?,
            age: r.get(first + 2)?,
        })
    }

    /// The query plan SQLite picks for `sql`, one line per step.
    pub fn explain(&self, sql: &str) -> Vec<String> {
        let mut stmt = self
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("explain");
        let n = stmt.parameter_count();
        let args: Vec<i64> = vec![1; n];
        stmt.query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))
            .expect("explain")
            .map(|r| r.expect("plan row"))
            .collect()
    }
}

impl Engine for Sqlite {
    const NAME: &'static str = "SQLite (Continuum)";
    type Out = Row;
    type History = Vec<SqlVersion>;

    fn create(dir: &Path) -> Self {
        let conn = Sqlite::connect(dir);
        conn.execute_batch(SCHEMA).expect("schema");
        Sqlite {
            conn,
            synchronous: Commit::Buffered,
        }
    }

    fn open(dir: &Path) -> Self {
        Sqlite {
            conn: Sqlite::connect(dir),
            synchronous: Commit::Buffered,
        }
    }

    fn load(&mut self, rows: &[Row]) {
        let tx = self.conn.transaction().expect("begin");
        tx.execute(
            INSERT_TX,
            params![1i64, sqlalchemy_datetime(crate::now_micros())],
        )
        .expect("insert transaction");
        {
            let mut user = tx
                .prepare("INSERT INTO user (id, name, email, age) VALUES (?1, ?2, ?3, ?4)")
                .expect("prepare");
            let mut version = tx.prepare(INSERT_VERSION).expect("prepare");
            for (i, row) in rows.iter().enumerate() {
                let id = i as i64 + 1;
                user.execute(params![id, row.name, row.email, row.age])
                    .expect("insert user");
                version
                    .execute(params![id, row.name, row.email, row.age, 1i64, OP_INSERT])
                    .expect("insert version");
            }
        }
        tx.commit().expect("commit");
    }

    fn update(&mut self, txid: u64, id: u64, row: &Row, commit: Commit) {
        self.set_synchronous(commit);
        let tx = self.conn.transaction().expect("begin");
        Sqlite::write_update(&tx, txid, id, row);
        tx.commit().expect("commit");
    }

    fn update_bulk(&mut self, first_txid: u64, updates: &[(u64, Row)]) {
        let tx = self.conn.transaction().expect("begin");
        for (i, (id, row)) in updates.iter().enumerate() {
            Sqlite::write_update(&tx, first_txid + i as u64, *id, row);
        }
        tx.commit().expect("commit");
    }

    fn sync(&mut self) {
        // A FULL checkpoint writes the WAL into the database file and
        // fsyncs both.
        self.conn
            .query_row("PRAGMA wal_checkpoint(FULL)", [], |_| Ok(()))
            .expect("checkpoint");
    }

    fn as_of(&self, id: u64, txid: u64) -> Option<Row> {
        self.conn
            .prepare_cached(AS_OF)
            .expect("prepare")
            .query_row(params![id as i64, txid as i64], |r| Sqlite::row(r, 0))
            .optional()
            .expect("as_of")
    }

    fn latest(&self, id: u64) -> Option<Row> {
        self.conn
            .prepare_cached(LATEST)
            .expect("prepare")
            .query_row(params![id as i64], |r| Sqlite::row(r, 0))
            .optional()
            .expect("latest")
    }

    fn history(&self, id: u64) -> Vec<SqlVersion> {
        let mut stmt = self.conn.prepare_cached(HISTORY).expect("prepare");
        stmt.query_map(params![id as i64], |r| {
            Ok(SqlVersion {
                txid: r.get::<_, i64>(0)? as u64,
                end_txid: r.get::<_, Option<i64>>(1)?.map(|t| t as u64),
                op: r.get(2)?,
                row: Sqlite::row(r, 3)?,
                issued_at: r.get(6)?,
            })
        })
        .expect("history")
        .map(|v| v.expect("history row"))
        .collect()
    }

    fn history_len(h: &Vec<SqlVersion>) -> usize {
        h.len()
    }

    fn history_lines(h: &Vec<SqlVersion>) -> Vec<HistoryLine> {
        h.iter()
            .map(|v| {
                assert!(v.issued_at.len() == 26, "issued_at is a DateTime");
                let row = (v.op != OP_DELETE).then(|| v.row.clone());
                (v.txid, v.end_txid, v.op, row)
            })
            .collect()
    }

    fn scan_as_of(&self, txid: u64) -> Vec<(u64, Row)> {
        let mut stmt = self.conn.prepare_cached(SCAN_AS_OF).expect("prepare");
        stmt.query_map(params![txid as i64], |r| {
            Ok((
                r.get::<_, i64>(0)? as u64,
                Sqlite::row(r, 1)?,
                r.get::<_, u8>(4)?,
            ))
        })
        .expect("scan")
        .map(|r| r.expect("scan row"))
        .filter(|(_, _, op)| *op != OP_DELETE)
        .map(|(id, row, _)| (id, row))
        .collect()
    }

    const HAS_OFF: bool = true;

    fn notes(&self) -> Vec<String> {
        let mut out = vec![format!(
            "SQLite {} (bundled), WAL, default page cache (`cache_size` -2000: 2 MiB)",
            rusqlite::version()
        )];
        for (what, sql) in [
            ("as-of read", AS_OF),
            ("history", HISTORY),
            ("as-of scan", SCAN_AS_OF),
            ("close previous version", CLOSE_PREVIOUS),
        ] {
            out.push(format!(
                "SQLite plan, {what}: {}",
                self.explain(sql).join("; ")
            ));
        }
        out
    }

    fn foreign_heap_bytes() -> Option<u64> {
        // SAFETY: a plain counter read; SQLite is initialised by then or
        // returns 0.
        Some(unsafe { rusqlite::ffi::sqlite3_memory_used() } as u64)
    }
}
