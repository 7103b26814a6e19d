//! Which share of a study's runs this process takes.

use std::fmt;
use std::str::FromStr;

use super::StudyError;

/// Shard `index` of `count` (from 0): the runs whose position `p` in the study's order has
/// `p mod count = index`. Dealing runs round-robin rather than in blocks gives every shard a
/// mix of variants, so shards take about equally long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: usize,
    count: usize,
}

impl Shard {
    /// The whole study in one process.
    pub const WHOLE: Self = Self { index: 0, count: 1 };

    /// Shard `index` of `count`.
    ///
    /// # Errors
    /// [`StudyError::Shard`] when `count` is 0 or `index ≥ count`.
    pub fn new(index: usize, count: usize) -> Result<Self, StudyError> {
        if count == 0 || index >= count {
            return Err(StudyError::Shard {
                value: format!("{index}/{count}"),
                reason: "expected i/n with n ≥ 1 and 0 ≤ i < n",
            });
        }
        Ok(Self { index, count })
    }

    /// This shard's index, from 0.
    #[must_use]
    pub fn index(&self) -> usize {
        self.index
    }

    /// How many shards share the study.
    #[must_use]
    pub fn count(&self) -> usize {
        self.count
    }

    /// Whether this shard is the whole study.
    #[must_use]
    pub fn is_whole(&self) -> bool {
        self.count == 1
    }

    /// Positions, among `runs`, of this shard's runs, in order.
    pub fn indices(&self, runs: usize) -> impl Iterator<Item = usize> + use<> {
        (self.index..runs).step_by(self.count)
    }

    /// The shard from, in order of precedence: `flag` (`--shard i/n`); a Slurm job array
    /// (`SLURM_ARRAY_TASK_ID` − `SLURM_ARRAY_TASK_MIN`, divided by `SLURM_ARRAY_TASK_STEP`,
    /// of `SLURM_ARRAY_TASK_COUNT`); a Kubernetes Indexed Job (`JOB_COMPLETION_INDEX` of
    /// `count`, which comes from `--shard-count` or `REG_SHARD_COUNT`); else the whole study.
    /// `env` looks a variable up (`|k| std::env::var(k).ok()` in a program).
    ///
    /// A Slurm array must be a range (`--array=0-6` or `0-12:2`): its ids are then
    /// `MIN + k·STEP` for `k < COUNT`. A list (`--array=0,2`) or a partial resubmission is
    /// refused, since its ids cannot be mapped onto shards.
    ///
    /// # Errors
    /// [`StudyError::Shard`] when a value is malformed or out of range, when
    /// `JOB_COMPLETION_INDEX` is set without a count, or when a count is given but the index
    /// does not come from `JOB_COMPLETION_INDEX`; [`StudyError::SlurmArray`] for an array
    /// that is not a range or a step of 0.
    pub fn resolve(
        flag: Option<Shard>,
        count: Option<usize>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, StudyError> {
        let number = |name: &'static str| -> Result<Option<usize>, StudyError> {
            env(name)
                .map(|v| {
                    v.trim().parse::<usize>().map_err(|_| StudyError::Shard {
                        value: format!("{name}={v}"),
                        reason: "not a non-negative integer",
                    })
                })
                .transpose()
        };
        let k8s_index = number("JOB_COMPLETION_INDEX")?;
        let slurm_id = number("SLURM_ARRAY_TASK_ID")?;
        if let Some(count) =
            count.filter(|_| flag.is_some() || k8s_index.is_none() || slurm_id.is_some())
        {
            return Err(StudyError::Shard {
                value: format!("--shard-count {count}"),
                reason: "applies only to a Kubernetes Indexed Job (JOB_COMPLETION_INDEX set, no --shard and no Slurm array); --shard I/N and a Slurm array carry their own count",
            });
        }
        if let Some(shard) = flag {
            return Ok(shard);
        }
        if let Some(id) = slurm_id {
            return slurm_shard(id, &number);
        }
        if let Some(index) = k8s_index {
            let count = match count {
                Some(c) => Some(c),
                None => number("REG_SHARD_COUNT")?,
            };
            let Some(count) = count else {
                return Err(StudyError::Shard {
                    value: format!("JOB_COMPLETION_INDEX={index}"),
                    reason: "give the number of completions with --shard-count or REG_SHARD_COUNT",
                });
            };
            return Self::new(index, count);
        }
        Ok(Self::WHOLE)
    }
}

/// The shard of Slurm array task `id`, from the array's `SLURM_ARRAY_TASK_*` variables.
fn slurm_shard(
    id: usize,
    number: &dyn Fn(&'static str) -> Result<Option<usize>, StudyError>,
) -> Result<Shard, StudyError> {
    let Some(total) = number("SLURM_ARRAY_TASK_COUNT")? else {
        return Err(StudyError::Shard {
            value: format!("SLURM_ARRAY_TASK_ID={id}"),
            reason: "SLURM_ARRAY_TASK_COUNT is not set",
        });
    };
    let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
    let step = number("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1);
    let max = number("SLURM_ARRAY_TASK_MAX")?;
    let found = || {
        format!(
            "SLURM_ARRAY_TASK_ID={id}, SLURM_ARRAY_TASK_MIN={min}, SLURM_ARRAY_TASK_MAX={}, \
             SLURM_ARRAY_TASK_STEP={step}, SLURM_ARRAY_TASK_COUNT={total}",
            max.map_or_else(|| "(unset)".to_owned(), |m| m.to_string())
        )
    };
    let refuse = |reason| StudyError::SlurmArray {
        found: found(),
        reason,
    };
    if step == 0 {
        return Err(refuse("a step of 0 is not an array's step"));
    }
    let last = total
        .checked_sub(1)
        .and_then(|k| k.checked_mul(step))
        .and_then(|span| span.checked_add(min));
    let is_range = last.is_some() && max.is_none_or(|max| Some(max) == last);
    let position = id
        .checked_sub(min)
        .filter(|offset| offset % step == 0)
        .map(|offset| offset / step)
        .filter(|&k| k < total);
    match (is_range, position) {
        (true, Some(k)) => Shard::new(k, total),
        _ => Err(refuse(
            "the array's task ids are not MIN + k·STEP for k < COUNT (a list such as \
             --array=0,2, or a partial resubmission): submit the whole range again \
             (--array=0-N or --array=0-N:STEP; finished runs are skipped), or run one shard \
             by hand with --shard I/N",
        )),
    }
}

impl FromStr for Shard {
    type Err = StudyError;

    /// `"i/n"`, `i` from 0.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let malformed = || StudyError::Shard {
            value: s.to_owned(),
            reason: "expected i/n with n ≥ 1 and 0 ≤ i < n",
        };
        let (i, n) = s.split_once('/').ok_or_else(malformed)?;
        let i = i.trim().parse().map_err(|_| malformed())?;
        let n = n.trim().parse().map_err(|_| malformed())?;
        Self::new(i, n)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn shards_partition_the_runs() {
        let mut seen: Vec<usize> = (0..3)
            .flat_map(|i| Shard::new(i, 3).expect("valid").indices(10))
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        assert_eq!(
            Shard::new(2, 3)
                .expect("valid")
                .indices(10)
                .collect::<Vec<_>>(),
            [2, 5, 8]
        );
    }

    #[test]
    fn parse_and_display_round_trip() {
        let shard: Shard = "2/5".parse().expect("valid");
        assert_eq!((shard.index(), shard.count()), (2, 5));
        assert_eq!(shard.to_string(), "2/5");
        for bad in ["3/3", "1/0", "1", "a/2", "-1/2", ""] {
            assert!(
                matches!(bad.parse::<Shard>(), Err(StudyError::Shard { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_flag_wins_over_the_environment() {
        let flag = Shard::new(1, 2).expect("valid");
        let slurm = env(&[
            ("SLURM_ARRAY_TASK_ID", "0"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]);
        assert_eq!(
            Shard::resolve(Some(flag), None, slurm).expect("valid"),
            flag
        );
    }

    #[test]
    fn slurm_array_ids_are_counted_from_the_array_start() {
        let plain = env(&[
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ]);
        assert_eq!(
            Shard::resolve(None, None, plain).expect("valid"),
            Shard::new(2, 3).expect("v")
        );
        // --array=1-3
        let from_one = env(&[
            ("SLURM_ARRAY_TASK_ID", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
        ]);
        assert_eq!(
            Shard::resolve(None, None, from_one).expect("valid"),
            Shard::new(0, 3).expect("v")
        );
        // --array=0-8:4 has the ids 0, 4, 8.
        let stepped = env(&[
            ("SLURM_ARRAY_TASK_ID", "8"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
            ("SLURM_ARRAY_TASK_STEP", "4"),
        ]);
        assert_eq!(
            Shard::resolve(None, None, stepped).expect("valid"),
            Shard::new(2, 3).expect("v")
        );
        let no_count = env(&[("SLURM_ARRAY_TASK_ID", "0")]);
        assert!(matches!(
            Shard::resolve(None, None, no_count),
            Err(StudyError::Shard { .. })
        ));
        let past_end = env(&[
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ]);
        assert!(matches!(
            Shard::resolve(None, None, past_end),
            Err(StudyError::SlurmArray { .. })
        ));
    }

    #[test]
    fn kubernetes_index_needs_a_count() {
        let k8s = env(&[("JOB_COMPLETION_INDEX", "1")]);
        assert!(matches!(
            Shard::resolve(None, None, &k8s),
            Err(StudyError::Shard { .. })
        ));
        assert_eq!(
            Shard::resolve(None, Some(4), &k8s).expect("valid"),
            Shard::new(1, 4).expect("v")
        );
        let with_env = env(&[("JOB_COMPLETION_INDEX", "3"), ("REG_SHARD_COUNT", "4")]);
        assert_eq!(
            Shard::resolve(None, None, with_env).expect("valid"),
            Shard::new(3, 4).expect("v")
        );
    }

    #[test]
    fn a_slurm_list_array_is_refused_naming_the_variables() {
        // --array=0,2: Slurm sets COUNT=2, MIN=0, MAX=2, STEP=1 in both tasks.
        for id in ["0", "2"] {
            let vars = [
                ("SLURM_ARRAY_TASK_ID", id),
                ("SLURM_ARRAY_TASK_COUNT", "2"),
                ("SLURM_ARRAY_TASK_MIN", "0"),
                ("SLURM_ARRAY_TASK_MAX", "2"),
                ("SLURM_ARRAY_TASK_STEP", "1"),
            ];
            let list = env(&vars);
            assert!(
                matches!(
                    Shard::resolve(None, None, list),
                    Err(StudyError::SlurmArray { .. })
                ),
                "task {id}"
            );
        }
        // --array=0-4:2 is a range: ids 0, 2, 4.
        let stepped = env(&[
            ("SLURM_ARRAY_TASK_ID", "4"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_MAX", "4"),
            ("SLURM_ARRAY_TASK_STEP", "2"),
        ]);
        assert_eq!(
            Shard::resolve(None, None, stepped).expect("valid"),
            Shard::new(2, 3).expect("v")
        );
    }

    #[test]
    fn a_slurm_step_of_zero_is_refused() {
        let zero = env(&[
            ("SLURM_ARRAY_TASK_ID", "0"),
            ("SLURM_ARRAY_TASK_COUNT", "2"),
            ("SLURM_ARRAY_TASK_STEP", "0"),
        ]);
        assert!(matches!(
            Shard::resolve(None, None, zero),
            Err(StudyError::SlurmArray { .. })
        ));
    }

    #[test]
    fn a_shard_count_without_a_kubernetes_index_is_refused() {
        assert!(matches!(
            Shard::resolve(None, Some(4), env(&[])),
            Err(StudyError::Shard { .. })
        ));
        let slurm = env(&[
            ("SLURM_ARRAY_TASK_ID", "0"),
            ("SLURM_ARRAY_TASK_COUNT", "2"),
        ]);
        assert!(matches!(
            Shard::resolve(None, Some(4), slurm),
            Err(StudyError::Shard { .. })
        ));
        let flag = Shard::new(0, 2).expect("valid");
        assert!(matches!(
            Shard::resolve(Some(flag), Some(2), env(&[])),
            Err(StudyError::Shard { .. })
        ));
    }

    #[test]
    fn no_setting_is_the_whole_study() {
        assert_eq!(
            Shard::resolve(None, None, env(&[])).expect("valid"),
            Shard::WHOLE
        );
        assert!(Shard::WHOLE.is_whole());
    }
}
