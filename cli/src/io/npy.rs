//! NumPy `.npy` files: a reader for little-endian float32 / float16 (logits) and int32 arrays in C
//! order, and a writer for the same element types, both on top of the `npyz` crate.
//!
//! npyz parses the header (a Python dict literal, in any key order and spacing, format versions
//! 1.0 to 3.0) and converts the elements. This adapter adds what npyz leaves to its caller:
//! - only `<f4`, `<f2` and `<i4` are taken, spelled exactly so: npyz would byte-swap a big-endian
//!   file silently, and a caller asking for logits must hear that the file holds something else;
//! - a Fortran-order array of more than one dimension is refused (its elements are transposed);
//! - the data must be exactly as long as the shape needs: npyz reads lazily, so it never sees
//!   trailing bytes and reports a short file only as a bare end-of-file in mid-read;
//! - a shape whose size overflows is refused here; npyz's own product of it would panic where
//!   overflow checks are on, so the workspace builds npyz without them (root `Cargo.toml`);
//! - a header nested more than a few brackets deep is refused before npyz parses it: its parser
//!   takes time exponential in the depth;
//! - every failure is a one-line [`SampleError`] naming the file.
//!
//! Where npyz differs from numpy's reader: it ignores header keys beyond the three, it does not
//! take the `3L` long sizes of Python 2 era files (a header syntax error), and it decodes version
//! 1.0 and 2.0 headers as UTF-8 rather than latin-1 (the same for the ASCII numpy writes).

use batchsample::error::{Result, SampleError};
use half::f16;
use npyz::{DType, Endianness, NpyFile, NpyHeader, Order, WriteOptions, WriterBuilder};
use std::io;
use std::path::Path;

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// What the logits loaders accept, for error messages.
pub(crate) const LOGIT_DTYPES: &str = "<f4 (float32) or <f2 (float16), little-endian";
const ANY_DTYPES: &str = "<f4 (float32), <f2 (float16) or <i4 (int32), little-endian";

/// The element types this module reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NpyDtype {
    F32,
    F16,
    I32,
}

impl NpyDtype {
    /// The numpy `descr` string.
    pub fn descr(self) -> &'static str {
        match self {
            NpyDtype::F32 => "<f4",
            NpyDtype::F16 => "<f2",
            NpyDtype::I32 => "<i4",
        }
    }

    /// The size of one element in bytes.
    pub fn size_bytes(self) -> usize {
        match self {
            NpyDtype::F32 | NpyDtype::I32 => 4,
            NpyDtype::F16 => 2,
        }
    }

    /// The npyz dtype, spelled out: npyz's default for a Rust type is the machine's byte order.
    fn to_npyz(self) -> DType {
        let type_str = self
            .descr()
            .parse()
            .expect("the three descr strings are valid");
        DType::new_scalar(type_str)
    }
}

/// The elements of an array read from a `.npy` file.
#[derive(Clone, Debug, PartialEq)]
pub enum NpyData {
    F32(Vec<f32>),
    F16(Vec<f16>),
    I32(Vec<i32>),
}

impl NpyData {
    /// The element type.
    pub fn dtype(&self) -> NpyDtype {
        match self {
            NpyData::F32(_) => NpyDtype::F32,
            NpyData::F16(_) => NpyDtype::F16,
            NpyData::I32(_) => NpyDtype::I32,
        }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        match self {
            NpyData::F32(v) => v.len(),
            NpyData::F16(v) => v.len(),
            NpyData::I32(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An array read from a `.npy` file, C order.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: NpyData,
}

/// An element type the writer can store (f32, f16, i32).
pub trait NpyElement: npyz::Serialize + Copy {
    const DTYPE: NpyDtype;
}

impl NpyElement for f32 {
    const DTYPE: NpyDtype = NpyDtype::F32;
}

impl NpyElement for f16 {
    const DTYPE: NpyDtype = NpyDtype::F16;
}

impl NpyElement for i32 {
    const DTYPE: NpyDtype = NpyDtype::I32;
}

/// Whether `bytes` start with the `.npy` magic.
pub fn has_magic(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// Parses a whole `.npy` file of `<f4`, `<f2` or `<i4` elements in C order; `path` only names the
/// file in errors.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<NpyArray> {
    let all = [NpyDtype::F32, NpyDtype::F16, NpyDtype::I32];
    parse_as(path, bytes, &all, ANY_DTYPES)
}

/// Parses a `.npy` file of logits: `<f4` or `<f2`, C order (any shape; the caller checks it).
pub fn parse_logits(path: &Path, bytes: &[u8]) -> Result<NpyArray> {
    parse_as(path, bytes, &[NpyDtype::F32, NpyDtype::F16], LOGIT_DTYPES)
}

/// Reads a `.npy` file of `<f4`, `<f2` or `<i4` elements.
pub fn read(path: impl AsRef<Path>) -> Result<NpyArray> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| SampleError::file(path, e))?;
    parse(path, &bytes)
}

fn parse_as(
    path: &Path,
    bytes: &[u8],
    accepted: &[NpyDtype],
    expected: &'static str,
) -> Result<NpyArray> {
    let err = |msg: String| SampleError::file(path, msg);
    let (header, data) = read_header(path, bytes)?;
    let dtype =
        accepted_dtype(&header, accepted).map_err(|dtype| SampleError::UnsupportedDtype {
            path: path.into(),
            dtype,
            expected,
        })?;
    if header.order() == Order::Fortran && header.shape().len() > 1 {
        return Err(err(
            "Fortran-order (column-major) arrays are not supported; save a C-order array \
             (np.ascontiguousarray)"
                .into(),
        ));
    }
    let too_large = || err(format!("shape {:?} is too large", header.shape()));
    let shape = header
        .shape()
        .iter()
        .map(|&d| usize::try_from(d).ok())
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(too_large)?;
    let need = shape
        .iter()
        .try_fold(dtype.size_bytes(), |n, &d| n.checked_mul(d))
        .ok_or_else(too_large)?;
    // Checked before npyz reads anything: it would allocate for the shape's element count and
    // then fail in mid-read on a short file, and never look past the last element.
    if data.len() < need {
        return Err(err(format!(
            "truncated .npy data: shape {shape:?} of {} needs {need} bytes, the file holds {}",
            dtype.descr(),
            data.len()
        )));
    }
    if data.len() > need {
        return Err(err(format!(
            "{} unexpected bytes after the data of shape {shape:?} of {}",
            data.len() - need,
            dtype.descr()
        )));
    }
    let data = match dtype {
        NpyDtype::F32 => NpyData::F32(elements(path, header, data)?),
        NpyDtype::F16 => NpyData::F16(elements(path, header, data)?),
        NpyDtype::I32 => NpyData::I32(elements(path, header, data)?),
    };
    Ok(NpyArray { shape, data })
}

/// The header of the file held in `bytes`, and the bytes after it.
fn read_header<'a>(path: &Path, bytes: &'a [u8]) -> Result<(NpyHeader, &'a [u8])> {
    let err = |msg: String| SampleError::file(path, msg);
    if !has_magic(bytes) {
        return Err(err(
            "not a .npy file: it does not start with the \\x93NUMPY magic".into(),
        ));
    }
    // npyz reads the magic and the version together and calls a file cut short between them
    // "magic not found", which would mislead here.
    if bytes.len() < MAGIC.len() + 2 {
        return Err(err("truncated .npy header: no version bytes".into()));
    }
    check_nesting(path, bytes)?;
    let mut rest = bytes;
    let header = NpyHeader::from_reader(&mut rest).map_err(|e| {
        // npyz reads with `read_exact`: an end of file means the header is cut short. Its other
        // errors are malformed headers; a Python syntax error spans several lines.
        if e.kind() == io::ErrorKind::UnexpectedEof {
            err("truncated .npy header: the file ends inside it".into())
        } else {
            let text = e.to_string();
            err(format!(
                "bad .npy header: {}",
                text.split_whitespace().collect::<Vec<_>>().join(" ")
            ))
        }
    })?;
    Ok((header, rest))
}

/// Refuses a header nested more than [`MAX_NESTING`] brackets deep, before npyz parses it.
///
/// npyz's Python-literal parser (py_literal, on pest) backtracks exponentially in the nesting
/// depth: 20 unclosed `[` take it seconds, 30 half an hour. numpy writes depth 2 (the dict and the
/// shape tuple), a few more for structured dtypes. Brackets inside strings are counted too, which
/// errs on the side of refusing.
fn check_nesting(path: &Path, bytes: &[u8]) -> Result<()> {
    let (start, len) = match bytes[MAGIC.len()] {
        1 if bytes.len() >= 10 => (10usize, u16::from_le_bytes([bytes[8], bytes[9]]) as usize),
        2 | 3 if bytes.len() >= 12 => {
            let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            (12, len as usize)
        }
        // npyz reports the bad version or the missing length.
        _ => return Ok(()),
    };
    let text = &bytes[start..bytes.len().min(start.saturating_add(len))];
    let mut depth = 0usize;
    for &b in text {
        match b {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => continue,
        }
        if depth > MAX_NESTING {
            return Err(SampleError::file(
                path,
                format!("bad .npy header: nested more than {MAX_NESTING} brackets deep"),
            ));
        }
    }
    Ok(())
}

/// How deep [`check_nesting`] lets a header nest (npyz parses that in a few milliseconds).
const MAX_NESTING: usize = 10;

/// The header's dtype if it is one of `accepted`; else the dtype as shown in the error.
fn accepted_dtype(
    header: &NpyHeader,
    accepted: &[NpyDtype],
) -> std::result::Result<NpyDtype, String> {
    match header.dtype() {
        DType::Plain(type_str) => {
            let descr = type_str.to_string();
            if let Some(&d) = accepted.iter().find(|d| d.descr() == descr) {
                Ok(d)
            } else if type_str.endianness() == Endianness::Big {
                Err(format!("{descr} (big-endian)"))
            } else {
                Err(descr)
            }
        }
        // A structured dtype, shown as npyz renders its field list.
        other => Err(other.descr()),
    }
}

/// Decodes `data`, whose length the caller has checked against the header.
fn elements<T: npyz::Deserialize>(path: &Path, header: NpyHeader, data: &[u8]) -> Result<Vec<T>> {
    NpyFile::with_header(header, data)
        .into_vec()
        .map_err(|e| SampleError::file(path, format!("bad .npy data: {e}")))
}

/// Serialises `data` of `shape` (C order) as a `.npy` file image: npyz writes version 1.0 when the
/// header fits (2.0 otherwise), padded so the data starts at a multiple of 64 bytes.
pub fn to_bytes<T: NpyElement>(shape: &[usize], data: &[T]) -> Result<Vec<u8>> {
    let len = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if len != Some(data.len()) {
        return Err(SampleError::Shape(format!(
            "{} elements do not fill shape {shape:?}",
            data.len()
        )));
    }
    let dims: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut out = Vec::with_capacity(128 + std::mem::size_of_val(data));
    let mut write = || -> io::Result<()> {
        let mut writer = WriteOptions::new()
            .dtype(T::DTYPE.to_npyz())
            .shape(&dims)
            .writer(&mut out)
            .begin_nd()?;
        writer.extend(data.iter().copied())?;
        writer.finish()
    };
    // Writing to a Vec cannot fail on I/O; npyz's only other error is a count that does not fill
    // the shape, checked above.
    write().map_err(|e| SampleError::Shape(e.to_string()))?;
    Ok(out)
}

/// Writes `data` of `shape` (C order) to a `.npy` file.
pub fn write<T: NpyElement>(path: impl AsRef<Path>, shape: &[usize], data: &[T]) -> Result<()> {
    let path = path.as_ref();
    let bytes = to_bytes(shape, data)?;
    std::fs::write(path, bytes).map_err(|e| SampleError::file(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("t.npy")
    }

    /// A file image with a hand-written header of format `version` (1, 2 or 3).
    fn with_header_v(version: u8, header: &str, data: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[version, 0]);
        if version == 1 {
            out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        }
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    fn with_header(header: &str, data: &[u8]) -> Vec<u8> {
        with_header_v(1, header, data)
    }

    #[test]
    fn round_trips_every_type() {
        let f: Vec<f32> = vec![1.5, -2.0, f32::NEG_INFINITY, 0.0, 3.25, 7.0];
        let bytes = to_bytes(&[2, 3], &f).unwrap();
        // Version 1.0, the data 64-byte aligned, little-endian whatever the machine.
        assert_eq!(bytes[..8], *b"\x93NUMPY\x01\x00");
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
        assert!(
            header.starts_with("{'descr': '<f4', 'fortran_order': False,"),
            "{header}"
        );
        assert!(header.ends_with('\n'), "{header}");
        assert_eq!(
            bytes[10 + header_len..12 + header_len],
            1.5f32.to_le_bytes()[..2]
        );
        let back = parse(p(), &bytes).unwrap();
        assert_eq!(back.shape, vec![2, 3]);
        assert_eq!(back.data, NpyData::F32(f.clone()));

        let h: Vec<f16> = f.iter().map(|&x| f16::from_f32(x)).collect();
        let back = parse_logits(p(), &to_bytes(&[6], &h).unwrap()).unwrap();
        assert_eq!(back.shape, vec![6]);
        assert_eq!(back.data, NpyData::F16(h));

        let i: Vec<i32> = vec![-1, 0, 7, i32::MAX];
        let back = parse(p(), &to_bytes(&[4, 1], &i).unwrap()).unwrap();
        assert_eq!((back.shape, back.data), (vec![4, 1], NpyData::I32(i)));

        let empty: Vec<i32> = vec![];
        let back = parse(p(), &to_bytes(&[0, 3], &empty).unwrap()).unwrap();
        assert_eq!(back.shape, vec![0, 3]);
        assert!(back.data.is_empty());

        let scalar = parse(p(), &to_bytes(&[], &[5i32]).unwrap()).unwrap();
        assert_eq!((scalar.shape, scalar.data), (vec![], NpyData::I32(vec![5])));
    }

    #[test]
    fn writer_checks_the_shape() {
        assert!(matches!(
            to_bytes(&[2, 2], &[1i32, 2, 3]),
            Err(SampleError::Shape(_))
        ));
    }

    #[test]
    fn file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.npy");
        write(&path, &[3], &[1.0f32, 2.0, 3.0]).unwrap();
        assert_eq!(read(&path).unwrap().data, NpyData::F32(vec![1.0, 2.0, 3.0]));
        let missing = read(dir.path().join("nope.npy")).unwrap_err().to_string();
        assert!(missing.contains("nope.npy"), "{missing}");
    }

    #[test]
    fn reads_what_numpy_writes() {
        // np.save of np.arange(3, dtype='<f4'): header as numpy 1.x/2.x writes it.
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }";
        let mut h = header.to_string();
        h.extend(std::iter::repeat_n(' ', 128 - 10 - h.len() - 1));
        h.push('\n');
        let data: Vec<u8> = [0.0f32, 1.0, 2.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let a = parse(p(), &with_header(&h, &data)).unwrap();
        assert_eq!(a.data, NpyData::F32(vec![0.0, 1.0, 2.0]));

        // Other key order, double quotes, odd spacing, versions 2.0 and 3.0 (UTF-8).
        let header = r#"{"shape":(1,2),  "fortran_order" : False,"descr": "<f2"}"#;
        for version in [2, 3] {
            let a = parse(p(), &with_header_v(version, header, &[0, 0x3c, 0, 0x40])).unwrap();
            assert_eq!(a.shape, vec![1, 2]);
            assert_eq!(
                a.data,
                NpyData::F16(vec![f16::from_f32(1.0), f16::from_f32(2.0)])
            );
        }

        // A 1-D array flagged Fortran order is laid out like a C one.
        let header = "{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }";
        assert!(parse(p(), &with_header(header, &1f32.to_le_bytes())).is_ok());
    }

    #[test]
    fn rejects_bad_headers() {
        let h = |header: &str| with_header(header, &[]);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"hello world, not numpy".to_vec(), "magic"),
            (b"\x93NUM".to_vec(), "magic"),
            (b"\x93NUMPY".to_vec(), "no version bytes"),
            (
                b"\x93NUMPY\x07\x00\x10\x00".to_vec(),
                "unsupported version: (7, 0)",
            ),
            (
                b"\x93NUMPY\x01\x00\x50\x00{'descr'".to_vec(),
                "truncated .npy header",
            ),
            (
                h("{'descr': '<f4', 'fortran_order': False}"),
                "missing key 'shape'",
            ),
            (
                h("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)"),
                "syntax error",
            ),
            (h("['descr']"), "expected a python dict"),
            (
                h("{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}"),
                "fortran_order",
            ),
            (
                h("{'descr': '<f4', 'fortran_order': False, 'shape': 3}"),
                "shape must be",
            ),
            (
                h("{'descr': '<f4', 'fortran_order': False, 'shape': (-3,)}"),
                "negative",
            ),
            (
                h("{'descr': '<f4', 'fortran_order': Nope, 'shape': (1,)}"),
                "Nope",
            ),
            (
                h("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} junk"),
                "junk",
            ),
            // Parsed by npyz, this would take about half an hour.
            (
                h(&format!("{{'descr': {}", "[".repeat(30))),
                "nested more than 10",
            ),
            // Python 2 era numpy wrote long sizes as `3L`; npyz's parser takes Python 3 only.
            (
                h("{'descr': '<f4', 'fortran_order': False, 'shape': (3L,)}"),
                "syntax error",
            ),
        ];
        for (bytes, needle) in cases {
            let msg = parse(p(), &bytes).unwrap_err().to_string();
            assert!(msg.contains(needle), "{needle:?} not in {msg:?}");
            assert!(msg.starts_with("t.npy: "), "{msg}");
            assert!(!msg.contains('\n'), "{msg}");
        }
    }

    #[test]
    fn rejects_bad_dtypes_and_layouts() {
        let eight = [0u8; 8];
        let dtype = |descr: &str| {
            let h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (2,), }}");
            parse_logits(p(), &with_header(&h, &eight)).unwrap_err()
        };
        for (descr, shown) in [
            ("<i8", "<i8"),
            (">f4", ">f4 (big-endian)"),
            ("<f8", "<f8"),
            ("<i4", "<i4"),
        ] {
            match dtype(descr) {
                SampleError::UnsupportedDtype { dtype, .. } => assert_eq!(dtype, shown),
                other => panic!("{descr}: {other}"),
            }
        }
        let structured = "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }";
        assert!(matches!(
            parse(p(), &with_header(structured, &eight)),
            Err(SampleError::UnsupportedDtype { .. })
        ));

        let fortran = "{'descr': '<f4', 'fortran_order': True, 'shape': (1, 2), }";
        let msg = parse(p(), &with_header(fortran, &eight))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("Fortran"), "{msg}");

        let shape = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 5), }";
        let msg = parse(p(), &with_header(shape, &eight))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("truncated") && msg.contains("40 bytes"),
            "{msg}"
        );
        let long = [0u8; 44];
        let msg = parse(p(), &with_header(shape, &long))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("4 unexpected bytes"), "{msg}");

        let huge =
            "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999), }";
        let msg = parse(p(), &with_header(huge, &eight))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("too large"), "{msg}");
    }
}
