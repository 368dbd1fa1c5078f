//! Writing: `put`, `delete`, `revert`, `undo`, `import`. Each command is
//! one transaction carrying the `--meta` pairs given.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::value::RawValue;
use timecask::{Db, Error, KeyBytes, Op, TxId, WriteTx};

use crate::common::{Ctx, Need, byte_progress, line, require_table, spinner};
use crate::render::{J, op_json, parse_hex, show_key, with_key};
use crate::typed::Schemas;

pub type Meta = Vec<(String, String)>;

/// A write transaction carrying the `--meta` pairs.
pub fn begin(db: &Db, meta: &Meta) -> Result<WriteTx> {
    let mut tx = db.begin();
    for (k, v) in meta {
        tx.set_meta(k.clone(), v.clone())?;
    }
    Ok(tx)
}

/// Prints what a commit did: `tx 4: update user 1`, or that nothing changed.
fn report(ctx: &Ctx, out: &mut dyn Write, db: &Db, txid: Option<TxId>, what: &str) -> Result<()> {
    let Some(txid) = txid else {
        if ctx.json {
            return line(out, J::obj().with("txid", J::Null).pretty());
        }
        return line(out, format!("unchanged: {what} (no transaction written)"));
    };
    let record = Schemas::new(db).record(db.transaction(txid)?);
    if ctx.json {
        let changes = record
            .changes
            .iter()
            .map(|c| {
                with_key(J::obj().with("table", J::Str(c.table.clone())), &c.key)
                    .with("op", op_json(c.op))
            })
            .collect();
        let doc = J::obj()
            .with("txid", J::Num(txid.0))
            .with("changes", J::Arr(changes));
        return line(out, doc.pretty());
    }
    match record.changes.as_slice() {
        [one] => line(
            out,
            format!("tx {txid}: {} {} {}", one.op, one.table, show_key(&one.key)),
        ),
        many => line(out, format!("tx {txid}: {what} ({} changes)", many.len())),
    }
}

/// The bytes of `put`'s VALUE: as given, from stdin for `-`, hex-decoded
/// with `--value-hex`; with `--require-json` only valid JSON. Without it,
/// a value that starts like JSON but is not gets a warning on stderr.
pub fn value_arg(value: &str, value_hex: bool, require_json: bool) -> Result<Vec<u8>> {
    let text = if value == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut bytes)
            .context("cannot read the value from stdin")?;
        if value_hex {
            let text = String::from_utf8(bytes).map_err(|_| anyhow!("stdin is not hex"))?;
            return parse_hex(text.trim()).map_err(|e| anyhow!("{e}; --value-hex wants hex"));
        }
        // `echo '{...}' | timecask put t k -`: the newline is not the value's.
        if bytes.ends_with(b"\n") {
            bytes.pop();
            if bytes.ends_with(b"\r") {
                bytes.pop();
            }
        }
        bytes
    } else if value_hex {
        return parse_hex(value).map_err(|e| anyhow!("{e}; --value-hex wants hex"));
    } else {
        value.as_bytes().to_vec()
    };
    match serde_json::from_slice::<serde::de::IgnoredAny>(&text) {
        Ok(_) => {}
        Err(e) if require_json => bail!("the value is not valid JSON ({e}); nothing was written"),
        Err(e) => {
            let first = text.iter().find(|b| !b.is_ascii_whitespace());
            if matches!(first, Some(b'{' | b'[')) {
                eprintln!(
                    "warning: the value starts like JSON but is not valid JSON ({e}); \
                     stored as text (--require-json refuses it)"
                );
            }
        }
    }
    Ok(text)
}

/// `put`'s value: the bytes given, and whether they were given as hex
/// (stored as they are even in a typed table).
pub struct PutValue {
    pub bytes: Vec<u8>,
    pub hex: bool,
}

pub fn put(
    ctx: &Ctx,
    out: &mut dyn Write,
    table: &str,
    key: &str,
    value: PutValue,
    meta: &Meta,
) -> Result<()> {
    let db = ctx.open(Need::CreateIfMissing)?;
    let schemas = Schemas::new(&db);
    let key = schemas.key_arg(ctx, table, key)?;
    let value = if value.hex {
        value.bytes
    } else {
        schemas.encode_value(table, value.bytes)?
    };
    let mut tx = begin(&db, meta)?;
    tx.put(table, &key, value)?;
    let txid = tx.commit()?;
    let what = format!(
        "{table} {} already has this value",
        show_key(&schemas.key_text(table, &key))
    );
    report(ctx, out, &db, txid, &what)
}

pub fn delete(ctx: &Ctx, out: &mut dyn Write, table: &str, key: &str, meta: &Meta) -> Result<()> {
    let db = ctx.open(Need::Existing)?;
    require_table(&db, table)?;
    let schemas = Schemas::new(&db);
    let key = schemas.key_arg(ctx, table, key)?;
    let mut tx = begin(&db, meta)?;
    if !tx.delete(table, &key)? {
        bail!(
            "key {} not found in table {table:?}; nothing to delete",
            KeyBytes(schemas.key_text(table, &key))
        );
    }
    let txid = tx.commit()?;
    report(ctx, out, &db, txid, "delete")
}

pub fn revert(
    ctx: &Ctx,
    out: &mut dyn Write,
    table: &str,
    key: &str,
    to: u64,
    meta: &Meta,
) -> Result<()> {
    let db = ctx.open(Need::Existing)?;
    require_table(&db, table)?;
    let schemas = Schemas::new(&db);
    let key = schemas.key_arg(ctx, table, key)?;
    let mut tx = begin(&db, meta)?;
    tx.revert(table, &key, TxId(to))?;
    let txid = tx.commit()?;
    let what = format!(
        "{table} {} already has its value as of tx {to}",
        show_key(&schemas.key_text(table, &key))
    );
    report(ctx, out, &db, txid, &what)
}

pub fn undo(ctx: &Ctx, out: &mut dyn Write, txid: u64, meta: &Meta) -> Result<()> {
    let db = ctx.open(Need::Existing)?;
    let mut tx = begin(&db, meta)?;
    tx.undo(TxId(txid)).map_err(|e| match e {
        Error::Conflict { table, key } => anyhow!(
            "cannot undo tx {txid}: key {key} of table {table:?} was changed by a later \
             transaction; undo that one first, or use revert on the key"
        ),
        other => other.into(),
    })?;
    let done = tx.commit()?;
    report(ctx, out, &db, done, &format!("undo of tx {txid}"))
}

/// The key and value bytes of one import line into `table`: typed keys
/// and JSON values are encoded by the table's schema (a typed `key` may
/// also be JSON: `1`, `["ann",2]`); hex is stored as it is.
fn parse_typed_line(
    schemas: &Schemas,
    ctx: &Ctx,
    table: &str,
    text: &str,
) -> Result<(Vec<u8>, Vec<u8>)> {
    let Some(schema) = schemas.schema(table) else {
        return parse_line(text);
    };
    let fields: BTreeMap<String, &RawValue> = serde_json::from_str(text)?;
    let known = ["key", "key_hex", "value", "value_hex"];
    if let Some(unknown) = fields.keys().find(|k| !known.contains(&k.as_str())) {
        bail!("unknown field {unknown:?}");
    }
    for (a, b) in [("key", "key_hex"), ("value", "value_hex")] {
        if fields.contains_key(a) == fields.contains_key(b) {
            bail!("needs exactly one of {a:?} and {b:?}");
        }
    }
    let key = match fields.get("key") {
        Some(raw) => {
            let text =
                serde_json::from_str::<String>(raw.get()).unwrap_or_else(|_| raw.get().to_string());
            schemas.key_arg(ctx, table, &text)?
        }
        None => parse_line(text)?.0,
    };
    let value = match fields.get("value") {
        Some(raw) if schema.codec.is_self_describing() => {
            schemas.encode_value(table, raw.get().as_bytes().to_vec())?
        }
        Some(_) => bail!(
            "table {table:?} uses the fixed-layout codec {}: give its values as value_hex",
            schema.codec
        ),
        None => parse_line(text)?.1,
    };
    Ok((key, value))
}

/// The key and value bytes of one import line, as `export` writes it:
/// `key` or `key_hex`, and `value` or `value_hex`.
fn parse_line(text: &str) -> Result<(Vec<u8>, Vec<u8>)> {
    let fields: BTreeMap<String, &RawValue> = serde_json::from_str(text).map_err(|e| {
        // serde_json counts lines within this one line: keep only the column.
        let message = e.to_string();
        let message = message.split(" at line ").next().unwrap_or_default();
        anyhow!("{message} at column {}", e.column())
    })?;
    if let Some(unknown) = fields
        .keys()
        .find(|k| !["key", "key_hex", "value", "value_hex"].contains(&k.as_str()))
    {
        bail!("unknown field {unknown:?}");
    }
    let string = |name: &str, raw: &RawValue| {
        serde_json::from_str::<String>(raw.get()).map_err(|_| anyhow!("{name:?} must be a string"))
    };
    let key = match (fields.get("key"), fields.get("key_hex")) {
        (Some(raw), None) => string("key", raw)?.into_bytes(),
        (None, Some(raw)) => {
            parse_hex(&string("key_hex", raw)?).map_err(|e| anyhow!("key_hex: {e}"))?
        }
        _ => bail!("needs exactly one of \"key\" and \"key_hex\""),
    };
    let value = match (fields.get("value"), fields.get("value_hex")) {
        // A JSON string is stored as its text; any other JSON as written.
        (Some(raw), None) if raw.get().starts_with('"') => string("value", raw)?.into_bytes(),
        (Some(raw), None) => raw.get().as_bytes().to_vec(),
        (None, Some(raw)) => {
            parse_hex(&string("value_hex", raw)?).map_err(|e| anyhow!("value_hex: {e}"))?
        }
        _ => bail!("needs exactly one of \"value\" and \"value_hex\""),
    };
    Ok((key, value))
}

/// `import TABLE FILE|-`: JSON lines `{"key": ..., "value": ...}`, all in
/// one transaction; a bad line aborts the whole import.
pub fn import(
    ctx: &Ctx,
    out: &mut dyn Write,
    table: &str,
    file: &Path,
    require_json: bool,
    meta: &Meta,
) -> Result<()> {
    // The file first: a missing file must not leave a new empty database.
    let (reader, name, len): (Box<dyn Read>, String, _) = if file == Path::new("-") {
        (Box::new(std::io::stdin().lock()), "stdin".to_string(), None)
    } else {
        let f =
            std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
        let len = f.metadata().map(|m| m.len()).ok();
        (Box::new(f), file.display().to_string(), len)
    };
    let db = ctx.open(Need::CreateIfMissing)?;
    let schemas = Schemas::new(&db);
    let mut tx = begin(&db, meta)?;
    let bar = match len {
        Some(len) => byte_progress(len),
        None => spinner("reading stdin"),
    };
    bar.set_message(format!("importing into {table}"));
    let mut reader = BufReader::new(bar.wrap_read(reader));
    let mut text = String::new();
    let mut n_rows = 0u64;
    let mut line_no = 0u64;
    loop {
        text.clear();
        let n = reader
            .read_line(&mut text)
            .with_context(|| format!("cannot read {name} at line {}", line_no + 1))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let trimmed = text.trim();
        if trimmed.is_empty() {
            continue;
        }
        let (key, value) = parse_typed_line(&schemas, ctx, table, trimmed)
            .and_then(|(key, value)| {
                if require_json && serde_json::from_slice::<serde::de::IgnoredAny>(&value).is_err() {
                    bail!(
                        "the value would be stored as text or bytes, not JSON \
                         (--require-json; a JSON string is stored as its text)"
                    );
                }
                Ok((key, value))
            })
            .map_err(|e| {
            anyhow!(
                "{name} line {line_no}: {e}; each line must be {{\"key\": ..., \"value\": ...}}; \
                 nothing was imported"
            )
        })?;
        tx.put(table, &key, &value)
            .with_context(|| format!("{name} line {line_no}; nothing was imported"))?;
        n_rows += 1;
    }
    bar.set_message(format!("committing {n_rows} rows"));
    let txid = tx.commit()?;
    bar.finish_and_clear();
    let changes = match txid {
        Some(txid) => db.transaction(txid)?.changes,
        None => Vec::new(),
    };
    let n = |op| changes.iter().filter(|c| c.op == op).count() as u64;
    if ctx.json {
        let doc = J::obj()
            .with("txid", txid.map_or(J::Null, |t| J::Num(t.0)))
            .with("rows", J::Num(n_rows))
            .with("inserted", J::Num(n(Op::Insert)))
            .with("updated", J::Num(n(Op::Update)));
        return line(out, doc.pretty());
    }
    match txid {
        Some(txid) => line(
            out,
            format!(
                "tx {txid}: imported {n_rows} {} into {table} ({} inserted, {} updated)",
                if n_rows == 1 { "row" } else { "rows" },
                n(Op::Insert),
                n(Op::Update),
            ),
        ),
        None => line(
            out,
            format!("unchanged: all {n_rows} rows already had these values in {table}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_line;

    #[test]
    fn import_lines_decode_as_export_encodes() {
        let cases: [(&str, &[u8], &[u8]); 6] = [
            (
                r#"{"key":"1","value":{"b":1, "a":2}}"#,
                b"1",
                br#"{"b":1, "a":2}"#,
            ),
            (r#"{"key":"k","value":"text"}"#, b"k", b"text"),
            (r#"{"key":"k","value":"\"q\""}"#, b"k", br#""q""#),
            (r#"{"key":"k","value":null}"#, b"k", b"null"),
            (r#"{"key_hex":"00ff","value_hex":"0x01"}"#, &[0, 0xff], &[1]),
            (r#" {"value": 7, "key": "x"} "#, b"x", b"7"),
        ];
        for (text, key, value) in cases {
            let (k, v) = parse_line(text.trim()).expect(text);
            assert_eq!((k.as_slice(), v.as_slice()), (key, value), "{text}");
        }
    }

    #[test]
    fn import_lines_refuse_what_they_cannot_read() {
        for text in [
            r#"{"key":"k"}"#,
            r#"{"value":1}"#,
            r#"{"key":"k","key_hex":"00","value":1}"#,
            r#"{"key":"k","value":1,"extra":2}"#,
            r#"{"key":1,"value":1}"#,
            r#"{"key":"k","value_hex":"zz"}"#,
            r#"{"key":"k","value":}"#,
            "[1,2]",
        ] {
            assert!(parse_line(text).is_err(), "{text} was accepted");
        }
    }
}
