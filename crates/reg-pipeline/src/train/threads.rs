//! The process's thread count for training. Every product in `nn::matmul` splits its work over
//! rayon's global pool, whose size is set here, once.

use crate::PipelineError;

/// Sets how many threads training uses, for the whole process (rayon's global pool): each
/// training step and evaluation runs on one of them, and the matrix products and the
/// optimizer's update split their work with the others, which during an epoch also prepare
/// the next batch and dropout masks. `None` takes one thread per core; 1
/// makes training fully sequential (on the calling thread). More threads than the machine's
/// cores ([`std::thread::available_parallelism`]) are clamped to that count: extra threads
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
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
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
