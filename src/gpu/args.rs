//! The one argument every sampler kernel takes, `SampleArgs` of `kernels/args.cuh`, field for
//! field (`#[repr(C)]`; both sides check size and offsets). Device addresses are raw `u64`s
//! (`CUdeviceptr`), so cudarc views and another library's tensors come in the same way, and the
//! host shim takes the same struct with host addresses.

use crate::params::SamplingParams;
use std::mem::{offset_of, size_of};

/// `ParamFields`: one device array per parameter, 0 where every row takes the scalar.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ParamFieldPtrs {
    pub temperature: u64, // [batch] f32
    pub top_k: u64,       // [batch] u32
    pub top_p: u64,       // [batch] f32
    pub min_p: u64,       // [batch] f32
    pub seed: u64,        // [batch] u64
    pub step: u64,        // [batch] u64
}

/// `RowOutputs`: where a row's results go; the top-n pair is `[batch, top_stride]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RowOutputPtrs {
    pub tokens: u64,       // [batch] i32
    pub logprobs: u64,     // [batch] f32
    pub status: u64,       // [batch] u32
    pub top_tokens: u64,   // [batch, top_stride] i32
    pub top_logprobs: u64, // [batch, top_stride] f32
    pub top_n: u32,
    pub top_stride: u32,
}

/// `SampleArgs`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SampleArgs {
    pub logits: u64,     // [batch, row_stride] of the entry's dtype
    pub row_stride: u64, // elements between row starts, >= vocab
    pub vocab: u32,
    pub method: u32,        // DrawMethodCode
    pub params: u64,        // packed [batch] or [1] SamplingParams; 0: the fields below
    pub params_stride: u32, // 1, or 0 to share params[0]
    pub reserved: u32,
    pub fields: ParamFieldPtrs,
    pub scalars: SamplingParams,
    pub out: RowOutputPtrs,
    pub partials: u64, // split entries: [batch, splits] SlicePartial
    pub arrivals: u64, // split entries: [batch] u32, 0 before and after
}

// SAFETY: plain old data of the kernels' exact layout (checked below), passed by value.
unsafe impl cudarc::driver::DeviceRepr for SampleArgs {}

// The offsets `kernels/args.cuh` asserts, asserted here too: a field added on one side only
// fails to build.
const _: () = {
    assert!(size_of::<ParamFieldPtrs>() == 48);
    assert!(size_of::<RowOutputPtrs>() == 48);
    assert!(size_of::<SampleArgs>() == 184);
    assert!(offset_of!(SampleArgs, row_stride) == 8);
    assert!(offset_of!(SampleArgs, vocab) == 16);
    assert!(offset_of!(SampleArgs, method) == 20);
    assert!(offset_of!(SampleArgs, params) == 24);
    assert!(offset_of!(SampleArgs, params_stride) == 32);
    assert!(offset_of!(SampleArgs, fields) == 40);
    assert!(offset_of!(SampleArgs, scalars) == 88);
    assert!(offset_of!(SampleArgs, out) == 120);
    assert!(offset_of!(SampleArgs, partials) == 168);
    assert!(offset_of!(SampleArgs, arrivals) == 176);
    assert!(offset_of!(RowOutputPtrs, top_n) == 40);
};
