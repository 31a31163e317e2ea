//! Philox4x32-10 (Salmon et al., "Parallel Random Numbers: As Easy as 1, 2, 3", SC'11), the
//! counter-based generator behind every random number this crate draws, on the CPU and in the
//! kernels (`kernels/philox.cuh` is the twin of this file; both are pinned to the Random123
//! known-answer vectors).
//!
//! # The stream, exactly (the kernels reproduce this bit for bit)
//! For a request with `seed` and `step`:
//! - key     = `[seed as u32, (seed >> 32) as u32]`
//! - counter = `[block, purpose, step as u32, (step >> 32) as u32]`
//! - token `i` of the vocabulary (Gumbel draw): `block = i / 4`, `purpose = 0`, output word `i % 4`;
//! - the row's single uniform (inverse-CDF draw): `block = 0`, `purpose = 1`, output word 0;
//! - the acceptance uniform of speculative verification ([`crate::verify`]): `block = 0`,
//!   `purpose = 2`, output word 0, at the step of the draft's position (`step + j - 1` for draft
//!   `j`), so it is independent of that position's draw, which uses purposes 0 and 1.
//!
//! A 32-bit word `w` becomes the uniform `u = ((w >> 9) + 0.5) * 2^-23`, which lies strictly inside
//! (0, 1) and is exactly representable in f32 (23 bits plus the half step need 24 significant
//! bits), so f32 kernels and the f64 reference see the same `u`. The row's position in the batch
//! never enters: a request draws the same numbers in any batch.
//!
//! The resolution bounds the draws' exactness: Gumbel noise `-ln(-ln u)` lies in [-2.80, 16.64],
//! so a token less than about 3.7e-9 times as likely as the top one can never win, and the
//! inverse-CDF uniform moves in steps of 2^-23. The kernels rely on the upper bound (17) to skip
//! the noise of tokens that cannot win.

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// Which part of a request's stream a counter addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Purpose {
    /// One uniform per vocabulary token (Gumbel-max draw).
    TokenNoise = 0,
    /// One uniform per row (inverse-CDF draw).
    RowUniform = 1,
    /// One uniform per verified draft (accept or reject it).
    Accept = 2,
}

/// Philox4x32 with 10 rounds: a pure function of counter and key.
#[inline]
pub fn philox4x32_10(mut ctr: [u32; 4], mut key: [u32; 2]) -> [u32; 4] {
    for round in 0..10 {
        if round > 0 {
            key[0] = key[0].wrapping_add(W0);
            key[1] = key[1].wrapping_add(W1);
        }
        let p0 = (M0 as u64) * (ctr[0] as u64);
        let p1 = (M1 as u64) * (ctr[2] as u64);
        let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
        let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
        ctr = [hi1 ^ ctr[1] ^ key[0], lo1, hi0 ^ ctr[3] ^ key[1], lo0];
    }
    ctr
}

/// The key and counter of `(seed, step)` for a given block and purpose.
#[inline]
pub fn key_and_counter(seed: u64, step: u64, block: u32, purpose: Purpose) -> ([u32; 4], [u32; 2]) {
    (
        [block, purpose as u32, step as u32, (step >> 32) as u32],
        [seed as u32, (seed >> 32) as u32],
    )
}

/// Maps a 32-bit word to a uniform strictly inside (0, 1), exact in f32.
#[inline]
pub fn word_to_uniform(w: u32) -> f32 {
    ((w >> 9) as f32 + 0.5) * (1.0 / 8_388_608.0)
}

/// The four uniforms of tokens `4 * block .. 4 * block + 4`.
#[inline]
pub fn token_uniforms(seed: u64, step: u64, block: u32) -> [f32; 4] {
    let (ctr, key) = key_and_counter(seed, step, block, Purpose::TokenNoise);
    philox4x32_10(ctr, key).map(word_to_uniform)
}

/// The uniform of one token (Gumbel draw).
#[inline]
pub fn token_uniform(seed: u64, step: u64, token: u32) -> f32 {
    token_uniforms(seed, step, token / 4)[(token % 4) as usize]
}

/// The row's single uniform (inverse-CDF draw).
#[inline]
pub fn row_uniform(seed: u64, step: u64) -> f32 {
    let (ctr, key) = key_and_counter(seed, step, 0, Purpose::RowUniform);
    word_to_uniform(philox4x32_10(ctr, key)[0])
}

/// The acceptance uniform of a draft verified at `(seed, step)`.
#[inline]
pub fn accept_uniform(seed: u64, step: u64) -> f32 {
    let (ctr, key) = key_and_counter(seed, step, 0, Purpose::Accept);
    word_to_uniform(philox4x32_10(ctr, key)[0])
}

/// Standard Gumbel noise `-ln(-ln u)`, in f64 for the reference.
#[inline]
pub fn gumbel(u: f32) -> f64 {
    -(-(u as f64).ln()).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Random123 kat_vectors, "philox4x32 10" lines: counter, key, expected output.
    #[test]
    fn random123_known_answers() {
        let cases: [([u32; 4], [u32; 2], [u32; 4]); 3] = [
            (
                [0; 4],
                [0; 2],
                [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8],
            ),
            (
                [u32::MAX; 4],
                [u32::MAX; 2],
                [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
            ),
            (
                [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
                [0xa4093822, 0x299f31d0],
                [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
            ),
        ];
        for (ctr, key, want) in cases {
            assert_eq!(philox4x32_10(ctr, key), want, "ctr {ctr:x?} key {key:x?}");
        }
    }

    /// `word_to_complement` and `gumbel_reach` of kernels/philox.cuh, in f32 as the kernels
    /// compute them; `w_error` is the relative error allowed for the kernel's weight
    /// (`__expf` in the split kernels: about 2^-21).
    fn kernel_skips(word: u32, d: f32, best: f32, w_error: f32) -> bool {
        let complement = ((0x7f_ffff - (word >> 9)) as f32 + 0.5) * (1.0 / 8_388_608.0);
        let reach = (-best).exp() * 1.000_244_1;
        complement > d.exp() * (1.0 + w_error) * reach
    }

    /// The kernels' one-multiply test skips a noisy token's logarithms only when its exact score
    /// is below the best by more than float error: checked at the boundary (the words on either
    /// side of the exact threshold uniform) and at random, for weights off by +-2^-20.
    #[test]
    fn the_kernels_log_free_skip_never_drops_a_possible_winner() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (state >> 32) as u32
        };
        let (mut skipped, mut tested) = (0u64, 0u64);
        for _ in 0..200_000 {
            let best = -3.0 + 20.0 * (next() as f32 / u32::MAX as f32);
            let d = best - 17.0 * (next() as f32 / u32::MAX as f32);
            // The uniform at which d + g = best exactly, and the words around it.
            let threshold = (-((d - best) as f64).exp()).exp();
            let m = (threshold * 8_388_608.0 - 0.5).floor() as i64;
            let mut words: Vec<u32> = (m - 3..=m + 3)
                .filter(|m| (0..=0x7f_ffff).contains(m))
                .map(|m| (m as u32) << 9 | (next() & 0x1ff))
                .collect();
            words.extend((0..4).map(|_| next()));
            for word in words {
                for w_error in [-1.0 / 1_048_576.0, 0.0, 1.0 / 1_048_576.0] {
                    tested += 1;
                    if kernel_skips(word, d, best, w_error) {
                        skipped += 1;
                        let score = d as f64 + gumbel(word_to_uniform(word));
                        assert!(
                            score < best as f64 - 1e-4,
                            "skipped word {word:#x}: d {d} + g = {score} vs best {best}"
                        );
                    }
                }
            }
        }
        assert!(skipped > tested / 2, "{skipped} of {tested}");
        // On the bench's spiky rows the bulk sits about 14 below a best near 1: the test skips
        // nearly every bulk token's logarithms.
        let bulk: u32 = (0..100_000u32)
            .map(|_| kernel_skips(next(), -14.0, 1.0, 0.0) as u32)
            .sum();
        assert!(bulk > 99_990, "{bulk} of 100000 bulk tokens skipped");
    }

    #[test]
    fn uniforms_stay_strictly_inside_the_unit_interval() {
        assert_eq!(word_to_uniform(0), 0.5 / 8_388_608.0);
        assert!(word_to_uniform(u32::MAX) < 1.0);
        assert_eq!(word_to_uniform(u32::MAX) as f64, 1.0 - 0.5 / 8_388_608.0);
        assert!(gumbel(word_to_uniform(u32::MAX)).is_finite());
        assert!(gumbel(word_to_uniform(0)).is_finite());
    }

    #[test]
    fn stream_depends_on_seed_step_and_token_only() {
        let a = token_uniform(7, 3, 10);
        assert_eq!(a, token_uniform(7, 3, 10));
        assert_ne!(a, token_uniform(8, 3, 10));
        assert_ne!(a, token_uniform(7, 4, 10));
        assert_ne!(a, token_uniform(7, 3, 11));
        // The high halves of seed and step are part of the key and counter.
        assert_ne!(a, token_uniform(7 | (1 << 40), 3, 10));
        assert_ne!(a, token_uniform(7, 3 | (1 << 40), 10));
        assert_ne!(row_uniform(7, 3), token_uniform(7, 3, 0));
    }

    #[test]
    fn uniforms_look_uniform() {
        // Mean and variance of 400k uniforms within 5 sigma of 1/2 and 1/12.
        let n = 100_000u32;
        let (mut s, mut s2) = (0.0f64, 0.0f64);
        for b in 0..n {
            for u in token_uniforms(42, 0, b) {
                s += u as f64;
                s2 += (u as f64) * (u as f64);
            }
        }
        let m = s / (4 * n) as f64;
        let var = s2 / (4 * n) as f64 - m * m;
        assert!(
            (m - 0.5).abs() < 5.0 * (1.0f64 / 12.0 / (4 * n) as f64).sqrt(),
            "mean {m}"
        );
        assert!((var - 1.0 / 12.0).abs() < 1e-3, "var {var}");
    }
}
