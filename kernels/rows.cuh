// A row's parameter check and the writing of its outputs: every sampler kernel's first and last
// steps (kernels/sampler.cu, kernels/unfiltered.cuh).
#pragma once

#include "args.cuh"
#include "load.cuh"  // NEG_INF
#include "params.cuh"
#include "row_rules.cuh"

// The rule every kernel checks first (kernels/row_rules.cuh).
__device__ __forceinline__ bool params_valid(const SamplingParams& p) { return row_valid(p, 0u); }

// Sets a row's top-n slots from `filled` on to (-1, -inf). Called by every thread.
__device__ __forceinline__ void empty_top_n(const RowOutputs& out, unsigned int row,
                                            unsigned int filled)
{
    for (unsigned int i = filled + threadIdx.x; i < out.top_n; i += blockDim.x) {
        out.top_tokens[(size_t)row * out.top_stride + i] = -1;
        out.top_logprobs[(size_t)row * out.top_stride + i] = NEG_INF;
    }
}

// Writes a row's outputs. Called by every thread; thread 0 writes the scalars, and the top-n
// slots from `filled` on are set to (-1, -inf).
__device__ __forceinline__ void write_row(const RowOutputs& out, unsigned int row, int token,
                                          float logprob, unsigned int status_code,
                                          unsigned int filled)
{
    if (threadIdx.x == 0) {
        out.tokens[row] = token;
        out.logprobs[row] = logprob;
        out.status[row] = status_code;
    }
    empty_top_n(out, row, filled);
}

// A row whose parameters the kernel cannot sample: no token, NaN logprob, empty top-n.
__device__ __forceinline__ void write_invalid_row(const RowOutputs& out, unsigned int row)
{
    write_row(out, row, -1, __int_as_float(0x7fffffff), STATUS_INVALID_PARAMS, 0u);
}

// A greedy row: the distribution is a point mass on the argmax (logprob 0, top-n of one).
__device__ __forceinline__ void write_greedy_row(const RowOutputs& out, unsigned int row,
                                                 unsigned int argmax)
{
    if (threadIdx.x == 0 && out.top_n > 0) {
        out.top_tokens[(size_t)row * out.top_stride] = (int)argmax;
        out.top_logprobs[(size_t)row * out.top_stride] = 0.0f;
    }
    write_row(out, row, (int)argmax, 0.0f, STATUS_OK, out.top_n > 0 ? 1u : 0u);
}
