// Which rows each kernel family can serve: the one statement of these rules. Every
// RULE(name, expression) of ROW_RULES is compiled below as `row_<name>(p, vocab)` for the
// kernels, and build.rs (build/rules.rs) translates the same expression into the Rust functions
// `row_<name>` that src/params.rs builds on (`is_unfiltered`, `is_small_top_k`, `BatchFilters`),
// so that the host's choice of a family and the kernel's own check of a row cannot drift apart.
// An expression may use the fields `p.<field>` of a SamplingParams, `vocab` (unsigned int),
// integer constants `#define`d in kernels/, literals such as `0u`, `1.0f`, `3.4e38f`, and
// `== != < <= > >= && || ! ( )`: build/rules.rs refuses anything else, so that both languages
// read the expression the same way.
#pragma once

#include "params.cuh"

// The largest top-k the collected kernels serve: the split kernels' candidates per slice (split.cuh
// asserts it), so that every batch of such rows, small or large, has a light path; and at most the
// smallest row block (collect_top_k takes k up to blockDim.x).
#define COLLECTED_MAX_TOP_K 64
static_assert(COLLECTED_MAX_TOP_K <= 64, "k fits the smallest row block (64 threads)");

#define ROW_RULES(RULE)                                                                          \
    /* Parameters any kernel accepts (the host validates too: this keeps a bad row written on  \
       the device from harming its batch). Temperature at most FLT_MAX: not +inf, not NaN. */   \
    RULE(valid, p.temperature >= 0.0f && p.temperature <= 3.402823466e38f && p.top_p > 0.0f && \
                    p.top_p <= 1.0f && p.min_p >= 0.0f && p.min_p < 1.0f)                        \
    /* Greedy: the argmax, no random number (a greedy row's filters never drop its argmax). */  \
    RULE(greedy, p.temperature == 0.0f)                                                         \
    /* No filter that changes the draw: top-k off (0, or at least the vocabulary, which keeps  \
       every token), top-p 1, min-p 0. */                                                       \
    RULE(unfiltered, (p.top_k == 0u || p.top_k >= vocab) && p.top_p >= 1.0f && p.min_p <= 0.0f) \
    /* A top-k the collected kernels take from the candidates of one read. */                  \
    RULE(small_top_k, p.top_k >= 1u && p.top_k <= COLLECTED_MAX_TOP_K)

#define ROW_RULE_FUNCTION(name, expression)                                                    \
    __device__ __forceinline__ bool row_##name(const SamplingParams& p, unsigned int vocab)   \
    {                                                                                          \
        (void)vocab;                                                                           \
        return expression;                                                                     \
    }
ROW_RULES(ROW_RULE_FUNCTION)
#undef ROW_RULE_FUNCTION
