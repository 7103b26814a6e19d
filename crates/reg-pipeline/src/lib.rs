//! reg-pipeline (stub: being written)
