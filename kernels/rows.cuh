// A row's parameter check and the writing of its outputs: every sampler kernel's first and last
// steps (kernels/sampler.cu, kernels/unfiltered.cuh).
#pragma once

#include "load.cuh"  // NEG_INF
#include "params.cuh"

__device__ __forceinline__ bool params_valid(const SamplingParams& p)
{
    // The host validates too; this keeps a bad row from harming its batch when parameters are
    // written on the device.
    return p.temperature >= 0.0f && p.temperature <= 3.402823466e38f && p.top_p > 0.0f &&
           p.top_p <= 1.0f && p.min_p >= 0.0f && p.min_p < 1.0f;
}

// Writes a row's outputs. Called by every thread; thread 0 writes the scalars, and the top-n
// slots from `filled` on are set to (-1, -inf).
__device__ __forceinline__ void write_row(unsigned int row, int token, float logprob,
                                          unsigned int status_code, unsigned int top_n,
                                          unsigned int filled, int* __restrict__ tokens,
                                          float* __restrict__ logprobs,
                                          unsigned int* __restrict__ status,
                                          int* __restrict__ top_tokens,
                                          float* __restrict__ top_logprobs)
{
    if (threadIdx.x == 0) {
        tokens[row] = token;
        logprobs[row] = logprob;
        status[row] = status_code;
    }
    for (unsigned int i = filled + threadIdx.x; i < top_n; i += blockDim.x) {
        top_tokens[(size_t)row * top_n + i] = -1;
        top_logprobs[(size_t)row * top_n + i] = NEG_INF;
    }
}

// A row whose parameters the kernel cannot sample: no token, NaN logprob, empty top-n.
__device__ __forceinline__ void write_invalid_row(unsigned int row, unsigned int top_n,
                                                  int* __restrict__ tokens,
                                                  float* __restrict__ logprobs,
                                                  unsigned int* __restrict__ status,
                                                  int* __restrict__ top_tokens,
                                                  float* __restrict__ top_logprobs)
{
    write_row(row, -1, __int_as_float(0x7fffffff), STATUS_INVALID_PARAMS, top_n, 0u, tokens,
              logprobs, status, top_tokens, top_logprobs);
}

// A greedy row: the distribution is a point mass on the argmax (logprob 0, top-n of one).
__device__ __forceinline__ void write_greedy_row(unsigned int row, unsigned int argmax,
                                                 unsigned int top_n, int* __restrict__ tokens,
                                                 float* __restrict__ logprobs,
                                                 unsigned int* __restrict__ status,
                                                 int* __restrict__ top_tokens,
                                                 float* __restrict__ top_logprobs)
{
    if (threadIdx.x == 0 && top_n > 0) {
        top_tokens[(size_t)row * top_n] = (int)argmax;
        top_logprobs[(size_t)row * top_n] = 0.0f;
    }
    write_row(row, (int)argmax, 0.0f, STATUS_OK, top_n, top_n > 0 ? 1u : 0u, tokens, logprobs,
              status, top_tokens, top_logprobs);
}
