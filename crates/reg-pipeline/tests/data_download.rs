//! Downloading against a tiny HTTP/1.1 server on loopback (no internet needed).
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

mod checkpoint_support;

use reg_pipeline::data::{
    DataError, DownloadOptions, MNIST_FILES, Mnist, ensure_mnist, sha256_hex,
};

/// Serves `files` (URL path → body) with status 200 (a body `REDIRECT <location>` as a 302 to
/// it), anything else with 404; records the paths requested. Stops when dropped.
struct Server {
    base: String,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(files: HashMap<String, Vec<u8>>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, halt) = (Arc::clone(&requests), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            // Bounded: a test makes a handful of requests.
            for stream in listener.incoming().take(100) {
                if halt.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    let _ = serve(stream, &files, &log);
                }
            }
        });
        Server {
            base: format!("http://{addr}"),
            requests,
            stop,
            addr,
            thread: Some(thread),
        }
    }

    fn url(&self, prefix: &str) -> String {
        format!("{}{prefix}", self.base)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wake the accept loop
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    stream: TcpStream,
    files: &HashMap<String, Vec<u8>>,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" {
            break;
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_owned();
    log.lock().unwrap().push(path.clone());
    let mut out = stream;
    match files.get(&path) {
        Some(body) if body.starts_with(b"REDIRECT ") => {
            let location = String::from_utf8_lossy(&body[9..]).into_owned();
            write!(
                out,
                "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )?;
        }
        Some(body) => {
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            out.write_all(body)?;
        }
        None => out.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found",
        )?,
    }
    out.flush()
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn idx(magic: u32, dims: &[u32], body: &[u8]) -> Vec<u8> {
    let mut out = magic.to_be_bytes().to_vec();
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(body);
    out
}

/// Tiny stand-ins for the four MNIST files (raw IDX bytes), in `MNIST_FILES` order.
fn tiny_contents() -> [Vec<u8>; 4] {
    [
        idx(0x803, &[2, 2, 2], &[0, 64, 128, 255, 1, 2, 3, 4]),
        idx(0x801, &[2], &[5, 0]),
        idx(0x803, &[1, 2, 2], &[9, 9, 9, 9]),
        idx(0x801, &[1], &[7]),
    ]
}

/// The files as a mirror under `prefix` serves them (`.gz`).
fn mirror_files(prefix: &str) -> HashMap<String, Vec<u8>> {
    MNIST_FILES
        .iter()
        .zip(tiny_contents())
        .map(|(f, raw)| (format!("{prefix}{}", f.gz_name()), gz(&raw)))
        .collect()
}

/// Options expecting the tiny files' checksums.
fn tiny_options(mirrors: Vec<String>) -> DownloadOptions {
    let mut opts = DownloadOptions::default()
        .with_mirrors(mirrors)
        .with_quiet(true)
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(10));
    for (f, raw) in MNIST_FILES.iter().zip(tiny_contents()) {
        opts = opts.with_checksum(f.name, sha256_hex(&raw));
    }
    opts
}

/// A loopback URL on which nothing listens (connection refused).
fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/")
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn downloads_verifies_and_loads_the_four_files() {
    let server = Server::start(mirror_files("/mnist/"));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nested/data"); // created on demand
    ensure_mnist(&dir, &tiny_options(vec![server.url("/mnist/")])).unwrap();
    let mut expected: Vec<String> = MNIST_FILES.iter().map(|f| f.gz_name()).collect();
    expected.sort();
    assert_eq!(
        dir_entries(&dir),
        expected,
        "no temporary file is left behind"
    );
    let mnist = Mnist::load(&dir).unwrap();
    assert_eq!((mnist.train.len(), mnist.test.len()), (2, 1));
    assert_eq!(mnist.train.labels(), &[5, 0]);
    // A second call finds the files and makes no request.
    let before = server.requests().len();
    ensure_mnist(&dir, &tiny_options(vec![server.url("/mnist/")])).unwrap();
    assert_eq!(server.requests().len(), before);
}

#[test]
fn a_mirror_returning_404_falls_through_to_the_next() {
    let server = Server::start(mirror_files("/good/"));
    let tmp = tempfile::tempdir().unwrap();
    // The first base has no trailing slash: one is added.
    let opts = tiny_options(vec![server.url("/missing"), server.url("/good/")]);
    ensure_mnist(tmp.path(), &opts).unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 8);
    assert_eq!(requests[0], "/missing/train-images-idx3-ubyte.gz");
    assert_eq!(requests[1], "/good/train-images-idx3-ubyte.gz");
    assert!(Mnist::load(tmp.path()).is_ok());
}

#[test]
fn an_unreachable_mirror_falls_through_to_the_next() {
    let server = Server::start(mirror_files("/"));
    let tmp = tempfile::tempdir().unwrap();
    ensure_mnist(tmp.path(), &tiny_options(vec![dead_url(), server.url("/")])).unwrap();
    assert!(Mnist::load(tmp.path()).is_ok());
}

#[test]
fn wrong_checksum_is_rejected_and_nothing_is_written() {
    let server = Server::start(mirror_files("/"));
    let tmp = tempfile::tempdir().unwrap();
    // Real MNIST checksums: the tiny files cannot match them.
    let opts = DownloadOptions::default()
        .with_mirrors([server.url("/")])
        .with_quiet(true);
    let err = ensure_mnist(tmp.path(), &opts).unwrap_err();
    match &err {
        DataError::Checksum {
            file,
            expected,
            actual,
            ..
        } => {
            assert_eq!(file, "train-images-idx3-ubyte.gz");
            assert_eq!(expected, MNIST_FILES[0].sha256);
            assert_eq!(actual, &sha256_hex(&tiny_contents()[0]));
        }
        other => panic!("expected Checksum, got {other:?}"),
    }
    assert!(dir_entries(tmp.path()).is_empty());
}

#[test]
fn corrupt_gzip_from_a_mirror_is_not_written() {
    let mut files = mirror_files("/");
    for body in files.values_mut() {
        let n = body.len();
        body[n - 8] ^= 0xff; // CRC-32 in the trailer
    }
    let server = Server::start(files);
    let tmp = tempfile::tempdir().unwrap();
    let err = ensure_mnist(tmp.path(), &tiny_options(vec![server.url("/")])).unwrap_err();
    assert!(matches!(&err, DataError::Download { attempts, .. } if attempts.len() == 1));
    assert!(dir_entries(tmp.path()).is_empty());
}

#[test]
fn a_response_over_the_size_limit_is_refused() {
    let server = Server::start(mirror_files("/"));
    let tmp = tempfile::tempdir().unwrap();
    let opts = tiny_options(vec![server.url("/")]).with_max_download_bytes(10);
    assert!(matches!(
        ensure_mnist(tmp.path(), &opts),
        Err(DataError::Download { .. })
    ));
    assert!(dir_entries(tmp.path()).is_empty());
}

#[test]
fn raw_idx_served_under_the_gz_name_is_accepted_and_stored_raw() {
    let files: HashMap<String, Vec<u8>> = MNIST_FILES
        .iter()
        .zip(tiny_contents())
        .map(|(f, raw)| (format!("/{}", f.gz_name()), raw))
        .collect();
    let server = Server::start(files);
    let tmp = tempfile::tempdir().unwrap();
    ensure_mnist(tmp.path(), &tiny_options(vec![server.url("/")])).unwrap();
    assert!(tmp.path().join("train-images-idx3-ubyte").is_file());
    assert_eq!(Mnist::load(tmp.path()).unwrap().test.label(0), Some(7));
}

#[test]
fn when_every_mirror_fails_the_error_says_where_to_put_the_files() {
    let server = Server::start(HashMap::new());
    let tmp = tempfile::tempdir().unwrap();
    let mirrors = vec![server.url("/a/"), dead_url()];
    let err = ensure_mnist(tmp.path(), &tiny_options(mirrors.clone())).unwrap_err();
    match &err {
        DataError::Download {
            file,
            attempts,
            dir,
        } => {
            assert_eq!(file, "train-images-idx3-ubyte.gz");
            assert_eq!(attempts.len(), 2);
            assert!(attempts[0].contains("404"), "{attempts:?}");
            assert_eq!(dir, tmp.path());
        }
        other => panic!("expected Download, got {other:?}"),
    }
    let msg = err.to_string();
    for f in MNIST_FILES {
        assert!(msg.contains(&f.gz_name()), "{msg}");
    }
    for needle in [
        tmp.path().display().to_string(),
        "--data-dir".to_owned(),
        "MNIST_DIR".to_owned(),
        mirrors[1].clone(),
    ] {
        assert!(msg.contains(&needle), "{needle} not in {msg}");
    }
    assert!(dir_entries(tmp.path()).is_empty());
}

/// The real MNIST `.gz` files beside the project (development and CI), if there.
/// Real MNIST as a mirror serves it (`/mirror/<name>.gz`), from wherever the tests find it.
fn real_mnist_gz() -> HashMap<String, Vec<u8>> {
    let dir = checkpoint_support::real_mnist_dir();
    MNIST_FILES
        .iter()
        .map(|f| {
            let path = f.find_in(&dir).unwrap();
            let body = std::fs::read(&path).unwrap();
            let body = if reg_pipeline::data::is_gzip(&body) {
                body
            } else {
                gz(&body)
            };
            (format!("/mirror/{}", f.gz_name()), body)
        })
        .collect()
}

#[test]
#[ignore = "needs real MNIST (MNIST_DIR, the per-user cache or ../shared/data/mnist); .ci/run runs it"]
fn a_run_without_data_dir_downloads_into_the_per_user_cache_folder() {
    let server = Server::start(real_mnist_gz());
    let tmp = tempfile::tempdir().unwrap();
    let (cache, work) = (tmp.path().join("cache"), tmp.path().join("work"));
    std::fs::create_dir_all(&work).unwrap();
    // Ten training images, one small batch: the run is about loading, not learning.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_reg-train"))
        .args([
            "--epochs",
            "1",
            "--validation",
            "59990",
            "--batch-size",
            "10",
        ])
        .arg("--metrics-out")
        .arg(tmp.path().join("metrics.json"))
        .current_dir(&work)
        .env_remove("MNIST_DIR")
        .env("XDG_CACHE_HOME", &cache)
        .env("HOME", tmp.path().join("home"))
        .env("MNIST_MIRRORS", server.url("/mirror/"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stderr}\n{stdout}");
    let dir = cache.join("reg").join("mnist");
    let mut expected: Vec<String> = MNIST_FILES.iter().map(|f| f.gz_name()).collect();
    expected.sort();
    assert_eq!(dir_entries(&dir), expected);
    assert_eq!(server.requests().len(), 4);
    assert!(
        dir_entries(&work).is_empty(),
        "nothing is created in the current folder"
    );
    // Not a terminal: the download reports in plain lines where it puts the files.
    let announced = format!("MNIST: downloading 4 file(s) into {}", dir.display());
    assert!(stderr.contains(&announced), "{stderr}");
    assert!(
        stderr.contains("train-images-idx3-ubyte.gz: 9."),
        "{stderr}"
    );
    assert!(
        stderr.contains("train-labels-idx1-ubyte.gz: 29 kB in"),
        "{stderr}"
    );
    assert!(stdout.contains(&dir.display().to_string()), "{stdout}");
    // The metrics say where the data came from and how the run was made.
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["data_dir"], dir.display().to_string());
    assert_eq!(metrics["reg_version"], env!("CARGO_PKG_VERSION"));
    assert!(metrics["threads"].as_u64().unwrap() >= 1);
    assert!(metrics["resumed_from"].is_null());
    assert!(metrics["wall_seconds"].as_f64().unwrap() > 0.0);
    assert!(
        metrics["train_acc_mode"]
            .as_str()
            .unwrap()
            .starts_with("Train mode (dropout on")
    );
    // --epochs 1 alone: warmup defaults to 0.
    assert_eq!(metrics["config"]["warmup"], 0);
}

/// The files of `mirror_files(prefix)`, each answered by a redirect to `target` + its name.
fn redirects(prefix: &str, target: &str) -> HashMap<String, Vec<u8>> {
    MNIST_FILES
        .iter()
        .map(|f| {
            let body = format!("REDIRECT {target}{}", f.gz_name()).into_bytes();
            (format!("{prefix}{}", f.gz_name()), body)
        })
        .collect()
}

#[test]
fn a_redirect_is_followed_and_a_failed_one_names_where_it_led() {
    let mut files = mirror_files("/mnist/");
    files.extend(redirects("/moved/", "/mnist/"));
    let dead = dead_url();
    files.extend(redirects("/dead/", &dead));
    let server = Server::start(files);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    ensure_mnist(&dir, &tiny_options(vec![server.url("/moved/")])).unwrap();
    assert_eq!(Mnist::load(&dir).unwrap().train.labels(), &[5, 0]);

    let other = tmp.path().join("other");
    let Err(DataError::Download { attempts, .. }) =
        ensure_mnist(&other, &tiny_options(vec![server.url("/dead/")]))
    else {
        panic!("a redirect to a closed port must fail the download");
    };
    assert!(
        attempts[0].contains(&format!("redirected to {dead}")),
        "{attempts:?}"
    );
}

/// Two downloads into one empty folder at once (two runs, two study shards) both succeed,
/// each writing through a temporary name of its own.
#[test]
fn two_downloads_into_one_empty_folder_both_succeed() {
    let server = Server::start(mirror_files("/mnist/"));
    for round in 0..5 {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cache");
        let options = tiny_options(vec![server.url("/mnist/")]);
        let results: Vec<Result<(), DataError>> = std::thread::scope(|scope| {
            let both = [(), ()].map(|()| scope.spawn(|| ensure_mnist(&dir, &options)));
            both.map(|h| h.join().unwrap()).into()
        });
        for result in results {
            assert!(result.is_ok(), "round {round}: {result:?}");
        }
        let mut expected: Vec<String> = MNIST_FILES.iter().map(|f| f.gz_name()).collect();
        expected.sort();
        assert_eq!(dir_entries(&dir), expected, "round {round}");
        assert_eq!(Mnist::load(&dir).unwrap().test.labels(), &[7]);
    }
}

#[test]
fn a_cache_folder_that_is_a_file_is_named_as_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    std::fs::create_dir_all(cache.join("reg")).unwrap();
    std::fs::write(cache.join("reg").join("mnist"), b"not a folder").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_reg-train"))
        .args(["--epochs", "1", "--quiet"])
        .env_remove("MNIST_DIR")
        .env("XDG_CACHE_HOME", &cache)
        .env("MNIST_MIRRORS", dead_url())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("reg's per-user MNIST cache"), "{stderr}");
    assert!(!stderr.contains("given by"), "{stderr}");
}

/// A short run of `reg-train` with reg's cache under `cache` and `server` as the mirror.
fn cached_run(cache: &Path, server: &Server) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_reg-train"));
    command
        .args([
            "--epochs",
            "1",
            "--validation",
            "59990",
            "--batch-size",
            "10",
            "--quiet",
        ])
        .env_remove("MNIST_DIR")
        .env("XDG_CACHE_HOME", cache)
        .env("MNIST_MIRRORS", server.url("/mirror/"));
    command
}

#[test]
#[ignore = "needs real MNIST (MNIST_DIR, the per-user cache or ../shared/data/mnist); .ci/run runs it"]
fn two_runs_downloading_into_one_empty_cache_both_succeed() {
    let server = Server::start(real_mnist_gz());
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let children: Vec<_> = (0..2)
        .map(|_| {
            cached_run(&cache, &server)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
#[ignore = "needs real MNIST (MNIST_DIR, the per-user cache or ../shared/data/mnist); .ci/run runs it"]
fn a_damaged_raw_file_in_the_cache_is_replaced() {
    let server = Server::start(real_mnist_gz());
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let dir = cache.join("reg").join("mnist");
    std::fs::create_dir_all(&dir).unwrap();
    // The cache holds the test images raw, with 8 bytes overwritten.
    let real = checkpoint_support::real_mnist_dir();
    for f in &MNIST_FILES {
        let raw = reg_pipeline::data::read_idx_file(
            &f.find_in(&real).unwrap(),
            reg_pipeline::data::MAX_IDX_BYTES,
        )
        .unwrap();
        std::fs::write(dir.join(f.name), raw).unwrap();
    }
    let damaged = dir.join("t10k-images-idx3-ubyte");
    let mut bytes = std::fs::read(&damaged).unwrap();
    bytes[5000..5008].copy_from_slice(&[255; 8]);
    std::fs::write(&damaged, bytes).unwrap();

    let output = cached_run(&cache, &server).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("is damaged"), "{stderr}");
    assert!(!damaged.exists(), "the damaged file was replaced");
    assert!(dir.join("t10k-images-idx3-ubyte.gz").is_file());
    assert_eq!(server.requests().len(), 1);
}

/// An offline first run (every mirror unreachable) leaves no empty data folder behind, so a
/// later run is not misled into finding one.
#[test]
fn a_failed_download_leaves_no_folder_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shared/data/mnist");
    let result = ensure_mnist(&dir, &tiny_options(vec![dead_url()]));
    assert!(matches!(result, Err(DataError::Download { .. })));
    assert!(!tmp.path().join("shared").exists());
}
