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
