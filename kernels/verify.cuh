// Speculative verification in the general kernels (kernels/args.cuh `VerifyArgs`; semantics in
// src/verify/mod.rs, the invariant decisions in src/cpu/invariant/verify.rs). A verification
// launch runs one general row block per target row; each decides its position independently —
// the draft's accept test and the residual draw (sampler.cu, the draft left out of the race or
// walk), or the bonus draw — and the last of a request's blocks to arrive walks the chain.
// Point-mass drafts only: a dense draft distribution's residual needs a pass of its own.
#pragma once

#include "args.cuh"
#include "params.cuh"
#include "rows.cuh"

#define NO_DRAFT 0xffffffffu

// A target row's draft: its token (NO_DRAFT at the bonus position and outside verification)
// and its distribution's row (null: a point mass).
struct DraftRef {
    unsigned int token;
    const float* probs;
};

// A target row's place in its request.
struct VerifyRow {
    unsigned int request;
    unsigned int position;  // 0-based: position j checks draft j + 1 (or is the bonus)
    unsigned int drafts;    // the request's draft count n
    DraftRef draft;         // this position's draft (token NO_DRAFT at the bonus position)
    bool valid;             // false: past the batch's rows, or the offsets do not hold it
};

__device__ __forceinline__ bool verifying(const SampleArgs& a) { return a.verify.offsets != nullptr; }

// Request r owns rows offsets[r] + r ..= offsets[r + 1] + r: the last r whose first row is at or
// before `row` (a binary search over the CSR offsets, which the caller keeps non-decreasing; a
// row they do not place consistently is not valid, and no index is read out of bounds).
__device__ __forceinline__ VerifyRow verify_row(const VerifyArgs& v, unsigned int row,
                                                unsigned int vocab)
{
    VerifyRow r = VerifyRow();
    r.draft = DraftRef{NO_DRAFT, nullptr};
    if (v.requests == 0u) return r;
    const unsigned int total = v.offsets[v.requests];  // the drafts array's length
    r.valid = row < total + v.requests;
    unsigned int lo = 0u, hi = v.requests;
    while (hi - lo > 1u) {
        const unsigned int mid = (lo + hi) / 2u;
        if (v.offsets[mid] + mid <= row) lo = mid;
        else hi = mid;
    }
    const unsigned int first = v.offsets[lo], next = v.offsets[lo + 1u];
    r.request = lo;
    r.position = row - first - lo;
    r.drafts = next - first;
    r.valid = r.valid && first + lo <= row && first <= next && next <= total &&
              next <= v.drafts_len && next + lo < v.rows && r.position <= r.drafts;
    if (r.valid && r.position < r.drafts) {
        r.draft.token = v.drafts[first + r.position];
        if (v.draft_probs != nullptr)
            r.draft.probs = v.draft_probs + (size_t)(first + r.position) * vocab;
    }
    return r;
}

// The request's results from its positions: called by one thread of the last block to arrive,
// after every position's outputs are written and fenced. The statuses in the reference's order:
// the parameters, then the drafts, then the target rows in position order.
__device__ __forceinline__ void finish_request(const SampleArgs& a, const VerifyRow& r,
                                               const SamplingParams& p)
{
    const VerifyArgs& v = a.verify;
    const unsigned int first_draft = v.offsets[r.request];
    const unsigned int first_row = first_draft + r.request;
    // Other blocks wrote these: read them past this SM's L1.
    const volatile unsigned int* row_status = a.out.status;
    const volatile int* row_tokens = a.out.tokens;
    const volatile float* row_logprobs = a.out.logprobs;
    const volatile VerifyPosition* positions = v.positions;
    // More drafts than the outputs hold: refused (the reference has no such limit).
    unsigned int status = r.drafts >= v.stride ? STATUS_INVALID_DRAFT
                          : params_valid(p)    ? STATUS_OK
                                               : STATUS_INVALID_PARAMS;
    for (unsigned int j = 0u; j < r.drafts && status == STATUS_OK; ++j)
        if (v.drafts[first_draft + j] >= a.vocab) status = STATUS_INVALID_DRAFT;
    // A draft whose distribution is unusable fails the request before any target row does.
    for (unsigned int j = 0u; j < r.drafts && status == STATUS_OK; ++j)
        if (row_status[first_row + j] == STATUS_INVALID_DRAFT) status = STATUS_INVALID_DRAFT;
    for (unsigned int j = 0u; j <= r.drafts && status == STATUS_OK; ++j)
        status = row_status[first_row + j];
    int* tokens = v.tokens + (size_t)r.request * v.stride;
    float* logprobs = v.logprobs + (size_t)r.request * v.stride;
    unsigned int emitted = 0u;
    for (unsigned int j = 0u; status == STATUS_OK && j <= r.drafts; ++j) {
        emitted = j + 1u;
        if (j < r.drafts && positions[first_row + j].accept != 0u) {
            tokens[j] = (int)v.drafts[first_draft + j];
            logprobs[j] = positions[first_row + j].draft_logprob;
            continue;
        }
        tokens[j] = row_tokens[first_row + j];
        logprobs[j] = row_logprobs[first_row + j];
        break;
    }
    for (unsigned int k = emitted; k < v.stride; ++k) {
        tokens[k] = -1;
        logprobs[k] = __int_as_float(0x7fffffff);
    }
    v.accepted[r.request] = emitted > 0u ? (int)emitted - 1 : 0;
    v.status[r.request] = status;
}

// After a target row's outputs are written: take the request's ticket; the last of its n + 1
// blocks finishes it and leaves the counter at 0 for the next launch.
__device__ __forceinline__ void finish_position(const SampleArgs& a, const VerifyRow& r,
                                                const SamplingParams& p)
{
    __syncthreads();
    if (threadIdx.x != 0u) return;
    __threadfence();
    const unsigned int ticket = atomicAdd(&a.verify.arrivals[r.request], 1u);
    if (ticket != r.drafts) return;
    __threadfence();
    finish_request(a, r, p);
    a.verify.arrivals[r.request] = 0u;
}
