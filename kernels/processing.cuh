// Logits processing in the general kernels (semantics: src/processing/mod.rs; the CPU twin:
// src/processing/apply.rs): the allowed-token bitmask, banned tokens, logit bias and the
// repetition / frequency / presence penalties, applied to each logit as the row is read, so no
// pass over the row is added and the caller's logits are never written.
//
// The bitmask is read with the row (one 32-bit word covers a chunk). The sparse edits cost in
// proportion to the row's lists: before the row is read, its block inserts every list entry into
// a hash table of edits (kernels/args.cuh `ProcessingArgs::table`) and sets the token's bit in a
// touched bitmap; a read then looks a token up only where its bit is set, and after the row the
// block clears the bits it set, so the bitmap is all zero between launches.
#pragma once

#include "args.cuh"
#include "load.cuh"

#define EDIT_EMPTY 0xffffffffu
#define EDIT_BANNED 1u   // in the banned list: -inf
#define EDIT_BIASED 2u   // in the bias list: + bias
#define EDIT_HISTORY 4u  // in the prompt or the output: the penalties

// One edited token of a row: what its lists say of it (16 bytes).
struct EditSlot {
    unsigned int token;  // EDIT_EMPTY: a free slot
    unsigned int count;  // occurrences in the output
    unsigned int flags;  // EDIT_*
    float bias;
};

// A row's processing as the reads apply it, in the row block's shared memory (so that it costs
// the row's passes no registers). Null `mask` and `touched`: the row is unprocessed.
struct RowEdits {
    const unsigned int* mask;  // the row's bitmask words, or null
    unsigned int* touched;     // the row's touched bitmap, or null (no sparse edits)
    EditSlot* table;           // the row's slots
    unsigned int slot_mask;    // slots - 1 (a power of two)
    unsigned int vocab;
    Penalties penalties;
};

__device__ __forceinline__ unsigned int edit_hash(unsigned int t)
{
    t ^= t >> 16;
    t *= 0x7feb352du;
    t ^= t >> 15;
    t *= 0x846ca68bu;
    return t ^ (t >> 16);
}

// The slot of token t (present: its bit is set in the touched bitmap).
__device__ __forceinline__ const EditSlot& find_edit(const RowEdits& e, unsigned int t)
{
    unsigned int at = edit_hash(t) & e.slot_mask;
    while (e.table[at].token != t && e.table[at].token != EDIT_EMPTY) at = (at + 1u) & e.slot_mask;
    return e.table[at];
}

// A touched token's logit after its sparse edits, in the CPU's order and f32 arithmetic, each
// step correctly rounded (never contracted). A NaN or +inf logit stays as it is, so the scan
// rejects the row whatever bans it (a broken model output is not hidden).
__device__ __forceinline__ float edit_logit(const RowEdits& e, unsigned int t, float x)
{
    const EditSlot& s = find_edit(e, t);
    const unsigned int flags = s.flags;
    if ((flags & EDIT_BANNED) != 0u && x < POS_INF) x = NEG_INF;
    if ((flags & EDIT_BIASED) != 0u) x = __fadd_rn(x, s.bias);
    if ((flags & EDIT_HISTORY) != 0u) {
        const Penalties pen = e.penalties;
        if (pen.repetition != 1.0f)
            x = x > 0.0f ? __fdiv_rn(x, pen.repetition) : __fmul_rn(x, pen.repetition);
        if ((pen.frequency != 0.0f || pen.presence != 0.0f) && s.count > 0u) {
            x = __fsub_rn(x, __fmul_rn(pen.frequency, __uint2float_rn(s.count)));
            x = __fsub_rn(x, pen.presence);
        }
    }
    return x;
}

// Applies the row's processing to the VEC widened logits at `start` (a multiple of VEC, so the
// chunk lies in one word of the bitmaps). Chunks past the row's end are left as they are (-inf).
template <int VEC>
__device__ __forceinline__ void apply_edits(const RowEdits& e, unsigned int start, float (&x)[VEC])
{
    static_assert(32 % VEC == 0, "a chunk lies in one bitmap word");
    if (start >= e.vocab) return;
    const unsigned int word = start >> 5, shift = start & 31u;
    if (e.mask != nullptr) {
        const unsigned int allowed = e.mask[word] >> shift;
#pragma unroll
        for (int j = 0; j < VEC; ++j)
            if (((allowed >> j) & 1u) == 0u && x[j] < POS_INF) x[j] = NEG_INF;
    }
    if (e.touched != nullptr) {
        const unsigned int touched = e.touched[word] >> shift;
        if ((touched & ((1u << VEC) - 1u)) != 0u) {
#pragma unroll
            for (int j = 0; j < VEC; ++j)
                if (((touched >> j) & 1u) != 0u) x[j] = edit_logit(e, start + j, x[j]);
        }
    }
}

// A row's logits as the general kernels read them: the raw row, and its processing (in the row
// block's shared memory), or null edits for a row without processing (read as it is).
template <int DT>
struct ProcessedRow {
    const typename Dtype<DT>::Raw* logits;
    const RowEdits* edits;

    // The processed logit of token t.
    __device__ __forceinline__ float at(unsigned int t) const
    {
        float x = Dtype<DT>::widen(logits[t]);
        if (edits == nullptr) return x;
        const RowEdits& e = *edits;
        if (e.mask != nullptr && ((e.mask[t >> 5] >> (t & 31u)) & 1u) == 0u && x < POS_INF)
            x = NEG_INF;
        if (e.touched != nullptr && ((e.touched[t >> 5] >> (t & 31u)) & 1u) != 0u)
            x = edit_logit(e, t, x);
        return x;
    }
};

// for_each_chunk (kernels/load.cuh) over a processed row: the same chunks, processed.
template <int DT, int UNROLL = default_unroll<DT>(), typename F>
__device__ __forceinline__ void for_each_chunk(const ProcessedRow<DT>& row, unsigned int vocab,
                                               bool aligned, F&& f)
{
    constexpr int VEC = Dtype<DT>::VEC;
    const RowEdits* edits = row.edits;
    for_each_chunk<DT, UNROLL>(row.logits, vocab, aligned,
                               [&](unsigned int start, const float (&raw)[VEC]) {
                                   float x[VEC];
#pragma unroll
                                   for (int j = 0; j < VEC; ++j) x[j] = raw[j];
                                   if (edits != nullptr) apply_edits(*edits, start, x);
                                   f(start, x);
                               });
}

// load_chunk (kernels/load.cuh) of a processed row.
template <int DT>
__device__ __forceinline__ void load_chunk(const ProcessedRow<DT>& row, unsigned int vocab,
                                           unsigned int start, bool aligned,
                                           float (&x)[Dtype<DT>::VEC])
{
    load_chunk<DT>(row.logits, vocab, start, aligned, x);
    if (row.edits != nullptr) apply_edits(*row.edits, start, x);
}

// A row's slice of a CSR list, or false when its offsets are malformed (decreasing, or past the
// list's end): the row is refused.
__device__ __forceinline__ bool list_range(const TokenListArgs& l, unsigned int row,
                                           unsigned int* begin, unsigned int* end)
{
    *begin = 0u;
    *end = 0u;
    if (l.offsets == nullptr) return true;
    *begin = l.offsets[row];
    *end = l.offsets[row + 1u];
    return *begin <= *end && *end <= l.len;
}

__device__ __forceinline__ Penalties row_penalties(const ProcessingArgs& a, unsigned int row)
{
    if (a.penalties == nullptr) return Penalties{1.0f, 0.0f, 0.0f};
    return a.penalties[(size_t)row * a.penalties_stride];
}

__device__ __forceinline__ bool penalties_off(const Penalties& p)
{
    return p.repetition == 1.0f && p.frequency == 0.0f && p.presence == 0.0f;
}

// The row's list ranges: banned, bias, prompt, output (the last two empty when the penalties are
// off, which makes the history unused).
struct RowListRanges {
    unsigned int begin[4];
    unsigned int end[4];
    bool malformed;

    __device__ __forceinline__ unsigned int entries() const
    {
        return (end[0] - begin[0]) + (end[1] - begin[1]) + (end[2] - begin[2]) +
               (end[3] - begin[3]);
    }
};

__device__ __forceinline__ RowListRanges row_list_ranges(const ProcessingArgs& a, unsigned int row,
                                                         const Penalties& pen)
{
    RowListRanges r;
    const TokenListArgs* lists[4] = {&a.banned, &a.bias, &a.prompt, &a.output};
    r.malformed = false;
#pragma unroll
    for (int l = 0; l < 4; ++l) r.malformed |= !list_range(*lists[l], row, &r.begin[l], &r.end[l]);
    if (penalties_off(pen)) {
        r.end[2] = r.begin[2];
        r.end[3] = r.begin[3];
    }
    return r;
}

// Whether a row is processed at all: what the light families check to refuse it.
__device__ __forceinline__ bool row_processed(const ProcessingArgs& a, unsigned int row)
{
    if (a.bitmask != nullptr) return true;
    const RowListRanges r = row_list_ranges(a, row, row_penalties(a, row));
    return r.malformed || r.entries() > 0u;
}

// Penalties any kernel accepts (the host validates too): r > 0 and finite, f and q finite.
__device__ __forceinline__ bool penalties_valid(const Penalties& p)
{
    return p.repetition > 0.0f && p.repetition <= 3.402823466e38f &&
           fabsf(p.frequency) <= 3.402823466e38f && fabsf(p.presence) <= 3.402823466e38f;
}

// Inserts token t (below the table's size of slots) and returns its slot, or null when the table
// is full.
__device__ __forceinline__ EditSlot* insert_edit(EditSlot* table, unsigned int slot_mask,
                                                 unsigned int t)
{
    unsigned int at = edit_hash(t) & slot_mask;
    for (unsigned int probe = 0; probe <= slot_mask; ++probe) {
        const unsigned int old = atomicCAS(&table[at].token, EDIT_EMPTY, t);
        if (old == EDIT_EMPTY || old == t) return &table[at];
        at = (at + 1u) & slot_mask;
    }
    return nullptr;
}

// Builds row `row`'s edits in `e` (shared memory). Called by every thread; returns, in every
// thread, whether the row's processing can be applied (false: the row is refused with
// InvalidParams — a malformed list, a token past the vocabulary, a NaN or +inf bias, a token
// biased twice, invalid penalties, or a table too small for the row's lists). Ends with a barrier.
__device__ __forceinline__ bool build_row_edits(const ProcessingArgs& a, unsigned int row,
                                                unsigned int vocab, RowEdits& e)
{
    const Penalties pen = row_penalties(a, row);
    const RowListRanges r = row_list_ranges(a, row, pen);
    const unsigned int entries = r.entries();
    // Slots for this row: a power of two at least twice its entries (a short probe), within
    // the workspace's capacity, so that clearing them costs in proportion to the lists.
    unsigned int slots = 16u;
    while (slots < 2u * entries && slots < a.table_capacity) slots *= 2u;
    bool ok = !r.malformed && penalties_valid(pen) &&
              (entries == 0u || (a.touched != nullptr && entries <= a.table_capacity &&
                                 slots <= a.table_capacity));
    EditSlot* table = a.table + (size_t)row * a.table_capacity;
    unsigned int* touched = a.touched + (size_t)row * a.bitmask_words;
    if (threadIdx.x == 0) {
        e.mask = a.bitmask != nullptr ? a.bitmask + (size_t)row * a.bitmask_words : nullptr;
        e.touched = entries > 0u ? touched : nullptr;
        e.table = table;
        e.slot_mask = slots - 1u;
        e.vocab = vocab;
        e.penalties = pen;
    }
    if (ok && entries > 0u) {
        for (unsigned int i = threadIdx.x; i < slots; i += blockDim.x)
            table[i] = EditSlot{EDIT_EMPTY, 0u, 0u, 0.0f};
    }
    __syncthreads();
    if (ok && entries > 0u) {
        const TokenListArgs* lists[4] = {&a.banned, &a.bias, &a.prompt, &a.output};
        const unsigned int flag[4] = {EDIT_BANNED, EDIT_BIASED, EDIT_HISTORY, EDIT_HISTORY};
#pragma unroll
        for (int l = 0; l < 4; ++l) {
            for (unsigned int i = r.begin[l] + threadIdx.x; i < r.end[l]; i += blockDim.x) {
                const unsigned int t = lists[l]->tokens[i];
                EditSlot* s = t < vocab ? insert_edit(table, slots - 1u, t) : nullptr;
                if (s == nullptr) {
                    ok = false;
                    continue;
                }
                atomicOr(&touched[t >> 5], 1u << (t & 31u));
                const unsigned int before = atomicOr(&s->flags, flag[l]);
                if (l == 1) {
                    const float b = a.bias_values[i];
                    ok &= (before & EDIT_BIASED) == 0u && b < POS_INF;  // NaN compares false
                    s->bias = b;
                }
                if (l == 3) atomicAdd(&s->count, 1u);
            }
        }
    }
    return __syncthreads_and(ok ? 1 : 0) != 0;
}

// Clears the touched bits row `row` set (its tokens below the vocabulary), after every thread is
// done reading the row. Called by every thread.
__device__ __forceinline__ void clear_row_edits(const ProcessingArgs& a, unsigned int row,
                                                unsigned int vocab)
{
    const Penalties pen = row_penalties(a, row);
    const RowListRanges r = row_list_ranges(a, row, pen);
    if (r.malformed || r.entries() == 0u || a.touched == nullptr) return;
    __syncthreads();
    unsigned int* touched = a.touched + (size_t)row * a.bitmask_words;
    const TokenListArgs* lists[4] = {&a.banned, &a.bias, &a.prompt, &a.output};
#pragma unroll
    for (int l = 0; l < 4; ++l) {
        for (unsigned int i = r.begin[l] + threadIdx.x; i < r.end[l]; i += blockDim.x) {
            const unsigned int t = lists[l]->tokens[i];
            if (t < vocab) touched[t >> 5] = 0u;
        }
    }
}
