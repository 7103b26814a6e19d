//! TensorBoard event files, written by hand, laid out as Keras's `TensorBoard` callback lays
//! them out: a run's folder holds `train/` and `validation/`, each with one event file whose
//! tags are the same (`epoch_loss`, `epoch_accuracy`), so TensorBoard draws training and
//! validation of one metric in one chart, and `tensorboard --logdir DIR` shows reg's runs beside
//! Keras's and PyTorch's.
//!
//! A file `events.out.tfevents.<seconds>.<host>` is a sequence of TFRecords, each
//!
//! ```text
//! u64 length (little-endian) | u32 masked CRC-32C of those 8 bytes | data | u32 masked CRC-32C of data
//! ```
//!
//! whose data is a protobuf `Event` (`wall_time` = 1: double, `step` = 2: int64,
//! `file_version` = 3: string, `summary` = 5: `Summary { repeated Value value = 1 }`,
//! `Value { tag = 1: string, simple_value = 2: float }`). The first event carries only
//! `file_version = "brain.Event:2"`. The encoder below writes just these fields; the reader skips
//! any other, so it reads files that TensorBoard's own writers made too.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use reg_pipeline::tensorboard::{EventWriter, read_events};
//! let dir = tempfile::tempdir()?;
//! let mut writer = EventWriter::create(dir.path())?;
//! writer.add_scalars(1, &[("loss/train", 0.25), ("accuracy/train", 0.93)])?;
//! let events = read_events(&std::fs::read(writer.path())?)?;
//! assert_eq!(events[0].file_version.as_deref(), Some("brain.Event:2"));
//! assert_eq!(events[1].step, 1);
//! assert_eq!(events[1].scalars[0], ("loss/train".to_owned(), 0.25));
//! # Ok(()) }
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use thiserror::Error;

use crate::{EpochMetrics, Observer, PipelineError, Trainer};

/// The `file_version` of the first event, as TensorFlow and PyTorch write it.
pub const FILE_VERSION: &str = "brain.Event:2";

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord framing uses.
#[must_use]
pub fn crc32c(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut crc = i as u32;
            let mut bit = 0;
            while bit < 8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0x82F6_3B78
                } else {
                    crc >> 1
                };
                bit += 1;
            }
            table[i] = crc;
            i += 1;
        }
        table
    };
    !data.iter().fold(!0u32, |crc, &b| {
        TABLE[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8)
    })
}

/// TFRecord's masked CRC: rotated right by 15 bits plus a constant, so that a CRC of data that
/// itself holds CRCs stays well distributed.
#[must_use]
pub fn masked_crc32c(data: &[u8]) -> u32 {
    let crc = crc32c(data);
    crc.rotate_right(15).wrapping_add(0xA282_EAD8)
}

/// One TFRecord around `data`.
#[must_use]
pub fn encode_record(data: &[u8]) -> Vec<u8> {
    let length = (data.len() as u64).to_le_bytes();
    let mut record = Vec::with_capacity(data.len() + 16);
    record.extend_from_slice(&length);
    record.extend_from_slice(&masked_crc32c(&length).to_le_bytes());
    record.extend_from_slice(data);
    record.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    record
}

/// What is wrong with an event file.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventFileError {
    /// The file ends inside a record.
    #[error("record at byte {offset}: file ends inside it")]
    Truncated {
        /// Byte offset of the record.
        offset: usize,
    },
    /// A length or data checksum does not match.
    #[error("record at byte {offset}: {what} checksum does not match")]
    Checksum {
        /// Byte offset of the record.
        offset: usize,
        /// `"length"` or `"data"`.
        what: &'static str,
    },
    /// A record is not a protobuf `Event` this reader understands.
    #[error("record at byte {offset}: malformed Event ({what})")]
    Malformed {
        /// Byte offset of the record.
        offset: usize,
        /// What could not be decoded.
        what: &'static str,
    },
}

/// The payloads of the TFRecords in `bytes`, each checked against its two CRCs.
///
/// # Errors
/// [`EventFileError::Truncated`] or [`EventFileError::Checksum`] for the first bad record.
pub fn read_records(bytes: &[u8]) -> Result<Vec<&[u8]>, EventFileError> {
    let mut records = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        let truncated = EventFileError::Truncated { offset };
        let header = bytes.get(offset..offset + 12).ok_or(truncated.clone())?;
        let (length, crc) = header.split_at(8);
        if masked_crc32c(length).to_le_bytes() != crc {
            return Err(EventFileError::Checksum {
                offset,
                what: "length",
            });
        }
        let length = u64::from_le_bytes(length.try_into().map_err(|_| truncated)?);
        let length = usize::try_from(length).map_err(|_| EventFileError::Truncated { offset })?;
        let start = offset + 12;
        let end = start
            .checked_add(length)
            .filter(|end| end + 4 <= bytes.len())
            .ok_or(EventFileError::Truncated { offset })?;
        let data = &bytes[start..end];
        if masked_crc32c(data).to_le_bytes() != bytes[end..end + 4] {
            return Err(EventFileError::Checksum {
                offset,
                what: "data",
            });
        }
        records.push(data);
        offset = end + 4;
    }
    Ok(records)
}

/// The fields of a TensorBoard `Event` that reg writes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Event {
    /// Seconds since the Unix epoch when the event was written.
    pub wall_time: f64,
    /// The step (reg: the epoch, from 1).
    pub step: i64,
    /// Set on the first event of a file only.
    pub file_version: Option<String>,
    /// `(tag, simple_value)` pairs of the event's summary.
    pub scalars: Vec<(String, f32)>,
}

impl Event {
    /// The protobuf encoding of this event.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.push(0x09); // field 1, fixed64
        out.extend_from_slice(&self.wall_time.to_le_bytes());
        if self.step != 0 {
            out.push(0x10); // field 2, varint
            put_varint(&mut out, self.step as u64);
        }
        if let Some(version) = &self.file_version {
            put_bytes(&mut out, 0x1A, version.as_bytes()); // field 3
        }
        if !self.scalars.is_empty() {
            let mut summary = Vec::new();
            for (tag, value) in &self.scalars {
                let mut v = Vec::new();
                put_bytes(&mut v, 0x0A, tag.as_bytes()); // Value.tag = 1
                v.push(0x15); // Value.simple_value = 2, fixed32
                v.extend_from_slice(&value.to_le_bytes());
                put_bytes(&mut summary, 0x0A, &v); // Summary.value = 1
            }
            put_bytes(&mut out, 0x2A, &summary); // field 5
        }
        out
    }

    /// Decodes an `Event`, skipping fields other than those of [`Event`].
    ///
    /// # Errors
    /// The reason, when `bytes` is not a well-formed protobuf message.
    pub fn decode(bytes: &[u8]) -> Result<Self, &'static str> {
        let mut event = Event::default();
        for field in Fields(bytes) {
            match field? {
                (1, Wire::Fixed64(v)) => event.wall_time = f64::from_bits(v),
                (2, Wire::Varint(v)) => event.step = v as i64,
                (3, Wire::Bytes(b)) => {
                    event.file_version =
                        Some(String::from_utf8(b.to_vec()).map_err(|_| "file_version not UTF-8")?);
                }
                (5, Wire::Bytes(summary)) => {
                    for value in Fields(summary) {
                        if let (1, Wire::Bytes(value)) = value? {
                            event.scalars.extend(decode_value(value)?);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(event)
    }
}

/// A `Summary.Value`'s tag and `simple_value`, if it has one.
fn decode_value(bytes: &[u8]) -> Result<Option<(String, f32)>, &'static str> {
    let (mut tag, mut value) = (None, None);
    for field in Fields(bytes) {
        match field? {
            (1, Wire::Bytes(b)) => {
                tag = Some(String::from_utf8(b.to_vec()).map_err(|_| "tag not UTF-8")?);
            }
            (2, Wire::Fixed32(v)) => value = Some(f32::from_bits(v)),
            _ => {}
        }
    }
    Ok(tag.zip(value))
}

/// Every event in an event file's bytes.
///
/// # Errors
/// As [`read_records`]; [`EventFileError::Malformed`] for a record that is not an `Event`.
pub fn read_events(bytes: &[u8]) -> Result<Vec<Event>, EventFileError> {
    let base = bytes.as_ptr() as usize;
    read_records(bytes)?
        .into_iter()
        .map(|data| {
            Event::decode(data).map_err(|what| EventFileError::Malformed {
                offset: data.as_ptr() as usize - base - 12,
                what,
            })
        })
        .collect()
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7F) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A protobuf field's value by wire type.
enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// The `(field number, value)` pairs of a protobuf message.
struct Fields<'a>(&'a [u8]);

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Wire<'a>), &'static str>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let field = (|| {
            let key = take_varint(&mut self.0)?;
            let value = match key & 7 {
                0 => Wire::Varint(take_varint(&mut self.0)?),
                1 => Wire::Fixed64(u64::from_le_bytes(take(&mut self.0, 8)?.try_into().ok()?)),
                2 => {
                    let n = usize::try_from(take_varint(&mut self.0)?).ok()?;
                    Wire::Bytes(take(&mut self.0, n)?)
                }
                5 => Wire::Fixed32(u32::from_le_bytes(take(&mut self.0, 4)?.try_into().ok()?)),
                _ => return None,
            };
            Some((key >> 3, value))
        })();
        if field.is_none() {
            self.0 = &[]; // stop after the first error
        }
        Some(field.ok_or("bad protobuf field"))
    }
}

fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if bytes.len() < n {
        return None;
    }
    let (head, tail) = bytes.split_at(n);
    *bytes = tail;
    Some(head)
}

fn take_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, tail) = bytes.split_first()?;
        *bytes = tail;
        value |= u64::from(b & 0x7F) << shift;
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Seconds since the Unix epoch, as a float (0 if the clock is before 1970).
fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// This machine's name for the file name, as TensorFlow's `socket.gethostname()`: from the
/// environment or the kernel, else `localhost`.
fn host_name() -> String {
    let name = std::env::var("HOSTNAME")
        .or_else(|_| std::env::var("COMPUTERNAME"))
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    // A host name never holds a path separator, but the file name must not either.
    name.replace(['/', '\\'], "_")
}

/// Appends events to a new file `events.out.tfevents.<seconds>.<host>` in a folder.
#[derive(Debug)]
pub struct EventWriter {
    file: std::io::BufWriter<std::fs::File>,
    path: PathBuf,
}

impl EventWriter {
    /// Creates `dir` if needed and a new event file in it, and writes the `file_version` event.
    /// A name already taken (two writers in the same second) gets a numeric suffix.
    ///
    /// # Errors
    /// [`PipelineError::Io`] when the folder or file cannot be created or written.
    pub fn create(dir: &Path) -> Result<Self, PipelineError> {
        if dir.exists() && !dir.is_dir() {
            let not_a_folder = std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                "is a file, not a folder: TensorBoard's event files go into a folder",
            );
            return Err(PipelineError::io(dir, not_a_folder));
        }
        std::fs::create_dir_all(dir).map_err(|e| PipelineError::io(dir, e))?;
        let wall_time = now();
        let base = format!("events.out.tfevents.{}.{}", wall_time as u64, host_name());
        let (file, path) = (0..)
            .map(|n| match n {
                0 => dir.join(&base),
                n => dir.join(format!("{base}.{n}")),
            })
            .map(|path| {
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path);
                (file, path)
            })
            .find(|(file, _)| {
                !matches!(file, Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists)
            })
            .unwrap_or_else(|| unreachable!("an endless range always yields"));
        let file = file.map_err(|e| PipelineError::io(&path, e))?;
        let mut writer = Self {
            file: std::io::BufWriter::new(file),
            path,
        };
        writer.write(&Event {
            wall_time,
            file_version: Some(FILE_VERSION.to_owned()),
            ..Event::default()
        })?;
        Ok(writer)
    }

    /// The event file being written.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one event at `step` whose summary holds each `(tag, value)` as a `simple_value`
    /// (stored as f32, as TensorBoard does), and flushes it so a running TensorBoard sees it.
    ///
    /// # Errors
    /// [`PipelineError::Io`] when the file cannot be written.
    pub fn add_scalars(&mut self, step: i64, scalars: &[(&str, f64)]) -> Result<(), PipelineError> {
        self.write(&Event {
            wall_time: now(),
            step,
            file_version: None,
            scalars: scalars
                .iter()
                .map(|&(tag, v)| (tag.to_owned(), v as f32))
                .collect(),
        })
    }

    fn write(&mut self, event: &Event) -> Result<(), PipelineError> {
        self.file
            .write_all(&encode_record(&event.encode()))
            .and_then(|()| self.file.flush())
            .map_err(|e| PipelineError::io(&self.path, e))
    }
}

/// The subfolder of a run's folder that holds its training scalars (Keras's layout: TensorBoard
/// then shows `RUN/train` and `RUN/validation` as two runs with the same tags, drawn in one
/// chart per tag).
pub const TRAIN_DIR: &str = "train";

/// The subfolder of a run's folder that holds its validation scalars.
pub const VALIDATION_DIR: &str = "validation";

/// The tags reg writes into [`TRAIN_DIR`] after each epoch, in this order, with Keras's names:
/// loss, accuracy in percent (as the console prints it; the epoch's running Train-mode values,
/// with the model's dropout active), learning rate and the epoch's seconds.
pub const TRAIN_TAGS: [&str; 4] = [
    "epoch_loss",
    "epoch_accuracy",
    "epoch_learning_rate",
    "epoch_seconds",
];

/// The tags reg writes into [`VALIDATION_DIR`] after each epoch: loss and accuracy in percent
/// (Eval mode), the same tags as the training ones so that TensorBoard draws both in one chart.
pub const VALIDATION_TAGS: [&str; 2] = ["epoch_loss", "epoch_accuracy"];

/// A folder name for a run called `name`, for one TensorBoard run per model under a common
/// `--logdir`: letters, digits, `-` and `.` kept, anything else turned into single `_`s
/// (`"SGD instead of Adam"` → `SGD_instead_of_Adam`); `run` for a name that would be empty,
/// `.` or `..`.
#[must_use]
pub fn run_folder_name(name: &str) -> String {
    let mut folder = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
            folder.push(c);
        } else if !folder.ends_with('_') {
            folder.push('_');
        }
    }
    match folder.trim_matches('_') {
        // Never the folder itself or its parent.
        "" | "." | ".." => "run".to_owned(),
        trimmed => trimmed.to_owned(),
    }
}

/// An [`Observer`] that writes each epoch's [`TRAIN_TAGS`] and [`VALIDATION_TAGS`] at
/// step = epoch, into the run folder's [`TRAIN_DIR`] and [`VALIDATION_DIR`].
#[derive(Debug)]
pub struct TensorBoardObserver {
    dir: PathBuf,
    train: EventWriter,
    validation: EventWriter,
}

impl TensorBoardObserver {
    /// New event files in `dir/train` and `dir/validation` (see [`EventWriter::create`]).
    ///
    /// # Errors
    /// As [`EventWriter::create`].
    pub fn create(dir: &Path) -> Result<Self, PipelineError> {
        if dir.exists() && !dir.is_dir() {
            let not_a_folder = std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                "is a file, not a folder: TensorBoard's event files go into a folder",
            );
            return Err(PipelineError::io(dir, not_a_folder));
        }
        Ok(Self {
            dir: dir.to_owned(),
            train: EventWriter::create(&dir.join(TRAIN_DIR))?,
            validation: EventWriter::create(&dir.join(VALIDATION_DIR))?,
        })
    }

    /// The run's folder (holding [`TRAIN_DIR`] and [`VALIDATION_DIR`]).
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The two event files being written: training, then validation.
    #[must_use]
    pub fn paths(&self) -> [&Path; 2] {
        [self.train.path(), self.validation.path()]
    }
}

impl Observer for TensorBoardObserver {
    fn on_epoch(&mut self, _trainer: &Trainer, m: &EpochMetrics) -> Result<(), PipelineError> {
        let step = m.epoch as i64;
        let train = [m.train_loss, 100.0 * m.train_acc, m.lr, m.seconds];
        let scalars: Vec<(&str, f64)> = TRAIN_TAGS.into_iter().zip(train).collect();
        self.train.add_scalars(step, &scalars)?;
        let validation = [m.val_loss, 100.0 * m.val_acc];
        let scalars: Vec<(&str, f64)> = VALIDATION_TAGS.into_iter().zip(validation).collect();
        self.validation.add_scalars(step, &scalars)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_published_vectors() {
        // RFC 3720 (iSCSI), appendix B.4, and the common "123456789" check value.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
        let ascending: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c(&ascending), 0x46DD_794E);
        let descending: Vec<u8> = (0..32).rev().collect();
        assert_eq!(crc32c(&descending), 0x113F_DB5C);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn masking_matches_tensorboards_own_masked_crc32c() {
        // `tensorboard.compat.tensorflow_stub.pywrap_tensorflow.masked_crc32c(b"123456789")`.
        assert_eq!(masked_crc32c(b"123456789"), 0xC78A_B0E5);
    }

    #[test]
    fn the_file_version_event_has_the_bytes_tensorflow_writes() {
        // wall_time 1.0, file_version "brain.Event:2": the encoding TensorFlow's
        // `Event(wall_time=1.0, file_version="brain.Event:2").SerializeToString()` gives.
        let event = Event {
            wall_time: 1.0,
            file_version: Some(FILE_VERSION.to_owned()),
            ..Event::default()
        };
        let mut want = vec![0x09, 0, 0, 0, 0, 0, 0, 0xF0, 0x3F, 0x1A, 13];
        want.extend_from_slice(b"brain.Event:2");
        assert_eq!(event.encode(), want);
    }

    #[test]
    fn records_round_trip_and_corruption_is_caught() {
        let events = [
            Event {
                wall_time: 1.7e9,
                step: 0,
                file_version: Some(FILE_VERSION.to_owned()),
                scalars: Vec::new(),
            },
            Event {
                wall_time: 1.7e9 + 1.5,
                step: 300,
                file_version: None,
                scalars: vec![
                    ("loss/train".into(), 0.125),
                    ("accuracy/train".into(), 0.96875),
                ],
            },
        ];
        let bytes: Vec<u8> = events
            .iter()
            .flat_map(|e| encode_record(&e.encode()))
            .collect();
        assert_eq!(read_events(&bytes), Ok(events.to_vec()));

        let mut flipped = bytes.clone();
        flipped[20] ^= 1;
        assert!(matches!(
            read_events(&flipped),
            Err(EventFileError::Checksum {
                offset: 0,
                what: "data"
            })
        ));
        let mut bad_length = bytes.clone();
        bad_length[0] ^= 1;
        assert!(matches!(
            read_records(&bad_length),
            Err(EventFileError::Checksum { what: "length", .. })
        ));
        assert!(matches!(
            read_records(&bytes[..bytes.len() - 1]),
            Err(EventFileError::Truncated { .. })
        ));
    }

    #[test]
    fn unknown_fields_are_skipped() {
        let mut bytes = Event {
            wall_time: 2.0,
            step: 7,
            ..Event::default()
        }
        .encode();
        // field 4 (a string TensorFlow writes for graphs), then field 9 as a varint.
        bytes.extend_from_slice(&[0x22, 3, b'a', b'b', b'c', 0x48, 0x96, 0x01]);
        let event = Event::decode(&bytes).expect("decodes");
        assert_eq!((event.wall_time, event.step), (2.0, 7));
        assert!(Event::decode(&[0x0A, 5, 1]).is_err(), "length past the end");
    }

    #[test]
    fn run_folders_are_plain_names() {
        assert_eq!(
            run_folder_name("SGD instead of Adam"),
            "SGD_instead_of_Adam"
        );
        assert_eq!(
            run_folder_name("overfit (784-256-128-10, no regularization)"),
            "overfit_784-256-128-10_no_regularization"
        );
        assert_eq!(run_folder_name("../up"), ".._up");
        for outside in ["..", ".", "", "/"] {
            assert_eq!(run_folder_name(outside), "run", "{outside:?}");
        }
    }

    #[test]
    fn writer_names_files_like_tensorflow_and_writes_the_version_first() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut a = EventWriter::create(dir.path()).expect("created");
        let b = EventWriter::create(dir.path()).expect("a second file");
        assert_ne!(a.path(), b.path());
        let name = a.path().file_name().and_then(|n| n.to_str()).unwrap_or("");
        assert!(name.starts_with("events.out.tfevents."), "{name}");
        a.add_scalars(3, &[("learning_rate", 1e-3)])
            .expect("written");
        let events = read_events(&std::fs::read(a.path()).expect("read")).expect("valid");
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].file_version.as_deref(), Some(FILE_VERSION));
        assert_eq!(events[1].step, 3);
        assert_eq!(
            events[1].scalars,
            vec![("learning_rate".to_owned(), 1e-3f32)]
        );
        assert!(events[1].wall_time >= events[0].wall_time);
    }

    #[test]
    fn the_observer_writes_train_and_validation_with_the_same_tags_in_percent() {
        let dir = tempfile::tempdir().expect("temp dir");
        let run = dir.path().join("seed0");
        let mut observer = TensorBoardObserver::create(&run).expect("created");
        assert_eq!(observer.dir(), run);
        let trainer = Trainer::new(crate::TrainConfig::default()).expect("default trainer");
        let m = EpochMetrics {
            epoch: 2,
            lr: 1e-3,
            train_loss: 0.25,
            train_acc: 0.5,
            val_loss: 0.125,
            val_acc: 0.75,
            seconds: 3.0,
            eval_seconds: 0.5,
        };
        observer.on_epoch(&trainer, &m).expect("written");
        let [train, validation] = observer
            .paths()
            .map(|p| read_events(&std::fs::read(p).expect("read")).expect("valid"));
        assert!(observer.paths()[0].starts_with(run.join(TRAIN_DIR)));
        assert!(observer.paths()[1].starts_with(run.join(VALIDATION_DIR)));
        let scalars = |events: &[Event]| events[1].scalars.clone();
        assert_eq!(
            scalars(&train),
            [
                ("epoch_loss".to_owned(), 0.25),
                ("epoch_accuracy".to_owned(), 50.0),
                ("epoch_learning_rate".to_owned(), 1e-3),
                ("epoch_seconds".to_owned(), 3.0),
            ]
        );
        assert_eq!(
            scalars(&validation),
            [
                ("epoch_loss".to_owned(), 0.125),
                ("epoch_accuracy".to_owned(), 75.0)
            ]
        );
        assert_eq!((train[1].step, validation[1].step), (2, 2));
    }

    #[test]
    fn a_run_folder_that_is_a_file_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("run");
        std::fs::write(&file, b"x").expect("written");
        assert!(matches!(
            TensorBoardObserver::create(&file),
            Err(PipelineError::Io { .. })
        ));
    }
}
