//! What the replicator reads from the database directory, by the rules a
//! follower reads it with (FORMAT.md, "Followers"): only whole frames whose
//! CRC holds, only segments with a whole valid header, a `MANIFEST` read
//! whole and CRC-checked, and the commit witness `COMMIT`. It never writes
//! there and takes no lock, so the writer runs undisturbed.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Bytes of a segment header.
pub(crate) const SEGMENT_HEADER_SIZE: u64 = 32;
/// Bytes of a frame header (`u32 len | u32 crc`).
const FRAME_HEADER_SIZE: u64 = 8;
/// The smallest payload a frame can have (txid, time, meta_len, three counts).
const PAYLOAD_SIZE_MIN: u64 = 32;
/// The largest payload (one transaction), as the engine's limit.
const PAYLOAD_SIZE_MAX: u64 = timecask::limits::TX_SIZE_MAX as u64;
const SEGMENT_MAGIC: &[u8; 8] = b"TCASKLOG";
const WITNESS_MAGIC: &[u8; 8] = b"TCASKWIT";
const WITNESS_SLOT_SIZE: usize = 64;
const WITNESS_SLOT_OFFSETS: [u64; 2] = [0, 4096];
const MANIFEST_MAGIC: &[u8; 8] = b"TCMANIF\0";
/// The MANIFEST file's size limit (as the engine's).
const MANIFEST_SIZE_MAX: u64 = 256 * 1024 * 1024;

/// The path of segment `id` in `dir`.
pub(crate) fn segment_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("{id:010}.tcseg"))
}

/// The segment ids in `dir`, ascending.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<u32>> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(".tcseg")
            && stem.len() == 10
            && stem.bytes().all(|b| b.is_ascii_digit())
            && let Ok(id) = stem.parse::<u32>()
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// The txid the witness says every commit up to is durable; `None` if there
/// is no witness (or no valid slot yet).
pub(crate) fn read_witness(dir: &Path) -> Result<Option<u64>> {
    let path = dir.join("COMMIT");
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let mut best: Option<(u64, u64)> = None;
    for offset in WITNESS_SLOT_OFFSETS {
        let mut slot = [0u8; WITNESS_SLOT_SIZE];
        match file.read_exact_at(&mut slot, offset) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => continue,
            Err(e) => return Err(Error::io(&path, e)),
        }
        if &slot[0..8] != WITNESS_MAGIC || u32_at(&slot, 60) != crc32fast::hash(&slot[0..60]) {
            continue;
        }
        if u32_at(&slot, 8) != 1 {
            return Err(Error::corrupt(
                &path,
                offset,
                "witness format version is not 1",
            ));
        }
        let (seq, txid) = (u64_at(&slot, 16), u64_at(&slot, 24));
        if best.is_none_or(|(s, _)| seq > s) {
            best = Some((seq, txid));
        }
    }
    Ok(best.map(|(_, txid)| txid))
}

/// A segment header's first txid, or `None` while the header is not whole
/// and valid (the writer may be creating the segment).
pub(crate) fn segment_first_txid(bytes: &[u8], id: u32) -> Option<u64> {
    if bytes.len() < SEGMENT_HEADER_SIZE as usize {
        return None;
    }
    let ok = &bytes[0..8] == SEGMENT_MAGIC
        && u32_at(bytes, 8) == 1
        && u32_at(bytes, 12) == id
        && u32_at(bytes, 28) == crc32fast::hash(&bytes[0..28]);
    ok.then(|| u64_at(bytes, 16))
}

/// One whole frame found in a segment.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FrameAt {
    /// Offset just after it.
    pub end: u64,
    /// Its txid.
    pub txid: u64,
}

/// Why a scan stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScanEnd {
    /// At the end of the bytes available.
    End,
    /// Before a frame that is short, has a bad length or a bad CRC.
    BadFrame,
    /// Before a frame past the byte limit.
    Limit,
}

/// The whole, CRC-checked frames in `file` from `offset` on (a frame
/// boundary), in order, stopping
/// before the frame that would take the scan past `bytes_max`
/// bytes (at least one frame is taken), and before a short or bad frame.
/// The zeros a writer preallocates after the active segment's frames stop
/// it as a bad frame (length 0); the writer cuts them off before it rolls,
/// so a sealed segment ends at its last frame.
pub(crate) fn scan_frames(
    file: &File,
    path: &Path,
    mut offset: u64,
    bytes_max: u64,
) -> Result<(Vec<FrameAt>, ScanEnd)> {
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let start = offset;
    let mut frames = Vec::new();
    loop {
        if offset + FRAME_HEADER_SIZE > len {
            return Ok((frames, ScanEnd::End));
        }
        let mut header = [0u8; FRAME_HEADER_SIZE as usize];
        match file.read_exact_at(&mut header, offset) {
            Ok(()) => {}
            // The writer cut the preallocated zeros off a segment it rolled
            // away from while this scan looked: the frames end here.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Ok((frames, ScanEnd::End));
            }
            Err(e) => return Err(Error::io(path, e)),
        }
        let payload_len = u64::from(u32_at(&header, 0));
        if !(PAYLOAD_SIZE_MIN..=PAYLOAD_SIZE_MAX).contains(&payload_len)
            || offset + FRAME_HEADER_SIZE + payload_len > len
        {
            return Ok((frames, ScanEnd::BadFrame));
        }
        let end = offset + FRAME_HEADER_SIZE + payload_len;
        if !frames.is_empty() && end - start > bytes_max {
            return Ok((frames, ScanEnd::Limit));
        }
        let payload_size = usize::try_from(payload_len)
            .map_err(|_| Error::corrupt(path, offset, "frame length does not fit in memory"))?;
        let mut payload = vec![0u8; payload_size];
        match file.read_exact_at(&mut payload, offset + FRAME_HEADER_SIZE) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Ok((frames, ScanEnd::End));
            }
            Err(e) => return Err(Error::io(path, e)),
        }
        if crc32fast::hash(&payload) != u32_at(&header, 4) {
            return Ok((frames, ScanEnd::BadFrame));
        }
        let txid = u64_at(&payload, 0);
        frames.push(FrameAt { end, txid });
        offset = end;
    }
}

/// Frames in an in-memory segment image (a restored segment), from the
/// header on: their txids and ends. Any bad frame is an error here: the
/// image was assembled from checksummed objects.
pub(crate) fn frames_in_image(bytes: &[u8], name: &str) -> Result<Vec<FrameAt>> {
    let mut frames = Vec::new();
    let mut offset = SEGMENT_HEADER_SIZE as usize;
    while offset < bytes.len() {
        let bad = |reason: &str| Error::CorruptObject {
            object: name.to_string(),
            reason: format!("frame at segment offset {offset}: {reason}"),
        };
        if offset + FRAME_HEADER_SIZE as usize > bytes.len() {
            return Err(bad("cut short"));
        }
        let payload_len = u32_at(&bytes[offset..], 0) as usize;
        let end = offset + FRAME_HEADER_SIZE as usize + payload_len;
        if (payload_len as u64) < PAYLOAD_SIZE_MIN || end > bytes.len() {
            return Err(bad("bad length"));
        }
        let payload = &bytes[offset + FRAME_HEADER_SIZE as usize..end];
        if crc32fast::hash(payload) != u32_at(&bytes[offset..], 4) {
            return Err(bad("bad crc"));
        }
        frames.push(FrameAt {
            end: end as u64,
            txid: u64_at(payload, 0),
        });
        offset = end;
    }
    Ok(frames)
}

/// What the replicator needs from a `MANIFEST`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ManifestInfo {
    pub seq: u64,
    pub runs_through: u64,
    pub log_first_segment: u32,
    pub log_first_txid: u64,
    /// `(file number, first txid, last txid, file length)` per run.
    pub runs: Vec<(u64, u64, u64, u64)>,
}

/// Reads `dir/MANIFEST` whole and checks it: `None` if there is none.
pub(crate) fn read_manifest(dir: &Path) -> Result<Option<(Vec<u8>, ManifestInfo)>> {
    let path = dir.join("MANIFEST");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let info =
        parse_manifest(&bytes).map_err(|(offset, reason)| Error::corrupt(&path, offset, reason))?;
    Ok(Some((bytes, info)))
}

/// Decodes what the replicator needs of a MANIFEST (format 1 or 2),
/// checking its magic, length and CRC. Errors carry `(offset, reason)`.
pub(crate) fn parse_manifest(bytes: &[u8]) -> std::result::Result<ManifestInfo, (u64, String)> {
    let err = |offset: usize, reason: &str| (offset as u64, reason.to_string());
    if bytes.len() < 20 || bytes.len() as u64 > MANIFEST_SIZE_MAX {
        return Err(err(0, "impossible manifest size"));
    }
    if &bytes[0..8] != MANIFEST_MAGIC {
        return Err(err(0, "not a manifest (magic)"));
    }
    let n = u32_at(bytes, 12) as usize;
    if 16 + n + 4 != bytes.len() {
        return Err(err(12, "body length does not match the file"));
    }
    if crc32fast::hash(&bytes[..16 + n]) != u32_at(bytes, 16 + n) {
        return Err(err(16 + n, "manifest crc mismatch"));
    }
    let version = u32_at(bytes, 8);
    let tables_at = match version {
        1 => 68,
        2 => 76,
        _ => {
            return Err(err(
                8,
                &format!("manifest format version {version} unknown"),
            ));
        }
    };
    let end = 16 + n;
    let mut r = Reader {
        bytes: &bytes[..end],
        at: 16,
    };
    let seq = r.u64()?;
    let runs_through = r.u64()?;
    let _time = r.u64()?;
    let log_first_segment = r.u32()?;
    let log_first_txid = r.u64()?;
    r.at = tables_at;
    let n_tables = r.u32()?;
    for _ in 0..n_tables {
        let _id = r.u32()?;
        let name_len = r.u32()? as usize;
        r.skip(name_len + 8 + 8)?;
        let has_policy = r.u8()?;
        if has_policy == 1 {
            r.skip(12)?;
        }
    }
    let n_runs = r.u32()? as usize;
    if n_runs > (end - r.at) / 32 {
        return Err(err(r.at, "run count exceeds the body"));
    }
    let mut runs = Vec::with_capacity(n_runs);
    for _ in 0..n_runs {
        runs.push((r.u64()?, r.u64()?, r.u64()?, r.u64()?));
    }
    if r.at != end {
        return Err(err(r.at, "runs do not fill the body"));
    }
    Ok(ManifestInfo {
        seq,
        runs_through,
        log_first_segment,
        log_first_txid,
        runs,
    })
}

/// The file name of run `number`.
pub(crate) fn run_file_name(number: u64) -> String {
    format!("{number:016}.tcrun")
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> std::result::Result<&[u8], (u64, String)> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len());
        let end = end.ok_or((self.at as u64, "field runs past the body".to_string()))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn skip(&mut self, n: usize) -> std::result::Result<(), (u64, String)> {
        self.take(n).map(|_| ())
    }
    fn u8(&mut self) -> std::result::Result<u8, (u64, String)> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> std::result::Result<u32, (u64, String)> {
        Ok(u32_at(self.take(4)?, 0))
    }
    fn u64(&mut self) -> std::result::Result<u64, (u64, String)> {
        Ok(u64_at(self.take(8)?, 0))
    }
}

/// `u32` little-endian at `at`; the caller checked the bounds.
pub(crate) fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

/// `u64` little-endian at `at`; the caller checked the bounds.
pub(crate) fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}
