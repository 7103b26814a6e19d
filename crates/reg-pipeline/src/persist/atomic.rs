//! The one way reg replaces a file: checkpoints, exports, metrics, charts, logits and downloaded
//! MNIST files all go through [`write_atomically`], so they all follow one durability rule and
//! one output policy. (TensorBoard's event files are the exception by nature: TensorBoard reads
//! them while they grow, so they are appended to, never replaced.)
//!
//! **Durability.** Write `.<name>.tmp` in the same folder, flush and fsync it, rename it over the
//! target, fsync the folder. A crash at any moment leaves either the old file or the new one
//! whole, never a mix; on an error the temporary file is removed and the target is untouched.
//! A folder fsync the filesystem does not support (some network and FUSE filesystems answer
//! `EINVAL`) is skipped: the rename has happened and nothing more can be asked of it. Any other
//! failure is an error.
//!
//! **Output policy** ([`resolve_output`]): a new path or an existing regular file is written; a
//! symlink is followed when it leads to a regular file (the link stays, the file it points to
//! is replaced); anything else that exists — a folder, a device such as `/dev/null`, a FIFO, a
//! socket, a dangling symlink or a symlink loop — is refused, before training
//! ([`check_output_path`]) and again at write time.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::PipelineError;

/// A failed step: the path it was about and the cause.
pub(crate) type Failure = (PathBuf, std::io::Error);

/// The file name of the temporary file [`write_atomically`] writes before renaming it to
/// `path`: `.<name>.tmp` in the same folder.
pub fn temporary_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.tmp"))
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

/// [`write_atomically`] with the failing path and cause left for the caller to wrap in its own
/// error type (the MNIST download reports [`DataError`](crate::data::DataError)s).
pub(crate) fn replace(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let target = resolve(path)?;
    let path = target.as_path();
    let tmp = temporary_path(path);
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.flush()?;
        file.sync_all()
    })();
    if let Err(e) = written {
        // Do not remove a directory someone put at the temporary name.
        if tmp.is_file() {
            let _ = std::fs::remove_file(&tmp);
        }
        // Name the file the user asked for, not the temporary one, and say what survived.
        let cause = std::io::Error::new(
            e.kind(),
            format!("could not be written ({e}); nothing was replaced"),
        );
        return Err((path.to_path_buf(), cause));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err((path.to_path_buf(), e));
    }
    sync_dir(parent_dir(path))
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
/// (a symlink to) a regular file ([`resolve_output`]), or its folder is missing, is not a
/// folder or is not writable. Creates and removes a probe file in the folder; `path` itself is
/// not created.
///
/// # Errors
/// [`PipelineError::Io`] naming `path`.
pub fn check_output_path(path: &Path) -> Result<(), PipelineError> {
    let target = resolve_output(path)?;
    tempfile::NamedTempFile::new_in(parent_dir(&target))
        .map(drop)
        .map_err(|e| PipelineError::io(path, e))
}
