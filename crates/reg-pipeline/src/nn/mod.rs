//! The network: plain layers (`Linear`, `Relu`), the loss, the `Mlp` with its fused training
//! path, plain SGD, the matrix products, and the portable random numbers that initialise weights.
//! Nothing here reads files, knows about training runs or prints.

pub(crate) mod fused;
// The one module that allows `unsafe` (AVX-512 intrinsics): see its doc.
#[allow(unsafe_code)]
pub(crate) mod kernel;
pub mod layout;
pub(crate) mod linear;
pub(crate) mod loss;
pub(crate) mod matmul;
pub(crate) mod model;
pub mod random;
pub(crate) mod relu;
pub(crate) mod sgd;
