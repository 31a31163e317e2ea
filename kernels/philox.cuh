// Philox4x32-10: the twin of src/philox.rs (the stream mapping is documented there and must stay
// bit-identical; both are pinned to the Random123 known-answer vectors).
#pragma once

struct Philox4 {
    unsigned int v[4];
};

__device__ __forceinline__ Philox4 philox4x32_10(Philox4 ctr, unsigned int k0, unsigned int k1)
{
#pragma unroll
    for (int round = 0; round < 10; ++round) {
        if (round > 0) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        const unsigned int lo0 = 0xD2511F53u * ctr.v[0];
        const unsigned int hi0 = __umulhi(0xD2511F53u, ctr.v[0]);
        const unsigned int lo1 = 0xCD9E8D57u * ctr.v[2];
        const unsigned int hi1 = __umulhi(0xCD9E8D57u, ctr.v[2]);
        Philox4 next;
        next.v[0] = hi1 ^ ctr.v[1] ^ k0;
        next.v[1] = lo1;
        next.v[2] = hi0 ^ ctr.v[3] ^ k1;
        next.v[3] = lo0;
        ctr = next;
    }
    return ctr;
}

// Purposes of a counter (src/philox.rs `Purpose`).
#define PHILOX_TOKEN_NOISE 0u
#define PHILOX_ROW_UNIFORM 1u
#define PHILOX_ACCEPT 2u  // speculative verification's accept uniform (src/philox.rs)

__device__ __forceinline__ Philox4 philox_block(unsigned long long seed, unsigned long long step,
                                                unsigned int block, unsigned int purpose)
{
    Philox4 ctr;
    ctr.v[0] = block;
    ctr.v[1] = purpose;
    ctr.v[2] = (unsigned int)step;
    ctr.v[3] = (unsigned int)(step >> 32);
    return philox4x32_10(ctr, (unsigned int)seed, (unsigned int)(seed >> 32));
}

// ((w >> 9) + 0.5) * 2^-23: strictly inside (0, 1) and exact in f32 (both products are exact).
__device__ __forceinline__ float word_to_uniform(unsigned int w)
{
    return ((float)(w >> 9) + 0.5f) * (1.0f / 8388608.0f);
}

// The accept uniform of a draft verified at (seed, step): src/philox.rs `accept_uniform`.
__device__ __forceinline__ float accept_uniform(unsigned long long seed, unsigned long long step)
{
    return word_to_uniform(philox_block(seed, step, 0u, PHILOX_ACCEPT).v[0]);
}

// The uniform of one token (Gumbel draw): src/philox.rs `token_uniform`.
__device__ __forceinline__ float token_uniform(unsigned long long seed, unsigned long long step,
                                               unsigned int token)
{
    const Philox4 r = philox_block(seed, step, token >> 2, PHILOX_TOKEN_NOISE);
    // Selects, not r.v[token & 3]: a dynamic index would put r in local memory.
    const unsigned int lane = token & 3u;
    const unsigned int word =
        lane == 0u ? r.v[0] : lane == 1u ? r.v[1] : lane == 2u ? r.v[2] : r.v[3];
    return word_to_uniform(word);
}

// 1 - word_to_uniform(w), exactly: ((2^23 - 1 - (w >> 9)) + 0.5) * 2^-23.
__device__ __forceinline__ float word_to_complement(unsigned int w)
{
    return ((float)(0x7fffffu - (w >> 9)) + 0.5f) * (1.0f / 8388608.0f);
}

// A token of weight w = exp(d) beats a best Gumbel score B only if -ln(u) < w * exp(-B); and
// -ln(u) >= 1 - u for every u in (0, 1). So `word_to_complement(word) > w * gumbel_reach(B)`
// proves, with one multiply, that the token cannot win: no logarithm is needed. The factor
// 1 + 2^-12 (2.4e-4 in score units) covers the rounding of w, of this exp and of the score the
// skipped path would have computed, so a skipped token is one whose float score would also have
// lost. For B = -inf the reach is +inf (w * inf is inf or NaN): nothing is skipped.
__device__ __forceinline__ float gumbel_reach(float best_score)
{
    return expf(-best_score) * 1.000244140625f;
}

// The tokens first_token .. first_token + 3 (first_token a multiple of 4: one Philox block) that
// may still win a Gumbel draw. `noisy[j]` marks those the caller's score bound let through and
// `w[j]` holds their weights; `f(j, u)` is called, with the token's uniform, for each that also
// passes the log-free test against `reach` (read per token, so f may tighten it). Nothing noisy:
// no Philox call.
template <typename F>
__device__ __forceinline__ void for_each_contender(unsigned long long seed, unsigned long long step,
                                                   unsigned int first_token,
                                                   const bool (&noisy)[4], const float (&w)[4],
                                                   const float& reach, F&& f)
{
    if (!(noisy[0] || noisy[1] || noisy[2] || noisy[3])) return;
    const Philox4 r = philox_block(seed, step, first_token >> 2, PHILOX_TOKEN_NOISE);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        // Most noisy tokens fail the one-multiply test (gumbel_reach): no logarithm.
        if (!noisy[j] || word_to_complement(r.v[j]) > w[j] * reach) continue;
        f(j, word_to_uniform(r.v[j]));
    }
}
