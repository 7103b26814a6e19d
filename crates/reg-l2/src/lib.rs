//! reg-l2 (stub: being written)
