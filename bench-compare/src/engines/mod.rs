//! The six engines behind [`Engine`](crate::Engine).

pub mod fjall;
pub mod lmdb;
pub mod redb;
pub mod sled;
pub mod sqlite;
pub mod timecask;

/// The KV engines' version key: `table | 0 | key (u64 BE) | !txid (u64 BE)`,
/// so a key's versions sort newest first and "as of txid t" is the first
/// entry at or after `version_key(id, t)`.
pub fn version_key(id: u64, txid: u64) -> [u8; 21] {
    let mut k = [0u8; 21];
    k[..4].copy_from_slice(crate::TABLE.as_bytes());
    k[4] = 0;
    k[5..13].copy_from_slice(&crate::user_key(id));
    k[13..].copy_from_slice(&(!txid).to_be_bytes());
    k
}

/// The first byte string after every version key of the table.
pub const TABLE_END: &[u8] = b"user\x01";

/// `(id, txid)` of a version key.
pub fn parse_version_key(k: &[u8]) -> (u64, u64) {
    let id = u64::from_be_bytes(k[5..13].try_into().expect("8-byte id"));
    let inv = u64::from_be_bytes(k[13..21].try_into().expect("8-byte txid"));
    (id, !inv)
}

/// The KV engines' transaction record key: `transaction | 0 | txid BE`;
/// the value is the commit time, u64 BE microseconds.
pub fn tx_key(txid: u64) -> [u8; 20] {
    let mut k = [0u8; 20];
    k[..11].copy_from_slice(b"transaction");
    k[11] = 0;
    k[12..].copy_from_slice(&txid.to_be_bytes());
    k
}

/// A KV engine's stored version: `op | encoded row`.
pub fn version_value(op: u8, row: &crate::Row) -> Vec<u8> {
    let mut v = Vec::with_capacity(70);
    v.push(op);
    row.encode_into(&mut v);
    v
}

/// A version as the KV engines return it from a history read.
pub struct KvVersion {
    /// Its txid.
    pub txid: u64,
    /// The next version's txid.
    pub end_txid: Option<u64>,
    /// Continuum's operation code.
    pub op: u8,
    /// The encoded row; `None` for a delete.
    pub value: Option<Vec<u8>>,
    /// Commit time, microseconds.
    pub commit_time: u64,
}

/// History lines of KV versions.
pub fn kv_history_lines(h: &[KvVersion]) -> Vec<crate::HistoryLine> {
    h.iter()
        .map(|v| {
            (
                v.txid,
                v.end_txid,
                v.op,
                v.value
                    .as_ref()
                    .map(|b| crate::Row::decode(b).expect("row")),
            )
        })
        .collect()
}
