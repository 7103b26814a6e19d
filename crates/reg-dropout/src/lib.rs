//! reg-dropout (stub: being written)
