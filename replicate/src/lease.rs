//! The lease: one replicator per prefix.
//!
//! The object `lease` holds `{"owner": id, "expires_unix_ms": t}`. It is
//! created with `If-None-Match: *` (`PutMode::Create`); renewed and taken
//! over with `If-Match: <etag>` (`PutMode::Update`), so of two replicators
//! racing for it exactly one wins. A holder renews it every third of its
//! time to live; one that finds it changed under it stops (`LeaseLost`).
//! Expiry compares wall clocks of different machines: they must agree to
//! well within the time to live.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use object_store::{PutMode, UpdateVersion};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::remote::Remote;

pub(crate) const LEASE_OBJECT: &str = "lease";

#[derive(Serialize, Deserialize)]
struct LeaseBody {
    owner: String,
    expires_unix_ms: u64,
}

/// A held lease.
pub(crate) struct Lease {
    owner: String,
    ttl: Duration,
    version: UpdateVersion,
    renewed: Instant,
}

fn now_ms() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// A fresh owner id: host, process and start time.
pub(crate) fn new_owner_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{host}-{}-{nanos:x}", std::process::id())
}

fn body(owner: &str, ttl: Duration) -> Bytes {
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    let body = LeaseBody {
        owner: owner.to_string(),
        expires_unix_ms: now_ms().saturating_add(ttl_ms),
    };
    Bytes::from(serde_json::to_vec(&body).expect("plain data always serializes"))
}

fn is_conflict(e: &Error) -> bool {
    matches!(
        e,
        Error::Store {
            source: object_store::Error::Precondition { .. }
                | object_store::Error::AlreadyExists { .. },
            ..
        }
    )
}

impl Lease {
    /// Takes the lease for `owner`, or refuses with [`Error::Leased`].
    pub(crate) fn acquire(remote: &Remote, owner: &str, ttl: Duration) -> Result<Lease> {
        let held = |version| Lease {
            owner: owner.to_string(),
            ttl,
            version,
            renewed: Instant::now(),
        };
        match remote.put_mode(LEASE_OBJECT, body(owner, ttl), PutMode::Create) {
            Ok(version) => return Ok(held(version)),
            Err(e) if is_conflict(&e) => {}
            Err(e) => return Err(e),
        }
        let leased = |current: &LeaseBody| Error::Leased {
            prefix: remote.url().to_string(),
            owner: current.owner.clone(),
            expires_unix_ms: current.expires_unix_ms,
        };
        let Some(fetched) = remote.get_opt(LEASE_OBJECT)? else {
            // Released between the two calls: one more try.
            return remote
                .put_mode(LEASE_OBJECT, body(owner, ttl), PutMode::Create)
                .map(held);
        };
        let current: LeaseBody =
            serde_json::from_slice(&fetched.bytes).map_err(|e| Error::CorruptObject {
                object: remote.key(LEASE_OBJECT),
                reason: format!("lease does not decode: {e}"),
            })?;
        if current.owner != owner && current.expires_unix_ms > now_ms() {
            return Err(leased(&current));
        }
        match remote.put_mode(
            LEASE_OBJECT,
            body(owner, ttl),
            PutMode::Update(fetched.version),
        ) {
            Ok(version) => Ok(held(version)),
            Err(e) if is_conflict(&e) => Err(leased(&current)),
            Err(e) => Err(e),
        }
    }

    /// Renews the lease if a third of its time to live has passed.
    pub(crate) fn renew_if_due(&mut self, remote: &Remote) -> Result<()> {
        if self.renewed.elapsed() < self.ttl / 3 {
            return Ok(());
        }
        let mode = PutMode::Update(self.version.clone());
        match remote.put_mode(LEASE_OBJECT, body(&self.owner, self.ttl), mode) {
            Ok(version) => {
                self.version = version;
                self.renewed = Instant::now();
                Ok(())
            }
            Err(e) if is_conflict(&e) => {
                let owner = remote
                    .get_opt(LEASE_OBJECT)
                    .ok()
                    .flatten()
                    .and_then(|f| serde_json::from_slice::<LeaseBody>(&f.bytes).ok())
                    .map_or_else(|| "nobody".to_string(), |b| b.owner);
                Err(Error::LeaseLost {
                    prefix: remote.url().to_string(),
                    owner,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// The owner id.
    pub(crate) fn owner(&self) -> &str {
        &self.owner
    }

    /// Gives the lease up (deletes the object).
    pub(crate) fn release(self, remote: &Remote) -> Result<()> {
        remote.delete(LEASE_OBJECT)
    }
}
