//! Which objects rebuild the database as of a txid.
//!
//! A *base* is a shipped MANIFEST generation (or none: the log from
//! segment 1, txid 1) whose runs are all in the bucket. From its
//! `log_first_segment` on, the bucket's segment pieces form a *chain*:
//! each segment from offset 0, its pieces contiguous, its first txid the
//! previous segment's last + 1, the first one's `log_first_txid`. A base
//! can restore every txid from its `runs_through` to the chain's last
//! txid. Runs never cover txids past their manifest's `runs_through`, so
//! a restore to `T` never holds anything after `T`.

use crate::objects::{Chunk, ManifestObject, ObjectManifest};

/// The segments of a chain: id and its pieces in order.
pub(crate) type Chain<'a> = Vec<(u32, Vec<&'a Chunk>)>;

/// A base and how far its chain reaches.
pub(crate) struct Plan<'a> {
    pub base: Option<&'a ManifestObject>,
    pub chain: Chain<'a>,
    pub runs_through: u64,
    pub reach: u64,
}

fn chain_from<'a>(objects: &'a ObjectManifest, segment: u32, first_txid: u64) -> (Chain<'a>, u64) {
    let mut chain = Vec::new();
    let mut expected = first_txid;
    let mut id = segment;
    loop {
        let pieces: Vec<&Chunk> = objects.chunks.iter().filter(|c| c.segment == id).collect();
        let starts_right = pieces
            .first()
            .is_some_and(|c| c.start == 0 && c.first_txid == expected);
        if !starts_right {
            break;
        }
        // Contiguous within a segment (checked when the object manifest
        // was decoded).
        let last = pieces.last().map_or(expected - 1, |c| c.last_txid);
        chain.push((id, pieces));
        expected = last + 1;
        let Some(next) = id.checked_add(1) else { break };
        id = next;
    }
    (chain, expected - 1)
}

/// Every usable base with its chain.
pub(crate) fn plans(objects: &ObjectManifest) -> Vec<Plan<'_>> {
    let mut out = Vec::new();
    let (chain, reach) = chain_from(objects, 1, 1);
    if !chain.is_empty() {
        out.push(Plan {
            base: None,
            chain,
            runs_through: 0,
            reach,
        });
    }
    for m in &objects.manifests {
        let runs_shipped = m
            .runs
            .iter()
            .all(|n| objects.runs.iter().any(|r| r.number == *n));
        if !runs_shipped {
            continue;
        }
        let (chain, reach) = chain_from(objects, m.log_first_segment, m.log_first_txid);
        if !chain.is_empty() {
            out.push(Plan {
                base: Some(m),
                chain,
                runs_through: m.runs_through,
                reach,
            });
        }
    }
    out
}

/// The plan restoring `txid`: the base with the most in runs.
pub(crate) fn plan_for(objects: &ObjectManifest, txid: u64) -> Option<Plan<'_>> {
    plans(objects)
        .into_iter()
        .filter(|p| p.runs_through <= txid && txid <= p.reach)
        .max_by_key(|p| (p.runs_through, p.base.map_or(0, |b| b.seq)))
}

/// The txids the bucket can restore, as merged inclusive ranges.
pub fn restorable(objects: &ObjectManifest) -> Vec<(u64, u64)> {
    let mut ranges: Vec<(u64, u64)> = plans(objects)
        .iter()
        .map(|p| (p.runs_through, p.reach))
        .collect();
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (a, b) in ranges {
        match merged.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    merged
}
