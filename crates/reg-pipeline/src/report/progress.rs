//! Progress that fits where the program runs.
//!
//! On a terminal, a bar per epoch in the manner of Keras's `fit` (batches done, ETA, running
//! loss and accuracy), cleared when the epoch's line is printed. Anywhere else (a log file,
//! `nohup`, CI) a bar would be invisible or a mess of carriage returns, so plain lines are
//! written instead, one whenever [`LINE_INTERVAL`] has passed without any output. `--quiet`
//! turns both off. Progress goes to stderr; the epoch lines and results go to stdout.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::{BatchProgress, EpochMetrics, Observer, PipelineError, Trainer};

/// Longest silence in a log before a progress line is written.
pub const LINE_INTERVAL: Duration = Duration::from_secs(10);

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// A redrawn bar (stderr is a terminal).
    Bar,
    /// Plain lines, at most one per interval.
    Lines {
        /// Least time between two lines.
        every: Duration,
    },
    /// Nothing at all (`--quiet`).
    Off,
}

impl ProgressMode {
    /// [`ProgressMode::Off`] when `quiet`, else a bar if stderr is a terminal, else lines every
    /// [`LINE_INTERVAL`].
    #[must_use]
    pub fn detect(quiet: bool) -> Self {
        if quiet {
            Self::Off
        } else if std::io::stderr().is_terminal() {
            Self::Bar
        } else {
            Self::Lines {
                every: LINE_INTERVAL,
            }
        }
    }
}

/// `1:05`, `12:00:03`: a duration as a clock shows it.
#[must_use]
pub fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, m, s) => format!("{m}:{s:02}"),
        (h, m, s) => format!("{h}:{m:02}:{s:02}"),
    }
}

/// Where early stopping stands after an epoch, for the epoch's line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EarlyStoppingStatus {
    /// The epoch with the lowest validation loss so far.
    pub best_epoch: Option<usize>,
    /// Epochs in a row without improvement.
    pub waited: usize,
    /// Epochs without improvement that stop the run; `None` without early stopping.
    pub patience: Option<usize>,
}

/// The line printed after each epoch: learning rate (4 significant digits at any magnitude),
/// training and validation loss and accuracy, time with milliseconds per step (`steps` per
/// epoch; left out when 0), and the best epoch with early stopping's count against its
/// patience.
///
/// ```
/// use reg_pipeline::EpochMetrics;
/// use reg_pipeline::progress::{EarlyStoppingStatus, epoch_line};
///
/// let m = EpochMetrics {
///     epoch: 4, lr: 3.2e-6, train_loss: 0.05, train_acc: 0.9851, val_loss: 0.07,
///     val_acc: 0.9802, seconds: 2.0, eval_seconds: 0.1,
/// };
/// let status = EarlyStoppingStatus { best_epoch: Some(3), waited: 1, patience: Some(10) };
/// let line = epoch_line(&m, 30, 800, &status);
/// assert!(line.starts_with("Epoch  4/30 | lr 3.200e-6 |"), "{line}");
/// assert!(line.ends_with(
///     "| 2.00s (+0.10s eval), 2.5 ms/step | best epoch 3, no improvement for 1/10 epochs"
/// ));
/// ```
#[must_use]
pub fn epoch_line(
    m: &EpochMetrics,
    epochs: usize,
    steps: usize,
    best: &EarlyStoppingStatus,
) -> String {
    let per_step = if steps == 0 {
        String::new()
    } else {
        format!(", {:.1} ms/step", 1e3 * m.seconds / steps as f64)
    };
    let best_epoch = best
        .best_epoch
        .map_or("best epoch —".to_owned(), |e| format!("best epoch {e}"));
    let patience = match best.patience {
        Some(patience) => format!(", no improvement for {}/{patience} epochs", best.waited),
        None => " (no early stopping)".to_owned(),
    };
    format!(
        "Epoch {:>2}/{epochs} | lr {:.3e} | train loss {:.4} acc {:.2}% | val loss {:.4} acc {:.2}% | {:.2}s (+{:.2}s eval){per_step} | {best_epoch}{patience}",
        m.epoch,
        m.lr,
        m.train_loss,
        100.0 * m.train_acc,
        m.val_loss,
        100.0 * m.val_acc,
        m.seconds,
        m.eval_seconds,
    )
}

/// The pipeline's console: progress inside an epoch (see the module docs) and one line per
/// epoch on stdout.
pub struct Console {
    mode: ProgressMode,
    epochs: usize,
    bar: Option<ProgressBar>,
    log: Box<dyn Write + Send>,
    epoch_started: Instant,
    last_output: Instant,
    /// Steps (batches) per epoch, from the progress reports.
    steps: usize,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("mode", &self.mode)
            .field("epochs", &self.epochs)
            .finish_non_exhaustive()
    }
}

impl Console {
    /// A console for a run of at most `epochs` epochs, progress on stderr.
    #[must_use]
    pub fn new(mode: ProgressMode, epochs: usize) -> Self {
        Self::with_log(mode, epochs, Box::new(std::io::stderr()))
    }

    /// A console whose progress lines ([`ProgressMode::Lines`]) go to `log`.
    #[must_use]
    pub fn with_log(mode: ProgressMode, epochs: usize, log: Box<dyn Write + Send>) -> Self {
        let now = Instant::now();
        Self {
            mode,
            epochs,
            bar: None,
            log,
            epoch_started: now,
            last_output: now,
            steps: 0,
        }
    }

    fn bar(&mut self, p: &BatchProgress) -> &ProgressBar {
        let epochs = self.epochs;
        self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::new(p.batches as u64);
            if let Ok(style) = ProgressStyle::with_template(
                "Epoch {prefix} [{bar:30}] {pos:>4}/{len} · {elapsed} < ETA {eta} · {msg}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(format!("{}/{epochs}", p.epoch));
            bar
        })
    }

    /// A plain progress line, when the interval has passed since the last output.
    fn line(&mut self, p: &BatchProgress, every: Duration) {
        if self.last_output.elapsed() < every {
            return;
        }
        let elapsed = self.epoch_started.elapsed().as_secs_f64();
        let eta = elapsed * (p.batches - p.batch) as f64 / p.batch.max(1) as f64;
        // A log that cannot be written loses its progress lines, not the run.
        let _ = writeln!(
            self.log,
            "  epoch {}/{}: batch {}/{} ({:.0}%) · {} elapsed, ETA {} · loss {:.4} · acc {:.2}%",
            p.epoch,
            self.epochs,
            p.batch,
            p.batches,
            100.0 * p.batch as f64 / p.batches.max(1) as f64,
            clock(elapsed),
            clock(eta),
            p.loss,
            100.0 * p.accuracy,
        );
        let _ = self.log.flush();
        self.last_output = Instant::now();
    }
}

impl Observer for Console {
    fn on_progress(&mut self, p: &BatchProgress) {
        if p.batch == 1 {
            self.epoch_started = Instant::now();
        }
        self.steps = p.batches;
        match self.mode {
            ProgressMode::Off => {}
            ProgressMode::Bar => {
                let bar = self.bar(p);
                bar.set_position(p.batch as u64);
                // The text changes every batch; indicatif redraws at most 20 times a second.
                bar.set_message(format!(
                    "loss {:.4} · acc {:.2}%",
                    p.loss,
                    100.0 * p.accuracy
                ));
            }
            ProgressMode::Lines { every } => self.line(p, every),
        }
    }

    fn on_epoch(&mut self, trainer: &Trainer, m: &EpochMetrics) -> Result<(), PipelineError> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if self.mode != ProgressMode::Off {
            let stopping = &trainer.early_stopping;
            let best = EarlyStoppingStatus {
                best_epoch: stopping.best_epoch(),
                waited: stopping.epochs_without_improvement(),
                patience: trainer.config.patience,
            };
            println!("{}", epoch_line(m, self.epochs, self.steps, &best));
        }
        self.last_output = Instant::now();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A log that tests can read back.
    #[derive(Clone, Default)]
    struct SharedLog(Arc<Mutex<Vec<u8>>>);

    impl Write for SharedLog {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl SharedLog {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().map(|v| v.clone()).unwrap_or_default())
                .unwrap_or_default()
        }
    }

    fn progress(batch: usize) -> BatchProgress {
        BatchProgress {
            epoch: 3,
            batch,
            batches: 860,
            loss: 0.123_44,
            accuracy: 0.961_23,
        }
    }

    #[test]
    fn lines_say_where_the_epoch_is_with_running_loss_and_accuracy() {
        let log = SharedLog::default();
        let mode = ProgressMode::Lines {
            every: Duration::ZERO,
        };
        let mut console = Console::with_log(mode, 30, Box::new(log.clone()));
        console.on_progress(&progress(1));
        console.on_progress(&progress(430));
        let text = log.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[1].starts_with("  epoch 3/30: batch 430/860 (50%) · "),
            "{}",
            lines[1]
        );
        assert!(
            lines[1].ends_with(" · loss 0.1234 · acc 96.12%"),
            "{}",
            lines[1]
        );
        assert!(lines[1].contains("ETA 0:0"), "{}", lines[1]);
    }

    #[test]
    fn lines_wait_for_the_interval() {
        let log = SharedLog::default();
        let mode = ProgressMode::Lines {
            every: Duration::from_secs(3600),
        };
        let mut console = Console::with_log(mode, 30, Box::new(log.clone()));
        for batch in 1..=860 {
            console.on_progress(&progress(batch));
        }
        assert_eq!(log.text(), "");
    }

    #[test]
    fn off_writes_nothing() {
        let log = SharedLog::default();
        let mut console = Console::with_log(ProgressMode::Off, 30, Box::new(log.clone()));
        console.on_progress(&progress(1));
        assert_eq!(log.text(), "");
        assert_eq!(ProgressMode::detect(true), ProgressMode::Off);
    }

    #[test]
    fn clock_reads_like_a_clock() {
        assert_eq!(clock(0.4), "0:00");
        assert_eq!(clock(65.0), "1:05");
        assert_eq!(clock(3723.0), "1:02:03");
    }
}
