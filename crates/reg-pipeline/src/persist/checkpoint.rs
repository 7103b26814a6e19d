//! Checkpoints: the whole training state after an epoch, in one safetensors file, written
//! atomically; resuming from one continues bit for bit as if never interrupted (same seed,
//! same thread count).
//!
//! A checkpoint `checkpoint-epoch-0007.safetensors` (epochs done, zero-padded) holds F32
//! tensors `model/<name>` (the model's [`Mlp::state`](crate::Mlp::state), reg's layouts),
//! `best/<name>` (early stopping's best weights, when recorded), `adam/m/<i>`, `adam/v/<i>`
//! (`adam/v_max/<i>` with AMSGrad) or `sgd/velocity/<i>` per parameter, and in its
//! `__metadata__` under `reg.checkpoint` a JSON object: format version, the `TrainConfig`,
//! epochs done (= the schedule's position: schedules are pure functions of the epoch), the
//! optimizer's step, the early-stopping counters, the history, `stopped_early`, and the
//! states of the shuffling generator and of each dropout generator. Under
//! [`CHECKSUM_KEY`] it holds the SHA-256 of the whole file
//! (computed with those digits as `0`), checked before anything else on load: a truncated
//! file or one changed byte is reported as [`CheckpointError::Corrupt`], and resuming falls
//! back to the previous intact checkpoint ([`load_newest_intact`]).
//!
//! Every tensor is checked before it is written and after it is read: finite, and a running
//! variance, a count or Adam's second moment never negative.
//!
//! Compatibility: every setting of the `TrainConfig` must match the checkpoint's except
//! `epochs` (changing it continues with the schedule of the new total, no longer identical to
//! an uninterrupted run); anything else is [`CheckpointError::ConfigMismatch`].

use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::persist::atomic::write_atomically;
use crate::persist::tensor_file::{
    CHECKSUM_KEY, OwnedTensor, Parsed, check_weights_fit, checksum_placeholder, parse,
    read_limited, seal_checksum, serialize, verify_checksum,
};
use crate::train::state::{Saved, TrainerRecord};
use crate::{
    CheckpointError, EpochMetrics, ModelConfig, Observer, PipelineError, TrainConfig, Trainer,
};

/// Format version written into every checkpoint (3: the model named in the config, `mlp` or
/// `cnn`; 2 had only the MLP; 1 had no checksum).
pub const CHECKPOINT_FORMAT: u64 = 3;

/// The `__metadata__` key holding the checkpoint's JSON.
pub const METADATA_KEY: &str = "reg.checkpoint";

const PREFIX: &str = "checkpoint-epoch-";
const SUFFIX: &str = ".safetensors";

/// The checkpoint file name after `epochs_done` epochs: `checkpoint-epoch-0007.safetensors`.
pub fn checkpoint_file_name(epochs_done: usize) -> String {
    format!("{PREFIX}{epochs_done:04}{SUFFIX}")
}

/// The epochs-done number of a checkpoint file name, `None` for other names.
pub fn parse_checkpoint_file_name(name: &str) -> Option<usize> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The checkpoints in `dir`, oldest first (by epochs done); folders are skipped. A missing
/// folder has none.
///
/// # Errors
/// [`PipelineError::Io`] when the folder cannot be listed.
pub fn list_checkpoints(dir: &Path) -> Result<Vec<(usize, PathBuf)>, PipelineError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(PipelineError::io(dir, e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| PipelineError::io(dir, e))?;
        // A folder that happens to have a checkpoint's name is not one: resuming would fail on
        // it and pruning could not remove it.
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if let Some(epoch) = entry
            .file_name()
            .to_str()
            .and_then(parse_checkpoint_file_name)
        {
            found.push((epoch, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// The newest checkpoint in `dir` (most epochs done), if any.
///
/// # Errors
/// [`PipelineError::Io`] when the folder cannot be listed.
pub fn newest_checkpoint(dir: &Path) -> Result<Option<PathBuf>, PipelineError> {
    Ok(list_checkpoints(dir)?.pop().map(|(_, path)| path))
}

/// What a checkpoint was made with, beside the training state: the version of reg, the
/// matrix-product path (the two paths round differently, so a resume on the other one is no
/// longer bit for bit) and a digest of the data trained on ([`Mnist::digest`](crate::data::Mnist::digest)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// The version of reg that wrote it.
    pub reg_version: String,
    /// [`product_path`](crate::nn::product_path): `"avx512"` or `"portable"`.
    pub product_path: String,
    /// The digest of the data trained on, when known.
    pub data_digest: Option<String>,
}

impl Provenance {
    /// This build and process, trained on data with `data_digest`.
    #[must_use]
    pub fn current(data_digest: Option<String>) -> Self {
        Self {
            reg_version: env!("CARGO_PKG_VERSION").to_owned(),
            product_path: crate::nn::product_path().to_owned(),
            data_digest,
        }
    }
}

/// The JSON in a checkpoint's `__metadata__`: the format version, what it was made with (absent
/// in checkpoints written before it was recorded), then the trainer's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckpointRecord {
    format: u64,
    #[serde(default)]
    provenance: Option<Provenance>,
    #[serde(flatten)]
    trainer: TrainerRecord,
}

/// Checks every tensor a checkpoint of `trainer` would hold (model, best weights, optimizer
/// state): finite, and never negative where only values ≥ 0 are valid.
///
/// # Errors
/// As [`Trainer::check_state`].
pub fn check_trainer_state(trainer: &Trainer) -> Result<(), CheckpointError> {
    trainer.check_state()
}

/// The whole training state of `trainer` as safetensors bytes (see the [module docs](self)),
/// its checksum sealed in.
///
/// # Errors
/// [`PipelineError::Checkpoint`] with [`CheckpointError::InvalidValue`] when a tensor is not
/// valid (see [`check_trainer_state`]): a checkpoint that could not be loaded is never
/// written.
pub fn checkpoint_bytes(trainer: &Trainer) -> Result<Vec<u8>, PipelineError> {
    checkpoint_bytes_with(trainer, None)
}

/// [`checkpoint_bytes`] with what the run was made with recorded in it.
///
/// # Errors
/// As [`checkpoint_bytes`].
pub fn checkpoint_bytes_with(
    trainer: &Trainer,
    provenance: Option<&Provenance>,
) -> Result<Vec<u8>, PipelineError> {
    let at = |e: CheckpointError| e.at("<memory>");
    trainer.check_state().map_err(at)?;
    let state = trainer.state().map_err(at)?;
    let tensors: Vec<OwnedTensor> = state
        .tensors
        .iter()
        .map(|(name, value)| OwnedTensor::f32(name.clone(), value.shape().to_vec(), value.iter()))
        .collect();
    let record = CheckpointRecord {
        format: CHECKPOINT_FORMAT,
        provenance: provenance.cloned(),
        trainer: state.record,
    };
    let json = serde_json::to_string(&record).map_err(|e| {
        at(CheckpointError::BadMetadata {
            reason: e.to_string(),
        })
    })?;
    let metadata = HashMap::from([
        (METADATA_KEY.to_owned(), json),
        (CHECKSUM_KEY.to_owned(), checksum_placeholder()),
    ]);
    let mut bytes = serialize(&tensors, metadata).map_err(at)?;
    seal_checksum(&mut bytes).map_err(at)?;
    Ok(bytes)
}

/// Writes `trainer`'s checkpoint into `dir` atomically as
/// [`checkpoint_file_name`]`(epochs done)`, then deletes older ones so that the newest `keep`
/// (≥ 1) remain, the one just written among them ([`prune_checkpoints`]). Returns the path
/// written.
///
/// # Errors
/// [`PipelineError::Io`] when the file cannot be written; the previous checkpoints are then
/// untouched.
pub fn save_checkpoint(
    trainer: &Trainer,
    dir: &Path,
    keep: usize,
) -> Result<PathBuf, PipelineError> {
    save_checkpoint_with(trainer, dir, keep, None)
}

fn save_checkpoint_with(
    trainer: &Trainer,
    dir: &Path,
    keep: usize,
    provenance: Option<&Provenance>,
) -> Result<PathBuf, PipelineError> {
    let bytes = checkpoint_bytes_with(trainer, provenance)?;
    let written = trainer.epochs_done();
    let path = dir.join(checkpoint_file_name(written));
    write_atomically(&path, &bytes)?;
    prune_checkpoints(dir, written, keep)?;
    Ok(path)
}

/// Deletes the checkpoints in `dir` numbered below `written` (the one just written) but the
/// newest `keep − 1` of them. Files numbered above it are left alone: this run did not write
/// them (a damaged or renamed file that `--resume` skipped, a stray copy), so they never decide
/// what is deleted, and the checkpoint just written — the newest intact one — always stays.
///
/// # Errors
/// [`PipelineError::Io`] when the folder cannot be listed or an old checkpoint not deleted.
pub fn prune_checkpoints(dir: &Path, written: usize, keep: usize) -> Result<(), PipelineError> {
    let older: Vec<_> = list_checkpoints(dir)?
        .into_iter()
        .filter(|(epochs, _)| *epochs < written)
        .collect();
    let excess = older.len().saturating_sub(keep.max(1) - 1);
    for (_, old) in older.into_iter().take(excess) {
        std::fs::remove_file(&old).map_err(|e| PipelineError::io(&old, e))?;
    }
    Ok(())
}

/// What the checkpoint at `path` was made with (`None` for checkpoints written before this
/// was recorded).
///
/// # Errors
/// As [`checkpoint_config`].
pub fn checkpoint_provenance(path: &Path) -> Result<Option<Provenance>, PipelineError> {
    let at = |e: CheckpointError| e.at(path);
    let bytes = read_limited(path)?;
    verify_checksum(&bytes).map_err(at)?;
    let parsed = parse(&bytes).map_err(at)?;
    Ok(read_record(&parsed).map_err(at)?.provenance)
}

/// Loads the checkpoint at `path` for a run with `config`.
///
/// # Errors
/// [`PipelineError::Io`] when unreadable; [`PipelineError::Checkpoint`] when damaged
/// ([`CheckpointError::Corrupt`]), malformed or from another configuration; [`PipelineError::Core`]/[`PipelineError::InvalidSetting`] when
/// `config` itself is invalid.
pub fn load_checkpoint(path: &Path, config: &TrainConfig) -> Result<Trainer, PipelineError> {
    let bytes = read_limited(path)?;
    trainer_from_bytes(&bytes, config).map_err(|e| match e {
        PipelineError::Checkpoint { source, .. } => source.at(path),
        other => other,
    })
}

/// The settings the checkpoint at `path` was written with, so that a run can resume from it
/// without repeating them.
///
/// # Errors
/// [`PipelineError::Io`] when unreadable; [`PipelineError::Checkpoint`] when damaged
/// ([`CheckpointError::Corrupt`]) or malformed.
pub fn checkpoint_config(path: &Path) -> Result<TrainConfig, PipelineError> {
    let at = |e: CheckpointError| e.at(path);
    let bytes = read_limited(path)?;
    // Damage is reported as in `trainer_from_bytes`, so that `--resume` skips the file.
    if let Err(corrupt) = verify_checksum(&bytes) {
        let old = parse(&bytes).ok().and_then(|p| read_record(&p).err());
        return Err(at(match old {
            Some(version @ CheckpointError::UnsupportedVersion { .. }) => version,
            _ => corrupt,
        }));
    }
    let parsed = parse(&bytes).map_err(at)?;
    let record = read_record(&parsed).map_err(at)?;
    serde_json::from_value(record.trainer.config).map_err(|e| {
        at(CheckpointError::BadMetadata {
            reason: format!("`config`: {e}"),
        })
    })
}

/// [`load_checkpoint`] from bytes in memory (errors name the path `<memory>`).
///
/// # Errors
/// As [`load_checkpoint`].
pub fn trainer_from_bytes(bytes: &[u8], config: &TrainConfig) -> Result<Trainer, PipelineError> {
    let at = |e: CheckpointError| e.at("<memory>");
    if let Err(corrupt) = verify_checksum(bytes) {
        // A version-1 checkpoint has no checksum: say so rather than call it damaged.
        let old = parse(bytes).ok().and_then(|p| read_record(&p).err());
        return Err(at(match old {
            Some(version @ CheckpointError::UnsupportedVersion { .. }) => version,
            _ => corrupt,
        }));
    }
    let model = match &config.model {
        ModelConfig::Custom(_) => None,
        named => {
            check_weights_fit(named, bytes.len()).map_err(at)?;
            Some(named.build(config.seed)?)
        }
    };
    match model {
        Some(model) => trainer_with_model_from_bytes(bytes, config, model),
        None => Err(PipelineError::Core(reg_core::Error::StateMismatch(
            format!(
                "the model `{}` was built by hand: build it the same way and use \
             trainer_with_model_from_bytes",
                config.model.name()
            ),
        ))),
    }
}

/// [`trainer_from_bytes`] into `model`, built by the caller (how a network built by hand, a
/// [`ModelConfig::Custom`], resumes): its tensors must be the checkpoint's.
///
/// # Errors
/// As [`trainer_from_bytes`].
pub fn trainer_with_model_from_bytes(
    bytes: &[u8],
    config: &TrainConfig,
    model: Box<dyn crate::Model>,
) -> Result<Trainer, PipelineError> {
    let at = |e: CheckpointError| e.at("<memory>");
    verify_checksum(bytes).map_err(at)?;
    let parsed = parse(bytes).map_err(at)?;
    let record = read_record(&parsed).map_err(at)?;
    let mut config = config.clone();
    config.model = model.config();
    compare_configs(&record.trainer.config, &config).map_err(at)?;
    let mut trainer = Trainer::with_model(config, model)?;
    restore(&mut trainer, &parsed, record).map_err(at)?;
    Ok(trainer)
}

fn read_record(parsed: &Parsed<'_>) -> Result<CheckpointRecord, CheckpointError> {
    let json = parsed
        .metadata
        .get(METADATA_KEY)
        .ok_or(CheckpointError::MissingMetadata { key: METADATA_KEY })?;
    let bad = |e: serde_json::Error| CheckpointError::BadMetadata {
        reason: e.to_string(),
    };
    let value: Value = serde_json::from_str(json).map_err(bad)?;
    let format = value.get("format").and_then(Value::as_u64);
    if format != Some(CHECKPOINT_FORMAT) {
        return Err(match format {
            Some(found) => CheckpointError::UnsupportedVersion {
                found,
                supported: CHECKPOINT_FORMAT,
            },
            None => CheckpointError::BadMetadata {
                reason: "no integer `format`".into(),
            },
        });
    }
    let record: CheckpointRecord = serde_json::from_value(value).map_err(bad)?;
    let consistent = record.trainer.is_consistent();
    if !consistent {
        return Err(CheckpointError::BadMetadata {
            reason: "epochs done, history and early-stopping counters disagree".into(),
        });
    }
    Ok(record)
}

/// Every field of the two configs' JSON must be equal, except `epochs`.
fn compare_configs(saved: &Value, current: &TrainConfig) -> Result<(), CheckpointError> {
    let current = serde_json::to_value(current).map_err(|e| CheckpointError::BadMetadata {
        reason: e.to_string(),
    })?;
    let (Value::Object(saved), Value::Object(now)) = (saved, &current) else {
        return Err(CheckpointError::BadMetadata {
            reason: "`config` is not an object".into(),
        });
    };
    let mut keys: Vec<&String> = saved.keys().chain(now.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys.into_iter().filter(|k| *k != "epochs") {
        let (a, b) = (saved.get(key), now.get(key));
        if a != b {
            let field = differing_field(key, a, b);
            // `null` is an option turned off (`patience: None` is no early stopping).
            let show = |v: Option<&Value>| match v {
                None => "absent".to_owned(),
                Some(Value::Null) => "none (off)".to_owned(),
                Some(v) => v.to_string(),
            };
            return Err(CheckpointError::ConfigMismatch {
                field,
                checkpoint: show(a),
                current: show(b),
            });
        }
    }
    Ok(())
}

/// The path of the first difference between two JSON values under `key`, through nested
/// objects: `model.mlp.dropout`.
fn differing_field(key: &str, a: Option<&Value>, b: Option<&Value>) -> String {
    match (a, b) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .find(|k| a.get(*k) != b.get(*k))
                .map_or_else(
                    || key.to_owned(),
                    |k| differing_field(&format!("{key}.{k}"), a.get(k), b.get(k)),
                )
        }
        _ => key.to_owned(),
    }
}

/// Reads the tensors `trainer` expects for `record` (names, dtypes and shapes checked before
/// any data is copied) and hands them, with the record, to [`Trainer`] to restore.
fn restore(
    trainer: &mut Trainer,
    parsed: &Parsed<'_>,
    record: CheckpointRecord,
) -> Result<(), CheckpointError> {
    let expected = trainer.expected_tensors(&record.trainer)?;
    parsed.expect_names(expected.iter().map(|(n, _)| n.as_str()))?;
    let tensors = expected
        .iter()
        .map(|(name, shape)| {
            let dims = (
                shape.first().copied().unwrap_or(1),
                shape.get(1).copied().unwrap_or(1),
            );
            Ok((name.clone(), parsed.f32_array(name, shape, dims)?))
        })
        .collect::<Result<_, CheckpointError>>()?;
    trainer.load_state(Saved {
        record: record.trainer,
        tensors,
    })
}

/// What [`load_newest_intact`] found.
pub struct Resumed {
    /// The trainer restored from the newest intact checkpoint.
    pub trainer: Trainer,
    /// That checkpoint.
    pub path: PathBuf,
    /// Newer checkpoints that were damaged (truncated, changed bytes) or renamed, newest
    /// first, with why.
    pub damaged: Vec<(PathBuf, PipelineError)>,
}

/// Renames a damaged checkpoint to `<name>.damaged` (`<name>.damaged-2`, … if taken), out of
/// the checkpoint names, so that it never again counts as one yet nothing is deleted. Returns
/// the new path.
///
/// # Errors
/// [`PipelineError::Io`] when it cannot be renamed.
pub fn move_aside(path: &Path) -> Result<PathBuf, PipelineError> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    for n in 1..1000 {
        let suffix = if n == 1 {
            String::new()
        } else {
            format!("-{n}")
        };
        let aside = path.with_file_name(format!("{name}.damaged{suffix}"));
        // A hard link never replaces a file that is there; then the old name goes. Without
        // hard links (FAT, some network mounts): check, then rename.
        let linked = match std::fs::hard_link(path, &aside) {
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::Unsupported | ErrorKind::PermissionDenied
                ) =>
            {
                if aside.exists() {
                    Err(ErrorKind::AlreadyExists.into())
                } else {
                    return std::fs::rename(path, &aside)
                        .map(|()| aside)
                        .map_err(|e| PipelineError::io(path, e));
                }
            }
            other => other,
        };
        match linked {
            Ok(()) => {
                std::fs::remove_file(path).map_err(|e| PipelineError::io(path, e))?;
                return Ok(aside);
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(PipelineError::io(path, e)),
        }
    }
    Err(PipelineError::io(
        path,
        std::io::Error::other("1,000 damaged copies of it are already set aside"),
    ))
}

/// Loads the newest checkpoint in `dir` that is intact, skipping damaged ones
/// ([`CheckpointError::Corrupt`] or [`CheckpointError::Malformed`]) and renamed ones whose name
/// is not the epochs they hold ([`CheckpointError::Misnamed`]); the caller warns about each
/// and may [`move_aside`] them. `None` when `dir` holds no checkpoint.
///
/// # Errors
/// The first error that is not damage (another configuration, an invalid setting, an
/// unreadable folder); when every checkpoint is damaged, the newest one's error.
pub fn load_newest_intact(
    dir: &Path,
    config: &TrainConfig,
) -> Result<Option<Resumed>, PipelineError> {
    load_newest_intact_with(dir, |_| Ok(config.clone()))
}

/// [`load_newest_intact`] with the settings to load each checkpoint with chosen per file
/// (`--resume` takes them from the checkpoint itself, see [`checkpoint_config`]); a file whose
/// settings cannot be read because it is damaged is skipped like any damaged one.
///
/// # Errors
/// As [`load_newest_intact`], and whatever `config_for` returns that is not damage.
pub fn load_newest_intact_with(
    dir: &Path,
    config_for: impl Fn(&Path) -> Result<TrainConfig, PipelineError>,
) -> Result<Option<Resumed>, PipelineError> {
    let mut damaged = Vec::new();
    for (name_epochs, path) in list_checkpoints(dir)?.into_iter().rev() {
        let loaded = config_for(&path)
            .and_then(|config| load_checkpoint(&path, &config))
            .and_then(|trainer| match trainer.epochs_done() {
                done if done == name_epochs => Ok(trainer),
                content_epochs => Err(CheckpointError::Misnamed {
                    name_epochs,
                    content_epochs,
                }
                .at(&path)),
            });
        match loaded {
            Ok(trainer) => {
                return Ok(Some(Resumed {
                    trainer,
                    path,
                    damaged,
                }));
            }
            Err(
                e @ PipelineError::Checkpoint {
                    source:
                        CheckpointError::Corrupt { .. }
                        | CheckpointError::Malformed { .. }
                        | CheckpointError::Misnamed { .. },
                    ..
                },
            ) => damaged.push((path, e)),
            Err(other) => return Err(other),
        }
    }
    match damaged.into_iter().next() {
        Some((_, newest_error)) => Err(newest_error),
        None => Ok(None),
    }
}

/// An [`Observer`] that writes a checkpoint after every epoch and remembers the newest, so a
/// divergence can name it.
#[derive(Debug, Clone)]
pub struct Checkpointer {
    dir: PathBuf,
    keep: usize,
    newest: Option<PathBuf>,
    write_seconds: Vec<f64>,
    provenance: Option<Provenance>,
}

impl Checkpointer {
    /// Checkpoints into `dir`, keeping the newest `keep` (at least 1; the CLI keeps 2).
    /// `newest` is the checkpoint a resumed run started from, if any.
    pub fn new(dir: impl Into<PathBuf>, keep: usize, newest: Option<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            keep: keep.max(1),
            newest,
            write_seconds: Vec::new(),
            provenance: None,
        }
    }

    /// Records `provenance` (what the run is made with) in every checkpoint written from now.
    #[must_use]
    pub fn with_provenance(mut self, provenance: Provenance) -> Self {
        self.provenance = Some(provenance);
        self
    }

    /// Sets what [`Checkpointer::with_provenance`] sets, on a checkpointer already made.
    pub fn set_provenance(&mut self, provenance: Provenance) {
        self.provenance = Some(provenance);
    }

    /// The newest checkpoint written (or resumed from).
    pub fn newest(&self) -> Option<&Path> {
        self.newest.as_deref()
    }

    /// Seconds each checkpoint write took (serialize, write, fsync, rename), in order.
    pub fn write_seconds(&self) -> &[f64] {
        &self.write_seconds
    }

    /// Fills in the newest checkpoint of a [`PipelineError::Diverged`]; other errors pass.
    pub fn annotate(&self, error: PipelineError) -> PipelineError {
        match error {
            PipelineError::Diverged {
                epoch,
                step,
                what,
                last_checkpoint: None,
            } => PipelineError::Diverged {
                epoch,
                step,
                what,
                last_checkpoint: self.newest.clone(),
            },
            other => other,
        }
    }
}

impl Observer for Checkpointer {
    fn on_epoch(
        &mut self,
        trainer: &Trainer,
        _metrics: &EpochMetrics,
    ) -> Result<(), PipelineError> {
        let started = Instant::now();
        let path = save_checkpoint_with(trainer, &self.dir, self.keep, self.provenance.as_ref())?;
        self.write_seconds.push(started.elapsed().as_secs_f64());
        self.newest = Some(path);
        Ok(())
    }
}
