//! Point-in-time restore, and the download code the read replica shares.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use bytes::Bytes;
use timecask::TxId;

use crate::error::{Error, Result};
use crate::local::{self, SEGMENT_HEADER_SIZE};
use crate::objects::{OBJECT_MANIFEST, ObjectManifest};
use crate::plan::{self, Plan};
use crate::remote::Remote;

/// What a restore wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// The txid the restored database ends at.
    pub txid: u64,
    /// Objects downloaded (and checked).
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Reads and checks the object manifest; `None` if the prefix holds none.
pub(crate) fn read_objects(remote: &Remote) -> Result<Option<ObjectManifest>> {
    match remote.get_opt(OBJECT_MANIFEST)? {
        Some(f) => ObjectManifest::decode(&f.bytes, &remote.key(OBJECT_MANIFEST)).map(Some),
        None => Ok(None),
    }
}

/// The txid ranges the bucket can restore (inclusive, merged).
///
/// ```no_run
/// # use timecask_replicate::{Remote, S3Options};
/// let remote = Remote::from_url("s3://backups/app-db", &S3Options::default())?;
/// for (first, last) in timecask_replicate::restorable(&remote)? {
///     println!("txids {first}..={last}");
/// }
/// # Ok::<(), timecask_replicate::Error>(())
/// ```
pub fn restorable(remote: &Remote) -> Result<Vec<(u64, u64)>> {
    Ok(read_objects(remote)?.map_or_else(Vec::new, |o| plan::restorable(&o)))
}

/// Rebuilds the database as of `at` in `dir` (which must not exist or be
/// empty) from what `remote` holds, checking every object's length and
/// CRC-32 as it is downloaded, then opens the result read-only and checks
/// that it ends at `at`. A txid the bucket cannot restore is
/// [`Error::NotRestorable`] listing what it can; a missing or damaged
/// object is [`Error::MissingObject`] or [`Error::CorruptObject`] naming
/// it. The restored database has no `COMMIT` witness yet: its first
/// writable open creates it.
///
/// ```no_run
/// # use timecask_replicate::{Remote, S3Options};
/// let remote = Remote::from_url("s3://backups/app-db", &S3Options::default())?;
/// let report = timecask_replicate::restore(&remote, timecask::TxId(1042), "restored.db")?;
/// let db = timecask::Db::open("restored.db")?;
/// assert_eq!(db.latest_txid().0, report.txid);
/// # Ok::<(), timecask_replicate::Error>(())
/// ```
pub fn restore(remote: &Remote, at: TxId, dir: impl AsRef<Path>) -> Result<RestoreReport> {
    let dir = dir.as_ref();
    let at = at.0;
    prepare_empty_dir(dir)?;
    let objects = read_objects(remote)?.unwrap_or_default();
    let Some(plan) = plan::plan_for(&objects, at) else {
        return Err(Error::NotRestorable {
            txid: at,
            prefix: remote.url().to_string(),
            available: plan::restorable(&objects),
        });
    };
    let mut report = RestoreReport {
        txid: at,
        ..RestoreReport::default()
    };
    apply(remote, &objects, &plan, dir, Some(at), &mut report)?;
    let db = timecask::Db::open_read_only(dir)?;
    let latest = db.latest_txid().0;
    if latest != at {
        return Err(Error::corrupt(
            dir,
            0,
            format!("the restored database ends at txid {latest}, not {at}"),
        ));
    }
    Ok(report)
}

fn prepare_empty_dir(dir: &Path) -> Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::DestinationNotEmpty {
                    path: dir.to_path_buf(),
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
        }
        Err(e) => Err(Error::io(dir, e)),
    }
}

/// Downloads `name` and checks it against its recorded length and CRC.
fn fetch_checked(
    remote: &Remote,
    name: &str,
    len: u64,
    crc: u32,
    report: &mut RestoreReport,
) -> Result<Bytes> {
    let bytes = remote.get(name)?;
    if bytes.len() as u64 != len {
        return Err(Error::CorruptObject {
            object: remote.key(name),
            reason: format!("{} bytes, the object manifest says {len}", bytes.len()),
        });
    }
    let got = crc32fast::hash(&bytes);
    if got != crc {
        return Err(Error::CorruptObject {
            object: remote.key(name),
            reason: format!("crc {got:08x}, the object manifest says {crc:08x}"),
        });
    }
    report.objects += 1;
    report.bytes += len;
    Ok(bytes)
}

/// Writes `bytes` to `dir/name` through `name.part`, fsynced, renamed.
fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let part = dir.join(format!("{name}.part"));
    let path = dir.join(name);
    let mut file = File::create(&part).map_err(|e| Error::io(&part, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(&part, e))?;
    std::fs::rename(&part, &path).map_err(|e| Error::io(&path, e))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Brings `dir` to `plan`, ending at `cut` (or at the chain's end):
/// missing runs first, then segment bytes appended in order (a follower
/// of `dir` sees only whole frames), then the MANIFEST if it changed,
/// then what the new MANIFEST no longer needs is removed.
pub(crate) fn apply(
    remote: &Remote,
    objects: &ObjectManifest,
    plan: &Plan<'_>,
    dir: &Path,
    cut: Option<u64>,
    report: &mut RestoreReport,
) -> Result<()> {
    if let Some(base) = plan.base {
        for number in &base.runs {
            let name = local::run_file_name(*number);
            if dir.join(&name).exists() {
                continue;
            }
            let run = objects
                .runs
                .iter()
                .find(|r| r.number == *number)
                .ok_or_else(|| Error::MissingObject {
                    object: remote.key(&format!("runs/{name}")),
                })?;
            let bytes = fetch_checked(remote, &run.object(), run.len, run.crc, report)?;
            write_file(dir, &name, &bytes)?;
        }
    }
    let target = cut.unwrap_or(plan.reach);
    for (i, (id, pieces)) in plan.chain.iter().enumerate() {
        let first_txid = pieces.first().map_or(u64::MAX, |c| c.first_txid);
        if i > 0 && first_txid > target {
            break;
        }
        let path = local::segment_path(dir, *id);
        let have = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(Error::io(&path, e)),
        };
        let mut image = Vec::new();
        let mut image_start = None;
        for piece in pieces {
            if piece.end <= have {
                continue;
            }
            if piece.first_txid > target && piece.start > 0 {
                break;
            }
            if image_start.is_none() {
                if piece.start != have {
                    return Err(Error::SourceMismatch {
                        path: path.clone(),
                        reason: format!(
                            "the local segment is {have} bytes, not a boundary of the bucket's pieces (next: {})",
                            piece.object()
                        ),
                    });
                }
                image_start = Some(piece.start);
            }
            let bytes = fetch_checked(
                remote,
                &piece.object(),
                piece.end - piece.start,
                piece.crc,
                report,
            )?;
            image.extend_from_slice(&bytes);
        }
        let Some(start) = image_start else { continue };
        if let Some(t) = cut {
            // Cut after the frame of `t` (or to the header).
            let last = pieces.last().map_or(0, |c| c.last_txid);
            if last > t {
                let mut whole = Vec::new();
                if start > 0 {
                    return Err(Error::SourceMismatch {
                        path,
                        reason: "a restore writes segments whole".into(),
                    });
                }
                whole.extend_from_slice(&image);
                let frames = local::frames_in_image(&whole, &pieces[0].object())?;
                let end = frames
                    .iter()
                    .find(|f| f.txid == t)
                    .map_or(SEGMENT_HEADER_SIZE, |f| f.end);
                image.truncate(usize::try_from(end).unwrap_or(usize::MAX).min(image.len()));
            }
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        file.write_all(&image)
            .and_then(|()| file.sync_data())
            .map_err(|e| Error::io(&path, e))?;
    }
    sync_dir(dir)?;
    let local_seq = local::read_manifest(dir)?.map(|(_, info)| info.seq);
    if let Some(base) = plan.base
        && local_seq != Some(base.seq)
    {
        let bytes = fetch_checked(remote, &base.object(), base.len, base.crc, report)?;
        write_file(dir, "MANIFEST", &bytes)?;
        sync_dir(dir)?;
        // What the new MANIFEST no longer needs.
        for id in local::list_segments(dir)? {
            if id < base.log_first_segment {
                let path = local::segment_path(dir, id);
                std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
        remove_unlisted_runs(dir, &base.runs)?;
    }
    Ok(())
}

fn remove_unlisted_runs(dir: &Path, listed: &[u64]) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(".tcrun") else {
            continue;
        };
        if stem.len() >= 16
            && stem.bytes().all(|b| b.is_ascii_digit())
            && let Ok(n) = stem.parse::<u64>()
            && !listed.contains(&n)
        {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
}
