//! The network: plain layers (`Linear`, `Relu`; for CNNs `Conv2d`, `MaxPool2d`, `Flatten`), the
//! loss, the `Mlp` with its fused training path, plain SGD, the matrix products, and the
//! portable random numbers that initialise weights.
//! Nothing here reads files, knows about training runs or prints.

pub(crate) mod conv;
pub(crate) mod flatten;
pub(crate) mod fused;
pub(crate) mod im2col;
// The one module that allows `unsafe` (AVX-512 intrinsics): see its doc.
#[allow(unsafe_code)]
pub(crate) mod kernel;
pub mod layout;
pub(crate) mod linear;
pub(crate) mod loss;
pub(crate) mod matmul;
pub(crate) mod model;
pub(crate) mod network;
pub(crate) mod pool;
pub mod random;
pub(crate) mod relu;
pub(crate) mod sgd;

/// The environment variable that chooses the matrix-product path: unset, empty or `auto` for
/// the AVX-512 kernel where the CPU has it, `portable` for `matrixmultiply` everywhere.
pub const PRODUCT_PATH_ENV: &str = "REG_GEMM";

/// The matrix-product path of this process: `"avx512"` (reg's AVX-512 kernel) or
/// `"portable"` (`matrixmultiply`). The two round differently, so a run's bits depend on it:
/// checkpoints, metrics and study results record it.
#[must_use]
pub fn product_path() -> &'static str {
    if kernel::enabled() {
        "avx512"
    } else {
        "portable"
    }
}

/// Checks [`PRODUCT_PATH_ENV`]: a value other than unset, empty, `auto` or `portable` (a
/// misspelt `Portable`, say) is an error rather than silently taken as `auto`. Front ends call
/// this before anything else.
///
/// # Errors
/// [`PipelineError::Environment`](crate::PipelineError::Environment) naming the variable.
pub fn check_product_path_setting() -> Result<(), crate::PipelineError> {
    match std::env::var(PRODUCT_PATH_ENV) {
        Err(std::env::VarError::NotPresent) => Ok(()),
        Ok(v) if matches!(v.as_str(), "" | "auto" | "portable") => Ok(()),
        Ok(v) => Err(bad_product_path(v)),
        Err(std::env::VarError::NotUnicode(v)) => Err(bad_product_path(v.to_string_lossy().into())),
    }
}

fn bad_product_path(value: String) -> crate::PipelineError {
    crate::PipelineError::Environment {
        name: PRODUCT_PATH_ENV,
        value,
        allowed: "`portable` (portable matrix products), `auto` or unset (the AVX-512 kernel where the CPU has it)",
    }
}
