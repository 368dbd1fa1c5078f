//! Typed-layer benchmarks: what the typed API costs over the byte API on
//! the same data.
//!
//! Three 10,000-row tables of struct values, written through the
//! typed API (their `u64` keys encode as 8 big-endian bytes, so the byte
//! API reads the same rows), each twice: with the evolvable codec
//! (`TableDef::new`: MessagePack with field names) and with the compact
//! one (`TableDef::compact`: bincode, table name suffixed `_compact`):
//!
//! - `user`: the SPEC.md §5 shape, `{ name, email, age }` (two strings).
//! - `profile`: six fields, three of them strings.
//! - `account`: seven numeric fields, no strings (decoding allocates
//!   nothing: the typed layer's own cost).
//! - `doc` (1,000 rows): a title and a ~4 KiB body, where `get_ref`
//!   shares the cached bytes instead of copying them.
//!
//! For each table, with fixed seeds:
//!
//! - `point_read/<table>/bytes`: `Snapshot::get` of a random key.
//! - `point_read/<table>/typed`: `TableView::get` on a held handle (key
//!   encoded, value decoded into the struct).
//! - `point_read/<table>/typed_borrowed`: `TableView::get_ref` then
//!   `ValueRef::borrow_as` into a twin struct whose strings are `&str`
//!   (no allocation for the fields).
//! - `point_read/user/typed_fresh_handle`: `db.snapshot().typed(T).get(k)`,
//!   a new handle per read, so the schema check is paid every time.
//! - `scan_100/user/{bytes,typed}`: a 100-row range scan.
//!
//! - `codec/user/{msgpack,cbor,bincode}`: decoding one `user` row alone,
//!   with rmp-serde, ciborium and bincode: the measurement behind the
//!   choice of MessagePack as the evolvable codec (sizes go to stderr);
//!   `codec/user/bincode_ours`: the typed layer's own bincode reader
//!   (MessagePack values are read by rmp-serde itself).
//!
//! Run with `cargo bench --bench typed`. Before the criterion runs, an
//! interleaved best-of-7 timing loop prints the typed/bytes ratios of point
//! reads to stderr, each codec against byte reads of its own table (the
//! targets: evolvable < 1.30x, compact < 1.20x).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use timecask::typed::{Codec, TableView};
use timecask::{Config, Db, Durability, Snapshot, TableDef};

const N_KEYS: u64 = 10_000;
const SCAN_LEN: u64 = 100;
/// Rows of the `doc` table (4 KiB each: 4 MiB, well inside the value cache).
const N_DOCS: u64 = 1_000;

/// The SPEC.md §5 user.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct User {
    name: String,
    email: String,
    age: u32,
}

/// A wider record with more strings to allocate on decode.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Profile {
    id: u64,
    name: String,
    email: String,
    age: u32,
    city: String,
    active: bool,
}

/// [`User`] with its strings borrowed from the stored bytes.
#[derive(Deserialize, Debug)]
struct UserRef<'a> {
    name: &'a str,
    email: &'a str,
    age: u32,
}

/// [`Profile`] with its strings borrowed from the stored bytes.
#[derive(Deserialize, Debug)]
struct ProfileRef<'a> {
    id: u64,
    name: &'a str,
    email: &'a str,
    age: u32,
    city: &'a str,
    active: bool,
}

const USERS: TableDef<u64, User> = TableDef::new("user");
const PROFILES: TableDef<u64, Profile> = TableDef::new("profile");
const USERS_COMPACT: TableDef<u64, User> = TableDef::compact("user_compact");
const PROFILES_COMPACT: TableDef<u64, Profile> = TableDef::compact("profile_compact");

/// A record with no strings: what the typed layer costs when decoding
/// allocates nothing.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
struct Account {
    id: u64,
    balance: i64,
    limit: i64,
    opened: u64,
    updated: u64,
    flags: u32,
    frozen: bool,
}

const ACCOUNTS: TableDef<u64, Account> = TableDef::new("account");
const ACCOUNTS_COMPACT: TableDef<u64, Account> = TableDef::compact("account_compact");

/// A large row: a ~4 KiB document.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Doc {
    title: String,
    body: String,
}

/// [`Doc`] with its strings borrowed from the stored bytes.
#[derive(Deserialize, Debug)]
struct DocRef<'a> {
    title: &'a str,
    body: &'a str,
}

const DOCS: TableDef<u64, Doc> = TableDef::new("doc");
const DOCS_COMPACT: TableDef<u64, Doc> = TableDef::compact("doc_compact");

fn doc(k: u64) -> Doc {
    Doc {
        title: format!("Document {k}"),
        body: format!("{k:08} ").repeat(450),
    }
}

fn doc_borrowed(table: &TableView<u64, Doc>, k: u64) -> usize {
    let stored = table.get_ref(&k).expect("get_ref").expect("present");
    let d: DocRef<'_> = stored.borrow_as().expect("decode");
    d.title.len() + d.body.len()
}

fn account(k: u64) -> Account {
    Account {
        id: k,
        balance: (k as i64 - 5_000) * 1_234_567,
        limit: -1_000_000_000,
        opened: 1_700_000_000_000_000 + k,
        updated: 1_760_000_000_000_000 + k * 7,
        flags: (k % 1024) as u32,
        frozen: k.is_multiple_of(17),
    }
}

fn account_borrowed(table: &TableView<u64, Account>, k: u64) -> usize {
    let stored = table.get_ref(&k).expect("get_ref").expect("present");
    let a: Account = stored.borrow_as().expect("decode");
    a.id as usize + a.flags as usize
}

fn user(k: u64) -> User {
    User {
        name: format!("User Number {k:08}"),
        email: format!("user.number-{k:08}@example.com"),
        age: 18 + (k % 60) as u32,
    }
}

fn profile(k: u64) -> Profile {
    Profile {
        id: k,
        name: format!("user-{k:08}"),
        email: format!("user-{k:08}@example.com"),
        age: 18 + (k % 60) as u32,
        city: "Amsterdam".to_string(),
        active: !k.is_multiple_of(3),
    }
}

/// splitmix64: a tiny seeded PRNG.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    db: Db,
}

fn build() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        durability: Durability::Buffered,
        ..Default::default()
    };
    let db = Db::open_with(dir.path(), config).expect("open");
    let mut tx = db.begin();
    for k in 0..N_KEYS {
        for def in [USERS, USERS_COMPACT] {
            tx.typed(def).insert(&k, &user(k)).expect("insert");
        }
        for def in [PROFILES, PROFILES_COMPACT] {
            tx.typed(def).insert(&k, &profile(k)).expect("insert");
        }
        for def in [ACCOUNTS, ACCOUNTS_COMPACT] {
            tx.typed(def).insert(&k, &account(k)).expect("insert");
        }
        if k < N_DOCS {
            for def in [DOCS, DOCS_COMPACT] {
                tx.typed(def).insert(&k, &doc(k)).expect("insert");
            }
        }
    }
    tx.commit().expect("commit");
    db.flush().expect("flush");

    // The two APIs read the same rows.
    let view = db.snapshot();
    assert_eq!(view.typed(USERS).get(&42).expect("get"), Some(user(42)));
    assert_eq!(
        view.typed(PROFILES).get(&42).expect("get"),
        Some(profile(42))
    );
    assert_eq!(
        view.typed(ACCOUNTS).get(&42).expect("get"),
        Some(account(42))
    );
    for table in [
        USERS.name(),
        USERS_COMPACT.name(),
        PROFILES.name(),
        PROFILES_COMPACT.name(),
        ACCOUNTS.name(),
        ACCOUNTS_COMPACT.name(),
        DOCS.name(),
        DOCS_COMPACT.name(),
    ] {
        let raw = view.get(table, 42u64.to_be_bytes()).expect("get");
        let n_bytes = raw.as_ref().map_or(0, Vec::len);
        eprintln!("{table}: the value of key 42 encodes to {n_bytes} bytes");
    }
    Fixture { _dir: dir, db }
}

fn read_bytes(view: &Snapshot, table: &str, k: u64) -> Option<Vec<u8>> {
    view.get(table, k.to_be_bytes()).expect("get")
}

fn read_typed<V: Serialize + DeserializeOwned>(table: &TableView<u64, V>, k: u64) -> Option<V> {
    table.get(&k).expect("get")
}

/// Reads `k` through [`TableView::get_ref`] and decodes it as a borrowing
/// twin of the value type; returns something derived from every field.
type BorrowedRead<V> = fn(&TableView<u64, V>, u64) -> usize;

fn user_borrowed(table: &TableView<u64, User>, k: u64) -> usize {
    let stored = table.get_ref(&k).expect("get_ref").expect("present");
    let user: UserRef<'_> = stored.borrow_as().expect("decode");
    user.name.len() + user.email.len() + user.age as usize
}

fn profile_borrowed(table: &TableView<u64, Profile>, k: u64) -> usize {
    let stored = table.get_ref(&k).expect("get_ref").expect("present");
    let p: ProfileRef<'_> = stored.borrow_as().expect("decode");
    p.id as usize + p.name.len() + p.email.len() + p.age as usize + p.city.len() + p.active as usize
}

/// Interleaved timing loops, best of several rounds, so every variant sees
/// the same cache and CPU state: for the evolvable table and its compact
/// twin, byte reads, typed reads and borrowed reads.
fn print_ratio<V: Serialize + DeserializeOwned>(
    db: &Db,
    defs: [TableDef<u64, V>; 2],
    rows: u64,
    borrowed: BorrowedRead<V>,
) {
    const READS: u64 = 200_000;
    const ROUNDS: u64 = 7;
    let view = db.snapshot();
    let typed = defs.map(|def| view.typed(def));
    let mut best = [Duration::MAX; 6];
    for round in 0..ROUNDS {
        for (variant, best) in best.iter_mut().enumerate() {
            let (def, typed) = (defs[variant / 3], &typed[variant / 3]);
            let mut rng = Rng(0x7e57_0000 + round);
            let started = Instant::now();
            for _ in 0..READS {
                let k = rng.below(rows);
                match variant % 3 {
                    0 => drop(black_box(read_bytes(&view, def.name(), k))),
                    1 => drop(black_box(read_typed(typed, k))),
                    _ => drop(black_box(borrowed(typed, k))),
                }
            }
            *best = (*best).min(started.elapsed());
        }
    }
    let per = |d: Duration| d.as_nanos() as f64 / READS as f64;
    let ns = best.map(per);
    for (i, (codec, target)) in [("evolvable", 1.30), ("compact", 1.20)]
        .into_iter()
        .enumerate()
    {
        let [bytes, owned, borrowed] = [ns[3 * i], ns[3 * i + 1], ns[3 * i + 2]];
        eprintln!(
            "{} point read ({codec}): bytes {bytes:.0} ns; typed get {owned:.0} ns = {:.3}x; typed get_ref+borrow_as {borrowed:.0} ns = {:.3}x (target < {target:.2}x)",
            defs[i].name(),
            owned / bytes,
            borrowed / bytes,
        );
    }
}

/// Decoding one `user` row alone with each candidate codec.
fn bench_codecs(c: &mut Criterion) {
    let value = user(42);
    let msgpack = rmp_serde::to_vec_named(&value).expect("msgpack");
    let mut cbor = Vec::new();
    ciborium::into_writer(&value, &mut cbor).expect("cbor");
    let bincode =
        bincode::serde::encode_to_vec(&value, bincode::config::standard()).expect("bincode");
    eprintln!(
        "user row: msgpack (named) {} bytes, cbor {} bytes, bincode {} bytes",
        msgpack.len(),
        cbor.len(),
        bincode.len()
    );
    let mut group = c.benchmark_group("codec");
    group.sample_size(50);
    group.measurement_time(Duration::from_secs(2));
    group.warm_up_time(Duration::from_secs(1));
    group.bench_function("user/msgpack", |b| {
        b.iter(|| black_box(rmp_serde::from_slice::<User>(black_box(&msgpack)).expect("decode")))
    });
    group.bench_function("user/bincode_ours", |b| {
        b.iter(|| {
            black_box(
                timecask::fuzz_harness::decode_with::<User>(Codec::Bincode, black_box(&bincode))
                    .expect("decode"),
            )
        })
    });
    group.bench_function("user/cbor", |b| {
        b.iter(|| {
            black_box(ciborium::from_reader::<User, _>(black_box(&cbor[..])).expect("decode"))
        })
    });
    group.bench_function("user/bincode", |b| {
        b.iter(|| {
            black_box(
                bincode::serde::decode_from_slice::<User, _>(
                    black_box(&bincode),
                    bincode::config::standard(),
                )
                .expect("decode"),
            )
        })
    });
    group.finish();
}

fn point_reads<V: Serialize + DeserializeOwned>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    view: &Snapshot,
    def: TableDef<u64, V>,
    rows: u64,
    borrowed: BorrowedRead<V>,
) {
    let typed = view.typed(def);
    let mut rng = Rng(0xa5a5_0001);
    group.bench_function(format!("{}/bytes", def.name()), |b| {
        b.iter(|| black_box(read_bytes(view, def.name(), rng.below(rows))))
    });
    let mut rng = Rng(0xa5a5_0001);
    group.bench_function(format!("{}/typed", def.name()), |b| {
        b.iter(|| black_box(read_typed(&typed, rng.below(rows))))
    });
    let mut rng = Rng(0xa5a5_0001);
    group.bench_function(format!("{}/typed_borrowed", def.name()), |b| {
        b.iter(|| black_box(borrowed(&typed, rng.below(rows))))
    });
}

fn bench_typed(c: &mut Criterion) {
    let fixture = build();
    let db = &fixture.db;
    print_ratio(db, [USERS, USERS_COMPACT], N_KEYS, user_borrowed);
    print_ratio(db, [PROFILES, PROFILES_COMPACT], N_KEYS, profile_borrowed);
    print_ratio(db, [ACCOUNTS, ACCOUNTS_COMPACT], N_KEYS, account_borrowed);
    print_ratio(db, [DOCS, DOCS_COMPACT], N_DOCS, doc_borrowed);

    let view = db.snapshot();
    let mut group = c.benchmark_group("point_read");
    group.sample_size(50);
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(1));
    point_reads(&mut group, &view, USERS, N_KEYS, user_borrowed);
    point_reads(&mut group, &view, USERS_COMPACT, N_KEYS, user_borrowed);
    point_reads(&mut group, &view, PROFILES, N_KEYS, profile_borrowed);
    point_reads(
        &mut group,
        &view,
        PROFILES_COMPACT,
        N_KEYS,
        profile_borrowed,
    );
    point_reads(&mut group, &view, ACCOUNTS, N_KEYS, account_borrowed);
    point_reads(
        &mut group,
        &view,
        ACCOUNTS_COMPACT,
        N_KEYS,
        account_borrowed,
    );
    point_reads(&mut group, &view, DOCS, N_DOCS, doc_borrowed);
    point_reads(&mut group, &view, DOCS_COMPACT, N_DOCS, doc_borrowed);
    let mut rng = Rng(0xa5a5_0001);
    group.bench_function("user/typed_fresh_handle", |b| {
        b.iter(|| {
            let k = rng.below(N_KEYS);
            black_box(db.snapshot().typed(USERS).get(&k).expect("get"))
        })
    });
    group.finish();

    let mut group = c.benchmark_group("scan_100");
    group.sample_size(50);
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(SCAN_LEN));
    let users = view.typed(USERS);
    let mut rng = Rng(0xa5a5_0002);
    group.bench_function("user/bytes", |b| {
        b.iter(|| {
            let start = rng.below(N_KEYS - SCAN_LEN);
            let range = start.to_be_bytes()..(start + SCAN_LEN).to_be_bytes();
            let rows = view.range(USERS.name(), range).expect("range");
            black_box(rows.fold(0, |n, kv| n + kv.expect("row").1.len()))
        })
    });
    let mut rng = Rng(0xa5a5_0002);
    group.bench_function("user/typed", |b| {
        b.iter(|| {
            let start = rng.below(N_KEYS - SCAN_LEN);
            let rows = users.range(start..start + SCAN_LEN).expect("range");
            black_box(rows.fold(0, |n, kv| n + kv.expect("row").1.name.len()))
        })
    });
    group.finish();
}

criterion_group!(benches, bench_codecs, bench_typed);
criterion_main!(benches);
