//! Tables of a study: mean ± 95 % confidence interval per variant, and the paired difference
//! to the reference variant.

use super::RunResult;
use super::stats::MeanCi;
use super::store::Divergence;

/// One variant's measurements over its seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantSummary {
    /// The variant's name.
    pub name: String,
    /// Its seeds, in run order.
    pub seeds: Vec<u64>,
    /// Test accuracy (fraction).
    pub test_acc: MeanCi,
    /// Validation accuracy of the kept epoch (fraction): what [`Report::ranked`] ranks by, so
    /// that the test set plays no part in choosing. `None` when a run recorded no epoch.
    pub val_acc: Option<MeanCi>,
    /// Training accuracy in Eval mode with the kept weights (fraction).
    pub train_acc: MeanCi,
    /// Train (Eval mode) minus test accuracy.
    pub gap: MeanCi,
    /// Test cross-entropy.
    pub test_loss: MeanCi,
    /// Fewest and most epochs trained (early stopping can end seeds at different epochs).
    pub epochs: (usize, usize),
    /// Differences to the reference seed by seed; `None` for the reference itself or when
    /// there is no reference.
    pub vs_reference: Option<Paired>,
    /// Mean wall-clock seconds per run.
    pub seconds: f64,
}

/// A variant's paired differences to the reference (this variant minus the reference, over
/// the seeds both have).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Paired {
    /// Difference of test accuracy (fraction).
    pub test_acc: MeanCi,
    /// Difference of test cross-entropy.
    pub test_loss: MeanCi,
}

impl Paired {
    /// The differences of `runs` to `base`, seed by seed (the seeds both have); `None` when
    /// they share no seed.
    fn of(runs: &[&RunResult], base: &[&RunResult]) -> Option<Self> {
        let pairs: Vec<(&RunResult, &RunResult)> = runs
            .iter()
            .filter_map(|r| Some((*r, *base.iter().find(|b| b.seed == r.seed)?)))
            .collect();
        let differences = |f: fn(&RunResult) -> f64| {
            let d: Vec<f64> = pairs.iter().map(|(r, b)| f(r) - f(b)).collect();
            MeanCi::of(&d)
        };
        let test_acc = differences(|r| r.metrics.test_acc)?;
        let test_loss = differences(|r| r.metrics.test_loss)?;
        Some(Self {
            test_acc,
            test_loss,
        })
    }

    /// `"acc, loss"`, `"acc"`, `"loss"` or `"no"`: which differences are significant at the
    /// 5 % level (their 95 % interval excludes 0); `"n = 1: no CI"` for a single seed.
    #[must_use]
    pub fn significance(&self) -> String {
        match (
            self.test_acc.excludes_zero(),
            self.test_loss.excludes_zero(),
        ) {
            (Some(acc), Some(loss)) => match (acc, loss) {
                (true, true) => "acc, loss".to_owned(),
                (true, false) => "acc".to_owned(),
                (false, true) => "loss".to_owned(),
                (false, false) => "no".to_owned(),
            },
            _ => "n = 1: no CI".to_owned(),
        }
    }
}

/// A study's results summarised per variant.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The study's name.
    pub study: String,
    /// The variant the others are compared with.
    pub reference: Option<String>,
    /// Variants in the study's order.
    pub variants: Vec<VariantSummary>,
    /// The thread counts the runs trained on, each once, in increasing order.
    pub threads: Vec<usize>,
    /// The runs whose training diverged (variant, seed, where), left out of the statistics.
    pub diverged: Vec<(String, u64, Divergence)>,
    /// The matrix-product path of the runs (part of the study's definition).
    pub product_path: String,
    /// Set by [`Report::ranked`]: the variants are sorted best first, and this is the best.
    pub best: Option<String>,
}

impl Report {
    /// Summarises `results` (from [`super::merge`] or [`super::execute`]) per variant, in
    /// order of first appearance. Seeds are paired with the reference's by seed value.
    #[must_use]
    pub fn new(results: &[RunResult]) -> Self {
        let diverged = results
            .iter()
            .filter_map(|r| Some((r.variant.clone(), r.seed, r.diverged.clone()?)))
            .collect();
        let trained: Vec<RunResult> = results
            .iter()
            .filter(|r| r.diverged.is_none())
            .cloned()
            .collect();
        let mut summary = Self::of_trained(&trained);
        summary.diverged = diverged;
        let mut threads: Vec<usize> = results.iter().map(|r| r.threads).collect();
        threads.sort_unstable();
        threads.dedup();
        summary.threads = threads;
        summary.product_path = results
            .first()
            .map(|r| r.product_path.clone())
            .unwrap_or_default();
        if summary.study.is_empty() {
            summary.study = results.first().map(|r| r.study.clone()).unwrap_or_default();
        }
        summary
    }

    /// The report of runs that all trained to the end.
    fn of_trained(results: &[RunResult]) -> Self {
        let mut names: Vec<&str> = Vec::new();
        for r in results {
            if !names.contains(&r.variant.as_str()) {
                names.push(&r.variant);
            }
        }
        let reference = results.first().and_then(|r| r.reference.clone());
        let of = |name: &str| -> Vec<&RunResult> {
            results.iter().filter(|r| r.variant == name).collect()
        };
        let base: Vec<&RunResult> = reference.as_deref().map(of).unwrap_or_default();
        let variants = names
            .iter()
            .filter_map(|&name| {
                let runs = of(name);
                let measure = |f: &dyn Fn(&RunResult) -> f64| {
                    MeanCi::of(&runs.iter().map(|r| f(r)).collect::<Vec<_>>())
                };
                let vs_reference = if Some(name) == reference.as_deref() {
                    None
                } else {
                    Paired::of(&runs, &base)
                };
                let kept_val_acc: Option<Vec<f64>> = runs.iter().map(|r| kept_val_acc(r)).collect();
                Some(VariantSummary {
                    name: name.to_owned(),
                    seeds: runs.iter().map(|r| r.seed).collect(),
                    test_acc: measure(&|r| r.metrics.test_acc)?,
                    val_acc: kept_val_acc.and_then(|v| MeanCi::of(&v)),
                    train_acc: measure(&|r| r.train_eval.accuracy)?,
                    gap: measure(&|r| r.train_eval.accuracy - r.metrics.test_acc)?,
                    test_loss: measure(&|r| r.metrics.test_loss)?,
                    epochs: (
                        runs.iter().map(|r| r.metrics.epochs.len()).min()?,
                        runs.iter().map(|r| r.metrics.epochs.len()).max()?,
                    ),
                    vs_reference,
                    seconds: runs.iter().map(|r| r.seconds).sum::<f64>() / runs.len() as f64,
                })
            })
            .collect();
        Self {
            study: results.first().map(|r| r.study.clone()).unwrap_or_default(),
            reference,
            variants,
            threads: Vec::new(),
            diverged: Vec::new(),
            product_path: String::new(),
            best: None,
        }
    }

    /// The report with its variants sorted by mean validation accuracy of the kept epoch,
    /// highest first (ties keep the study's order; variants without one go last), and the
    /// first marked as [`Report::best`]. The test set plays no part in the choice, so the
    /// best variant's test accuracy stays an unbiased estimate.
    #[must_use]
    pub fn ranked(mut self) -> Self {
        let key = |v: &VariantSummary| v.val_acc.map_or(f64::NEG_INFINITY, |ci| ci.mean);
        self.variants.sort_by(|a, b| key(b).total_cmp(&key(a)));
        self.best = self.variants.first().map(|v| v.name.clone());
        self
    }

    /// A markdown table, then a line saying what ± and Δ mean and which differences are
    /// significant. With `with_time`, a column of mean seconds per run and a line giving the
    /// runs' thread counts (the only parts that differ between two runs of the same study).
    #[must_use]
    pub fn markdown(&self, with_time: bool) -> String {
        let mut table = self.table_head(with_time);
        for v in &self.variants {
            table.push_str(&self.table_row(v, with_time));
        }
        table.push('\n');
        table.push_str(&self.legend());
        table.push_str(&self.ranking_line());
        table.push_str(&self.footer(with_time));
        table
    }

    /// The table's header and rule lines.
    fn table_head(&self, with_time: bool) -> String {
        let reference = self.reference.as_deref();
        let ranked = self.best.is_some();
        let mut head = String::from("| model | seeds |");
        let mut rule = String::from("| --- | ---: |");
        if ranked {
            head.push_str(" val acc, kept epoch (%) |");
            rule.push_str(" ---: |");
        }
        head.push_str(" test acc (%) |");
        rule.push_str(" ---: |");
        if let Some(reference) = reference {
            head.push_str(&format!(
                " Δ test acc vs {reference} (pp) | Δ test loss vs {reference} | significant (95 %) |"
            ));
            rule.push_str(" ---: | ---: | :---: |");
        }
        head.push_str(" train acc, eval (%) | gap (pp) | test loss | epochs |");
        rule.push_str(" ---: | ---: | ---: | ---: |");
        if with_time {
            head.push_str(" time per run |");
            rule.push_str(" ---: |");
        }
        format!("{head}\n{rule}\n")
    }

    /// One variant's line of the table.
    fn table_row(&self, v: &VariantSummary, with_time: bool) -> String {
        let mut row = String::new();
        if self.best.as_deref() == Some(v.name.as_str()) {
            row.push_str(&format!("| **{}** (best) | {} |", v.name, v.seeds.len()));
        } else {
            row.push_str(&format!("| {} | {} |", v.name, v.seeds.len()));
        }
        if self.best.is_some() {
            let val = v
                .val_acc
                .map_or("—".to_owned(), |ci| ci.format(100.0, 2, false));
            row.push_str(&format!(" {val} |"));
        }
        row.push_str(&format!(" {} |", v.test_acc.format(100.0, 2, false)));
        if self.reference.is_some() {
            let cells = match &v.vs_reference {
                None => ["—".to_owned(), "—".to_owned(), "—".to_owned()],
                Some(d) => [
                    d.test_acc.format(100.0, 2, true),
                    d.test_loss.format(1.0, 4, true),
                    d.significance(),
                ],
            };
            row.push_str(&format!(" {} | {} | {} |", cells[0], cells[1], cells[2]));
        }
        row.push_str(&format!(
            " {} | {} | {} | {} |",
            v.train_acc.format(100.0, 2, false),
            v.gap.format(100.0, 2, true),
            v.test_loss.format(1.0, 4, false),
            match v.epochs {
                (fewest, most) if fewest == most => most.to_string(),
                (fewest, most) => format!("{fewest}–{most}"),
            },
        ));
        if with_time {
            row.push_str(&format!(" {:.1} s |", v.seconds));
        }
        row.push('\n');
        row
    }

    /// How the rows are ordered, when [`Report::ranked`].
    fn ranking_line(&self) -> String {
        match &self.best {
            Some(best) => format!(
                "Rows sorted by mean validation accuracy of the kept epoch (the test set is not \
                 used to choose); best: {best}.\n"
            ),
            None => String::new(),
        }
    }

    /// A line per diverged run, the matrix-product path, and with `with_time` the runs'
    /// thread counts.
    fn footer(&self, with_time: bool) -> String {
        let mut text = String::new();
        for (variant, seed, at) in &self.diverged {
            text.push_str(&format!(
                "Diverged, left out of the table: {variant}, seed {seed}, at epoch {}, step {} ({}).\n",
                at.epoch, at.step, at.what
            ));
        }
        if !self.product_path.is_empty() {
            text.push_str(&format!("Matrix products: {}.\n", self.product_path));
        }
        if with_time {
            let counts: Vec<String> = self.threads.iter().map(usize::to_string).collect();
            text.push_str(&format!("Threads per run: {}.\n", counts.join(", ")));
        }
        text
    }

    /// What the table's ± and Δ mean, and the variants whose difference is significant.
    fn legend(&self) -> String {
        let n_max = self
            .variants
            .iter()
            .map(|v| v.seeds.len())
            .max()
            .unwrap_or(0);
        if n_max < 2 {
            return "One seed per variant: no confidence intervals (run with --seeds 2 or more).\n"
                .to_owned();
        }
        let mut text = String::from(
            "± is the half-width of the 95 % confidence interval of the mean over seeds \
             (Student's t, n − 1 degrees of freedom).",
        );
        let n_min = self
            .variants
            .iter()
            .map(|v| v.seeds.len())
            .min()
            .unwrap_or(0);
        if n_min == 2 {
            text.push_str(
                " With 2 seeds t = 12.7 (1 degree of freedom): the intervals are wide; run more \
                 seeds to tell variants apart.",
            );
        }
        if let Some(reference) = &self.reference {
            let significant = |of: fn(&Paired) -> MeanCi| {
                let names: Vec<&str> = self
                    .variants
                    .iter()
                    .filter(|v| v.vs_reference.and_then(|d| of(&d).excludes_zero()) == Some(true))
                    .map(|v| v.name.as_str())
                    .collect();
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            };
            text.push_str(&format!(
                " Δ is the mean of the per-seed differences to {reference} (same seed: same data \
                 order and initialisation), with its 95 % confidence interval; significant when \
                 that interval excludes 0. Significant in test accuracy: {}; in test loss: {}.",
                significant(|d| d.test_acc),
                significant(|d| d.test_loss),
            ));
        }
        text.push('\n');
        text
    }
}

/// Validation accuracy of the epoch whose weights a run kept (its best epoch, else its last).
fn kept_val_acc(r: &RunResult) -> Option<f64> {
    let epochs = &r.metrics.epochs;
    epochs
        .iter()
        .find(|e| e.epoch == r.metrics.best_epoch)
        .or(epochs.last())
        .map(|e| e.val_acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Evaluation, RunMetrics, TrainConfig};

    fn result(variant: &str, seed: u64, test_acc: f64) -> RunResult {
        RunResult {
            checksum: String::new(),
            threads: 1,
            diverged: None,
            study: "s".into(),
            data: "d".into(),
            data_digest: String::new(),
            product_path: "portable".into(),
            reference: Some("full".into()),
            definition: "h".into(),
            runs_total: 4,
            index: 0,
            variant: variant.into(),
            seed,
            metrics: RunMetrics {
                config: TrainConfig::default(),
                epochs: Vec::new(),
                best_epoch: 0,
                stopped_early: false,
                test_loss: 0.05,
                test_acc,
                median_epoch_seconds: 0.0,
                test_eval_seconds: 0.0,
            },
            train_eval: Evaluation {
                loss: 0.01,
                accuracy: 0.99,
                seconds: 0.0,
            },
            seconds: 1.0,
        }
    }

    #[test]
    fn paired_differences_follow_the_seeds() {
        let results = [
            result("full", 0, 0.980),
            result("full", 1, 0.985),
            result("full", 2, 0.982),
            result("worse", 0, 0.970),
            result("worse", 1, 0.976),
            result("worse", 2, 0.971),
        ];
        let report = Report::new(&results);
        assert_eq!(report.variants.len(), 2);
        assert_eq!(report.variants[0].vs_reference, None);
        let d = report.variants[1].vs_reference.expect("paired");
        assert!((d.test_acc.mean + 0.01).abs() < 1e-12, "{d:?}");
        assert_eq!(d.test_acc.excludes_zero(), Some(true));
        // Every run has the same test loss: no difference, and not significant.
        assert_eq!(d.test_loss.excludes_zero(), Some(false));
        let table = report.markdown(false);
        assert!(table.contains("| worse | 3 | 97.23 ± "), "{table}");
        assert!(table.contains("| acc |"), "{table}");
        assert!(
            table.contains("Significant in test accuracy: worse; in test loss: none."),
            "{table}"
        );
    }

    #[test]
    fn a_diverged_run_is_listed_and_left_out_of_the_statistics() {
        let mut blown = result("worse", 1, 0.0);
        blown.diverged = Some(Divergence {
            epoch: 1,
            step: 3,
            what: "loss = inf".into(),
        });
        let results = [
            result("full", 0, 0.98),
            result("full", 1, 0.98),
            result("worse", 0, 0.97),
            blown,
        ];
        let report = Report::new(&results);
        assert_eq!(report.variants[1].seeds, [0]);
        assert_eq!(report.diverged.len(), 1);
        let table = report.markdown(false);
        assert!(
            table.contains("worse, seed 1, at epoch 1, step 3"),
            "{table}"
        );
    }

    #[test]
    fn one_seed_prints_no_interval() {
        let report = Report::new(&[result("full", 0, 0.98), result("other", 0, 0.97)]);
        let table = report.markdown(false);
        assert!(!table.contains('±'), "{table}");
        assert!(
            table.contains("| -1.00 | +0.0000 | n = 1: no CI |"),
            "{table}"
        );
        assert!(table.contains("no confidence intervals"), "{table}");
    }

    /// A result whose kept epoch (2 of 3) has validation accuracy `val_acc`.
    fn with_val_acc(variant: &str, seed: u64, test_acc: f64, val_acc: f64) -> RunResult {
        let mut r = result(variant, seed, test_acc);
        r.metrics.epochs = (1..=3)
            .map(|epoch| crate::EpochMetrics {
                epoch,
                lr: 1e-3,
                train_loss: 0.1,
                train_acc: 0.9,
                val_loss: 0.1,
                val_acc: if epoch == 2 { val_acc } else { 0.5 },
                seconds: 1.0,
                eval_seconds: 0.1,
            })
            .collect();
        r.metrics.best_epoch = 2;
        r
    }

    #[test]
    fn ranked_sorts_by_the_kept_epochs_validation_accuracy_not_the_test_accuracy() {
        let results = [
            with_val_acc("a", 0, 0.99, 0.95),
            with_val_acc("a", 1, 0.99, 0.95),
            with_val_acc("b", 0, 0.90, 0.97),
            with_val_acc("b", 1, 0.90, 0.97),
        ];
        let report = Report::new(&results).ranked();
        let names: Vec<&str> = report.variants.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        assert_eq!(report.best.as_deref(), Some("b"));
        let val = report.variants[0].val_acc.expect("measured");
        assert!((val.mean - 0.97).abs() < 1e-12, "{val:?}");
        let table = report.markdown(false);
        assert!(table.contains("| val acc, kept epoch (%) |"), "{table}");
        assert!(
            table.contains("| **b** (best) | 2 | 97.00 ± 0.00 |"),
            "{table}"
        );
        assert!(table.contains("best: b."), "{table}");
        assert!(table.contains("With 2 seeds t = 12.7"), "{table}");
    }

    #[test]
    fn an_unranked_report_has_no_validation_column_and_no_best() {
        let table = Report::new(&[with_val_acc("a", 0, 0.99, 0.95)]).markdown(false);
        assert!(!table.contains("val acc"), "{table}");
        assert!(!table.contains("best"), "{table}");
    }
}
