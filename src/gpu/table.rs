//! The kernel table: every sampler family, read from `kernels/sampler_table.cuh` (build.rs
//! writes [`FAMILIES`] from the same lines the CUDA entry points and the host shim's launchers
//! come from), and the one key — [`KernelKey`] — by which the launcher, the shim and the tests
//! pick an entry point.

use super::launch::SamplerKernel;
use crate::dtype::Dtype;
use crate::params::{DrawMethod, Numerics};

/// One family of entry points (`<name>_f32`, `<name>_f16`, `<name>_bf16`) and the launches it
/// serves: `None` for numerics or draw means any.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Family {
    pub name: &'static str,
    pub kind: SamplerKernel,
    pub numerics: Option<Numerics>,
    pub draw: Option<DrawMethod>,
    pub split: bool,
}

impl Family {
    /// The family's entry point for `dtype` in the kernel image (`sample_rows_split_bf16`).
    pub(crate) fn entry(&self, dtype: Dtype) -> String {
        format!("{}_{}", self.name, dtype.name())
    }
}

include!(concat!(env!("OUT_DIR"), "/sampler_table.rs"));

/// What picks a launch's entry point: which rows the family serves, the numerics, the draw
/// method, the logits' dtype, and whether rows split over several blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelKey {
    pub kernel: SamplerKernel,
    pub numerics: Numerics,
    pub draw: DrawMethod,
    pub dtype: Dtype,
    pub split: bool,
}

impl KernelKey {
    /// The index in [`FAMILIES`] of the family that serves this launch, if one does. A collected
    /// launch that splits takes the general split family, which serves the same rows from the
    /// same candidates; only fast numerics split (the invariant ones must not depend on the
    /// batch), so an invariant split key has no family.
    pub(crate) fn family(&self) -> Option<usize> {
        let kind = match (self.kernel, self.split) {
            (SamplerKernel::Collected, true) => SamplerKernel::General,
            (kind, _) => kind,
        };
        FAMILIES.iter().position(|f| {
            f.kind == kind
                && f.split == self.split
                && f.numerics.is_none_or(|n| n == self.numerics)
                && f.draw.is_none_or(|d| d == self.draw)
        })
    }

    /// The entry point's name in the kernel image (`sample_rows_unfiltered_cdf_split_bf16`).
    #[cfg(test)]
    pub fn entry_name(&self) -> Option<String> {
        self.family().map(|i| FAMILIES[i].entry(self.dtype))
    }
}

/// The dtypes in the order of the table's columns (and the shim's launcher rows).
pub(crate) const DTYPES: [Dtype; 3] = [Dtype::F32, Dtype::F16, Dtype::Bf16];

/// `dtype`'s column in [`DTYPES`].
pub(crate) fn dtype_column(dtype: Dtype) -> usize {
    match dtype {
        Dtype::F32 => 0,
        Dtype::F16 => 1,
        Dtype::Bf16 => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every launch the launcher can make has exactly one family, named as the kernels are.
    #[test]
    fn every_launch_the_launcher_makes_has_an_entry_point() {
        use SamplerKernel::*;
        let key = |kernel, numerics, draw, split| KernelKey {
            kernel,
            numerics,
            draw,
            dtype: Dtype::Bf16,
            split,
        };
        let (fast, inv) = (Numerics::Fast, Numerics::Invariant);
        let (g, cdf) = (DrawMethod::Gumbel, DrawMethod::InverseCdf);
        let name = |k: KernelKey| k.entry_name().unwrap_or_default();
        assert_eq!(name(key(General, fast, g, false)), "sample_rows_bf16");
        assert_eq!(
            name(key(General, fast, cdf, true)),
            "sample_rows_split_bf16"
        );
        assert_eq!(
            name(key(General, inv, cdf, false)),
            "sample_rows_invariant_bf16"
        );
        assert_eq!(
            name(key(Unfiltered, fast, g, false)),
            "sample_rows_unfiltered_bf16"
        );
        assert_eq!(
            name(key(Unfiltered, fast, cdf, true)),
            "sample_rows_unfiltered_cdf_split_bf16"
        );
        assert_eq!(
            name(key(Collected, fast, g, false)),
            "sample_rows_collected_bf16"
        );
        assert_eq!(
            name(key(Collected, fast, g, true)),
            "sample_rows_split_bf16"
        );
        assert_eq!(key(General, inv, g, true).family(), None);
        assert_eq!(key(Collected, fast, cdf, false).family(), None);
        // Names are unique.
        let mut names: Vec<_> = FAMILIES.iter().map(|f| f.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FAMILIES.len());
    }
}
