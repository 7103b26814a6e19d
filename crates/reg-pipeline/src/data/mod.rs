//! MNIST: IDX reading (raw or `.gz`), the in-memory [`Dataset`] of `u8` pixels, mini-batch
//! filling, finding the data directory, and downloading from public mirrors with checksums.
//!
//! (Downloading needs the `download` feature, on by default.)
//!
//! ```no_run
//! use reg_pipeline::data::{ensure_mnist, resolve_data_dir, DownloadOptions, Mnist};
//! # fn main() -> Result<(), reg_pipeline::data::DataError> {
//! let dir = resolve_data_dir(None); // --data-dir, else $MNIST_DIR, else ~/.cache/reg/mnist
//! ensure_mnist(&dir, &DownloadOptions::default())?;
//! let mnist = Mnist::load(&dir)?;
//! let (train, validation) = mnist.train.split_off_last(5_000)?;
//! assert_eq!((train.len(), validation.len(), mnist.test.len()), (55_000, 5_000, 10_000));
//! # Ok(()) }
//! ```

mod dataset;
#[cfg(feature = "download")]
mod download;
mod error;
mod idx;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use dataset::Dataset;
#[cfg(feature = "download")]
pub use download::{DEFAULT_MIRRORS, DownloadOptions, ensure_mnist};
pub use error::DataError;
pub use idx::{
    IMAGES_MAGIC, IdxImages, IdxLabels, LABELS_MAGIC, MAX_IDX_BYTES, decompress_gz, is_gzip,
    parse_idx_images, parse_idx_labels, read_idx_file,
};

/// One of the four MNIST files: its name (without `.gz`) and the SHA-256 of its raw IDX bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MnistFile {
    /// File name without the `.gz` suffix, e.g. `train-images-idx3-ubyte`.
    pub name: &'static str,
    /// SHA-256 (lowercase hex) of the uncompressed IDX content.
    pub sha256: &'static str,
}

impl MnistFile {
    /// The compressed file name, `<name>.gz`, as stored on the mirrors.
    #[must_use]
    pub fn gz_name(&self) -> String {
        format!("{}.gz", self.name)
    }

    /// The path of this file in `dir`: `<name>.gz` if present, else raw `<name>` if present.
    #[must_use]
    pub fn find_in(&self, dir: &Path) -> Option<PathBuf> {
        [dir.join(self.gz_name()), dir.join(self.name)]
            .into_iter()
            .find(|p| p.is_file())
    }
}

/// The four MNIST files, in the order train images, train labels, test images, test labels.
pub const MNIST_FILES: [MnistFile; 4] = [
    MnistFile {
        name: "train-images-idx3-ubyte",
        sha256: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    },
    MnistFile {
        name: "train-labels-idx1-ubyte",
        sha256: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    },
    MnistFile {
        name: "t10k-images-idx3-ubyte",
        sha256: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    },
    MnistFile {
        name: "t10k-labels-idx1-ubyte",
        sha256: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
];

/// Data directory used when neither `--data-dir` nor `MNIST_DIR` is given and the platform has
/// no per-user cache folder (relative to the current directory).
pub const DEFAULT_DATA_DIR: &str = "data/mnist";

/// Environment variable naming the data directory when `--data-dir` is not given.
pub const DATA_DIR_ENV: &str = "MNIST_DIR";

/// Environment variable with comma-separated mirror base URLs to download from instead of
/// [`DEFAULT_MIRRORS`] (a local mirror, say).
pub const MIRRORS_ENV: &str = "MNIST_MIRRORS";

/// SHA-256 of `bytes` as lowercase hex.
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The per-user default data directory, as Keras keeps `~/.keras/datasets`: `reg/mnist` in the
/// platform's cache folder (`$XDG_CACHE_HOME` or `~/.cache` on Linux, `~/Library/Caches` on
/// macOS, `%LOCALAPPDATA%` on Windows), else [`DEFAULT_DATA_DIR`].
#[must_use]
pub fn default_data_dir() -> PathBuf {
    dirs::cache_dir().map_or_else(
        || PathBuf::from(DEFAULT_DATA_DIR),
        |cache| cache.join("reg").join("mnist"),
    )
}

/// The data directory: `cli` (`--data-dir`) if given, else the `MNIST_DIR` environment variable
/// if set and non-empty, else [`default_data_dir`].
#[must_use]
pub fn resolve_data_dir(cli: Option<&Path>) -> PathBuf {
    resolve_data_dir_with(cli, std::env::var_os(DATA_DIR_ENV).as_deref())
}

/// [`resolve_data_dir`] with the value of `MNIST_DIR` passed in (testable without touching the
/// process environment).
#[must_use]
pub fn resolve_data_dir_with(cli: Option<&Path>, mnist_dir_env: Option<&OsStr>) -> PathBuf {
    match (cli, mnist_dir_env) {
        (Some(dir), _) => dir.to_path_buf(),
        (None, Some(env)) if !env.is_empty() => PathBuf::from(env),
        _ => default_data_dir(),
    }
}

/// The folder the examples would read MNIST from without `--data-dir` — `$MNIST_DIR` if set,
/// else [`default_data_dir`] — when it already holds the four files (`.gz` or raw); `None`
/// otherwise. Nothing is downloaded: tests and benches use it to find real MNIST where a user
/// has it, and report themselves as not run when it is not there.
#[must_use]
pub fn local_mnist_dir() -> Option<PathBuf> {
    let dir = resolve_data_dir(None);
    MNIST_FILES
        .iter()
        .all(|f| f.find_in(&dir).is_some())
        .then_some(dir)
}

/// MNIST's training and test sets.
#[derive(Debug, Clone, PartialEq)]
pub struct Mnist {
    /// The 60,000 training images (split off a validation set with [`Dataset::split_off_last`]).
    pub train: Dataset,
    /// The 10,000 test images.
    pub test: Dataset,
}

impl Mnist {
    /// Load the four files from `dir`, each either `<name>.gz` or raw `<name>` (gzip is
    /// recognised by content). Files are validated fully: magic numbers, sizes against the
    /// header, labels in `0..=9`, image and label counts equal, same image size in both sets.
    ///
    /// # Errors
    /// [`DataError::NotFound`] listing the missing files, or the first validation error, which
    /// names its file.
    pub fn load(dir: &Path) -> Result<Mnist, DataError> {
        let found: Vec<Option<PathBuf>> = MNIST_FILES.iter().map(|f| f.find_in(dir)).collect();
        let mut paths = Vec::with_capacity(4);
        let mut missing = Vec::new();
        for (file, path) in MNIST_FILES.iter().zip(found) {
            match path {
                Some(p) => paths.push(p),
                None => missing.push(file.gz_name()),
            }
        }
        let [train_images, train_labels, test_images, test_labels] =
            <[PathBuf; 4]>::try_from(paths).map_err(|_| DataError::NotFound {
                dir: dir.to_path_buf(),
                missing,
            })?;
        let train = Dataset::load(&train_images, &train_labels)?;
        let test = Dataset::load(&test_images, &test_labels)?;
        if (test.rows(), test.cols()) != (train.rows(), train.cols()) {
            return Err(DataError::ImageSizeMismatch {
                path: test_images,
                expected: (train.rows(), train.cols()),
                found: (test.rows(), test.cols()),
            });
        }
        Ok(Mnist { train, test })
    }

    /// A SHA-256 (lowercase hex) of what was loaded: both sets' image sizes, counts, pixels and
    /// labels, whether read from `.gz` or raw files. Two folders give the same digest exactly
    /// when a run would see the same data; checkpoints and study results record it so that a
    /// run resumed or merged on other data is refused. About 0.2 s for MNIST's 55 MB.
    #[must_use]
    pub fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        for set in [&self.train, &self.test] {
            for n in [set.len(), set.rows(), set.cols()] {
                hasher.update((n as u64).to_le_bytes());
            }
            hasher.update(set.images());
            hasher.update(set.labels());
        }
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// [`Mnist::load`], each file first checked against its published SHA-256 (of the content,
    /// whether stored raw or as `.gz`): for the folder reg manages, where a damaged file is
    /// reg's to replace.
    ///
    /// # Errors
    /// [`DataError::Damaged`] naming the first file whose content is not MNIST's, and those of
    /// [`Mnist::load`].
    pub fn load_verified(dir: &Path) -> Result<Mnist, DataError> {
        let mut files = Vec::with_capacity(4);
        for file in &MNIST_FILES {
            let path = file.find_in(dir).ok_or_else(|| DataError::NotFound {
                dir: dir.to_path_buf(),
                missing: vec![file.gz_name()],
            })?;
            let bytes = read_idx_file(&path, MAX_IDX_BYTES)?;
            let actual = sha256_hex(&bytes);
            if actual != file.sha256 {
                return Err(DataError::Damaged {
                    path,
                    expected: file.sha256.to_owned(),
                    actual,
                });
            }
            files.push((bytes, path));
        }
        let mut files = files.into_iter();
        let mut next = || files.next().unwrap_or_default();
        let ((train_x, train_xp), (train_y, train_yp)) = (next(), next());
        let ((test_x, test_xp), (test_y, test_yp)) = (next(), next());
        Ok(Mnist {
            train: Dataset::from_idx_bytes(train_x, &train_xp, train_y, &train_yp)?,
            test: Dataset::from_idx_bytes(test_x, &test_xp, test_y, &test_yp)?,
        })
    }

    /// Finds MNIST as every example does — `cli_dir` (`--data-dir`), else `$MNIST_DIR`, else
    /// [`default_data_dir`] — downloads the files missing there (from `$MNIST_MIRRORS` if set,
    /// else [`DEFAULT_MIRRORS`]), and loads them. Returns the folder too.
    ///
    /// In reg's own cache folder (neither `--data-dir` nor `$MNIST_DIR` given) every file is
    /// checked against its published SHA-256 on every load, as Keras's `get_file` does: a
    /// damaged one is removed, with a warning, and downloaded again.
    ///
    /// # Errors
    /// As [`ensure_mnist`] and [`Mnist::load`].
    #[cfg(feature = "download")]
    pub fn find_and_load(
        cli_dir: Option<&Path>,
        quiet: bool,
    ) -> Result<(Mnist, PathBuf), DataError> {
        let env_dir = std::env::var_os(DATA_DIR_ENV).filter(|d| !d.is_empty());
        let dir = resolve_data_dir_with(cli_dir, env_dir.as_deref());
        let source = match (cli_dir, &env_dir) {
            (Some(_), _) => "given by --data-dir",
            (None, Some(_)) => "given by MNIST_DIR",
            (None, None) => "reg's per-user MNIST cache; --data-dir or MNIST_DIR chooses another",
        };
        let mut options = DownloadOptions::default().with_quiet(quiet);
        if let Some(mirrors) = std::env::var(MIRRORS_ENV).ok().filter(|m| !m.is_empty()) {
            options = options.with_mirrors(mirrors.split(',').map(str::trim));
        }
        let ensure = || {
            ensure_mnist(&dir, &options).map_err(|e| match e {
                DataError::NotAFile { path, what } if path == dir => DataError::NotAFile {
                    what: format!("{what} ({source})"),
                    path,
                },
                other => other,
            })
        };
        ensure()?;
        if cli_dir.is_some() || env_dir.is_some() {
            return Ok((Mnist::load(&dir)?, dir));
        }
        // Each round replaces one damaged file; four files, so at most four rounds.
        for _ in 0..MNIST_FILES.len() {
            match Mnist::load_verified(&dir) {
                Err(DataError::Damaged { path, .. }) => {
                    eprintln!(
                        "warning: {} in reg's MNIST cache is damaged (its SHA-256 is not the published one); removing it and downloading it again",
                        path.display()
                    );
                    std::fs::remove_file(&path).map_err(|e| DataError::io(&path, e))?;
                    ensure()?;
                }
                loaded => return Ok((loaded?, dir)),
            }
        }
        Ok((Mnist::load_verified(&dir)?, dir))
    }
}
