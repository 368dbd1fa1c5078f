//! Typed handles over the byte API: [`TableDef`] names a table and its
//! types; [`WriteTx::typed`] and [`Snapshot::typed`] open it as a [`Table`]
//! (read-write, inside a transaction) or a [`TableView`] (read-only, at the
//! snapshot's txid).
//!
//! Every call encodes the key with [`KeyEncode`], calls the byte API and
//! decodes what comes back, so typed and byte reads see the same data and
//! the same isolation. A handle checks the table's schema entry once, on its
//! first call, and remembers the answer.

use std::borrow::Borrow;
use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::sync::OnceLock;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::TypedError;
use super::changeset::{FieldChange, changeset};
use super::codec::{self, Codec, DecodeFailure};
use super::key::{Key, KeyEncode, with_key_bytes};
use super::schema::{self, SCHEMA_TABLE, SchemaState};
use super::value_ref::ValueRef;
use crate::tx_range::TxRangeIter;
use crate::{Error, HistoryQuery, KeyBytes, Metadata, Op, RangeIter, Snapshot, Timestamp, TxId};
use crate::{Version, WriteTx};

/// A table name with its key and value types and its value [`Codec`], like
/// redb's `TableDefinition`. It is `Copy` and `const`-constructible, so
/// tables are usually declared once as constants.
///
/// [`TableDef::new`] tables store values as MessagePack with field names,
/// so the value type can evolve: add fields with `#[serde(default)]`,
/// remove fields, rename them with `#[serde(alias = "old")]`, and every old
/// version still reads with the newest struct. [`TableDef::compact`]
/// tables use bincode: smaller rows, a fixed layout for the table's whole
/// history (see [`Codec`] for which to pick when).
///
/// ```
/// use timecask::TableDef;
/// use timecask::typed::Codec;
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct User { name: String }
/// const USERS: TableDef<u64, User> = TableDef::new("user");
/// const SAMPLES: TableDef<u64, (u64, f64)> = TableDef::compact("samples");
/// assert_eq!((USERS.name(), USERS.codec()), ("user", Codec::MessagePack));
/// assert_eq!(SAMPLES.codec(), Codec::Bincode);
/// ```
pub struct TableDef<K, V> {
    name: &'static str,
    codec: Codec,
    types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> TableDef<K, V> {
    /// An evolvable table named `name`: values as MessagePack with field
    /// names ([`Codec::MessagePack`]). The name is checked when used:
    /// names starting with `__timecask` are reserved, and the byte API's
    /// name limits apply.
    pub const fn new(name: &'static str) -> TableDef<K, V> {
        TableDef::with_codec(name, Codec::MessagePack)
    }

    /// A fixed-layout table named `name`: values as bincode
    /// ([`Codec::Bincode`]), for value types that will never change.
    pub const fn compact(name: &'static str) -> TableDef<K, V> {
        TableDef::with_codec(name, Codec::Bincode)
    }

    /// A table named `name` whose values use `codec`.
    pub const fn with_codec(name: &'static str, codec: Codec) -> TableDef<K, V> {
        TableDef {
            name,
            codec,
            types: PhantomData,
        }
    }

    /// The table's name.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The codec this definition asks for. A table created by a build
    /// before evolvable tables keeps the bincode it was written with,
    /// whatever this says.
    pub const fn codec(&self) -> Codec {
        self.codec
    }
}

impl<K, V> Clone for TableDef<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, V> Copy for TableDef<K, V> {}

impl<K, V> fmt::Debug for TableDef<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableDef")
            .field("name", &self.name)
            .field("codec", &self.codec)
            .field("key", &std::any::type_name::<K>())
            .field("value", &std::any::type_name::<V>())
            .finish()
    }
}

/// One version of a typed key, as returned by [`TableView::history`]: the
/// byte API's [`Version`] with the value decoded.
///
/// It is valid over `[txid, end_txid)`; `end_txid` is `None` while it is the
/// newest version the view sees.
#[derive(Clone, Debug, PartialEq)]
pub struct TypedVersion<V> {
    /// The transaction that wrote this version.
    pub txid: TxId,
    /// The transaction that wrote the next version, if the view sees one.
    pub end_txid: Option<TxId>,
    /// Insert, Update or Delete.
    pub op: Op,
    /// The value; `None` for a delete.
    pub value: Option<V>,
    /// When `txid` committed.
    pub commit_time: Timestamp,
    /// The metadata of `txid`.
    pub meta: Metadata,
}

impl<V: Serialize> TypedVersion<V> {
    /// What this version changed, field by field, relative to `previous`
    /// (the version before it in the key's history; `None` for the first).
    ///
    /// ```
    /// # use timecask::{Db, HistoryQuery, TableDef};
    /// # #[derive(serde::Serialize, serde::Deserialize)]
    /// # struct User { name: String, age: u32 }
    /// # const USERS: TableDef<u64, User> = TableDef::new("user");
    /// # fn main() -> Result<(), timecask::TypedError> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let db = Db::open(dir.path())?;
    /// for age in [30, 31] {
    ///     let mut tx = db.begin();
    ///     tx.typed(USERS).put(&1, &User { name: "Alice".into(), age })?;
    ///     tx.commit()?;
    /// }
    /// let history = db.snapshot().typed(USERS).history(&1, HistoryQuery::all())?;
    /// let changes = history[1].changeset(Some(&history[0]))?;
    /// assert_eq!(changes[0].to_string(), "age: 30 -> 31");
    /// # Ok(()) }
    /// ```
    pub fn changeset(
        &self,
        previous: Option<&TypedVersion<V>>,
    ) -> Result<Vec<FieldChange>, TypedError> {
        let old = previous.and_then(|p| p.value.as_ref());
        changeset(old, self.value.as_ref()).map_err(|e| TypedError::Changeset { reason: e.reason })
    }
}

fn encode_value<V: Serialize>(
    codec: Codec,
    table: &str,
    key: &[u8],
    value: &V,
) -> Result<Vec<u8>, TypedError> {
    codec::encode(codec, value).map_err(|reason| TypedError::ValueEncode {
        table: table.to_string(),
        key: KeyBytes(key.to_vec()),
        reason,
    })
}

/// The typed error of a value that did not decode.
pub(crate) fn decode_error(
    table: &str,
    key: &[u8],
    txid: Option<TxId>,
    failure: DecodeFailure,
) -> TypedError {
    TypedError::ValueDecode {
        table: table.to_string(),
        key: KeyBytes(key.to_vec()),
        txid,
        field: failure.field,
        reason: failure.reason,
    }
}

fn decode_value<V: DeserializeOwned>(
    codec: Codec,
    table: &str,
    key: &[u8],
    txid: Option<TxId>,
    bytes: &[u8],
) -> Result<V, TypedError> {
    codec::decode(codec, bytes).map_err(|failure| decode_error(table, key, txid, failure))
}

/// Fills in the txid of a decode error from a point read, looked up only
/// on this error path.
fn with_txid(err: TypedError, txid: impl FnOnce() -> Option<TxId>) -> TypedError {
    match err {
        TypedError::ValueDecode {
            table,
            key,
            txid: None,
            field,
            reason,
        } => TypedError::ValueDecode {
            table,
            key,
            txid: txid(),
            field,
            reason,
        },
        other => other,
    }
}

fn decode_key<K: Key>(table: &str, key: &[u8]) -> Result<K, TypedError> {
    K::from_key_bytes(key).map_err(|e| TypedError::KeyDecode {
        table: table.to_string(),
        key: KeyBytes(key.to_vec()),
        reason: format!("not a {} key: {}", K::type_name(), e.reason),
    })
}

fn decode_pair<K: Key, V: DeserializeOwned>(
    codec: Codec,
    table: &str,
    key: &[u8],
    value: &[u8],
) -> Result<(K, V), TypedError> {
    Ok((
        decode_key(table, key)?,
        decode_value(codec, table, key, None, value)?,
    ))
}

fn decode_version<V: DeserializeOwned>(
    codec: Codec,
    table: &str,
    key: &[u8],
    version: Version,
) -> Result<TypedVersion<V>, TypedError> {
    let txid = Some(version.txid);
    Ok(TypedVersion {
        txid: version.txid,
        end_txid: version.end_txid,
        op: version.op,
        value: version
            .value
            .map(|bytes| decode_value(codec, table, key, txid, &bytes))
            .transpose()?,
        commit_time: version.commit_time,
        meta: version.meta,
    })
}

fn encode_bounds<Q: KeyEncode + ?Sized>(
    range: &impl RangeBounds<Q>,
) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let own = |b: Bound<&Q>| match b {
        Bound::Included(k) => Bound::Included(k.key_bytes()),
        Bound::Excluded(k) => Bound::Excluded(k.key_bytes()),
        Bound::Unbounded => Bound::Unbounded,
    };
    (own(range.start_bound()), own(range.end_bound()))
}

impl WriteTx {
    /// Opens `table` for typed reads and writes in this transaction.
    ///
    /// The handle borrows the transaction; drop it (or let the statement
    /// end) before committing.
    ///
    /// ```
    /// # use timecask::{Db, TableDef};
    /// const COUNTS: TableDef<String, u64> = TableDef::new("counts");
    /// # fn main() -> Result<(), timecask::TypedError> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let db = Db::open(dir.path())?;
    /// let mut tx = db.begin();
    /// let mut counts = tx.typed(COUNTS);
    /// counts.insert("apples", &3)?;
    /// counts.update("apples", &4)?;
    /// assert_eq!(counts.get("apples")?, Some(4));
    /// tx.commit()?;
    /// # Ok(()) }
    /// ```
    pub fn typed<K: Key, V: Serialize + DeserializeOwned>(
        &mut self,
        table: TableDef<K, V>,
    ) -> Table<'_, K, V> {
        Table {
            tx: self,
            def: table,
            schema: Cell::new(SchemaState::Unchecked),
        }
    }
}

impl Snapshot {
    /// Opens `table` for typed reads at this snapshot's txid.
    ///
    /// The view holds its own reference to the snapshot, so it can outlive
    /// the `Snapshot` value it came from.
    ///
    /// ```
    /// # use timecask::{Db, TableDef};
    /// const COUNTS: TableDef<String, u64> = TableDef::new("counts");
    /// # fn main() -> Result<(), timecask::TypedError> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let db = Db::open(dir.path())?;
    /// let mut tx = db.begin();
    /// tx.typed(COUNTS).put("apples", &3)?;
    /// tx.commit()?;
    /// let counts = db.snapshot().typed(COUNTS);
    /// assert_eq!(counts.get("apples")?, Some(3));
    /// assert_eq!(counts.get("pears")?, None);
    /// # Ok(()) }
    /// ```
    pub fn typed<K: Key, V: Serialize + DeserializeOwned>(
        &self,
        table: TableDef<K, V>,
    ) -> TableView<K, V> {
        TableView {
            view: self.clone(),
            def: table,
            checked: OnceLock::new(),
        }
    }
}

/// A typed table inside a write transaction, from [`WriteTx::typed`].
///
/// Reads see the transaction's snapshot plus its own writes. The first
/// write to a table that has no schema entry yet also writes the entry
/// (into [`SCHEMA_TABLE`]) in the same transaction.
pub struct Table<'tx, K, V> {
    tx: &'tx mut WriteTx,
    def: TableDef<K, V>,
    schema: Cell<SchemaState>,
}

impl<K: Key, V: Serialize + DeserializeOwned> Table<'_, K, V> {
    /// Checks the schema entry once and remembers the outcome.
    fn schema(&self) -> Result<SchemaState, TypedError> {
        if self.schema.get() != SchemaState::Unchecked {
            return Ok(self.schema.get());
        }
        let name = self.def.name;
        schema::check_name(name)?;
        let state = match self.tx.get(SCHEMA_TABLE, name)? {
            Some(stored) => {
                SchemaState::Present(schema::check_entry::<K>(name, &stored, self.def.codec)?)
            }
            // Reads every pair of the table, but only for a table with no
            // schema entry, which is empty unless written by the byte API.
            None => schema::absent_unless(name, !self.tx.range::<&[u8]>(name, ..)?.is_empty())?,
        };
        self.schema.set(state);
        Ok(state)
    }

    /// The codec of the table's values (checking the schema entry once).
    fn codec(&self) -> Result<Codec, TypedError> {
        Ok(match self.schema()? {
            SchemaState::Present(codec) => codec,
            SchemaState::Unchecked | SchemaState::Absent => self.def.codec,
        })
    }

    /// Checks the schema entry and writes it if the table has none yet;
    /// returns the codec to write with.
    fn prepare_write(&mut self) -> Result<Codec, TypedError> {
        if self.schema()? == SchemaState::Absent {
            let codec = self.def.codec;
            self.tx.put(
                SCHEMA_TABLE,
                self.def.name,
                schema::entry_bytes::<K, V>(codec),
            )?;
            self.schema.set(SchemaState::Present(codec));
        }
        self.codec()
    }

    /// Adds the txid of the version that failed to decode.
    fn locate(&self, err: TypedError, key: &[u8]) -> TypedError {
        with_txid(err, || self.tx.committed_txid(self.def.name, key))
    }

    /// The table's definition.
    pub fn def(&self) -> TableDef<K, V> {
        self.def
    }

    /// The value of `key` as this transaction sees it.
    pub fn get<Q>(&self, key: &Q) -> Result<Option<V>, TypedError>
    where
        K: Borrow<Q>,
        Q: KeyEncode + ?Sized,
    {
        let codec = self.codec()?;
        with_key_bytes(key, |key| {
            self.tx
                .get_with(self.def.name, key, |bytes| {
                    decode_value(codec, self.def.name, key, None, bytes)
                })?
                .transpose()
                .map_err(|e| self.locate(e, key))
        })
    }

    /// The stored bytes of `key`'s value as this transaction sees it,
    /// decoded on demand (see [`ValueRef`]).
    pub fn get_ref<Q>(&self, key: &Q) -> Result<Option<ValueRef<V>>, TypedError>
    where
        K: Borrow<Q>,
        Q: KeyEncode + ?Sized,
    {
        let codec = self.codec()?;
        with_key_bytes(key, |key| {
            Ok(self
                .tx
                .get_bytes(self.def.name, key)?
                .map(|bytes| ValueRef::new(bytes, codec, self.def.name, key)))
        })
    }

    /// Whether `key` is live as this transaction sees it.
    pub fn contains<Q>(&self, key: &Q) -> Result<bool, TypedError>
    where
        K: Borrow<Q>,
        Q: KeyEncode + ?Sized,
    {
        self.schema()?;
        with_key_bytes(key, |key| Ok(self.tx.contains(self.def.name, key)?))
    }

    /// Writes `value` under `key`, inserting or updating it.
    pub fn put<Q>(&mut self, key: &Q, value: &V) -> Result<(), TypedError>
    where
        K: Borrow<Q>,
        Q: KeyEncode + ?Sized,
    {
        let codec = self.prepare_write()?;
        let key = key.key_bytes();
        let bytes = encode_value(codec, self.def.name, &key, value)?;
        Ok(self.tx.put(self.def.name, key, bytes)?)
    }

    /// Writes `value` under `key`, which must not be live:
    /// [`Error::KeyExists`] (as [`TypedError::Db`]) otherwise.
    pub fn insert<Q>(&mut self, key: &Q, value: &V) -> Result<(), TypedError>
    where
        K: Borrow<Q>,
        Q: KeyEncode + ?Sized,
    {
        let codec = self.prepare_write()?;
        let key = key.key_bytes();
        let bytes = encode_value(codec, self.def.name, &key, value)?;
        Ok(self.tx.insert(self.def.name, key, bytes)?)
    }

    /// Replaces the value of `key`, which must be live:
    /// [`Error::KeyNotFound`] (as [`TypedError::Db`]) otherwise.
    pub fn update<Q>(&mut self, key: &Q, value: &V) -> Result<(), TypedError>
    where
        K: Borrow<Q>,
        Q: KeyEncode + ?Sized,
    {
        let codec = self.prepare_write()?;
        let key = key.key_bytes();
        let bytes = encode_value(codec, self.def.name, &key, value)?;
        Ok(self.tx.update(self.def.name, key, bytes)?)
    }

    /// Deletes `key`; returns whether it was live.
    pub fn delete<Q>(&mut self, key: &Q) -> Result<bool, TypedError>
    where
        K: Borrow<Q>,
        Q: KeyEncode + ?Sized,
    {
        let key = key.key_bytes();
        // Deleting nothing writes nothing, not even a schema entry.
        if !self.contains_bytes(&key)? {
            return Ok(false);
        }
        self.prepare_write()?;
        Ok(self.tx.delete(self.def.name, key)?)
    }

    fn contains_bytes(&self, key: &[u8]) -> Result<bool, TypedError> {
        self.schema()?;
        Ok(self.tx.contains(self.def.name, key)?)
    }

    /// Key–value pairs with keys in `range` as this transaction sees them
    /// (its own writes over its snapshot), in key order; lazy and
    /// double-ended like [`TableView::range`]. The iterator borrows
    /// nothing: it sees the transaction's writes made before this call.
    ///
    /// ```
    /// # use timecask::{Db, TableDef};
    /// const SCORES: TableDef<(String, u32), i64> = TableDef::new("scores");
    /// # fn main() -> Result<(), timecask::TypedError> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let db = Db::open(dir.path())?;
    /// let mut tx = db.begin();
    /// let mut scores = tx.typed(SCORES);
    /// for (player, round, score) in [("ann", 1, 10), ("ann", 2, -3), ("bo", 1, 7)] {
    ///     scores.put(&(player.to_string(), round), &score)?;
    /// }
    /// let ann = scores.range(("ann".to_string(), 0)..=("ann".to_string(), u32::MAX))?;
    /// let ann: Vec<_> = ann.collect::<Result<_, _>>()?;
    /// assert_eq!(ann, [(("ann".to_string(), 1), 10), (("ann".to_string(), 2), -3)]);
    /// let last = scores.range::<(String, u32), _>(..)?.next_back().transpose()?;
    /// assert_eq!(last, Some((("bo".to_string(), 1), 7)));
    /// # Ok(()) }
    /// ```
    pub fn range<Q, R>(&self, range: R) -> Result<TypedRange<K, V>, TypedError>
    where
        K: Borrow<Q>,
        Q: KeyEncode + ?Sized,
        R: RangeBounds<Q>,
    {
        let codec = self.codec()?;
        let (start, end) = encode_bounds(&range);
        Ok(TypedRange {
            inner: Pairs::Tx(self.tx.range_iter(self.def.name, start, end)?),
            codec,
            def: self.def,
        })
    }
}

/// A typed table at a snapshot's txid, from [`Snapshot::typed`]: a view
/// that never changes, whatever is committed meanwhile.
pub struct TableView<K, V> {
    view: Snapshot,
    def: TableDef<K, V>,
    checked: OnceLock<Codec>,
}

impl<K: Key, V: Serialize + DeserializeOwned> TableView<K, V> {
    /// Checks the schema entry once and returns the table's codec; later
    /// calls return at once.
    fn check(&self) -> Result<Codec, TypedError> {
        if let Some(codec) = self.checked.get() {
            return Ok(*codec);
        }
        let name = self.def.name;
        schema::check_name(name)?;
        let codec = match self.view.get(SCHEMA_TABLE, name)? {
            Some(stored) => schema::check_entry::<K>(name, &stored, self.def.codec)?,
            None => {
                let has_data = self.view.iter(name)?.next().transpose()?.is_some();
                schema::absent_unless(name, has_data)?;
                self.def.codec
            }
        };
        let _ = self.checked.set(codec);
        Ok(codec)
    }

    /// Adds the txid of the version that failed to decode.
    fn locate(&self, err: TypedError, key: &[u8]) -> TypedError {
        with_txid(err, || {
            let version = self.view.get_version(self.def.name, key).ok()??;
            Some(version.txid)
        })
    }

    /// The table's definition.
    pub fn def(&self) -> TableDef<K, V> {
        self.def
    }

    /// The txid this view is as of.
    pub fn txid(&self) -> TxId {
        self.view.txid()
    }

    /// The value of `key` at this txid.
    pub fn get<Q>(&self, key: &Q) -> Result<Option<V>, TypedError>
    where
        K: Borrow<Q>,
        Q: KeyEncode + ?Sized,
    {
        let codec = self.check()?;
        with_key_bytes(key, |key| {
            self.view
                .get_with(self.def.name, key, |bytes| {
                    decode_value(codec, self.def.name, key, None, bytes)
                })?
                .transpose()
                .map_err(|e| self.locate(e, key))
        })
    }

    /// The stored bytes of `key`'s value at this txid, decoded on demand:
    /// into `V`, or into a type that borrows from them (see [`ValueRef`]).
    pub fn get_ref<Q>(&self, key: &Q) -> Result<Option<ValueRef<V>>, TypedError>
    where
        K: Borrow<Q>,
        Q: KeyEncode + ?Sized,
    {
        let codec = self.check()?;
        with_key_bytes(key, |key| {
            Ok(self
                .view
                .get_bytes(self.def.name, key)?
                .map(|bytes| ValueRef::new(bytes, codec, self.def.name, key)))
        })
    }

    /// Whether `key` has a live value at this txid (no value read).
    pub fn contains<Q>(&self, key: &Q) -> Result<bool, TypedError>
    where
        K: Borrow<Q>,
        Q: KeyEncode + ?Sized,
    {
        self.check()?;
        with_key_bytes(key, |key| Ok(self.view.contains(self.def.name, key)?))
    }

    /// The version of `key` visible at this txid, including a delete;
    /// `None` if the key never existed up to here.
    pub fn get_version<Q>(&self, key: &Q) -> Result<Option<TypedVersion<V>>, TypedError>
    where
        K: Borrow<Q>,
        Q: KeyEncode + ?Sized,
    {
        let codec = self.check()?;
        let key = key.key_bytes();
        self.view
            .get_version(self.def.name, &key)?
            .map(|v| decode_version(codec, self.def.name, &key, v))
            .transpose()
    }

    /// Key–value pairs with keys in `range`, in key order; call `.rev()`
    /// for reverse order. Ranges of borrowed keys work as with
    /// `BTreeMap::range`.
    ///
    /// ```
    /// # use timecask::{Db, TableDef};
    /// const TEMPS: TableDef<i32, String> = TableDef::new("temps");
    /// # fn main() -> Result<(), timecask::TypedError> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let db = Db::open(dir.path())?;
    /// let mut tx = db.begin();
    /// for t in [-20, -5, 0, 7, 30] {
    ///     tx.typed(TEMPS).put(&t, &format!("{t}°"))?;
    /// }
    /// tx.commit()?;
    /// let temps = db.snapshot().typed(TEMPS);
    /// let below_freezing: Vec<i32> = temps.range(..0)?.map(|kv| kv.map(|(k, _)| k)).collect::<Result<_, _>>()?;
    /// assert_eq!(below_freezing, [-20, -5]);
    /// let warmest = temps.range(0..)?.next_back().transpose()?;
    /// assert_eq!(warmest, Some((30, "30°".to_string())));
    /// # Ok(()) }
    /// ```
    pub fn range<Q, R>(&self, range: R) -> Result<TypedRange<K, V>, TypedError>
    where
        K: Borrow<Q>,
        Q: KeyEncode + ?Sized,
        R: RangeBounds<Q>,
    {
        let codec = self.check()?;
        let inner = self.view.range(self.def.name, encode_bounds(&range))?;
        Ok(TypedRange {
            inner: Pairs::View(inner),
            codec,
            def: self.def,
        })
    }

    /// Every key–value pair, in key order.
    pub fn iter(&self) -> Result<TypedRange<K, V>, TypedError> {
        let codec = self.check()?;
        Ok(TypedRange {
            inner: Pairs::View(self.view.iter(self.def.name)?),
            codec,
            def: self.def,
        })
    }

    /// Number of live keys at this txid.
    pub fn count(&self) -> Result<u64, TypedError> {
        self.check()?;
        Ok(self.view.count(self.def.name)?)
    }

    /// The versions of `key` up to this view's txid, as selected by
    /// `query`, values decoded.
    pub fn history<Q>(
        &self,
        key: &Q,
        query: HistoryQuery,
    ) -> Result<Vec<TypedVersion<V>>, TypedError>
    where
        K: Borrow<Q>,
        Q: KeyEncode + ?Sized,
    {
        let codec = self.check()?;
        let key = key.key_bytes();
        self.view
            .history(self.def.name, &key, query)?
            .into_iter()
            .map(|v| decode_version(codec, self.def.name, &key, v))
            .collect()
    }

    /// The value of `key` as of `txid` (at most this view's txid).
    pub fn get_as_of<Q>(&self, key: &Q, txid: TxId) -> Result<Option<V>, TypedError>
    where
        K: Borrow<Q>,
        Q: KeyEncode + ?Sized,
    {
        let codec = self.check()?;
        if txid > self.view.txid() {
            return Err(Error::FutureTxid {
                requested: txid,
                latest: self.view.txid(),
            }
            .into());
        }
        let key = key.key_bytes();
        let query = HistoryQuery::all().txids(..=txid).newest_first().limit(1);
        let newest = self.view.history(self.def.name, &key, query)?.pop();
        match newest {
            Some(Version {
                txid,
                value: Some(bytes),
                ..
            }) => decode_value(codec, self.def.name, &key, Some(txid), &bytes).map(Some),
            _ => Ok(None),
        }
    }

    /// How the value of `key` changed, field by field, from as of `from`
    /// to as of `to` (both at most this view's txid).
    pub fn changeset<Q>(
        &self,
        key: &Q,
        from: TxId,
        to: TxId,
    ) -> Result<Vec<FieldChange>, TypedError>
    where
        K: Borrow<Q>,
        Q: KeyEncode + ?Sized,
    {
        let old = self.get_as_of(key, from)?;
        let new = self.get_as_of(key, to)?;
        changeset(old.as_ref(), new.as_ref())
            .map_err(|e| TypedError::Changeset { reason: e.reason })
    }

    /// What transaction `txid` changed in `key`, field by field (empty if
    /// it did not write `key`): Continuum's `version.changeset`.
    ///
    /// ```
    /// # use timecask::{Db, TableDef};
    /// # #[derive(serde::Serialize, serde::Deserialize)]
    /// # struct User { name: String, age: u32 }
    /// # const USERS: TableDef<u64, User> = TableDef::new("user");
    /// # fn main() -> Result<(), timecask::TypedError> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let db = Db::open(dir.path())?;
    /// # let mut tx = db.begin();
    /// # tx.typed(USERS).put(&1, &User { name: "Alice".into(), age: 30 })?;
    /// # tx.commit()?;
    /// let mut tx = db.begin();
    /// tx.typed(USERS).put(&1, &User { name: "Bob".into(), age: 30 })?;
    /// let t2 = tx.commit()?.expect("a change");
    /// let changes = db.snapshot().typed(USERS).changeset_at(&1, t2)?;
    /// assert_eq!(changes[0].to_string(), "name: Alice -> Bob");
    /// # Ok(()) }
    /// ```
    pub fn changeset_at<Q>(&self, key: &Q, txid: TxId) -> Result<Vec<FieldChange>, TypedError>
    where
        K: Borrow<Q>,
        Q: KeyEncode + ?Sized,
    {
        match txid.0.checked_sub(1) {
            Some(before) => self.changeset(key, TxId(before), txid),
            None => Ok(Vec::new()),
        }
    }
}

impl<K, V> fmt::Debug for TableView<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableView")
            .field("table", &self.def.name)
            .field("txid", &self.view.txid())
            .finish_non_exhaustive()
    }
}

/// Iterator over typed key–value pairs, from [`TableView::range`],
/// [`TableView::iter`] and [`Table::range`]. Double-ended: `.rev()` walks backwards.
pub struct TypedRange<K, V> {
    inner: Pairs,
    codec: Codec,
    def: TableDef<K, V>,
}

/// Where a [`TypedRange`] reads its byte pairs.
enum Pairs {
    /// A view's range.
    View(RangeIter),
    /// A write transaction's range: its writes over its snapshot.
    Tx(TxRangeIter),
}

impl Pairs {
    fn next(&mut self) -> Option<crate::Result<(Vec<u8>, Vec<u8>)>> {
        match self {
            Pairs::View(it) => it.next(),
            Pairs::Tx(it) => it.next(),
        }
    }

    fn next_back(&mut self) -> Option<crate::Result<(Vec<u8>, Vec<u8>)>> {
        match self {
            Pairs::View(it) => it.next_back(),
            Pairs::Tx(it) => it.next_back(),
        }
    }
}

impl<K: Key, V: DeserializeOwned> TypedRange<K, V> {
    fn decode(&self, item: crate::Result<(Vec<u8>, Vec<u8>)>) -> Result<(K, V), TypedError> {
        let (k, v) = item?;
        decode_pair(self.codec, self.def.name, &k, &v)
    }
}

impl<K: Key, V: DeserializeOwned> Iterator for TypedRange<K, V> {
    type Item = Result<(K, V), TypedError>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.inner.next()?;
        Some(self.decode(item))
    }
}

impl<K: Key, V: DeserializeOwned> DoubleEndedIterator for TypedRange<K, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let item = self.inner.next_back()?;
        Some(self.decode(item))
    }
}
