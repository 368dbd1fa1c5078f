//! The bucket: an object store and a prefix, driven synchronously.
//!
//! Every call blocks on a small current-thread tokio runtime owned by the
//! [`Remote`], so the crate's API is plain blocking Rust like the engine's.
//! Do not call it from inside another tokio runtime (wrap it in
//! `spawn_blocking`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    RetryConfig, UpdateVersion,
};

use crate::error::{Error, Result};

/// Where the bucket is and how to reach it. Fields left `None` come from
/// the usual `AWS_*` environment variables (`AWS_ENDPOINT_URL`,
/// `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_ALLOW_HTTP`, ...), as the AWS tools read them.
#[derive(Clone, Debug, Default)]
pub struct S3Options {
    /// Endpoint URL of an S3-compatible server, e.g. `http://127.0.0.1:8333`.
    pub endpoint: Option<String>,
    /// Region (`us-east-1` if neither this nor `AWS_REGION` is set).
    pub region: Option<String>,
    /// Access key id.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// Allow `http://` endpoints.
    pub allow_http: Option<bool>,
}

/// A prefix in a bucket that holds one replicated database.
///
/// ```no_run
/// let remote = timecask_replicate::Remote::from_url(
///     "s3://backups/app-db",
///     &timecask_replicate::S3Options::default(),
/// )?;
/// # Ok::<(), timecask_replicate::Error>(())
/// ```
pub struct Remote {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    url: String,
    rt: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").field("url", &self.url).finish()
    }
}

/// An object's bytes and the version tag the store gave it.
pub(crate) struct Fetched {
    pub bytes: Bytes,
    pub version: UpdateVersion,
}

impl Remote {
    /// Opens `s3://bucket/prefix` with `options` over the environment.
    pub fn from_url(url: &str, options: &S3Options) -> Result<Remote> {
        let invalid = |reason: &str| Error::InvalidUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| invalid("expected s3://bucket/prefix"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(invalid("no bucket name"));
        }
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Some(endpoint) = &options.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = &options.region {
            builder = builder.with_region(region);
        }
        if let Some(key) = &options.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &options.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        // Few, quick retries inside the store: the replicator retries a
        // whole cycle with its own backoff, so a dead server is reported
        // (and retried) within seconds rather than minutes.
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 2,
            retry_timeout: Duration::from_secs(10),
        };
        let client = ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(120));
        // Client options replace the environment's: read AWS_ALLOW_HTTP here.
        let allow_http = options.allow_http.unwrap_or_else(|| {
            std::env::var("AWS_ALLOW_HTTP")
                .is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
        });
        let store = builder
            .with_retry(retry)
            .with_client_options(client)
            .with_allow_http(allow_http)
            .build()
            .map_err(|e| invalid(&e.to_string()))?;
        Remote::new(Arc::new(store), prefix, url)
    }

    /// Wraps any object store (tests use `object_store::memory::InMemory`).
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str, url: &str) -> Result<Remote> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("tokio runtime", e))?;
        Ok(Remote {
            store,
            prefix: prefix.trim_matches('/').to_string(),
            url: url.to_string(),
            rt,
        })
    }

    /// The URL this remote was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The full key of `name` under the prefix.
    pub(crate) fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }

    fn path(&self, name: &str) -> ObjectPath {
        ObjectPath::from(self.key(name))
    }

    fn store_error(&self, op: &'static str, name: &str, source: object_store::Error) -> Error {
        Error::Store {
            op,
            object: self.key(name),
            source,
        }
    }

    /// Writes `bytes` to `name`, replacing it.
    pub(crate) fn put(&self, name: &str, bytes: Bytes) -> Result<()> {
        self.put_mode(name, bytes, PutMode::Overwrite).map(|_| ())
    }

    /// Writes `bytes` to `name` in `mode` (create only, or replace a version).
    pub(crate) fn put_mode(
        &self,
        name: &str,
        bytes: Bytes,
        mode: PutMode,
    ) -> Result<UpdateVersion> {
        let path = self.path(name);
        let opts = PutOptions {
            mode,
            ..PutOptions::default()
        };
        let result = self
            .rt
            .block_on(self.store.put_opts(&path, PutPayload::from(bytes), opts))
            .map_err(|e| self.store_error("put", name, e))?;
        Ok(UpdateVersion {
            e_tag: result.e_tag,
            version: result.version,
        })
    }

    /// Reads `name`; `Ok(None)` if there is no such object.
    pub(crate) fn get_opt(&self, name: &str) -> Result<Option<Fetched>> {
        let path = self.path(name);
        let fetched = self.rt.block_on(async {
            let got = self.store.get(&path).await?;
            let version = UpdateVersion {
                e_tag: got.meta.e_tag.clone(),
                version: got.meta.version.clone(),
            };
            let bytes = got.bytes().await?;
            Ok::<_, object_store::Error>(Fetched { bytes, version })
        });
        match fetched {
            Ok(f) => Ok(Some(f)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.store_error("get", name, e)),
        }
    }

    /// Reads `name`, which the object manifest lists: a missing object is
    /// [`Error::MissingObject`].
    pub(crate) fn get(&self, name: &str) -> Result<Bytes> {
        match self.get_opt(name)? {
            Some(f) => Ok(f.bytes),
            None => Err(Error::MissingObject {
                object: self.key(name),
            }),
        }
    }

    /// Deletes `name` (no error if it is gone).
    pub(crate) fn delete(&self, name: &str) -> Result<()> {
        let path = self.path(name);
        match self.rt.block_on(self.store.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.store_error("delete", name, e)),
        }
    }
}
