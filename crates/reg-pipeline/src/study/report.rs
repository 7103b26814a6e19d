//! Tables of a study: mean ± 95 % confidence interval per variant, and the paired difference
//! to the reference variant.

use super::RunResult;
use super::stats::MeanCi;

/// One variant's measurements over its seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantSummary {
    /// The variant's name.
    pub name: String,
    /// Its seeds, in run order.
    pub seeds: Vec<u64>,
    /// Test accuracy (fraction).
    pub test_acc: MeanCi,
    /// Training accuracy in Eval mode with the kept weights (fraction).
    pub train_acc: MeanCi,
    /// Train (Eval mode) minus test accuracy.
    pub gap: MeanCi,
    /// Test cross-entropy.
    pub test_loss: MeanCi,
    /// Fewest and most epochs trained (early stopping can end seeds at different epochs).
    pub epochs: (usize, usize),
    /// Test accuracy minus the reference's, seed by seed; `None` for the reference itself or
    /// when there is no reference.
    pub vs_reference: Option<MeanCi>,
    /// Mean wall-clock seconds per run.
    pub seconds: f64,
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
}

impl Report {
    /// Summarises `results` (from [`super::merge`] or [`super::execute`]) per variant, in
    /// order of first appearance. Seeds are paired with the reference's by seed value.
    #[must_use]
    pub fn new(results: &[RunResult]) -> Self {
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
                let vs_reference = if Some(name) == reference.as_deref() || base.is_empty() {
                    None
                } else {
                    let (mine, theirs): (Vec<f64>, Vec<f64>) = runs
                        .iter()
                        .filter_map(|r| {
                            let other = base.iter().find(|b| b.seed == r.seed)?;
                            Some((r.metrics.test_acc, other.metrics.test_acc))
                        })
                        .unzip();
                    MeanCi::paired_difference(&mine, &theirs)
                };
                Some(VariantSummary {
                    name: name.to_owned(),
                    seeds: runs.iter().map(|r| r.seed).collect(),
                    test_acc: measure(&|r| r.metrics.test_acc)?,
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
        }
    }

    /// A markdown table, then a line saying what ± and Δ mean and which differences are
    /// significant. With `with_time`, a column of mean seconds per run (the only part that
    /// differs between two runs of the same study).
    #[must_use]
    pub fn markdown(&self, with_time: bool) -> String {
        let reference = self.reference.as_deref();
        let mut head = String::from("| model | seeds | test acc (%) |");
        let mut rule = String::from("| --- | ---: | ---: |");
        if let Some(reference) = reference {
            head.push_str(&format!(" Δ test acc vs {reference} (pp) | significant? |"));
            rule.push_str(" ---: | :---: |");
        }
        head.push_str(" train acc, eval (%) | gap (pp) | test loss | epochs |");
        rule.push_str(" ---: | ---: | ---: | ---: |");
        if with_time {
            head.push_str(" time per run |");
            rule.push_str(" ---: |");
        }
        let mut table = format!("{head}\n{rule}\n");
        for v in &self.variants {
            table.push_str(&format!(
                "| {} | {} | {} |",
                v.name,
                v.seeds.len(),
                v.test_acc.format(100.0, 2, false)
            ));
            if reference.is_some() {
                let (delta, significant) = match &v.vs_reference {
                    None => ("—".to_owned(), "—".to_owned()),
                    Some(d) => (
                        d.format(100.0, 2, true),
                        match d.excludes_zero() {
                            Some(true) => "yes".to_owned(),
                            Some(false) => "no".to_owned(),
                            None => "n = 1: no CI".to_owned(),
                        },
                    ),
                };
                table.push_str(&format!(" {delta} | {significant} |"));
            }
            table.push_str(&format!(
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
                table.push_str(&format!(" {:.1} s |", v.seconds));
            }
            table.push('\n');
        }
        table.push('\n');
        table.push_str(&self.legend());
        table
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
        if let Some(reference) = &self.reference {
            let significant: Vec<&str> = self
                .variants
                .iter()
                .filter(|v| v.vs_reference.and_then(|d| d.excludes_zero()) == Some(true))
                .map(|v| v.name.as_str())
                .collect();
            text.push_str(&format!(
                " Δ is the mean of the per-seed differences to {reference} (same seed: same data \
                 order and initialisation), with its 95 % confidence interval; significant when \
                 that interval excludes 0. Significant: {}.",
                if significant.is_empty() {
                    "none".to_owned()
                } else {
                    significant.join(", ")
                }
            ));
        }
        text.push('\n');
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Evaluation, RunMetrics, TrainConfig};

    fn result(variant: &str, seed: u64, test_acc: f64) -> RunResult {
        RunResult {
            study: "s".into(),
            data: "d".into(),
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
        assert!((d.mean + 0.01).abs() < 1e-12, "{d:?}");
        assert_eq!(d.excludes_zero(), Some(true));
        let table = report.markdown(false);
        assert!(table.contains("| worse | 3 | 97.23 ± "), "{table}");
        assert!(table.contains("| yes |"), "{table}");
        assert!(table.contains("Significant: worse."), "{table}");
    }

    #[test]
    fn one_seed_prints_no_interval() {
        let report = Report::new(&[result("full", 0, 0.98), result("other", 0, 0.97)]);
        let table = report.markdown(false);
        assert!(!table.contains('±'), "{table}");
        assert!(table.contains("| -1.00 | n = 1: no CI |"), "{table}");
        assert!(table.contains("no confidence intervals"), "{table}");
    }
}
