//! The one place that says what an [`MlpConfig`] is made of: whether it is valid, where each
//! layer sits in the equivalent PyTorch `nn.Sequential`, and which tensors the model has —
//! names, order and shapes. [`Mlp`](crate::Mlp) names its parameters from it; checkpoints,
//! export and import check files against it.
//!
//! The `nn.Sequential` of a config is, per hidden layer, Linear → BatchNorm (when
//! `batch_norm`) → ReLU → Dropout (when p > 0), then the output Linear. Layers left out take no
//! index, exactly as when that `nn.Sequential` is built; ReLU and Dropout have no tensors but
//! take an index.

use crate::MlpConfig;

/// Why an [`MlpConfig`] cannot describe a model: the setting, its value and what is allowed.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigProblem {
    /// The setting: `sizes` or `dropout`.
    pub name: &'static str,
    /// The rejected value as a number (a count, a width or a probability).
    pub value: f64,
    /// The rejected value as the user wrote it (`[784, 0, 10]`, `[0.3]`, …).
    pub shown: String,
    /// What is allowed, written for a person.
    pub allowed: &'static str,
}

impl From<ConfigProblem> for reg_core::Error {
    fn from(p: ConfigProblem) -> Self {
        reg_core::Error::InvalidHyperParameter {
            name: p.name,
            value: p.value,
            allowed: p.allowed,
        }
    }
}

/// What one tensor of the model is, and how it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorKind {
    /// A Linear weight: `(in, out)` in reg, `(out, in)` in PyTorch's files.
    Weight {
        /// Input width.
        inputs: usize,
        /// Output width.
        outputs: usize,
    },
    /// A Conv2d weight: `(out, in·k·k)` in reg (the kernel's values in PyTorch's order, as
    /// one row per output channel), `(out, in, k, k)` in files.
    Kernel {
        /// Output channels.
        out_channels: usize,
        /// Input channels.
        in_channels: usize,
        /// Side of the square kernel.
        kernel_size: usize,
    },
    /// A per-feature vector: `(1, n)` in reg, `(n,)` in files.
    Vector(usize),
    /// BatchNorm's `num_batches_tracked`: `(1, 1)` F32 in reg, an I64 scalar in exports.
    Count,
}

impl TensorKind {
    /// The shape reg keeps the tensor in.
    #[must_use]
    pub fn shape(self) -> [usize; 2] {
        match self {
            TensorKind::Weight { inputs, outputs } => [inputs, outputs],
            TensorKind::Kernel {
                out_channels,
                in_channels,
                kernel_size,
            } => [out_channels, in_channels * kernel_size * kernel_size],
            TensorKind::Vector(n) => [1, n],
            TensorKind::Count => [1, 1],
        }
    }

    /// The shape of the tensor in a PyTorch state dict.
    #[must_use]
    pub fn file_shape(self) -> Vec<usize> {
        match self {
            TensorKind::Weight { inputs, outputs } => vec![outputs, inputs],
            TensorKind::Kernel {
                out_channels,
                in_channels,
                kernel_size,
            } => vec![out_channels, in_channels, kernel_size, kernel_size],
            TensorKind::Vector(n) => vec![n],
            TensorKind::Count => Vec::new(),
        }
    }
}

/// Positions of one hidden block's layers in the `nn.Sequential`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockIndices {
    /// The Linear.
    pub linear: usize,
    /// The BatchNorm, when the model has one.
    pub batch_norm: Option<usize>,
}

/// The layout of a valid [`MlpConfig`]'s model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// One per hidden block, input side first.
    pub blocks: Vec<BlockIndices>,
    /// Position of the output Linear.
    pub output: usize,
    /// Every tensor of the model, in state-dict order: per layer, a Linear's `weight` and
    /// `bias`, a BatchNorm's `weight`, `bias`, `running_mean`, `running_var`,
    /// `num_batches_tracked`.
    pub tensors: Vec<(String, TensorKind)>,
}

/// A BatchNorm's tensors, in state-dict order.
pub const BATCH_NORM_TENSORS: [&str; 5] = [
    "weight",
    "bias",
    "running_mean",
    "running_var",
    "num_batches_tracked",
];

impl MlpConfig {
    /// The first reason this config cannot describe a model, if any: fewer than two sizes, a
    /// zero width, not one dropout probability per hidden layer, or a probability outside
    /// [0, 1) (NaN included). The one check every user of a config relies on.
    #[must_use]
    pub fn problem(&self) -> Option<ConfigProblem> {
        let sizes = &self.sizes;
        if sizes.len() < 2 || sizes.contains(&0) {
            return Some(ConfigProblem {
                name: "sizes",
                value: sizes.iter().copied().min().unwrap_or(0) as f64,
                shown: format!("{sizes:?}"),
                allowed: "two or more widths, each >= 1",
            });
        }
        if self.dropout.len() != sizes.len() - 2 {
            return Some(ConfigProblem {
                name: "dropout",
                value: self.dropout.len() as f64,
                shown: format!("{:?}", self.dropout),
                allowed: "one probability per hidden layer",
            });
        }
        let bad = self.dropout.iter().find(|p| !(0.0..1.0).contains(*p))?;
        Some(ConfigProblem {
            name: "dropout",
            value: *bad,
            shown: bad.to_string(),
            allowed: "each probability in [0, 1)",
        })
    }

    /// The layout of the model this config describes, computed without building it (so a
    /// hostile config from a file allocates nothing).
    ///
    /// # Errors
    /// The config's [`problem`](MlpConfig::problem).
    pub fn layout(&self) -> Result<Layout, ConfigProblem> {
        if let Some(problem) = self.problem() {
            return Err(problem);
        }
        let mut tensors = Vec::new();
        let linear = |tensors: &mut Vec<_>, i: usize, inputs: usize, outputs: usize| {
            tensors.push((
                format!("{i}.weight"),
                TensorKind::Weight { inputs, outputs },
            ));
            tensors.push((format!("{i}.bias"), TensorKind::Vector(outputs)));
        };
        let mut blocks = Vec::new();
        let mut index = 0;
        for (pair, &p) in self.sizes.windows(2).zip(&self.dropout) {
            linear(&mut tensors, index, pair[0], pair[1]);
            let mut block = BlockIndices {
                linear: index,
                batch_norm: None,
            };
            index += 1;
            if self.batch_norm {
                for field in BATCH_NORM_TENSORS {
                    let kind = match field {
                        "num_batches_tracked" => TensorKind::Count,
                        _ => TensorKind::Vector(pair[1]),
                    };
                    tensors.push((format!("{index}.{field}"), kind));
                }
                block.batch_norm = Some(index);
                index += 1;
            }
            index += 1; // ReLU
            if p > 0.0 {
                index += 1; // Dropout
            }
            blocks.push(block);
        }
        let n = self.sizes.len();
        linear(&mut tensors, index, self.sizes[n - 2], self.sizes[n - 1]);
        Ok(Layout {
            blocks,
            output: index,
            tensors,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Mlp;

    /// The model's tensors are the layout's, in its order and shapes, for every combination
    /// of BatchNorm and dropout (a dropout of 0 takes no index).
    #[test]
    fn the_model_has_exactly_the_layout_s_tensors() {
        for batch_norm in [false, true] {
            for dropout in [vec![0.0, 0.5], vec![0.3, 0.0]] {
                let config = MlpConfig {
                    sizes: vec![6, 5, 4, 3],
                    dropout,
                    batch_norm,
                    ..MlpConfig::default()
                };
                let layout = config.layout().unwrap();
                let model = Mlp::<f32>::new(&config, 1).unwrap();
                let state: Vec<(String, [usize; 2])> = model
                    .state()
                    .into_iter()
                    .map(|(n, v)| (n, [v.nrows(), v.ncols()]))
                    .collect();
                let expected: Vec<(String, [usize; 2])> = layout
                    .tensors
                    .iter()
                    .map(|(n, k)| (n.clone(), k.shape()))
                    .collect();
                assert_eq!(state, expected);
                assert_eq!(model.output_index(), layout.output);
            }
        }
        let config = MlpConfig {
            sizes: vec![6, 5, 3],
            dropout: vec![0.5],
            batch_norm: true,
            ..MlpConfig::default()
        };
        // Linear 0, BatchNorm 1, ReLU 2, Dropout 3, output Linear 4.
        assert_eq!(config.layout().unwrap().output, 4);
    }

    #[test]
    fn problems_name_the_setting() {
        let with = |sizes: Vec<usize>, dropout: Vec<f64>| MlpConfig {
            sizes,
            dropout,
            ..MlpConfig::default()
        };
        let name = |c: MlpConfig| c.problem().map(|p| p.name);
        assert_eq!(name(with(vec![784, 10], vec![])), None);
        assert_eq!(name(with(vec![784], vec![])), Some("sizes"));
        assert_eq!(name(with(vec![784, 0, 10], vec![0.1])), Some("sizes"));
        assert_eq!(name(with(vec![784, 5, 10], vec![])), Some("dropout"));
        assert_eq!(
            name(with(vec![784, 5, 10], vec![f64::NAN])),
            Some("dropout")
        );
        assert_eq!(name(with(vec![784, 5, 10], vec![1.0])), Some("dropout"));
    }

    /// The output Linear takes the last two widths, whatever their number: one Linear alone
    /// (no hidden layer), and four hidden layers.
    #[test]
    fn the_output_linear_takes_the_last_two_widths() {
        for sizes in [vec![6, 3], vec![9, 8, 7, 6, 5, 4]] {
            let config = MlpConfig {
                dropout: vec![0.0; sizes.len() - 2],
                sizes: sizes.clone(),
                batch_norm: false,
                ..MlpConfig::default()
            };
            let layout = config.layout().unwrap();
            let model = Mlp::<f32>::new(&config, 1).unwrap();
            let shapes: Vec<[usize; 2]> = layout.tensors.iter().map(|(_, k)| k.shape()).collect();
            let state: Vec<[usize; 2]> = model
                .state()
                .iter()
                .map(|(_, v)| [v.nrows(), v.ncols()])
                .collect();
            assert_eq!(shapes, state, "{sizes:?}");
            let n = sizes.len();
            assert_eq!(
                layout.tensors[layout.tensors.len() - 2].1,
                TensorKind::Weight {
                    inputs: sizes[n - 2],
                    outputs: sizes[n - 1]
                },
                "{sizes:?}"
            );
            // Linear and ReLU per hidden layer, then the output Linear.
            assert_eq!(layout.output, 2 * (n - 2), "{sizes:?}");
        }
    }

    /// reg keeps a weight as `(in, out)` and a vector as a row; a PyTorch state dict has
    /// `(out, in)`, `(n,)` and a scalar count.
    #[test]
    fn tensors_have_reg_s_shapes_in_memory_and_pytorch_s_in_files() {
        let weight = TensorKind::Weight {
            inputs: 3,
            outputs: 2,
        };
        assert_eq!(weight.shape(), [3, 2]);
        assert_eq!(weight.file_shape(), [2, 3]);
        assert_eq!(TensorKind::Vector(4).shape(), [1, 4]);
        assert_eq!(TensorKind::Vector(4).file_shape(), [4]);
        assert_eq!(TensorKind::Count.shape(), [1, 1]);
        assert!(TensorKind::Count.file_shape().is_empty());
    }
}
