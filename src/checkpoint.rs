//! The index checkpoint file `index.tccp`: a snapshot of the in-memory
//! index plus what it covers of the log, so opening a large database reads
//! the checkpoint and replays only the frames after it.
//!
//! The checkpoint is an optimisation, never a source of truth: it is used
//! only if its checksums hold, its format version is this build's, every
//! segment it covers has exactly the recorded length (compaction, which
//! moves data, also deletes it), and the last frame it covers is where it
//! says with the checksum it recorded. Anything else and open replays the
//! whole log, as if there were no checkpoint.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::engine::Shared;
use crate::error::{Error, Result};
use crate::index::Index;
use crate::log::frame::FRAME_HEADER_SIZE;
use crate::log::recovery::{OpenSegments, ResumePoint};
use crate::log::segment::{list_segments, segment_path};
use crate::storage::Storage;
use crate::types::{SegmentId, TxId};

/// File name of the checkpoint inside the database directory.
pub(crate) const CHECKPOINT_FILE: &str = "index.tccp";
/// Magic bytes of the checkpoint file.
const CHECKPOINT_MAGIC: [u8; 8] = *b"TCASKIDX";
/// The checkpoint format version this build writes and reads.
const CHECKPOINT_VERSION: u32 = 2;
/// `magic | u32 version | u32 reserved | u64 body_len | u32 body_crc | u32 header_crc`.
const HEADER_SIZE: usize = 32;

/// What a checkpoint covers of the log.
#[derive(Debug, PartialEq, Eq)]
struct Coverage {
    /// Every segment and its length when the checkpoint was taken; the last
    /// one's length is where replay resumes.
    segments: Vec<(SegmentId, u64)>,
    /// The last covered frame's segment, offset and crc field (if any).
    last_frame: Option<(SegmentId, u64, u32)>,
}

pub(crate) fn checkpoint_path(dir: &Path) -> PathBuf {
    dir.join(CHECKPOINT_FILE)
}

/// What [`Db::checkpoint`](crate::Db::checkpoint) wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckpointReport {
    /// The checkpoint covers every transaction up to this one.
    pub txid: TxId,
    /// Size of the checkpoint file.
    pub bytes: u64,
}

impl Shared {
    /// Writes a checkpoint of the index as of now. Commits wait while the
    /// index is serialized (memory copy only); the file is written after.
    pub(crate) fn write_checkpoint(&self) -> Result<CheckpointReport> {
        self.check_writable()?;
        // Not beside a seal or compaction: they retire segments (first
        // from the open files, then from the directory) and delete the
        // checkpoint, which must not then name segments they remove.
        let _one_at_a_time = self.lock_maintenance();
        let (txid, body) = {
            let writer = self.lock_writer();
            // Everything indexed is written; make it durable so the
            // checkpoint never covers frames a power cut could take back.
            // Through group commit, so a failed fsync poisons the writer
            // like any other and the witness records what is durable.
            self.durable.sync_all()?;
            let index = self.read_index();
            let txid = index.last_txid();
            let mut segments = Vec::new();
            // The newest segment's length is its logical end, not the
            // file's (which includes preallocated space).
            let (active, active_len) = writer.log.position();
            for id in list_segments(&self.dir)? {
                let len = if id == active {
                    active_len
                } else {
                    self.files
                        .handle(id)?
                        .len()
                        .map_err(|e| Error::io(segment_path(&self.dir, id), e))?
                };
                segments.push((id, len));
            }
            let last_frame = match index.tx(txid) {
                Some(info) => {
                    let file = self.files.handle(info.segment)?;
                    let mut header = [0; FRAME_HEADER_SIZE];
                    file.read_exact_at(&mut header, u64::from(info.frame_offset))
                        .map_err(|e| Error::io(segment_path(&self.dir, info.segment), e))?;
                    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
                    Some((info.segment, u64::from(info.frame_offset), crc))
                }
                None => None,
            };
            let mut body = Vec::new();
            encode_coverage(
                &Coverage {
                    segments,
                    last_frame,
                },
                &mut body,
            );
            index.encode_checkpoint(&mut body);
            (txid, body)
        };
        let bytes = write_file(self.config.storage.as_ref(), &self.dir, &body)?;
        Ok(CheckpointReport { txid, bytes })
    }
}

fn encode_coverage(c: &Coverage, out: &mut Vec<u8>) {
    out.extend_from_slice(&(c.segments.len() as u32).to_le_bytes());
    for (id, len) in &c.segments {
        out.extend_from_slice(&id.0.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
    }
    match c.last_frame {
        Some((id, offset, crc)) => {
            out.push(1);
            out.extend_from_slice(&id.0.to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
            out.extend_from_slice(&crc.to_le_bytes());
        }
        None => out.push(0),
    }
}

/// Writes `body` with its header to a temporary file, fsyncs it and renames
/// it into place.
fn write_file(storage: &dyn Storage, dir: &Path, body: &[u8]) -> Result<u64> {
    let mut header = [0u8; HEADER_SIZE];
    header[..8].copy_from_slice(&CHECKPOINT_MAGIC);
    header[8..12].copy_from_slice(&CHECKPOINT_VERSION.to_le_bytes());
    header[16..24].copy_from_slice(&(body.len() as u64).to_le_bytes());
    header[24..28].copy_from_slice(&crc32fast::hash(body).to_le_bytes());
    let crc = crc32fast::hash(&header[..28]);
    header[28..32].copy_from_slice(&crc.to_le_bytes());
    let path = checkpoint_path(dir);
    let tmp = dir.join(format!("{CHECKPOINT_FILE}.tmp"));
    let mut file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    file.write_all(&header)
        .and_then(|()| file.write_all(body))
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    storage.sync_dir(dir).map_err(|e| Error::io(dir, e))?;
    Ok((HEADER_SIZE + body.len()) as u64)
}

/// Loads the checkpoint if there is a usable one. `Err` carries why it was
/// not used (for `Stats`); the caller then replays the whole log.
/// The checkpoint file is read by path (it is read once, here); the
/// segments are checked through their already open handles.
pub(crate) fn load(
    dir: &Path,
    segments: &OpenSegments,
) -> std::result::Result<(Index, ResumePoint), String> {
    let path = checkpoint_path(dir);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err("no checkpoint".into()),
        Err(e) => return Err(format!("cannot read the checkpoint: {e}")),
    };
    if bytes.len() < HEADER_SIZE || bytes[..8] != CHECKPOINT_MAGIC {
        return Err("not a checkpoint file".into());
    }
    let u32_at =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    if crc32fast::hash(&bytes[..28]) != u32_at(28) {
        return Err("checkpoint header checksum mismatch".into());
    }
    if u32_at(8) != CHECKPOINT_VERSION {
        return Err(format!(
            "checkpoint format version {} is not {CHECKPOINT_VERSION}",
            u32_at(8)
        ));
    }
    let mut len = [0; 8];
    len.copy_from_slice(&bytes[16..24]);
    let body = &bytes[HEADER_SIZE..];
    if u64::from_le_bytes(len) != body.len() as u64 || crc32fast::hash(body) != u32_at(24) {
        return Err("checkpoint body length or checksum mismatch".into());
    }
    let (coverage, used) = decode_coverage(body)?;
    let index = Index::decode_checkpoint(&body[used..])?;
    let resume = check_coverage(dir, segments, &coverage, index.last_txid())?;
    Ok((index, resume))
}

fn decode_coverage(body: &[u8]) -> std::result::Result<(Coverage, usize), String> {
    let short = || "checkpoint coverage ends early".to_string();
    let n = u32::from_le_bytes(
        body.get(..4)
            .ok_or_else(short)?
            .try_into()
            .map_err(|_| short())?,
    ) as usize;
    let mut at = 4;
    if n == 0 || n > (body.len() - at) / 12 {
        return Err("bad segment count".into());
    }
    let mut segments = Vec::with_capacity(n);
    for _ in 0..n {
        let id = u32::from_le_bytes(body[at..at + 4].try_into().map_err(|_| short())?);
        let len = u64::from_le_bytes(body[at + 4..at + 12].try_into().map_err(|_| short())?);
        segments.push((SegmentId(id), len));
        at += 12;
    }
    let flag = *body.get(at).ok_or_else(short)?;
    at += 1;
    let last_frame = match flag {
        0 => None,
        1 => {
            let b = body.get(at..at + 16).ok_or_else(short)?;
            at += 16;
            Some((
                SegmentId(u32::from_le_bytes(b[..4].try_into().map_err(|_| short())?)),
                u64::from_le_bytes(b[4..12].try_into().map_err(|_| short())?),
                u32::from_le_bytes(b[12..16].try_into().map_err(|_| short())?),
            ))
        }
        _ => return Err("bad last-frame flag".into()),
    };
    Ok((
        Coverage {
            segments,
            last_frame,
        },
        at,
    ))
}

/// Checks the checkpoint against the segment files and returns where replay
/// resumes.
fn check_coverage(
    dir: &Path,
    segments: &OpenSegments,
    coverage: &Coverage,
    last_txid: TxId,
) -> std::result::Result<ResumePoint, String> {
    let on_disk = &segments.files;
    let last = coverage.segments.last().ok_or("no segments")?;
    let last_index = coverage.segments.len() - 1;
    for (i, (id, len)) in coverage.segments.iter().enumerate() {
        let Some((_, file)) = on_disk.get(i).filter(|(on_disk_id, _)| on_disk_id == id) else {
            return Err(format!("segment {} is not where the checkpoint says", id.0));
        };
        let path = segment_path(dir, *id);
        let actual = file.len().map_err(|e| format!("{}: {e}", path.display()))?;
        // The newest covered segment may have grown since; the others not.
        let fits = if i == last_index {
            actual >= *len
        } else {
            actual == *len
        };
        if !fits {
            return Err(format!("segment {} changed since the checkpoint", id.0));
        }
    }
    if let Some((id, offset, crc)) = coverage.last_frame {
        let (_, file) = on_disk
            .iter()
            .find(|(on_disk_id, _)| *on_disk_id == id)
            .ok_or("the last covered frame's segment is missing")?;
        let mut header = [0; FRAME_HEADER_SIZE];
        file.read_exact_at(&mut header, offset)
            .map_err(|e| e.to_string())?;
        let len = u64::from(u32::from_le_bytes([
            header[0], header[1], header[2], header[3],
        ]));
        let found = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let ends_at_boundary = id != last.0 || offset + FRAME_HEADER_SIZE as u64 + len == last.1;
        if found != crc || !ends_at_boundary {
            return Err("the last covered frame is not the one recorded".into());
        }
    }
    Ok(ResumePoint {
        segment: last.0,
        offset: last.1,
        next_txid: last_txid.next(),
    })
}

/// Deletes the checkpoint (before compaction moves data it points to).
pub(crate) fn remove(storage: &dyn Storage, dir: &Path) -> Result<()> {
    let path = checkpoint_path(dir);
    match std::fs::remove_file(&path) {
        Ok(()) => storage.sync_dir(dir).map_err(|e| Error::io(dir, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(&path, e)),
    }
}
