//! reg-schedule (stub: being written)
