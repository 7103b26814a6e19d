//! reg-batchnorm (stub: being written)
