// Per-row sampling parameters: the layout of Rust's `batchsample::SamplingParams` (#[repr(C)],
// 32 bytes). build.rs (build/layout.rs) asserts the Rust struct's size and offsets against this
// one, and the assertions below hold the CUDA compilers to it: a field added on one side fails
// to build.
#pragma once

struct SamplingParams {
    float temperature;             // >= 0; 0 = greedy
    unsigned int top_k;            // 0 = off
    float top_p;                   // (0, 1]; 1 = off
    float min_p;                   // [0, 1); 0 = off
    unsigned long long seed;       // key of the request's random stream
    unsigned long long step;       // counter of the request's random stream
};

static_assert(sizeof(SamplingParams) == 32, "SamplingParams must be 32 bytes (see src/params.rs)");
// NVRTC has no offsetof; nvcc (the fatbin every build makes) and g++ (the host shim) check it.
#if !defined(__CUDACC_RTC__)
static_assert(__builtin_offsetof(SamplingParams, top_k) == 4, "SamplingParams.top_k offset");
static_assert(__builtin_offsetof(SamplingParams, top_p) == 8, "SamplingParams.top_p offset");
static_assert(__builtin_offsetof(SamplingParams, min_p) == 12, "SamplingParams.min_p offset");
static_assert(__builtin_offsetof(SamplingParams, seed) == 16, "SamplingParams.seed offset");
static_assert(__builtin_offsetof(SamplingParams, step) == 24, "SamplingParams.step offset");
#endif

// A row's penalties (logits processing): the layout of Rust's `batchsample::Penalties`
// (#[repr(C)], 12 bytes, asserted by build/layout.rs). Off: repetition 1, frequency and presence 0.
struct Penalties {
    float repetition;  // > 0; 1 = off
    float frequency;   // finite; 0 = off
    float presence;    // finite; 0 = off
};

static_assert(sizeof(Penalties) == 12, "Penalties must be 12 bytes (see src/processing/lists.rs)");

// Row status codes: the values of Rust's `RowStatus`.
enum RowStatusCode : unsigned int {
    STATUS_OK = 0,
    STATUS_NON_FINITE_LOGIT = 1,
    STATUS_NO_FINITE_LOGIT = 2,
    STATUS_INVALID_PARAMS = 3,
    STATUS_INVALID_DRAFT = 4,  // speculative verification: unusable drafts (src/verify)
};

// Draw methods: the values of Rust's `DrawMethod` as the launcher passes them.
enum DrawMethodCode : unsigned int {
    DRAW_GUMBEL = 0,
    DRAW_INVERSE_CDF = 1,
};

// Largest top-n the kernels report per row (shared-memory buffer size).
#define BATCHSAMPLE_MAX_TOP_N 128
