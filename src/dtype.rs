//! The element types logits come in, and a borrowed `[batch, vocab]` view over any of them.

use half::{bf16, f16};

/// The logit element types the sampler reads natively.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Dtype {
    F32,
    F16,
    Bf16,
}

impl Dtype {
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::F16 => "f16",
            Dtype::Bf16 => "bf16",
        }
    }

    pub fn size_bytes(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::Bf16 => 2,
        }
    }
}

impl std::str::FromStr for Dtype {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" => Ok(Dtype::F32),
            "f16" | "fp16" | "float16" => Ok(Dtype::F16),
            "bf16" | "bfloat16" => Ok(Dtype::Bf16),
            other => Err(format!(
                "unknown dtype '{other}' (expected f32, f16 or bf16)"
            )),
        }
    }
}

/// A logit element: widens exactly to f32 (every f16 and bf16 value is an f32 value).
pub trait Logit: Copy + Send + Sync + 'static + bytemuck::Pod {
    const DTYPE: Dtype;
    fn to_f32(self) -> f32;
}

impl Logit for f32 {
    const DTYPE: Dtype = Dtype::F32;
    #[inline]
    fn to_f32(self) -> f32 {
        self
    }
}

impl Logit for f16 {
    const DTYPE: Dtype = Dtype::F16;
    #[inline]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
}

impl Logit for bf16 {
    const DTYPE: Dtype = Dtype::Bf16;
    #[inline]
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
}

/// Owned `[batch, vocab]` logits of any supported dtype (what files load into).
#[derive(Clone, Debug, PartialEq)]
pub enum LogitsBuf {
    F32(Vec<f32>),
    F16(Vec<f16>),
    Bf16(Vec<bf16>),
}

impl LogitsBuf {
    pub fn dtype(&self) -> Dtype {
        match self {
            LogitsBuf::F32(_) => Dtype::F32,
            LogitsBuf::F16(_) => Dtype::F16,
            LogitsBuf::Bf16(_) => Dtype::Bf16,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            LogitsBuf::F32(v) => v.len(),
            LogitsBuf::F16(v) => v.len(),
            LogitsBuf::Bf16(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values widened to f32.
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match self {
            LogitsBuf::F32(v) => v.clone(),
            LogitsBuf::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
            LogitsBuf::Bf16(v) => v.iter().map(|x| x.to_f32()).collect(),
        }
    }
}

/// Calls `$body` with `$v` bound to the typed slice inside a [`LogitsBuf`].
#[macro_export]
macro_rules! with_logits {
    ($buf:expr, $v:ident => $body:expr) => {
        match $buf {
            $crate::LogitsBuf::F32($v) => $body,
            $crate::LogitsBuf::F16($v) => $body,
            $crate::LogitsBuf::Bf16($v) => $body,
        }
    };
}
