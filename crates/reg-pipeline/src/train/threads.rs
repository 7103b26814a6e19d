//! The process's thread count for training. Every product in `nn::matmul` splits its work over
//! rayon's global pool, whose size is set here, once.

use crate::PipelineError;

/// The cores this process may use: the smallest of [`std::thread::available_parallelism`]
/// (which follows the CPU affinity mask and a cgroup CPU quota) and `SLURM_CPUS_PER_TASK`
/// (a Slurm task's allotment, which binds nothing when the cluster runs without a task
/// plugin: two 1-CPU tasks on a 2-core node would otherwise start 2 threads each).
///
/// # Errors
/// [`PipelineError::InvalidSetting`] when `SLURM_CPUS_PER_TASK` is set but not a positive
/// integer.
pub fn allotted_cores() -> Result<usize, PipelineError> {
    let available = std::thread::available_parallelism().map_or(1, |n| n.get());
    allotted_of(
        available,
        std::env::var("SLURM_CPUS_PER_TASK").ok().as_deref(),
    )
}

/// [`allotted_cores`] from its inputs: the cores available and `SLURM_CPUS_PER_TASK`.
fn allotted_of(available: usize, slurm_cpus: Option<&str>) -> Result<usize, PipelineError> {
    let Some(value) = slurm_cpus else {
        return Ok(available);
    };
    match value.trim().parse::<usize>() {
        Ok(cpus) if cpus > 0 => Ok(available.min(cpus)),
        _ => Err(PipelineError::InvalidSetting {
            name: "SLURM_CPUS_PER_TASK",
            value: value.to_owned(),
            allowed: "a positive integer (the CPUs Slurm allots to each task)",
        }),
    }
}

/// Sets how many threads training uses, for the whole process (rayon's global pool): each
/// training step and evaluation runs on one of them, and the matrix products and the
/// optimizer's update split their work with the others, which during an epoch also prepare
/// the next batch and dropout masks. `None` takes one thread per core; 1
/// makes training fully sequential (on the calling thread). More threads than the process's
/// cores ([`allotted_cores`]: affinity, cgroup quota, `SLURM_CPUS_PER_TASK`) are clamped to
/// that count: extra threads
/// only wait for each other (1,000 threads made a 5,000-image epoch 200 times slower). The
/// results are bitwise the same for any thread count. Without a call, rayon's default pool
/// applies (`RAYON_NUM_THREADS`, else one thread per core). Returns the thread count in use.
///
/// # Errors
/// [`PipelineError::InvalidSetting`] for 0, or when the pool was already started with another
/// thread count; [`PipelineError::Threads`] when the operating system refuses the threads (a
/// process limit such as `ulimit -u`). After that error rayon's global pool cannot be used in
/// this process: the caller should stop.
pub fn set_threads(threads: Option<usize>) -> Result<usize, PipelineError> {
    let cores = allotted_cores()?;
    let asked = threads.unwrap_or(cores);
    let invalid = |allowed| PipelineError::InvalidSetting {
        name: "threads",
        value: asked.to_string(),
        allowed,
    };
    if asked == 0 {
        return Err(invalid("at least 1"));
    }
    let threads = asked.min(cores);
    match rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
    {
        Ok(()) => Ok(threads),
        // The threads could not be spawned. rayon's global pool is then unusable: asking it
        // anything (even its thread count) would panic, so report and stop here.
        Err(e) if std::error::Error::source(&e).is_some() => Err(PipelineError::Threads {
            threads,
            reason: e.to_string(),
        }),
        // Already built, so asking its size is safe.
        Err(_) if rayon::current_num_threads() == threads => Ok(threads),
        Err(_) => Err(invalid("the thread count already in use in this process")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_cpus_per_task_caps_the_cores() {
        assert_eq!(allotted_of(2, Some("1")).expect("valid"), 1);
        assert_eq!(allotted_of(2, Some("8")).expect("valid"), 2);
        assert_eq!(allotted_of(4, None).expect("valid"), 4);
        for bad in ["0", "two", ""] {
            assert!(
                matches!(
                    allotted_of(2, Some(bad)),
                    Err(PipelineError::InvalidSetting { .. })
                ),
                "{bad:?}"
            );
        }
    }
}
