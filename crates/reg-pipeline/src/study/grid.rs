//! A sweep's grid, read from a TOML file.

use std::path::Path;

use serde::Deserialize;

use super::{Study, StudyError};
use crate::{PipelineError, TrainConfig, Trainer};

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
    vec![DropoutSetting::PerLayer(
        TrainConfig::default().model.dropout,
    )]
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
    /// [`StudyError::Pipeline`] when the file cannot be read, [`StudyError::GridSyntax`] when
    /// it does not parse.
    pub fn load(path: &Path) -> Result<Self, StudyError> {
        let text = std::fs::read_to_string(path).map_err(|e| PipelineError::io(path, e))?;
        Self::from_toml(&text).map_err(|source| StudyError::GridSyntax {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    /// The study: every (lr, L2, dropout) point in that nesting order, each over every seed,
    /// for images of `inputs` pixels. Each point's settings are checked by building its
    /// trainer once, so a bad value fails now rather than hours into the sweep.
    ///
    /// # Errors
    /// [`StudyError::InvalidGrid`] (with an empty path) when a list is empty or a point's
    /// settings are refused.
    pub fn study(&self, inputs: usize) -> Result<Study, StudyError> {
        let invalid = |reason: String| StudyError::InvalidGrid {
            path: Default::default(),
            reason,
        };
        for (key, empty) in [
            ("seeds", self.seeds.is_empty()),
            ("lr", self.lr.is_empty()),
            ("l2", self.l2.is_empty()),
            ("dropout", self.dropout.is_empty()),
        ] {
            if empty {
                return Err(invalid(format!("`{key}` lists no value")));
            }
        }
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
        let hidden_layers = base.model.sizes.len() - 2;
        for &lr in &self.lr {
            for &l2 in &self.l2 {
                for dropout in &self.dropout {
                    let (probabilities, label) = dropout.resolve(hidden_layers);
                    let mut config = TrainConfig {
                        lr,
                        l2,
                        ..base.clone()
                    };
                    config.model.sizes[0] = inputs;
                    config.model.dropout = probabilities;
                    let variant = format!("lr {lr}, L2 {l2}, dropout {label}");
                    Trainer::new(config.clone()).map_err(|e| invalid(format!("{variant}: {e}")))?;
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
        assert_eq!(config.model.dropout, [0.3, 0.2]);
    }

    #[test]
    fn bad_values_are_an_invalid_grid() {
        for text in [
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
