//! # batchsample-cli
//!
//! The `batchsample` command line and what it runs beside the core sampler (the `batchsample`
//! crate): file I/O for logits and parameters ([`io`]: `.npy`, `.safetensors`, JSON), the
//! throughput benchmark against the memory floor and peers ([`bench`](mod@bench)), and the determinism-drift
//! experiments ([`drift`]). It is a member of the core's workspace so that the core keeps only
//! the sampler's dependencies: clap, plotters, indicatif, safetensors and cuBLAS live here.

pub mod bench;
pub mod drift;
pub mod io;
mod svg;
