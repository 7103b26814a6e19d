//! The tutorial's studies: overfitting versus underfitting, and the ablation of each technique,
//! built from `train` and charted with `report::plot`.

pub mod experiments;
