// The sampler's kernel families, one line each: the one declaration of the kernel set. Every
// family is instantiated for f32, f16 and bf16 as `<name>_<dtype>` (kernels/sampler.cu makes the
// CUDA entry points and the host shim's launchers from this list), and build.rs reads the same
// lines to write the Rust side's table (src/gpu/table.rs includes it): the launcher and the
// shim's Rust bindings find their entry points there. Adding a family is one line here, its
// rows template and macro in kernels/sampler.cu, and nothing else to name it.
//
// SAMPLER_FAMILY(name, kind, numerics, draw, split, min_blocks, rows)
//   kind        GENERAL, UNFILTERED or COLLECTED: Rust's `SamplerKernel`, which rows it serves
//   numerics    FAST or INVARIANT (`Numerics`), or ANY: the family has one and ignores the flag
//   draw        GUMBEL or INVERSE_CDF (`DrawMethod`), or ANY: the family draws either way
//   split       0: one block per row (grid.x = batch); 1: grid = (splits, batch)
//   min_blocks  row blocks of SAMPLER_MAX_THREADS an SM must hold (`__launch_bounds__`)
//   rows        a macro of the dtype naming the row template the entry point calls
// The parser in build/table.rs expects exactly these seven fields per line.
#pragma once

#define SAMPLER_FAMILIES(SAMPLER_FAMILY)                                                           \
    SAMPLER_FAMILY(sample_rows, GENERAL, FAST, ANY, 0, 1, GENERAL_ROWS)                            \
    SAMPLER_FAMILY(sample_rows_invariant, GENERAL, INVARIANT, ANY, 0, 1, INVARIANT_ROWS)           \
    SAMPLER_FAMILY(sample_rows_split, GENERAL, FAST, ANY, 1, 1, GENERAL_SPLIT_ROWS)                \
    SAMPLER_FAMILY(sample_rows_unfiltered, UNFILTERED, ANY, GUMBEL, 0, UNFILTERED_MIN_BLOCKS,      \
                   UNFILTERED_GUMBEL_ROWS)                                                         \
    SAMPLER_FAMILY(sample_rows_unfiltered_cdf, UNFILTERED, ANY, INVERSE_CDF, 0,                    \
                   UNFILTERED_MIN_BLOCKS, UNFILTERED_CDF_ROWS)                                     \
    SAMPLER_FAMILY(sample_rows_unfiltered_split, UNFILTERED, ANY, GUMBEL, 1,                       \
                   UNFILTERED_MIN_BLOCKS, UNFILTERED_GUMBEL_SPLIT_ROWS)                            \
    SAMPLER_FAMILY(sample_rows_unfiltered_cdf_split, UNFILTERED, ANY, INVERSE_CDF, 1,              \
                   UNFILTERED_MIN_BLOCKS, UNFILTERED_CDF_SPLIT_ROWS)                               \
    SAMPLER_FAMILY(sample_rows_collected, COLLECTED, FAST, GUMBEL, 0, UNFILTERED_MIN_BLOCKS,       \
                   COLLECTED_ROWS)
