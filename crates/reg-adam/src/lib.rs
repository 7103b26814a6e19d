//! reg-adam (stub: being written)
