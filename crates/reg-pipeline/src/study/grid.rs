//! A sweep's grid, read from a TOML file.

use std::path::Path;

use serde::Deserialize;

use super::{Study, StudyError};
use crate::{MlpConfig, ModelConfig, TrainConfig, Trainer};

/// Dropout of one grid point: one probability for every hidden layer, or one per layer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum DropoutSetting {
    /// The same probability after every hidden layer.
    All(f64),
    /// One probability per hidden layer.
    PerLayer(Vec<f64>),
}

/// A grid of learning rate × L2 × dropout × seeds over the tutorial's model
/// ([`TrainConfig::default`] for every other setting).
///
/// ```
/// use reg_pipeline::study::SweepGrid;
///
/// let grid = SweepGrid::from_toml(
///     r#"
///     name = "lr-l2-dropout"
///     epochs = 10
///     seeds = [0, 1, 2]
///     lr = [1e-3, 3e-3]
///     l2 = [0.0, 0.005]
///     dropout = [0.0, [0.3, 0.2]]
///     "#,
/// )?;
/// let study = grid.study(784).map_err(|e| e.to_string())?;
/// assert_eq!(study.runs().len(), 2 * 2 * 2 * 3);
/// assert_eq!(study.runs()[0].variant, "lr 0.001, L2 0, dropout 0");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepGrid {
    /// The study's name.
    pub name: String,
    /// Most epochs per run (≥ 1; warmup is min(3, epochs − 1)).
    pub epochs: usize,
    /// The seeds every grid point runs with.
    pub seeds: Vec<u64>,
    /// Peak learning rates. Default `[0.001]`.
    #[serde(default = "default_lr")]
    pub lr: Vec<f64>,
    /// L2 strengths λ. Default `[0.005]`.
    #[serde(default = "default_l2")]
    pub l2: Vec<f64>,
    /// Dropout settings. Default `[[0.3, 0.2]]`.
    #[serde(default = "default_dropout")]
    pub dropout: Vec<DropoutSetting>,
    /// Train on only the first this many training images (all when absent).
    #[serde(default)]
    pub train_images: Option<usize>,
}

fn default_lr() -> Vec<f64> {
    vec![TrainConfig::default().lr]
}

fn default_l2() -> Vec<f64> {
    vec![TrainConfig::default().l2]
}

fn default_dropout() -> Vec<DropoutSetting> {
    vec![DropoutSetting::PerLayer(MlpConfig::default().dropout)]
}

impl SweepGrid {
    /// Parses a grid.
    ///
    /// # Errors
    /// The TOML parser's error (with its line) for bad syntax, unknown keys or wrong types.
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// Reads and parses the grid file at `path`.
    ///
    /// # Errors
    /// [`StudyError::Pipeline`] when the file cannot be read, [`StudyError::NotAFile`] or
    /// [`StudyError::FileTooLarge`] for a device, a FIFO or a file over 1 MiB,
    /// [`StudyError::GridSyntax`] when it does not parse.
    pub fn load(path: &Path) -> Result<Self, StudyError> {
        let bytes = super::files::read_bounded(path, super::files::MAX_GRID_BYTES)?;
        let text = String::from_utf8_lossy(&bytes);
        Self::from_toml(&text).map_err(|source| StudyError::GridSyntax {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    /// The study: every (lr, L2, dropout) point in that nesting order, each over every seed,
    /// for images of `inputs` pixels. The lists are checked first (none empty, no value twice,
    /// at most [`super::MAX_RUNS`] runs), then every point's settings
    /// ([`TrainConfig::validate`], microseconds each) and the first point's trainer once, so a
    /// bad value fails now rather than hours into the sweep.
    ///
    /// # Errors
    /// [`StudyError::InvalidGrid`] (with an empty path) when a list is empty or repeats a
    /// value, the grid has too many runs, or a point's settings are refused.
    pub fn study(&self, inputs: usize) -> Result<Study, StudyError> {
        let invalid = |reason: String| StudyError::InvalidGrid {
            path: Default::default(),
            reason,
        };
        self.check_lists().map_err(invalid)?;
        let data = match self.train_images {
            Some(n) => format!("MNIST, first {n} training images"),
            None => "MNIST".to_owned(),
        };
        let mut study = Study::new(&self.name, data, None);
        let base = TrainConfig {
            epochs: self.epochs,
            warmup: TrainConfig::default()
                .warmup
                .min(self.epochs.saturating_sub(1)),
            ..TrainConfig::default()
        };
        let hidden_layers = MlpConfig::default().sizes.len() - 2;
        for &lr in &self.lr {
            for &l2 in &self.l2 {
                for dropout in &self.dropout {
                    let (probabilities, label) = dropout.resolve(hidden_layers);
                    let mut config = TrainConfig {
                        lr,
                        l2,
                        ..base.clone()
                    };
                    let mut sizes = MlpConfig::default().sizes;
                    sizes[0] = inputs;
                    config.model = ModelConfig::Mlp(MlpConfig {
                        sizes,
                        dropout: probabilities,
                        ..MlpConfig::default()
                    });
                    let variant = format!("lr {}, L2 {}, dropout {label}", short(lr), short(l2));
                    let checked = if study.runs().is_empty() {
                        Trainer::new(config.clone()).map(drop)
                    } else {
                        config.validate()
                    };
                    checked.map_err(|e| invalid(format!("{variant}: {e}")))?;
                    for &seed in &self.seeds {
                        study.push(
                            &variant,
                            seed,
                            TrainConfig {
                                seed,
                                ..config.clone()
                            },
                        );
                    }
                }
            }
        }
        Ok(study)
    }

    /// Refuses an empty list, a value listed twice (`lr = [1e-3, 0.001]` would make one row
    /// of runs that are all the same, with a false ± 0) and more than [`super::MAX_RUNS`] runs.
    fn check_lists(&self) -> Result<(), String> {
        let hidden_layers = MlpConfig::default().sizes.len() - 2;
        let mut seeds = self.seeds.clone();
        seeds.sort_unstable();
        let lists: [(&str, Vec<Vec<f64>>); 3] = [
            ("lr", self.lr.iter().map(|&v| vec![v]).collect()),
            ("l2", self.l2.iter().map(|&v| vec![v]).collect()),
            (
                "dropout",
                self.dropout
                    .iter()
                    .map(|d| d.resolve(hidden_layers).0)
                    .collect(),
            ),
        ];
        if seeds.is_empty() {
            return Err("`seeds` lists no value".to_owned());
        }
        if seeds.windows(2).any(|w| w[0] == w[1]) {
            return Err("`seeds` lists a seed twice".to_owned());
        }
        for (key, mut values) in lists {
            if values.is_empty() {
                return Err(format!("`{key}` lists no value"));
            }
            values.sort_by(|a: &Vec<f64>, b| {
                a.iter()
                    .zip(b)
                    .map(|(x, y)| x.total_cmp(y))
                    .find(|o| o.is_ne())
                    .unwrap_or_else(|| a.len().cmp(&b.len()))
            });
            if values.windows(2).any(|w| w[0] == w[1]) {
                return Err(format!("`{key}` lists a value twice"));
            }
        }
        let runs = [self.lr.len(), self.l2.len(), self.dropout.len()]
            .into_iter()
            .try_fold(self.seeds.len(), usize::checked_mul);
        if runs.is_none_or(|runs| runs > super::MAX_RUNS) {
            return Err("the grid has more than 100,000 runs (points × seeds)".to_owned());
        }
        Ok(())
    }
}

/// `value` as a variant name shows it: plain (`0.001`, `0`) unless very large or very small,
/// then with an exponent (`1e308`, not 309 digits).
fn short(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude != 0.0 && !(1e-4..1e6).contains(&magnitude) {
        format!("{value:e}")
    } else {
        format!("{value}")
    }
}

impl DropoutSetting {
    /// The probability of each of `hidden_layers` layers, and the setting as a variant name
    /// shows it (`0.3`, or `0.3/0.2` per layer).
    fn resolve(&self, hidden_layers: usize) -> (Vec<f64>, String) {
        match self {
            DropoutSetting::All(p) => (vec![*p; hidden_layers], format!("{p}")),
            DropoutSetting::PerLayer(ps) => (
                ps.clone(),
                ps.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("/"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_refused() {
        assert!(
            SweepGrid::from_toml("name = \"x\"\nepochs = 1\nseeds = [0]\nlearning_rate = [1]")
                .is_err()
        );
    }

    #[test]
    fn defaults_are_the_tutorial_settings() {
        let grid = SweepGrid::from_toml("name = \"x\"\nepochs = 2\nseeds = [0, 1]").expect("valid");
        let study = grid.study(784).expect("valid");
        assert_eq!(study.runs().len(), 2);
        let config = &study.runs()[1].config;
        assert_eq!((config.lr, config.l2, config.seed), (1e-3, 0.005, 1));
        assert_eq!(config.model.dropout(), [0.3, 0.2]);
    }

    #[test]
    fn bad_values_are_an_invalid_grid() {
        for text in [
            "name = \"x\"\nepochs = 2\nseeds = [0, 0]",
            "name = \"x\"\nepochs = 2\nseeds = [0]\nlr = [1e-3, 0.001]",
            "name = \"x\"\nepochs = 2\nseeds = [0]\nl2 = [0.0, 0.1, 0.0]",
            "name = \"x\"\nepochs = 2\nseeds = [0]\ndropout = [0.3, [0.3, 0.3]]",
            "name = \"x\"\nepochs = 2\nseeds = []",
            "name = \"x\"\nepochs = 2\nseeds = [0]\nlr = [-1.0]",
            "name = \"x\"\nepochs = 2\nseeds = [0]\ndropout = [1.5]",
            "name = \"x\"\nepochs = 2\nseeds = [0]\ndropout = [[0.1]]",
        ] {
            let grid = SweepGrid::from_toml(text).expect("parses");
            assert!(
                matches!(grid.study(784), Err(StudyError::InvalidGrid { .. })),
                "{text}"
            );
        }
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    #[test]
    fn a_grid_of_ten_thousand_points_is_checked_in_well_under_a_second() {
        let values = |n: usize, scale: f64| {
            (1..=n)
                .map(|i| format!("{}", i as f64 * scale))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let text = format!(
            "name = \"big\"\nepochs = 2\nseeds = [0]\nlr = [{}]\nl2 = [{}]",
            values(100, 1e-4),
            values(100, 1e-3)
        );
        let grid = SweepGrid::from_toml(&text).expect("parses");
        let started = std::time::Instant::now();
        let study = grid.study(784).expect("valid");
        assert_eq!(study.runs().len(), 10_000);
        // Building a trainer per point took 17 ms each (168 s); a check per point and one
        // trainer take milliseconds in all, so even a debug build on a busy machine is far
        // below this bound.
        assert!(
            started.elapsed().as_secs_f64() < 5.0,
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn extreme_values_are_named_with_an_exponent() {
        let grid = SweepGrid::from_toml("name = \"x\"\nepochs = 2\nseeds = [0]\nl2 = [1e308, 0.0]")
            .expect("parses");
        let study = grid.study(784).expect("valid");
        assert_eq!(
            study.runs()[0].variant,
            "lr 0.001, L2 1e308, dropout 0.3/0.2"
        );
        assert_eq!(study.runs()[1].variant, "lr 0.001, L2 0, dropout 0.3/0.2");
    }

    #[test]
    fn a_grid_of_too_many_runs_is_refused_before_it_is_built() {
        let seeds = (0..1000)
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let lr = (1..=101)
            .map(|i| format!("{}", f64::from(i) * 1e-4))
            .collect::<Vec<_>>()
            .join(", ");
        let text = format!("name = \"x\"\nepochs = 2\nseeds = [{seeds}]\nlr = [{lr}]");
        let grid = SweepGrid::from_toml(&text).expect("parses");
        assert!(matches!(
            grid.study(784),
            Err(StudyError::InvalidGrid { .. })
        ));
    }
}
