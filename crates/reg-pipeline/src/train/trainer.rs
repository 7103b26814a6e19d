use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use ndarray::ArrayView2;
use rand::SeedableRng;
use reg_adam::{Adam, AdamConfig};
use reg_core::Optimizer;
use reg_l2::L2;
use reg_schedule::Schedule;
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::nn::fused::DrawnMask;
use crate::nn::random::{Generator, shuffle};
use crate::train::early_stopping::EarlyStopping;
use crate::train::loader::{Loader, StopOnDrop};
use crate::{Model, ModelConfig, PipelineError, Sgd, count_correct, softmax_cross_entropy};

/// Which optimizer trains the model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum OptimizerKind {
    /// Adam with the tutorial's defaults (β1 0.9, β2 0.999, ε 1e-8).
    Adam,
    /// SGD with the given momentum (0 for plain SGD).
    Sgd {
        /// Heavy-ball momentum in [0, 1).
        momentum: f64,
    },
}

/// How the learning rate moves over the epochs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum ScheduleKind {
    /// Linear warmup over `warmup` epochs, then cosine annealing to 0 at `epochs`.
    WarmupCosine,
    /// The base learning rate throughout.
    Constant,
}

/// Every setting of a training run. The defaults are the tutorial's production model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// The network. Default the tutorial's MLP, 784-256-128-10 with BatchNorm and dropout
    /// 0.3 / 0.2.
    pub model: ModelConfig,
    /// Most epochs to train. Default 30.
    pub epochs: usize,
    /// Mini-batch size. Default 64.
    pub batch_size: usize,
    /// Peak learning rate. Default 1e-3.
    pub lr: f64,
    /// L2 strength λ: penalty `λ/(2m) Σ w²` over weights, m the batch size. Default 0.005.
    pub l2: f64,
    /// Warmup epochs before cosine annealing. Default 3.
    pub warmup: usize,
    /// Learning-rate schedule. Default warmup + cosine.
    pub schedule: ScheduleKind,
    /// Optimizer. Default Adam.
    pub optimizer: OptimizerKind,
    /// Early-stopping patience in epochs; `None` trains every epoch and keeps the last
    /// weights. Default `Some(10)`: under warmup + cosine the validation loss still jumps by
    /// ±0.004 from epoch to epoch at mid-schedule, and a patience of 5 stopped there (seed 0:
    /// kept epoch 14, 98.25 % test accuracy) before the low-lr epochs where the model settles
    /// (patience 10: kept epoch 22, 98.45 %).
    pub patience: Option<usize>,
    /// Smallest decrease of the validation loss that counts as an improvement. Default 0.
    pub min_delta: f64,
    /// Seed of every generator (weights, dropout masks, shuffling). Default 0.
    pub seed: u64,
    /// Training images held out, from the end, for validation. Default 5,000.
    pub validation: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            model: ModelConfig::default(),
            epochs: 30,
            batch_size: 64,
            lr: 1e-3,
            l2: 0.005,
            warmup: 3,
            schedule: ScheduleKind::WarmupCosine,
            optimizer: OptimizerKind::Adam,
            patience: Some(10),
            min_delta: 0.0,
            seed: 0,
            validation: 5_000,
        }
    }
}

/// What one epoch measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Learning rate used throughout the epoch.
    pub lr: f64,
    /// Mean cross-entropy over the epoch's batches, in Train mode (without the L2 penalty).
    pub train_loss: f64,
    /// Fraction of training images classified right during the epoch, in Train mode.
    pub train_acc: f64,
    /// Cross-entropy on the validation split, in Eval mode.
    pub val_loss: f64,
    /// Accuracy on the validation split, in Eval mode.
    pub val_acc: f64,
    /// Training time of the epoch alone (batches, forward, backward, update).
    pub seconds: f64,
    /// Time of the validation pass.
    pub eval_seconds: f64,
}

/// Where an epoch is, after one of its training batches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchProgress {
    /// The epoch, from 1.
    pub epoch: usize,
    /// Batches done in this epoch, from 1.
    pub batch: usize,
    /// Batches in the epoch.
    pub batches: usize,
    /// Mean cross-entropy of the epoch's batches so far (Train mode, weighted by rows).
    pub loss: f64,
    /// Fraction of the epoch's images so far classified right (Train mode, before each update).
    pub accuracy: f64,
}

/// Loss and accuracy of a model on a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Fraction classified right.
    pub accuracy: f64,
    /// Wall-clock time of the pass.
    pub seconds: f64,
}

/// The optimizers the pipeline can use, kept typed so their state can be saved.
#[derive(Debug, Clone)]
pub enum AnyOptimizer {
    /// Adam.
    Adam(Adam<f32>),
    /// SGD.
    Sgd(Sgd<f32>),
}

impl AnyOptimizer {
    fn as_dyn(&mut self) -> &mut dyn Optimizer<f32> {
        match self {
            Self::Adam(adam) => adam,
            Self::Sgd(sgd) => sgd,
        }
    }
}

/// [`Dataset::fill_batch`], in two halves on two threads when rayon's pool has them.
pub(super) fn fill_batch(
    data: &Dataset,
    indices: &[usize],
    x: &mut [f32],
    y: &mut [u8],
) -> Result<(), PipelineError> {
    let half = indices.len() / 2;
    let features = data.image_len();
    if rayon::current_num_threads() < 2 || half == 0 || x.len() != indices.len() * features {
        return Ok(data.fill_batch(indices, x, y)?);
    }
    let (i_left, i_right) = indices.split_at(half);
    let (x_left, x_right) = x.split_at_mut(half * features);
    let (y_left, y_right) = y.split_at_mut(half);
    let (left, right) = rayon::join(
        || data.fill_batch(i_left, x_left, y_left),
        || data.fill_batch(i_right, x_right, y_right),
    );
    left?;
    Ok(right?)
}

/// How a training step failed, before the epoch and step are known.
enum StepError {
    Diverged(String),
    Core(reg_core::Error),
}

impl From<reg_core::Error> for StepError {
    fn from(error: reg_core::Error) -> Self {
        Self::Core(error)
    }
}

impl StepError {
    /// A non-finite value the optimizer found is divergence, described by the whole message
    /// ("non-finite value in gradient of 0.weight", not just "gradient of 0.weight").
    fn from_optimizer(error: reg_core::Error) -> Self {
        match error {
            e @ reg_core::Error::NonFinite { .. } => Self::Diverged(e.to_string()),
            other => Self::Core(other),
        }
    }

    fn at(self, epoch: usize, step: usize) -> PipelineError {
        match self {
            Self::Diverged(what) => PipelineError::Diverged {
                epoch,
                step,
                what,
                last_checkpoint: None,
            },
            Self::Core(error) => PipelineError::Core(error),
        }
    }
}

/// Rows per forward pass when evaluating: large enough to keep the matrix products efficient,
/// small enough to keep memory flat.
const EVAL_CHUNK: usize = 1_000;

/// The training state: model, optimizer, schedule, generators, early stopping and history.
/// Everything a checkpoint saves lives here.
pub struct Trainer {
    /// The settings of the run.
    pub config: TrainConfig,
    /// The model being trained.
    pub model: Box<dyn Model>,
    /// The optimizer and its state.
    pub optimizer: AnyOptimizer,
    /// Shuffles the training set each epoch.
    pub shuffle_rng: Generator,
    /// Early-stopping counters and the best weights.
    pub early_stopping: EarlyStopping,
    /// Metrics of the epochs trained so far.
    pub history: Vec<EpochMetrics>,
    /// Whether early stopping has ended training.
    pub stopped_early: bool,
    schedule: Box<dyn Schedule + Send + Sync>,
    l2: L2,
    batch_x: Vec<f32>,
    batch_y: Vec<u8>,
    order: Vec<usize>,
    interrupt: Option<Arc<AtomicBool>>,
}

impl Trainer {
    /// A fresh run.
    ///
    /// # Errors
    /// [`PipelineError::InvalidSetting`] for a setting out of range (see
    /// [`TrainConfig::validate`]).
    pub fn new(config: TrainConfig) -> Result<Self, PipelineError> {
        config.validate()?;
        let model = config.model.build(config.seed)?;
        Self::with_model(config, model)
    }

    /// A fresh run of a model built by the caller (a [`Network`](crate::Network) of the crates'
    /// layers, say); `config.model` becomes the model's own [`Model::config`]. The model's
    /// weights are used as they are: `config.seed` seeds only shuffling.
    ///
    /// # Errors
    /// As [`Trainer::new`].
    pub fn with_model(
        mut config: TrainConfig,
        model: Box<dyn Model>,
    ) -> Result<Self, PipelineError> {
        config.model = model.config();
        config.validate()?;
        let optimizer = match config.optimizer {
            OptimizerKind::Adam => AnyOptimizer::Adam(AdamConfig::new().build()?),
            OptimizerKind::Sgd { momentum } => AnyOptimizer::Sgd(Sgd::with_momentum(momentum)?),
        };
        let schedule = build_schedule(&config)?;
        let l2 = L2::new(config.l2)?;
        let shuffle_rng = Generator::seed_from_u64(config.seed ^ 0x5eed_5b0f_f1e5_0000);
        let patience = config.patience.unwrap_or(usize::MAX);
        Ok(Self {
            early_stopping: EarlyStopping::new(patience, config.min_delta),
            model,
            optimizer,
            shuffle_rng,
            history: Vec::new(),
            stopped_early: false,
            schedule,
            l2,
            batch_x: Vec::new(),
            batch_y: Vec::new(),
            order: Vec::new(),
            interrupt: None,
            config,
        })
    }

    /// Stops training cleanly when `flag` becomes true (a Ctrl-C handler sets it): the step
    /// under way finishes, then [`Trainer::run_epoch`] returns [`PipelineError::Interrupted`]
    /// and the unfinished epoch is abandoned (nothing of it is recorded or saved).
    pub fn set_interrupt(&mut self, flag: Arc<AtomicBool>) {
        self.interrupt = Some(flag);
    }

    /// Whether the flag of [`Trainer::set_interrupt`] has been raised.
    pub fn interrupted(&self) -> bool {
        self.interrupt
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::Relaxed))
    }

    /// Epochs trained so far.
    pub fn epochs_done(&self) -> usize {
        self.history.len()
    }

    /// Whether training is over: every epoch done, or stopped early.
    pub fn finished(&self) -> bool {
        self.stopped_early || self.epochs_done() >= self.config.epochs
    }

    /// The learning rate of epoch `epoch` (from 0).
    pub fn lr_at(&self, epoch: usize) -> f64 {
        self.schedule.lr(epoch)
    }

    /// Trains one epoch on `train`, evaluates on `validation`, updates early stopping and
    /// returns the epoch's metrics. `on_batch(done, total)` is called after every batch.
    ///
    /// # Errors
    /// [`PipelineError::Diverged`] when the loss or a gradient becomes non-finite (the failing
    /// step does not update the weights), a BatchNorm running statistic does, or the
    /// validation pass meets non-finite values (reported at the epoch's last step);
    /// [`PipelineError::Interrupted`] when the flag of [`Trainer::set_interrupt`] is raised;
    /// [`PipelineError::Core`] for shape errors.
    pub fn run_epoch(
        &mut self,
        train: &Dataset,
        validation: &Dataset,
        on_batch: &mut dyn FnMut(usize, usize),
    ) -> Result<EpochMetrics, PipelineError> {
        self.run_epoch_with_progress(train, validation, &mut |p| on_batch(p.batch, p.batches))
    }

    /// [`Trainer::run_epoch`] with the running loss and accuracy passed after every batch.
    ///
    /// # Errors
    /// As [`Trainer::run_epoch`].
    pub fn run_epoch_with_progress(
        &mut self,
        train: &Dataset,
        validation: &Dataset,
        on_batch: &mut dyn FnMut(&BatchProgress),
    ) -> Result<EpochMetrics, PipelineError> {
        let epoch = self.epochs_done();
        let lr = self.lr_at(epoch);
        let started = Instant::now();
        let (train_loss, train_acc) = self.train_epoch(train, epoch, lr, on_batch)?;
        let seconds = started.elapsed().as_secs_f64();
        // Weights that became non-finite without a non-finite loss (it saturates) show in the
        // validation pass: that is divergence too, found after the epoch's last step.
        let val = self.evaluate(validation).map_err(|e| match e {
            PipelineError::Core(e @ reg_core::Error::NonFinite { .. }) => PipelineError::Diverged {
                epoch: epoch + 1,
                step: train.len().div_ceil(self.config.batch_size),
                what: format!("validation: {e}"),
                last_checkpoint: None,
            },
            other => other,
        })?;
        let metrics = EpochMetrics {
            epoch: epoch + 1,
            lr,
            train_loss,
            train_acc,
            val_loss: val.loss,
            val_acc: val.accuracy,
            seconds,
            eval_seconds: val.seconds,
        };
        if self.config.patience.is_some() {
            let model = &self.model;
            self.stopped_early = self
                .early_stopping
                .observe(epoch + 1, val.loss, || model.state());
        }
        self.history.push(metrics.clone());
        Ok(metrics)
    }

    fn train_epoch(
        &mut self,
        train: &Dataset,
        epoch: usize,
        lr: f64,
        on_batch: &mut dyn FnMut(&BatchProgress),
    ) -> Result<(f64, f64), PipelineError> {
        let batch_size = self.config.batch_size;
        let features = train.image_len();
        self.order.clear();
        self.order.extend(0..train.len());
        shuffle(&mut self.order, &mut self.shuffle_rng);
        // BatchNorm cannot train on one row: a last batch of one is dropped, as
        // `drop_last` would.
        let batches: Vec<std::ops::Range<usize>> = (0..train.len())
            .step_by(batch_size)
            .map(|start| start..(start + batch_size).min(train.len()))
            .filter(|range| range.len() >= 2)
            .collect();
        let (mut loss_sum, mut correct, mut seen) = (0.0, 0usize, 0usize);
        // Out of `self` for the loop, so a step can borrow the batch and the trainer at once.
        let (mut batch_x, mut batch_y) = (
            std::mem::take(&mut self.batch_x),
            std::mem::take(&mut self.batch_y),
        );
        let order = std::mem::take(&mut self.order);
        let loader = Loader::new(train, &order, &batches);
        // Each hidden block's dropout factors for the step, drawn ahead by the loader.
        let mut drawn = Vec::new();
        let owner = rayon::current_thread_index();
        // In place: the loop runs on this thread (`on_batch` need not be `Send`).
        let result = rayon::in_place_scope(|scope| {
            let _stop = StopOnDrop(&loader);
            for _ in 1..rayon::current_num_threads() {
                scope.spawn(|_| loader.wait_and_fill(owner));
            }
            for (step, range) in batches.iter().enumerate() {
                let rows = range.len();
                let mlp = self.model.as_mlp();
                loader.take(step, (&mut batch_x, &mut batch_y), mlp, &mut drawn)?;
                let x = ArrayView2::from_shape((rows, features), &batch_x[..])
                    .map_err(|e| reg_core::Error::StateMismatch(e.to_string()))?;
                let (loss, hits) = on_pool(|| self.step(x, &batch_y, lr, &mut drawn))
                    .map_err(|e| e.at(epoch + 1, step + 1))?;
                correct += hits;
                loss_sum += loss * rows as f64;
                seen += rows;
                on_batch(&BatchProgress {
                    epoch: epoch + 1,
                    batch: step + 1,
                    batches: batches.len(),
                    loss: loss_sum / seen as f64,
                    accuracy: correct as f64 / seen as f64,
                });
                if self.interrupted() {
                    return Err(PipelineError::Interrupted {
                        epoch: epoch + 1,
                        step: step + 1,
                    });
                }
            }
            Ok(())
        });
        drop(loader);
        self.order = order;
        (self.batch_x, self.batch_y) = (batch_x, batch_y);
        result?;
        Ok((
            loss_sum / seen.max(1) as f64,
            correct as f64 / seen.max(1) as f64,
        ))
    }

    /// One training step on the batch `x` (rows × 784 pixels in [0, 1]) with `labels`: forward
    /// in Train mode, softmax cross-entropy, backward, coupled L2 and the optimizer's update at
    /// learning rate `lr`. Returns the batch's mean loss and how many rows it classified right
    /// (before the update). The epoch loop calls this for every batch.
    ///
    /// # Errors
    /// [`PipelineError::Diverged`] (with `step` 0: the trainer does not know the caller's
    /// position) when the loss or a gradient is non-finite, the weights then left unchanged;
    /// [`PipelineError::Core`] for a batch that does not fit the model.
    pub fn train_step(
        &mut self,
        x: ArrayView2<'_, f32>,
        labels: &[u8],
        lr: f64,
    ) -> Result<(f64, usize), PipelineError> {
        let epoch = self.epochs_done() + 1;
        on_pool(|| self.step(x, labels, lr, &mut [])).map_err(|e| e.at(epoch, 0))
    }

    fn step(
        &mut self,
        x: ArrayView2<'_, f32>,
        labels: &[u8],
        lr: f64,
        drawn: &mut [Option<DrawnMask<f32>>],
    ) -> Result<(f64, usize), StepError> {
        let rows = x.nrows();
        let logits = match self.model.as_mlp_mut() {
            Some(mlp) => mlp.forward_train_drawn(x, drawn)?,
            None => self.model.forward_train(x)?,
        };
        let (loss, grad) = softmax_cross_entropy(logits, labels)
            .map_err(|e| StepError::Diverged(e.to_string()))?;
        if !loss.is_finite() {
            return Err(StepError::Diverged(format!("loss = {loss}")));
        }
        let hits = count_correct(logits, labels);
        // Coupled L2 (λ/m · W) goes straight into the weight-gradient products.
        let decay = self.l2.weight_decay(rows)? as f32;
        self.model.backward_params(x, grad.view(), decay)?;
        let mut params = self.model.params_mut();
        self.optimizer
            .as_dyn()
            .step(&mut params, lr)
            .map_err(StepError::from_optimizer)?;
        self.check_running_statistics()?;
        Ok((loss, hits))
    }

    /// Divergence can reach BatchNorm's running statistics alone (they only matter in Eval
    /// mode, so the loss stays finite): a running variance that overflows, or turns negative,
    /// stops training at this step. A few hundred values per step.
    fn check_running_statistics(&self) -> Result<(), StepError> {
        if self.model.running_statistics_valid() {
            return Ok(());
        }
        let state = self.model.state();
        let name = match crate::train::state::check_state_values(
            state.iter().map(|(n, v)| (n.as_str(), v.view())),
        ) {
            Err(crate::CheckpointError::InvalidValue { name }) => name,
            _ => "a BatchNorm running statistic".to_owned(),
        };
        Err(StepError::Diverged(format!(
            "non-finite or negative value in {name}"
        )))
    }

    /// Loss and accuracy of the model on `data`, in Eval mode.
    ///
    /// # Errors
    /// [`PipelineError::Core`] when the data does not fit the model.
    pub fn evaluate(&mut self, data: &Dataset) -> Result<Evaluation, PipelineError> {
        evaluate(&mut *self.model, data)
    }

    /// Puts back the weights of the best epoch, if early stopping recorded one.
    ///
    /// # Errors
    /// [`PipelineError::Core`] if the saved state does not fit the model (it always does when
    /// it was taken from it).
    pub fn restore_best(&mut self) -> Result<Option<usize>, PipelineError> {
        if let Some(state) = self.early_stopping.best_state() {
            self.model.load_state(state)?;
            return Ok(self.early_stopping.best_epoch());
        }
        Ok(None)
    }
}

/// Loss and accuracy of `model` on `data`, in Eval mode, 1,000 rows at a time.
///
/// # Errors
/// [`PipelineError::Core`] when the data does not fit the model.
pub fn evaluate(model: &mut dyn Model, data: &Dataset) -> Result<Evaluation, PipelineError> {
    on_pool(|| evaluate_here(model, data))
}

/// Runs `work` on a thread of rayon's pool when it has more than one, so that the splits inside
/// (products, optimizer) hand their second half to an idle worker that steals it at once; from
/// outside the pool each split would wake a worker for both halves. With one thread, `work`
/// runs here, sequentially.
///
/// Wrap each step of your own training loop in it (or in `pool.install` of your own pool):
/// called from a thread outside the pool, a step on two threads is no faster than on one.
pub fn on_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    if rayon::current_num_threads() > 1 && rayon::current_thread_index().is_none() {
        rayon::scope(|_| work())
    } else {
        work()
    }
}

fn evaluate_here(model: &mut dyn Model, data: &Dataset) -> Result<Evaluation, PipelineError> {
    let started = Instant::now();
    let features = data.image_len();
    let mut x = vec![0.0f32; EVAL_CHUNK.min(data.len()) * features];
    let mut y = vec![0u8; EVAL_CHUNK.min(data.len())];
    let (mut loss_sum, mut correct) = (0.0, 0usize);
    let indices: Vec<usize> = (0..data.len()).collect();
    for chunk in indices.chunks(EVAL_CHUNK) {
        let rows = chunk.len();
        data.fill_batch(chunk, &mut x[..rows * features], &mut y[..rows])?;
        let view = ArrayView2::from_shape((rows, features), &x[..rows * features])
            .map_err(|e| reg_core::Error::StateMismatch(e.to_string()))?;
        let logits = model.predict(view)?;
        let (loss, _) = softmax_cross_entropy(logits.view(), &y[..rows])?;
        loss_sum += loss * rows as f64;
        correct += count_correct(logits.view(), &y[..rows]);
    }
    let n = data.len().max(1) as f64;
    Ok(Evaluation {
        loss: loss_sum / n,
        accuracy: correct as f64 / n,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn build_schedule(config: &TrainConfig) -> Result<Box<dyn Schedule + Send + Sync>, PipelineError> {
    Ok(match config.schedule {
        ScheduleKind::WarmupCosine => Box::new(
            reg_schedule::WarmupCosineConfig::new(config.lr, config.warmup, config.epochs)
                .build()?,
        ),
        ScheduleKind::Constant => Box::new(reg_schedule::ConstantConfig::new(config.lr).build()?),
    })
}

/// Hooks into [`fit`]: progress display, per-epoch lines, checkpoints.
pub trait Observer {
    /// After every training batch: `done` of `total` batches in the epoch.
    fn on_batch(&mut self, _done: usize, _total: usize) {}

    /// After every training batch, with the epoch's running loss and accuracy; by default
    /// passes the counts on to [`Observer::on_batch`].
    fn on_progress(&mut self, progress: &BatchProgress) {
        self.on_batch(progress.batch, progress.batches);
    }

    /// After every epoch (trained, evaluated, early stopping updated).
    ///
    /// # Errors
    /// Whatever the observer fails with (a checkpoint that cannot be written, say) stops the
    /// run.
    fn on_epoch(
        &mut self,
        _trainer: &Trainer,
        _metrics: &EpochMetrics,
    ) -> Result<(), PipelineError> {
        Ok(())
    }
}

/// An observer that does nothing.
impl Observer for () {}

/// Refuses data on which training would do nothing or measure nothing: a training set too
/// small for one step (a last batch of one row is dropped, so at least 2 images), or an empty
/// validation or test set.
fn check_sizes(train: &Dataset, validation: &Dataset, test: &Dataset) -> Result<(), PipelineError> {
    let too_little = |what: &'static str, images: usize, needed: usize| {
        Err(PipelineError::TooLittleData {
            what,
            images,
            needed,
        })
    };
    if train.len() < 2 {
        return too_little("training set", train.len(), 2);
    }
    if validation.is_empty() {
        return too_little("validation set", 0, 1);
    }
    if test.is_empty() {
        return too_little("test set", 0, 1);
    }
    Ok(())
}

/// An observer that may be absent (`--tensorboard` not given, say).
impl<T: Observer> Observer for Option<T> {
    fn on_progress(&mut self, progress: &BatchProgress) {
        if let Some(observer) = self {
            observer.on_progress(progress);
        }
    }

    fn on_epoch(&mut self, trainer: &Trainer, metrics: &EpochMetrics) -> Result<(), PipelineError> {
        self.as_mut()
            .map_or(Ok(()), |observer| observer.on_epoch(trainer, metrics))
    }
}

/// Two observers, the first first.
impl<A: Observer, B: Observer> Observer for (A, B) {
    fn on_progress(&mut self, progress: &BatchProgress) {
        self.0.on_progress(progress);
        self.1.on_progress(progress);
    }

    fn on_epoch(&mut self, trainer: &Trainer, metrics: &EpochMetrics) -> Result<(), PipelineError> {
        self.0.on_epoch(trainer, metrics)?;
        self.1.on_epoch(trainer, metrics)
    }
}

/// Trains until the last epoch or early stopping, restores the best weights, evaluates `test`.
/// Before every checkpoint the whole state is checked
/// ([`Trainer::check_state`]).
///
/// # Errors
/// [`PipelineError::TooLittleData`] for a training set too small for one step or an empty
/// validation or test set; [`PipelineError::Diverged`] when a value of the state is not valid
/// after an epoch; whatever [`Trainer::run_epoch`], [`evaluate`] or the observer return.
pub fn fit(
    trainer: &mut Trainer,
    train: &Dataset,
    validation: &Dataset,
    test: &Dataset,
    observer: &mut dyn Observer,
) -> Result<crate::RunMetrics, PipelineError> {
    check_sizes(train, validation, test)?;
    while !trainer.finished() {
        if trainer.interrupted() {
            return Err(PipelineError::Interrupted {
                epoch: trainer.epochs_done() + 1,
                step: 0,
            });
        }
        let mut steps = 0;
        let metrics = trainer.run_epoch_with_progress(train, validation, &mut |p| {
            steps = p.batches;
            observer.on_progress(p);
        })?;
        // Nothing that could not be loaded back reaches a checkpoint.
        if let Err(invalid) = trainer.check_state() {
            return Err(PipelineError::Diverged {
                epoch: metrics.epoch,
                step: steps,
                what: format!("{invalid} at the end of the epoch"),
                last_checkpoint: None,
            });
        }
        observer.on_epoch(trainer, &metrics)?;
    }
    let best_epoch = trainer.restore_best()?.unwrap_or(trainer.epochs_done());
    let test_eval = trainer.evaluate(test)?;
    let seconds: Vec<f64> = trainer.history.iter().map(|m| m.seconds).collect();
    Ok(crate::RunMetrics {
        config: trainer.config.clone(),
        epochs: trainer.history.clone(),
        best_epoch,
        stopped_early: trainer.stopped_early && trainer.epochs_done() < trainer.config.epochs,
        test_loss: test_eval.loss,
        test_acc: test_eval.accuracy,
        median_epoch_seconds: crate::median(&seconds),
        test_eval_seconds: test_eval.seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optimizer_non_finite_gradient_is_divergence_that_says_non_finite() {
        let error = StepError::from_optimizer(reg_core::Error::NonFinite {
            context: "gradient of 0.weight".into(),
        })
        .at(2, 7);
        let message = error.to_string();
        assert!(
            matches!(
                error,
                PipelineError::Diverged {
                    epoch: 2,
                    step: 7,
                    ..
                }
            ),
            "{message}"
        );
        assert!(
            message.contains("non-finite value in gradient of 0.weight"),
            "{message}"
        );
    }
}
