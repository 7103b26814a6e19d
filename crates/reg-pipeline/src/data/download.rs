//! Downloading MNIST from public mirrors, verified by the SHA-256 of the decompressed content,
//! written atomically.

use std::io::{IsTerminal, Read};
use std::path::Path;
use std::time::{Duration, Instant};

use super::idx::read_capped;
use crate::report::progress::LINE_INTERVAL;

use super::{DataError, MAX_IDX_BYTES, MNIST_FILES, MnistFile, decompress_gz, is_gzip, sha256_hex};

/// The public mirrors tried in order: each serves `<base><name>.gz`.
pub const DEFAULT_MIRRORS: [&str; 2] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
];

/// How [`ensure_mnist`] downloads.
#[derive(Debug, Clone)]
pub struct DownloadOptions {
    mirrors: Vec<String>,
    quiet: bool,
    connect_timeout: Duration,
    timeout: Duration,
    max_download_bytes: u64,
    checksums: Vec<(String, String)>,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        DownloadOptions {
            mirrors: DEFAULT_MIRRORS.iter().map(|s| (*s).to_owned()).collect(),
            quiet: false,
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(300),
            max_download_bytes: MAX_IDX_BYTES,
            checksums: Vec::new(),
        }
    }
}

impl DownloadOptions {
    /// Base URLs tried in order, each followed by the `.gz` file name (a missing trailing `/`
    /// is added). Default: [`DEFAULT_MIRRORS`].
    #[must_use]
    pub fn with_mirrors<S: Into<String>>(mut self, mirrors: impl IntoIterator<Item = S>) -> Self {
        self.mirrors = mirrors.into_iter().map(Into::into).collect();
        self
    }

    /// Hide the progress bars. Default: `false` (bars are drawn on stderr when it is a terminal).
    #[must_use]
    pub fn with_quiet(mut self, quiet: bool) -> Self {
        self.quiet = quiet;
        self
    }

    /// Time allowed to open a connection. Default: 10 s.
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Time allowed for one whole request, body included. Default: 300 s.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Largest response body accepted, compressed or not, and largest decompressed content.
    /// Default: [`MAX_IDX_BYTES`] (64 MiB).
    #[must_use]
    pub fn with_max_download_bytes(mut self, bytes: u64) -> Self {
        self.max_download_bytes = bytes;
        self
    }

    /// Expect `sha256` (lowercase hex, of the decompressed content) for the file `name`
    /// (without `.gz`, e.g. `train-images-idx3-ubyte`) instead of the real MNIST value in
    /// [`MNIST_FILES`]; for tests with small stand-in files. Default: no override.
    #[must_use]
    pub fn with_checksum(mut self, name: impl Into<String>, sha256: impl Into<String>) -> Self {
        self.checksums.push((name.into(), sha256.into()));
        self
    }

    fn expected_sha256(&self, file: &MnistFile) -> String {
        self.checksums
            .iter()
            .rev()
            .find(|(name, _)| name == file.name)
            .map_or_else(
                || file.sha256.to_owned(),
                |(_, sum)| sum.to_ascii_lowercase(),
            )
    }

    fn agent(&self) -> ureq::Agent {
        ureq::Agent::config_builder()
            .timeout_connect(Some(self.connect_timeout))
            .timeout_global(Some(self.timeout))
            .http_status_as_error(false)
            // Followed by `get_following`, which can then say where a redirect led.
            .max_redirects(0)
            .build()
            .into()
    }
}

/// Make sure the four MNIST files are in `dir` (each as `<name>.gz` or raw `<name>`),
/// downloading the missing ones from the mirrors of `options`, in order.
///
/// A download is accepted only if its decompressed content has the expected SHA-256 (the
/// mirrors' gzip bytes differ from one another, their content does not); it is then written
/// atomically (temporary file in `dir`, synced, renamed), so a failure leaves no partial file.
/// Files already present are not checked here: [`Mnist::load`](super::Mnist::load) validates them.
///
/// # Errors
/// [`DataError::Io`] if `dir` cannot be created or written; [`DataError::Checksum`] if a mirror
/// served wrong content and none served the right one; [`DataError::Download`] listing every
/// attempt when no mirror served the file. Both messages say where to put the files by hand.
pub fn ensure_mnist(dir: &Path, options: &DownloadOptions) -> Result<(), DataError> {
    if dir.exists() && !dir.is_dir() {
        return Err(DataError::NotAFile {
            path: dir.to_path_buf(),
            what: "is a file; MNIST's data folder must be a folder".into(),
        });
    }
    let missing: Vec<&MnistFile> = MNIST_FILES
        .iter()
        .filter(|f| f.find_in(dir).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    // A folder or a broken symlink under a data file's name is the user's to fix: say so
    // rather than try to download over it.
    for file in &missing {
        for path in [dir.join(file.gz_name()), dir.join(file.name)] {
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let what = if meta.is_dir() {
                "is a folder"
            } else if meta.file_type().is_symlink() {
                "is a symlink that does not lead to a regular file (dangling, a loop, or a folder)"
            } else {
                "is not a regular file"
            };
            return Err(DataError::NotAFile {
                path,
                what: format!("{what}; an MNIST data file (IDX, raw or .gz) is expected there"),
            });
        }
    }
    if !options.quiet {
        eprintln!(
            "MNIST: downloading {} file(s) into {} (about 11 MB in all, checked by SHA-256)",
            missing.len(),
            dir.display()
        );
    }
    let agent = options.agent();
    for file in missing {
        download_one(&agent, file, dir, options)?;
    }
    Ok(())
}

fn download_one(
    agent: &ureq::Agent,
    file: &MnistFile,
    dir: &Path,
    options: &DownloadOptions,
) -> Result<(), DataError> {
    let gz_name = file.gz_name();
    let expected = options.expected_sha256(file);
    let mut attempts = Vec::new();
    let mut wrong_content = None;
    for base in &options.mirrors {
        let sep = if base.ends_with('/') { "" } else { "/" };
        let url = format!("{base}{sep}{gz_name}");
        let body = match fetch(agent, &url, &gz_name, options) {
            Ok(body) => body,
            Err(reason) => {
                attempts.push(format!("{url} ({reason})"));
                continue;
            }
        };
        // A mirror may serve the raw IDX file under the .gz name: accept it, stored raw.
        let decompressed;
        let (content, stored_name): (&[u8], &str) = if is_gzip(&body) {
            match decompress_gz(&body, options.max_download_bytes, Path::new(&url)) {
                Ok(content) => {
                    decompressed = content;
                    (&decompressed, &gz_name)
                }
                Err(e) => {
                    attempts.push(format!("{url} ({e})"));
                    continue;
                }
            }
        } else {
            (&body, file.name)
        };
        let actual = sha256_hex(content);
        if actual != expected {
            attempts.push(format!("{url} (SHA-256 {actual}, expected {expected})"));
            wrong_content = Some((url, actual));
            continue;
        }
        return write_atomically(dir, stored_name, &body);
    }
    match wrong_content {
        Some((url, actual)) => Err(DataError::Checksum {
            file: gz_name,
            url,
            expected,
            actual,
            dir: dir.to_path_buf(),
        }),
        None => Err(DataError::Download {
            file: gz_name,
            attempts,
            dir: dir.to_path_buf(),
        }),
    }
}

/// GET `url` into memory (at most `max_download_bytes`), with a progress bar unless quiet.
fn fetch(
    agent: &ureq::Agent,
    url: &str,
    label: &str,
    options: &DownloadOptions,
) -> Result<Vec<u8>, String> {
    let mut response = get_following(agent, url)?;
    let status = response.status();
    if status != ureq::http::StatusCode::OK {
        return Err(format!("HTTP {status}"));
    }
    let length = response.body().content_length();
    let limit = options.max_download_bytes;
    let reader = response
        .body_mut()
        .with_config()
        .limit(limit.saturating_add(1))
        .reader();
    let to_error = |e| DataError::io(Path::new(url), e);
    let body = if options.quiet || std::io::stderr().is_terminal() {
        let bar = progress_bar(options.quiet, length, label);
        let body = read_capped(bar.wrap_read(reader), limit, Path::new(url), to_error);
        bar.finish_and_clear();
        body
    } else {
        // Not a terminal (a log, CI): plain lines instead of a bar.
        eprintln!("  {url}: {}", megabytes(length));
        let mut logged = LoggedRead::new(reader, label, length);
        let body = read_capped(&mut logged, limit, Path::new(url), to_error);
        if body.is_ok() {
            logged.finish();
        }
        body
    };
    body.map_err(|e| e.to_string())
}

/// Redirects followed before a download is given up.
const MAX_REDIRECTS: usize = 5;

/// GET `url`, following up to [`MAX_REDIRECTS`] redirects; an error after a redirect names
/// the address it led to (a mirror's own address may be fine while its redirect is not).
fn get_following(
    agent: &ureq::Agent,
    url: &str,
) -> Result<ureq::http::Response<ureq::Body>, String> {
    let mut at = url.to_owned();
    for _ in 0..=MAX_REDIRECTS {
        let via = if at == url {
            String::new()
        } else {
            format!("redirected to {at}: ")
        };
        let response = agent.get(&at).call().map_err(|e| format!("{via}{e}"))?;
        if !response.status().is_redirection() {
            return Ok(response);
        }
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| format!("{via}HTTP {} without a Location", response.status()))?;
        at = join_url(&at, location);
    }
    Err(format!(
        "more than {MAX_REDIRECTS} redirects (the last to {at})"
    ))
}

/// `location` (a redirect's target) read against `base`: absolute as is, `/path` on `base`'s
/// host, anything else beside `base`'s last path segment.
fn join_url(base: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_owned();
    }
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |i| after_scheme + i);
    if location.starts_with('/') {
        return format!("{}{location}", &base[..host_end]);
    }
    let dir_end = base[host_end..]
        .rfind('/')
        .map_or(base.len(), |i| host_end + i + 1);
    let dir = &base[..dir_end];
    let sep = if dir.ends_with('/') { "" } else { "/" };
    format!("{dir}{sep}{location}")
}

/// `9.9 MB`, `29 kB`, or `size unknown`.
fn megabytes(bytes: Option<u64>) -> String {
    match bytes {
        None => "size unknown".to_owned(),
        Some(b) if b < 1_000_000 => format!("{:.0} kB", b as f64 / 1e3),
        Some(b) => format!("{:.1} MB", b as f64 / 1e6),
    }
}

/// A reader that writes a progress line to stderr whenever [`LINE_INTERVAL`] has passed.
struct LoggedRead<R> {
    inner: R,
    label: String,
    length: Option<u64>,
    read: u64,
    started: Instant,
    last_line: Instant,
}

impl<R: Read> LoggedRead<R> {
    fn new(inner: R, label: &str, length: Option<u64>) -> Self {
        let now = Instant::now();
        Self {
            inner,
            label: label.to_owned(),
            length,
            read: 0,
            started: now,
            last_line: now,
        }
    }

    fn finish(&self) {
        eprintln!(
            "  {}: {} in {:.1} s",
            self.label,
            megabytes(Some(self.read)),
            self.started.elapsed().as_secs_f64()
        );
    }
}

impl<R: Read> Read for LoggedRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.last_line.elapsed() >= LINE_INTERVAL {
            let share = self
                .length
                .map(|len| {
                    format!(
                        " of {} ({:.0}%)",
                        megabytes(Some(len)),
                        100.0 * self.read as f64 / len.max(1) as f64
                    )
                })
                .unwrap_or_default();
            eprintln!("  {}: {}{share}", self.label, megabytes(Some(self.read)));
            self.last_line = Instant::now();
        }
        Ok(n)
    }
}

fn progress_bar(quiet: bool, len: Option<u64>, label: &str) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let bar = match len {
        Some(len) => indicatif::ProgressBar::new(len),
        None => indicatif::ProgressBar::new_spinner(),
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(label.to_owned());
    bar
}

/// Writes `bytes` to `dir/name` with reg's one [atomic write](crate::persist::atomic).
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), DataError> {
    // Made only now, with a file to put in it: a download that fails leaves no empty folder.
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    crate::persist::atomic::replace(&dir.join(name), bytes)
        .map_err(|(path, e)| DataError::io(&path, e))
}
