//! Typed tables in the CLI: keys and values of tables written through
//! `TableDef`, decoded from their schema entries (no Rust types needed).
//!
//! A typed key is shown as its text (`1`, `alice`, `["ann",2]`: tuples as
//! JSON arrays), which is also how it is typed on the command line and read
//! back by `import`. A value of a self-describing codec (MessagePack) is
//! shown as JSON; a `put` or `import` of JSON into such a table encodes it
//! with the table's codec. Values of the fixed-layout codec (bincode)
//! cannot be decoded without their Rust type: they are shown as hex, and
//! written only as hex (`--value-hex`, `value_hex`).

use std::cell::RefCell;
use std::collections::BTreeMap;

use anyhow::{Result, anyhow, bail};
use timecask::typed::{KeyType, TableSchema, Value};
use timecask::{Db, DiffEntry, TxRecord, Version};

use crate::common::Ctx;

/// The schema entries of a database's typed tables, read once per table.
pub struct Schemas {
    db: Db,
    cache: RefCell<BTreeMap<String, Option<Known>>>,
}

/// One typed table's schema, its key type parsed.
#[derive(Clone)]
struct Known {
    schema: TableSchema,
    key: Option<KeyType>,
}

impl Schemas {
    pub fn new(db: &Db) -> Schemas {
        Schemas {
            db: db.clone(),
            cache: RefCell::new(BTreeMap::new()),
        }
    }

    /// The schema of `table`, if it is typed (and its entry readable).
    fn known(&self, table: &str) -> Option<Known> {
        if let Some(known) = self.cache.borrow().get(table) {
            return known.clone();
        }
        let known = TableSchema::read(&self.db.snapshot(), table)
            .ok()
            .flatten()
            .map(|schema| Known {
                key: schema.key(),
                schema,
            });
        self.cache
            .borrow_mut()
            .insert(table.to_string(), known.clone());
        known
    }

    /// The schema entry of `table`, for `tables`.
    pub fn schema(&self, table: &str) -> Option<TableSchema> {
        self.known(table).map(|k| k.schema)
    }

    /// The bytes of a key given on the command line: hex with `--key-hex`,
    /// else by the table's key type (`1` for a `u64` key, `["ann",2]` for a
    /// tuple), else the text itself.
    pub fn key_arg(&self, ctx: &Ctx, table: &str, text: &str) -> Result<Vec<u8>> {
        if ctx.key_hex {
            return ctx.key(text);
        }
        match self.known(table).and_then(|k| k.key) {
            Some(key_type) => key_type.encode_text(text).map_err(|e| {
                anyhow!(
                    "{}; table {table:?} has {} keys (tuples as JSON arrays: '[\"ann\",2]'; \
                     --key-hex for raw bytes)",
                    e.reason,
                    key_type.name()
                )
            }),
            None => ctx.key(text),
        }
    }

    /// A stored key as the CLI shows it: its text for a typed table, else
    /// the bytes unchanged.
    pub fn key_text(&self, table: &str, key: &[u8]) -> Vec<u8> {
        let Some(known) = self.known(table) else {
            return key.to_vec();
        };
        match known.schema.decode_key(key) {
            Ok(Value::String(text)) => text.into_bytes(),
            Ok(other) => other.to_json().into_bytes(),
            Err(_) => key.to_vec(),
        }
    }

    /// A stored value as the CLI shows it: JSON for a self-describing
    /// typed table, else the bytes unchanged.
    pub fn value_text(&self, table: &str, value: &[u8]) -> Vec<u8> {
        let Some(known) = self.known(table) else {
            return value.to_vec();
        };
        match known.schema.decode_value(value) {
            Ok(tree) => tree.to_json().into_bytes(),
            Err(_) => value.to_vec(),
        }
    }

    fn opt_value_text(&self, table: &str, value: Option<Vec<u8>>) -> Option<Vec<u8>> {
        value.map(|v| self.value_text(table, &v))
    }

    /// A transaction's changes with typed keys and values decoded, its
    /// maintenance records first among them (the commands render those
    /// as purges and erasures, see `render::system_change`).
    pub fn record(&self, record: TxRecord) -> TxRecord {
        let mut record = with_maintenance(record);
        for change in &mut record.changes {
            if self.known(&change.table).is_none() {
                continue;
            }
            change.key = self.key_text(&change.table, &change.key);
            change.value = self.opt_value_text(&change.table, change.value.take());
        }
        record
    }

    /// Versions of one key of `table` with their values decoded.
    pub fn versions(&self, table: &str, mut versions: Vec<Version>) -> Vec<Version> {
        if self.known(table).is_some() {
            for v in &mut versions {
                v.value = self.opt_value_text(table, v.value.take());
            }
        }
        versions
    }

    /// A diff of `table` with keys and values decoded.
    pub fn diff(&self, table: &str, mut entries: Vec<DiffEntry>) -> Vec<DiffEntry> {
        if self.known(table).is_some() {
            for e in &mut entries {
                e.key = self.key_text(table, &e.key);
                e.before = self.opt_value_text(table, e.before.take());
                e.after = self.opt_value_text(table, e.after.take());
            }
        }
        entries
    }

    /// The bytes to store for a value given as text or JSON: a typed
    /// table's codec encodes the JSON; other tables store the bytes.
    pub fn encode_value(&self, table: &str, value: Vec<u8>) -> Result<Vec<u8>> {
        let Some(known) = self.known(table) else {
            return Ok(value);
        };
        let codec = known.schema.codec;
        if !codec.is_self_describing() {
            bail!(
                "table {table:?} uses the fixed-layout codec {codec}, which needs its Rust type \
                 to encode; give the encoded bytes with --value-hex (import: value_hex)"
            );
        }
        let tree: Value = serde_json::from_slice(&value).map_err(|e| {
            anyhow!("table {table:?} is typed ({codec}): the value must be JSON ({e})")
        })?;
        Ok(known.schema.encode(&tree)?)
    }
}

/// `record` with its maintenance records moved to the front of its
/// changes, where the commands look for them (`render::system_change`).
pub fn with_maintenance(mut record: TxRecord) -> TxRecord {
    if !record.maintenance.is_empty() {
        let maintenance = std::mem::take(&mut record.maintenance);
        record.changes.splice(0..0, maintenance);
    }
    record
}
