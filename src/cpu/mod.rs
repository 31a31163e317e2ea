//! The CPU side: the exact f64 reference sampler and the per-stage distributions it explains.

pub mod diff;
pub mod invariant;
pub mod processed;
pub mod reference;
pub mod scan;
pub mod select;
pub mod stages;
pub mod verify;

pub use diff::{compare_token, Agreement, Tolerances};
pub use processed::{raw_logprobs, sample_batch_processed};
pub use reference::{
    batch_size, kept_set, sample_batch, sample_row, scan_row, KeptSet, RowOutput, RowScan,
    SampleOptions, TokenLogprob,
};
pub use stages::{
    final_distribution, processing_stages, stage_distributions, ProcessingStages, Stages,
};
pub use verify::verify_batch;
