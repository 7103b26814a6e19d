//! The one way reg replaces a file: checkpoints, exports, metrics, charts, logits and downloaded
//! MNIST files all go through [`write_atomically`], so they all follow one durability rule and
//! one output policy. (TensorBoard's event files are the exception by nature: TensorBoard reads
//! them while they grow, so they are appended to, never replaced.)
//!
//! **Durability.** Write a temporary file in the same folder, flush and fsync it, rename it over
//! the target, fsync the folder. A crash at any moment leaves either the old file or the new one
//! whole, never a mix; on an error the temporary file is removed and the target is untouched.
//! Each write has a temporary name of its own ([`temporary_path`]: the process id and a
//! counter), so two writers of one file (two runs, a stalled node and its replacement) never
//! share one; the last rename wins, whole. The temporary name is never longer than the
//! 255 bytes a file name may have, so it fits whenever the target's name does.
//! [`write_atomically_if_absent`] never replaces: the first writer's file stays.
//! A folder fsync the filesystem does not support (some network and FUSE filesystems answer
//! `EINVAL`) is skipped: the rename has happened and nothing more can be asked of it. Any other
//! failure is an error.
//!
//! **Output policy** ([`resolve_output`]): a new path or an existing regular file is written; a
//! symlink is followed when it leads to a regular file (the link stays, the file it points to
//! is replaced); anything else that exists — a folder, a device such as `/dev/null`, a FIFO, a
//! socket, a dangling symlink or a symlink loop — is refused, before training
//! ([`check_output_path`]) and again at write time.

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::PipelineError;

/// A failed step: the path it was about and the cause.
pub(crate) type Failure = (PathBuf, std::io::Error);

/// The longest file name most file systems take (Linux's `NAME_MAX`, macOS, Windows).
pub const MAX_FILE_NAME_BYTES: usize = 255;

/// A new temporary name for a write to `path`, in the same folder: `.<name>.<pid>-<n>.tmp`,
/// with `<name>` shortened (at a character boundary) so that the whole stays within
/// [`MAX_FILE_NAME_BYTES`]. `n` counts this process's writes, so no two writes share a name.
pub fn temporary_path(path: &Path) -> PathBuf {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let n = WRITES.fetch_add(1, Ordering::Relaxed);
    let suffix = format!(".{}-{n}.tmp", std::process::id());
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let mut room = MAX_FILE_NAME_BYTES - 1 - suffix.len();
    while room < name.len() && !name.is_char_boundary(room) {
        room -= 1;
    }
    let stem = &name[..room.min(name.len())];
    path.with_file_name(format!(".{stem}{suffix}"))
}

/// Replaces `path` by `bytes` under the [durability rule and output policy](self): a symlink to
/// a regular file is followed (the file it leads to is replaced, the link stays); a target that
/// exists and is not a regular file is refused.
///
/// # Errors
/// [`PipelineError::Io`] naming the file that failed.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), PipelineError> {
    replace(path, bytes).map_err(|(path, e)| PipelineError::io(path, e))
}

/// Writes `bytes` to `path` under the same durability rule, unless a file (or anything else)
/// is already there: the first writer wins and its file is never replaced, so two writers of
/// one result cannot leave a mix. Returns `true` when this call wrote the file, `false` when
/// one was there (untouched).
///
/// # Errors
/// [`PipelineError::Io`] naming the file that failed.
pub fn write_atomically_if_absent(path: &Path, bytes: &[u8]) -> Result<bool, PipelineError> {
    let (tmp, _) = write_temporary(path, bytes).map_err(|(p, e)| PipelineError::io(p, e))?;
    // A hard link is created only if nothing is at `path`: the no-replace rename.
    let linked = match std::fs::hard_link(&tmp, path) {
        // A file system without hard links (FAT, some FUSE and SMB mounts): check, then
        // rename, which leaves a moment in which a second writer could win instead.
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::Unsupported | ErrorKind::PermissionDenied
            ) =>
        {
            if std::fs::symlink_metadata(path).is_ok() {
                Err(std::io::Error::from(ErrorKind::AlreadyExists))
            } else {
                std::fs::rename(&tmp, path)
            }
        }
        other => other,
    };
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_dir(parent_dir(path)).map_err(|(p, e)| PipelineError::io(p, e))?;
            Ok(true)
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(PipelineError::io(path, e)),
    }
}

/// [`write_atomically`] with the failing path and cause left for the caller to wrap in its own
/// error type (the MNIST download reports [`DataError`](crate::data::DataError)s).
pub(crate) fn replace(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let target = resolve(path)?;
    let (tmp, path) = write_temporary(&target, bytes)?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err((path.to_path_buf(), e));
    }
    sync_dir(parent_dir(path))
}

/// Writes `bytes` to a new [`temporary_path`] of `path` and fsyncs it; returns its name (and
/// `path`). On an error nothing is left behind and the error names `path`.
fn write_temporary<'p>(path: &'p Path, bytes: &[u8]) -> Result<(PathBuf, &'p Path), Failure> {
    let tmp = temporary_path(path);
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        let filled = file
            .write_all(bytes)
            .and_then(|()| file.flush())
            .and_then(|()| file.sync_all());
        if filled.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        filled
    })();
    match written {
        Ok(()) => Ok((tmp, path)),
        Err(e) => {
            // Name the file the user asked for, not the temporary one, and say what survived.
            let cause = std::io::Error::new(
                e.kind(),
                format!("could not be written ({e}); nothing was replaced"),
            );
            Err((path.to_path_buf(), cause))
        }
    }
}

/// Where an output given as `path` is written, under the policy of the [module docs](self):
/// `path` itself when it does not exist or is a regular file; the regular file a symlink leads
/// to; an error for anything else.
///
/// # Errors
/// [`PipelineError::Io`] naming `path`, with [`std::io::ErrorKind::InvalidInput`] when it
/// exists and is not (a symlink to) a regular file.
pub fn resolve_output(path: &Path) -> Result<PathBuf, PipelineError> {
    resolve(path).map_err(|(path, e)| PipelineError::io(path, e))
}

fn resolve(path: &Path) -> Result<PathBuf, Failure> {
    let refuse = |what: &str| {
        (
            path.to_path_buf(),
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{what}; refusing to replace it (outputs must be regular files)"),
            ),
        )
    };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(path.to_path_buf()),
        Err(e) => return Err((path.to_path_buf(), e)),
    };
    if meta.is_file() {
        return Ok(path.to_path_buf());
    }
    if meta.is_dir() {
        return Err(refuse("is a folder, not a file"));
    }
    if !meta.file_type().is_symlink() {
        return Err(refuse(
            "exists and is not a regular file (a device, FIFO or socket)",
        ));
    }
    match std::fs::canonicalize(path) {
        Ok(target) if target.is_file() => Ok(target),
        Ok(target) => Err(refuse(&format!(
            "is a symlink to {}, which is not a regular file",
            target.display()
        ))),
        Err(_) => Err(refuse(
            "is a symlink that leads to no file (dangling, or a loop)",
        )),
    }
}

/// The folder of `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes a rename in `dir` durable; a filesystem that cannot sync a folder is not an error.
fn sync_dir(dir: &Path) -> Result<(), Failure> {
    #[cfg(unix)]
    {
        let synced = std::fs::File::open(dir).and_then(|d| d.sync_all());
        // EINVAL and EOPNOTSUPP: the filesystem has no folder fsync.
        let unsupported = |e: &std::io::Error| {
            use std::io::ErrorKind::{InvalidInput, Unsupported};
            matches!(e.kind(), InvalidInput | Unsupported)
        };
        match synced {
            Err(e) if !unsupported(&e) => return Err((dir.to_path_buf(), e)),
            _ => {}
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Fails early (before training) when a file cannot be written at `path`: it exists and is not
/// (a symlink to) a regular file ([`resolve_output`]), its name is longer than
/// [`MAX_FILE_NAME_BYTES`], or its folder is missing, is not a folder or is not writable.
/// Creates and removes a probe file in the folder under the kind of name the write will use
/// ([`temporary_path`]); `path` itself is not created.
///
/// # Errors
/// [`PipelineError::Io`] naming `path`.
pub fn check_output_path(path: &Path) -> Result<(), PipelineError> {
    let name_bytes = path.file_name().map_or(0, |n| n.as_encoded_bytes().len());
    if name_bytes > MAX_FILE_NAME_BYTES {
        let too_long = std::io::Error::new(
            std::io::ErrorKind::InvalidFilename,
            format!(
                "its file name is {name_bytes} bytes; file systems take at most {MAX_FILE_NAME_BYTES}"
            ),
        );
        return Err(PipelineError::io(path, too_long));
    }
    let target = resolve_output(path)?;
    let probe = temporary_path(&target);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| PipelineError::io(path, e))?;
    std::fs::remove_file(&probe).map_err(|e| PipelineError::io(&probe, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_are_new_each_time_and_fit_the_longest_name() {
        // ASCII fills the 255 bytes exactly; 2-, 3- and 4-byte characters are cut at a
        // character boundary, whichever byte the room ends on.
        for (unit, count) in [("m", 254), ("é", 127), ("€", 85), ("😀", 63)] {
            let long = Path::new("/out").join(unit.repeat(count));
            let (a, b) = (temporary_path(&long), temporary_path(&long));
            assert_ne!(a, b);
            for tmp in [a, b] {
                let name = tmp.file_name().unwrap().to_str().unwrap();
                assert!(name.len() <= MAX_FILE_NAME_BYTES, "{} bytes", name.len());
                assert!(
                    name.len() + unit.len() > MAX_FILE_NAME_BYTES,
                    "{name}: room left"
                );
                assert!(name.starts_with(&format!(".{unit}")) && name.ends_with(".tmp"));
            }
        }
        let short = temporary_path(Path::new("m.json"));
        let name = short.to_str().unwrap();
        let pid = std::process::id();
        assert!(name.starts_with(&format!(".m.json.{pid}-")), "{name}");
        assert!(name.ends_with(".tmp"), "{name}");
    }

    #[cfg(unix)]
    #[test]
    fn outputs_resolve_by_the_output_policy() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| dir.path().join(name);
        std::fs::write(at("file"), b"x").unwrap();
        std::fs::create_dir(at("folder")).unwrap();
        std::os::unix::fs::symlink(at("file"), at("to-file")).unwrap();
        std::os::unix::fs::symlink(at("folder"), at("to-folder")).unwrap();
        std::os::unix::fs::symlink(at("nowhere"), at("dangling")).unwrap();
        assert_eq!(resolve_output(&at("new")).unwrap(), at("new"));
        assert_eq!(resolve_output(&at("file")).unwrap(), at("file"));
        let real = std::fs::canonicalize(at("file")).unwrap();
        assert_eq!(resolve_output(&at("to-file")).unwrap(), real);
        for refused in ["folder", "to-folder", "dangling", "file/below-a-file"] {
            assert!(resolve_output(&at(refused)).is_err(), "{refused}");
        }
    }

    #[test]
    fn a_bare_file_name_is_in_the_current_folder() {
        assert_eq!(parent_dir(Path::new("m.json")), Path::new("."));
        assert_eq!(parent_dir(Path::new("out/m.json")), Path::new("out"));
        assert_eq!(parent_dir(Path::new("/m.json")), Path::new("/"));
    }

    #[test]
    fn a_folder_that_cannot_be_synced_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(sync_dir(dir.path()).is_ok());
        assert!(sync_dir(&dir.path().join("missing")).is_err());
    }

    /// procfs answers a folder fsync with EINVAL, as some network and FUSE file systems do.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_file_system_without_folder_fsync_is_not_an_error() {
        let proc = Path::new("/proc/self");
        let answer = std::fs::File::open(proc).and_then(|d| d.sync_all());
        assert_eq!(answer.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
        assert!(sync_dir(proc).is_ok());
    }

    #[test]
    fn names_up_to_255_bytes_pass_the_check_and_longer_ones_fail_it() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_output_path(&dir.path().join("m.json")).is_ok());
        assert!(check_output_path(&dir.path().join("m".repeat(255))).is_ok());
        assert!(check_output_path(&dir.path().join("m".repeat(256))).is_err());
        assert!(check_output_path(dir.path()).is_err(), "a folder");
        assert!(check_output_path(&dir.path().join("missing/m.json")).is_err());
        // The probe is removed again.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn write_if_absent_reports_a_name_the_file_system_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let too_long = dir.path().join("m".repeat(256));
        assert!(write_atomically_if_absent(&too_long, b"x").is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn write_if_absent_keeps_the_first_writers_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run-00000.json");
        assert!(write_atomically_if_absent(&path, b"first").unwrap());
        assert!(!write_atomically_if_absent(&path, b"second").unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file is left");
    }

    #[test]
    fn concurrent_writers_of_one_file_leave_one_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("result.json");
        let bodies: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 200_000]).collect();
        std::thread::scope(|scope| {
            for body in &bodies {
                let path = &path;
                scope.spawn(move || write_atomically(path, body).unwrap());
            }
        });
        let written = std::fs::read(&path).unwrap();
        assert!(bodies.contains(&written), "a mix of writers");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
