//! An epoch's batches and dropout masks, the next step's prepared ahead by the pool's waiting
//! threads.
//!
//! A step alternates split matrix products with sequential passes (BatchNorm, the loss, the
//! dropout masks). Left alone, rayon's idle threads spin for some microseconds, then sleep,
//! and each product must wake one again: a futex call, and on a virtual machine an interrupt
//! between cores, several times per step. So for the epoch each other thread of the pool runs
//! a task that waits by calling [`rayon::yield_now`], which still runs its half of every
//! product as soon as it is split (the same work on the same columns: the bits do not
//! change), and that in between prepares the next step a little at a time: fills its batch,
//! then draws its dropout masks from copies of the layers' generators. The thread that trains
//! then finds the next step's inputs (mostly) ready: filling and drawing are taken off the
//! step's path, with the same values as if it had made them itself.
//! It costs the waiting threads' cores for the epoch, as an OpenMP runtime's spin-wait does,
//! except that a waiting thread with nothing to do yields its core to any other process that
//! wants it (`sched_yield`).

use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use ndarray::Array2;
use reg_dropout::Sampler;

use crate::data::Dataset;
use crate::nn::fused::DrawnMask;
use crate::nn::random::Generator;
use crate::{Mlp, PipelineError};

/// Rows a waiting thread fills at a time: under a microsecond of work, so that a product
/// split meanwhile waits no longer than that for it.
const ROWS_PER_PIECE: usize = 1;

/// Dropout decisions a waiting thread draws at a time: about a microsecond (even, so that the
/// pieces draw what one call would: see [`Sampler::fill`]).
const DECISIONS_PER_PIECE: usize = 1024;

/// The batches of an epoch, in order, and the next one being filled.
pub(crate) struct Loader<'a> {
    data: &'a Dataset,
    /// The epoch's shuffled indices; batch `s` is `order[batches[s]]`.
    order: &'a [usize],
    batches: &'a [Range<usize>],
    next: Mutex<Next>,
    stop: AtomicBool,
}

/// The batch filled ahead.
#[derive(Default)]
struct Next {
    /// Its position in the epoch.
    step: usize,
    x: Vec<f32>,
    y: Vec<u8>,
    /// Rows filled so far, from the first.
    filled: usize,
    /// A piece could not be filled: the training thread fills the batch itself, and reports.
    failed: bool,
    /// Per hidden block, its dropout factors for this batch being drawn (`None`: no dropout).
    masks: Vec<Option<MaskJob>>,
}

/// A block's dropout factors for the next step, being drawn.
struct MaskJob {
    /// The layer's generator when the step starts (what the factors continue).
    start: Generator,
    /// Draws the rest: the copy of the generator after the factors drawn so far.
    sampler: Sampler<f32>,
    /// `rows × features`.
    factors: Array2<f32>,
    /// Factors drawn so far, in row-major order.
    drawn: usize,
}

impl MaskJob {
    /// The rest of the factors, drawn now; the finished mask and the sampler after it.
    fn finish(mut self) -> (DrawnMask<f32>, Sampler<f32>) {
        if let Some(rest) = self
            .factors
            .as_slice_mut()
            .and_then(|all| all.get_mut(self.drawn..))
        {
            self.sampler.fill(rest);
        }
        let mask = DrawnMask {
            start: self.start,
            end: self.sampler.rng().clone(),
            factors: self.factors,
        };
        (mask, self.sampler)
    }
}

impl<'a> Loader<'a> {
    pub(crate) fn new(data: &'a Dataset, order: &'a [usize], batches: &'a [Range<usize>]) -> Self {
        Self {
            data,
            order,
            batches,
            // No batch until the first `take` hands one over.
            next: Mutex::new(Next {
                step: usize::MAX,
                ..Next::default()
            }),
            stop: AtomicBool::new(false),
        }
    }

    fn indices(&self, step: usize) -> &'a [usize] {
        self.batches
            .get(step)
            .map_or(&[], |range| &self.order[range.clone()])
    }

    /// Puts batch `step` in `x` and `y` (resized to it) and each hidden block's dropout factors
    /// for it in `drawn` (for [`Mlp::forward_train_drawn`]): takes what the waiting threads
    /// prepared and finishes it, then hands them step `step + 1`. `drawn` holds, on entry,
    /// what the last step left there (buffers to reuse).
    ///
    /// # Errors
    /// What [`Dataset::fill_batch`] returns for this batch.
    pub(crate) fn take(
        &self,
        step: usize,
        (x, y): (&mut Vec<f32>, &mut Vec<u8>),
        model: Option<&Mlp<f32>>,
        drawn: &mut Vec<Option<DrawnMask<f32>>>,
    ) -> Result<(), PipelineError> {
        let features = self.data.image_len();
        let indices = self.indices(step);
        // A poisoned lock means a waiting thread panicked mid-piece. `filled` counts finished
        // rows, so the batch is still right; a half-drawn mask's sampler may not be, so the
        // masks are drawn here (and are from then on: the lock stays poisoned, and the
        // waiting threads' `try_lock` fails).
        let mut next = self.next.lock().unwrap_or_else(|poisoned| {
            let mut next = poisoned.into_inner();
            next.masks.clear();
            next
        });
        let ahead = if next.step == step && !next.failed {
            next.filled
        } else {
            0
        };
        if ahead > 0 {
            std::mem::swap(x, &mut next.x);
            std::mem::swap(y, &mut next.y);
        }
        x.resize(indices.len() * features, 0.0);
        y.resize(indices.len(), 0);
        let result = super::trainer::fill_batch(
            self.data,
            &indices[ahead..],
            &mut x[ahead * features..],
            &mut y[ahead..],
        );
        let mut jobs = std::mem::take(&mut next.masks);
        if next.step != step {
            jobs.clear();
        }
        // Batch `step + 1` for the waiting threads, in the buffers this one no longer needs.
        let following = self.indices(step + 1).len();
        next.step = step + 1;
        next.filled = 0;
        next.failed = false;
        next.x.resize(following * features, 0.0);
        next.y.resize(following, 0);
        // Only the fused MLP takes masks drawn ahead; any other model draws its own.
        next.masks = match model {
            Some(model) => masks(model, indices.len(), following, &mut jobs, drawn),
            None => Vec::new(),
        };
        result
    }

    /// Fills a piece of the next batch or, once it is full, draws a piece of the next step's
    /// masks, unless another thread holds them. Returns whether it did.
    fn fill_piece(&self) -> bool {
        let Ok(mut next) = self.next.try_lock() else {
            return false;
        };
        let indices = self.indices(next.step);
        let start = next.filled;
        if next.failed || start >= indices.len() {
            return draw_piece(&mut next.masks);
        }
        let end = (start + ROWS_PER_PIECE).min(indices.len());
        let features = self.data.image_len();
        let Next { x, y, .. } = &mut *next;
        // Sized by `take` when it hands the batch over; before that, there is nothing to fill.
        let (Some(x), Some(y)) = (
            x.get_mut(start * features..end * features),
            y.get_mut(start..end),
        ) else {
            return false;
        };
        let filled = self.data.fill_batch(&indices[start..end], x, y);
        match filled {
            Ok(()) => next.filled = end,
            Err(_) => next.failed = true,
        }
        true
    }

    /// What each other thread of the pool runs for the epoch (see the module): until
    /// [`Loader::stop`], runs the pool's work as it comes and, between, fills the next batch
    /// and draws the next step's masks.
    /// Returns at once on `owner`, the thread that trains (it would wait for itself).
    pub(crate) fn wait_and_fill(&self, owner: Option<usize>) {
        if owner.is_some() && rayon::current_thread_index() == owner {
            return;
        }
        while !self.stop.load(Ordering::Acquire) {
            if rayon::yield_now() != Some(rayon::Yield::Executed) && !self.fill_piece() {
                // Gives the core to another process if one is waiting: spinning instead made
                // 2 threads 2-4 times slower than 1 while another process used a core.
                std::thread::yield_now();
            }
        }
    }

    /// Ends [`Loader::wait_and_fill`] on every thread.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// Draws the next piece of the first unfinished mask in `jobs`; whether there was one.
fn draw_piece(jobs: &mut [Option<MaskJob>]) -> bool {
    let Some(job) = jobs
        .iter_mut()
        .flatten()
        .find(|job| job.drawn < job.factors.len())
    else {
        return false;
    };
    let end = (job.drawn + DECISIONS_PER_PIECE).min(job.factors.len());
    if let Some(piece) = job
        .factors
        .as_slice_mut()
        .and_then(|all| all.get_mut(job.drawn..end))
    {
        job.sampler.fill(piece);
    }
    job.drawn = end;
    true
}

/// Each hidden block's dropout factors for this step (`rows` rows) into `drawn`: those drawn
/// ahead in `jobs` when they continue the layer's generator, finished, else drawn here. Returns
/// the jobs for the next step (`following` rows, none for 0), which continue this step's.
fn masks(
    model: &Mlp<f32>,
    rows: usize,
    following: usize,
    jobs: &mut [Option<MaskJob>],
    drawn: &mut Vec<Option<DrawnMask<f32>>>,
) -> Vec<Option<MaskJob>> {
    let blocks = model.hidden();
    drawn.resize_with(blocks.len(), || None);
    let widths = &model.config().sizes[1..];
    let mut next_jobs = Vec::with_capacity(blocks.len());
    for (i, block) in blocks.iter().enumerate() {
        // The buffer the last step's mask left (the block's old factors), to reuse.
        let spare = drawn[i].take().map(|mask| mask.factors);
        let Some(dropout) = block.dropout.as_ref().filter(|d| d.p() > 0.0) else {
            next_jobs.push(None);
            continue;
        };
        let width = widths.get(i).copied().unwrap_or(0);
        let ahead = jobs
            .get_mut(i)
            .and_then(Option::take)
            .filter(|job| job.start == *dropout.rng() && job.factors.dim() == (rows, width));
        let (job, spare) = match ahead {
            Some(job) => (job, spare),
            None => {
                let job = MaskJob {
                    start: dropout.rng().clone(),
                    sampler: dropout.sampler(),
                    factors: sized(spare, rows, width),
                    drawn: 0,
                };
                (job, None)
            }
        };
        let (mask, sampler) = job.finish();
        next_jobs.push((following > 0).then(|| MaskJob {
            start: mask.end.clone(),
            sampler,
            factors: sized(spare, following, width),
            drawn: 0,
        }));
        drawn[i] = Some(mask);
    }
    next_jobs
}

/// `buffer` if it is `rows × cols`, else a new array of that shape.
fn sized(buffer: Option<Array2<f32>>, rows: usize, cols: usize) -> Array2<f32> {
    match buffer {
        Some(buffer) if buffer.dim() == (rows, cols) => buffer,
        _ => Array2::zeros((rows, cols)),
    }
}

/// Calls [`Loader::stop`] when dropped, so that a panic in the epoch does not leave the
/// waiting threads (and the scope that waits for them) running forever.
pub(crate) struct StopOnDrop<'l, 'a>(pub(crate) &'l Loader<'a>);

impl Drop for StopOnDrop<'_, '_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MlpConfig;

    /// 50 images of 3×4 pixels with distinct values, labels `i % 10`.
    fn data() -> Dataset {
        let images = (0..50 * 12).map(|i| (i * 7 % 251) as u8).collect();
        let labels = (0..50).map(|i| (i % 10) as u8).collect();
        Dataset::new(images, labels, 3, 4).unwrap()
    }

    /// A model for 3×4-pixel images with dropout on both hidden blocks; odd widths, so that
    /// masks have odd sizes, and a first block wide enough for masks of several pieces.
    fn model() -> Mlp<f32> {
        let config = MlpConfig {
            sizes: vec![12, 301, 5, 3],
            dropout: vec![0.3, 0.5],
            ..MlpConfig::default()
        };
        Mlp::new(&config, 5).unwrap()
    }

    /// Every batch taken, on one thread or with waiting threads filling ahead (and sometimes
    /// finishing, sometimes not, before it is taken), is the batch `Dataset::fill_batch` gives,
    /// and every mask the one each layer would draw itself next.
    #[test]
    fn batches_and_masks_prepared_ahead_are_the_steps_own() {
        let data = data();
        let order: Vec<usize> = (0..50).rev().collect();
        let batches: Vec<Range<usize>> = (0..50).step_by(7).map(|s| s..(s + 7).min(50)).collect();
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut model = model();
            // Draws each layer's masks itself, as a forward without the loader would.
            let mut reference = model.clone();
            pool.install(|| {
                let loader = Loader::new(&data, &order, &batches);
                let owner = rayon::current_thread_index();
                rayon::in_place_scope(|scope| {
                    let _stop = StopOnDrop(&loader);
                    for _ in 1..threads {
                        scope.spawn(|_| loader.wait_and_fill(owner));
                    }
                    let (mut x, mut y, mut drawn) = (Vec::new(), Vec::new(), Vec::new());
                    for (step, range) in batches.iter().enumerate() {
                        // Time for the waiting threads on every other step, the first
                        // included (before any batch was handed over).
                        if step % 2 == 0 {
                            std::thread::sleep(std::time::Duration::from_millis(2));
                        }
                        loader
                            .take(step, (&mut x, &mut y), Some(&model), &mut drawn)
                            .unwrap();
                        let indices = &order[range.clone()];
                        let mut expected_x = vec![0.0; indices.len() * 12];
                        let mut expected_y = vec![0; indices.len()];
                        data.fill_batch(indices, &mut expected_x, &mut expected_y)
                            .unwrap();
                        let at = format!("step {step} on {threads} threads");
                        assert_eq!(x, expected_x, "{at}");
                        assert_eq!(y, expected_y, "{at}");
                        let layers = model.hidden_mut().iter_mut().zip(reference.hidden_mut());
                        for ((block, own), mask) in layers.zip(&drawn) {
                            let (Some(dropout), Some(own), Some(mask)) =
                                (block.dropout.as_mut(), own.dropout.as_mut(), mask)
                            else {
                                panic!("a mask is missing at {at}");
                            };
                            let mut factors = vec![0.0; mask.factors.len()];
                            own.fill_factors(&mut factors);
                            assert_eq!(mask.factors.as_slice().unwrap(), &factors[..], "{at}");
                            assert_eq!(&mask.start, dropout.rng(), "{at}");
                            assert_eq!(&mask.end, own.rng(), "{at}");
                            // What the forward does with it.
                            dropout.set_rng(mask.end.clone());
                        }
                    }
                });
            });
        }
    }

    /// A panic in the epoch stops the waiting threads: the scope ends instead of waiting for
    /// them forever.
    #[test]
    fn a_panic_in_the_epoch_does_not_leave_the_waiting_threads_running() {
        let data = data();
        let order: Vec<usize> = (0..50).collect();
        let batches = vec![0..25, 25..50];
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.install(|| {
                let loader = Loader::new(&data, &order, &batches);
                let owner = rayon::current_thread_index();
                rayon::in_place_scope(|scope| {
                    let _stop = StopOnDrop(&loader);
                    scope.spawn(|_| loader.wait_and_fill(owner));
                    panic!("a step failed");
                })
            })
        }));
        assert!(result.is_err());
    }
}
