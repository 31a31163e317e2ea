// The one argument of every sampler entry point: where a launch's logits, parameters, outputs and
// workspace are, passed as a `__grid_constant__` struct so that the row pipeline reads it in
// place (no copy) and a new input (a mask, a bias) is one field here, not a parameter added to 24
// entry points. This header is the layout's one statement: build.rs (build/layout.rs) generates
// the Rust structs from it (src/gpu/args.rs) with size and offset assertions, and the
// assertions below hold the CUDA compilers to the same numbers.
#pragma once

#include "load.cuh"
#include "params.cuh"

struct SlicePartial;  // kernels/split.cuh
struct EditSlot;      // kernels/processing.cuh

// Per-field parameter arrays, FlashInfer's shape: a null array means every row takes the field's
// value from `SampleArgs::scalars`. Read only when `SampleArgs::params` is null.
struct ParamFields {
    const float* temperature;        // [batch]
    const unsigned int* top_k;       // [batch]
    const float* top_p;              // [batch]
    const float* min_p;              // [batch]
    const unsigned long long* seed;  // [batch]
    const unsigned long long* step;  // [batch]
};

// Where a row's results go. The top-n pair is `[batch, top_stride]`: a row's first `top_n`
// slots are written, so the layout is the caller's (its capacity), not the launch's `top_n`.
struct RowOutputs {
    int* tokens;           // [batch]
    float* logprobs;       // [batch]
    unsigned int* status;  // [batch]
    int* top_tokens;       // [batch, top_stride]
    float* top_logprobs;   // [batch, top_stride]
    unsigned int top_n;
    unsigned int top_stride;  // >= top_n
};

// One token list a row in CSR form (src/processing/lists.rs `TokenLists`): row r's tokens are
// tokens[offsets[r], offsets[r + 1]), of `len` in all. Null offsets: every row's list is empty.
// A row whose offsets decrease or pass `len` is refused (InvalidParams), not read.
struct TokenListArgs {
    const unsigned int* offsets;  // [batch + 1], or null
    const unsigned int* tokens;   // [len]
    unsigned int len;
    unsigned int reserved;        // 0
};

// Logits processing (src/processing/mod.rs has the semantics): the inputs, all optional, and the
// workspace the sparse edits need. A row with none of them is sampled as before, bit for bit.
struct ProcessingArgs {
    const unsigned int* bitmask;    // [batch, bitmask_words] allowed-token bits, or null
    unsigned int bitmask_words;     // ceil(vocab / 32): also the touched bitmap's row stride
    unsigned int penalties_stride;  // 1, or 0 to share penalties[0]
    const Penalties* penalties;     // or null: off for every row
    TokenListArgs banned;
    TokenListArgs bias;             // the tokens of the (token, bias) pairs
    const float* bias_values;       // [bias.len]
    TokenListArgs prompt;
    TokenListArgs output;
    // Workspace: a bitmap of the row's edited tokens, all zero between launches (each row clears
    // the bits it set), and a hash table of their edits, rebuilt by each row.
    unsigned int* touched;          // [batch, bitmask_words]
    EditSlot* table;                // [batch, table_capacity]
    unsigned int table_capacity;    // a power of two (0: no sparse edits can be served)
    unsigned int reserved;          // 0
};

// Speculative verification (src/verify/mod.rs has the semantics; src/cpu/invariant/verify.rs the
// invariant decisions): a launch of the general kernels over the target rows of `requests`
// requests, request r's rows being offsets[r] + r ..= offsets[r + 1] + r (its drafts, then the
// bonus position). Each row block decides its position — the accept test of its draft, the
// residual draw (the draft left out of the race or walk), or the bonus draw — and writes it to
// the row outputs and `positions`; the last of a request's blocks to arrive (an integer ticket)
// walks the chain and writes the request's results.
struct VerifyPosition {
    float draft_logprob;  // the draft's logprob under the position's distribution
    unsigned int accept;  // 1: the draft is accepted
};

struct VerifyArgs {
    const unsigned int* offsets;  // [requests + 1] draft CSR, or null: not a verification launch
    const unsigned int* drafts;   // [offsets[requests]]
    const float* draft_probs;     // [drafts_len, vocab] draft distributions, or null: point masses
    unsigned int requests;
    unsigned int stride;          // the request outputs' row length: n_max + 1 at least
    unsigned int drafts_len;      // the drafts array's length: offsets past it are not followed
    unsigned int rows;            // the launch's target rows: a request past them is not served
    VerifyPosition* positions;    // [rows]
    unsigned int* arrivals;       // [requests] counters, 0 before and after a launch
    int* accepted;                // [requests]
    int* tokens;                  // [requests, stride]: the emitted tokens, then -1
    float* logprobs;              // [requests, stride]: their logprobs, then NaN
    unsigned int* status;         // [requests]
};

struct SampleArgs {
    const void* logits;            // [batch, row_stride] of the entry's dtype (f16/bf16 as bits)
    unsigned long long row_stride;  // elements from one row's start to the next (>= vocab)
    unsigned int vocab;
    unsigned int method;            // DrawMethodCode
    const SamplingParams* params;  // packed rows: [batch], or [1] with params_stride 0; or null
    unsigned int params_stride;    // 1, or 0 to share params[0]
    unsigned int reserved;         // 0 (explicit padding: the layout is the same on both sides)
    ParamFields fields;            // when params is null
    SamplingParams scalars;        // the fields' fallbacks
    RowOutputs out;
    SlicePartial* partials;   // split entries: [batch, splits]
    unsigned int* arrivals;   // split entries: [batch] counters, 0 before and after a launch
    ProcessingArgs proc;
    VerifyArgs verify;
    // Raw logprobs' second launch (`GpuSampler::sample_processed_on`, src/gpu/mod.rs), or null:
    // `[batch]` tokens that an earlier launch drew. A scored row reports its token's logprob and
    // the top-n under this launch's distribution instead of drawing; a negative token (the
    // earlier launch refused the row) leaves the row's outputs as they are but for an emptied
    // top-n.
    const int* scored_tokens;
};

static_assert(sizeof(ParamFields) == 48, "ParamFields (see src/gpu/args.rs)");
static_assert(sizeof(RowOutputs) == 48, "RowOutputs (see src/gpu/args.rs)");
static_assert(sizeof(TokenListArgs) == 24, "TokenListArgs (see src/gpu/args.rs)");
static_assert(sizeof(ProcessingArgs) == 152, "ProcessingArgs (see src/gpu/args.rs)");
static_assert(sizeof(VerifyPosition) == 8, "VerifyPosition (see src/gpu/args.rs)");
static_assert(sizeof(VerifyArgs) == 88, "VerifyArgs (see src/gpu/args.rs)");
static_assert(sizeof(SampleArgs) == 432, "SampleArgs (see src/gpu/args.rs)");
#if !defined(__CUDACC_RTC__)
static_assert(__builtin_offsetof(SampleArgs, row_stride) == 8, "SampleArgs.row_stride");
static_assert(__builtin_offsetof(SampleArgs, vocab) == 16, "SampleArgs.vocab");
static_assert(__builtin_offsetof(SampleArgs, method) == 20, "SampleArgs.method");
static_assert(__builtin_offsetof(SampleArgs, params) == 24, "SampleArgs.params");
static_assert(__builtin_offsetof(SampleArgs, params_stride) == 32, "SampleArgs.params_stride");
static_assert(__builtin_offsetof(SampleArgs, fields) == 40, "SampleArgs.fields");
static_assert(__builtin_offsetof(SampleArgs, scalars) == 88, "SampleArgs.scalars");
static_assert(__builtin_offsetof(SampleArgs, out) == 120, "SampleArgs.out");
static_assert(__builtin_offsetof(SampleArgs, partials) == 168, "SampleArgs.partials");
static_assert(__builtin_offsetof(SampleArgs, arrivals) == 176, "SampleArgs.arrivals");
static_assert(__builtin_offsetof(SampleArgs, proc) == 184, "SampleArgs.proc");
static_assert(__builtin_offsetof(SampleArgs, verify) == 336, "SampleArgs.verify");
static_assert(__builtin_offsetof(SampleArgs, scored_tokens) == 424, "SampleArgs.scored_tokens");
static_assert(__builtin_offsetof(ProcessingArgs, banned) == 24, "ProcessingArgs.banned");
static_assert(__builtin_offsetof(ProcessingArgs, touched) == 128, "ProcessingArgs.touched");
static_assert(__builtin_offsetof(RowOutputs, top_n) == 40, "RowOutputs.top_n");
#endif

// The row prologue every family starts with: the row's logits and its parameters.
template <int DT>
__device__ __forceinline__ const typename Dtype<DT>::Raw* row_logits(const SampleArgs& a,
                                                                     unsigned int row)
{
    return static_cast<const typename Dtype<DT>::Raw*>(a.logits) + (size_t)row * a.row_stride;
}

__device__ __forceinline__ SamplingParams row_params(const SampleArgs& a, unsigned int row)
{
    if (a.params != nullptr) return a.params[(size_t)row * a.params_stride];
    SamplingParams p = a.scalars;
    const ParamFields& f = a.fields;
    if (f.temperature != nullptr) p.temperature = f.temperature[row];
    if (f.top_k != nullptr) p.top_k = f.top_k[row];
    if (f.top_p != nullptr) p.top_p = f.top_p[row];
    if (f.min_p != nullptr) p.min_p = f.min_p[row];
    if (f.seed != nullptr) p.seed = f.seed[row];
    if (f.step != nullptr) p.step = f.step[row];
    return p;
}
