//! NumPy `.npy` files: a reader for little-endian float32 / float16 (logits) and int32 arrays in C
//! order, and a writer for the same element types.
//!
//! The format (numpy's `format.py`): the magic `\x93NUMPY`, a major and a minor version byte, the
//! header length (u16 little-endian for version 1, u32 for versions 2 and 3), then the header: a
//! Python dict literal `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 5), }` padded with
//! spaces and ending in `\n` (latin-1 in versions 1 and 2, UTF-8 in version 3), then the raw data.
//! The header is parsed as a small subset of Python literals, not pattern-matched, so any key order
//! and spacing numpy (or another writer) may produce is read.

use batchsample::error::{Result, SampleError};
use half::f16;
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

    pub fn size_bytes(self) -> usize {
        match self {
            NpyDtype::F32 | NpyDtype::I32 => 4,
            NpyDtype::F16 => 2,
        }
    }

    /// Parses a `descr`; `Err` holds the description of an unsupported one for the error message.
    fn from_descr(descr: &str) -> std::result::Result<NpyDtype, String> {
        match descr {
            "<f4" => Ok(NpyDtype::F32),
            "<f2" => Ok(NpyDtype::F16),
            "<i4" => Ok(NpyDtype::I32),
            d if d.starts_with('>') => Err(format!("{d} (big-endian)")),
            d => Err(d.to_string()),
        }
    }
}

/// The parsed header of a `.npy` file.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyHeader {
    pub version: (u8, u8),
    /// The `descr` field as written (e.g. `<f4`); a structured dtype is rendered as its literal.
    pub descr: String,
    pub fortran_order: bool,
    pub shape: Vec<usize>,
    /// Where the data starts, in bytes from the start of the file.
    pub data_offset: usize,
}

impl NpyHeader {
    /// The number of elements the shape holds (an empty shape is a scalar: one element).
    pub fn len(&self) -> Option<usize> {
        self.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
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
    pub fn dtype(&self) -> NpyDtype {
        match self {
            NpyData::F32(_) => NpyDtype::F32,
            NpyData::F16(_) => NpyDtype::F16,
            NpyData::I32(_) => NpyDtype::I32,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            NpyData::F32(v) => v.len(),
            NpyData::F16(v) => v.len(),
            NpyData::I32(v) => v.len(),
        }
    }

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

/// An element type the writer can store.
pub trait NpyElement: Copy {
    const DTYPE: NpyDtype;
    fn extend_le(self, out: &mut Vec<u8>);
}

impl NpyElement for f32 {
    const DTYPE: NpyDtype = NpyDtype::F32;
    fn extend_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl NpyElement for f16 {
    const DTYPE: NpyDtype = NpyDtype::F16;
    fn extend_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_bits().to_le_bytes());
    }
}

impl NpyElement for i32 {
    const DTYPE: NpyDtype = NpyDtype::I32;
    fn extend_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

/// Whether `bytes` start with the `.npy` magic.
pub fn has_magic(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// Parses the header of a `.npy` file held in `bytes`; `path` only names the file in errors.
pub fn parse_header(path: &Path, bytes: &[u8]) -> Result<NpyHeader> {
    let err = |msg: String| SampleError::file(path, msg);
    if !has_magic(bytes) {
        return Err(err(if bytes.len() < MAGIC.len() {
            format!("not a .npy file: only {} bytes long", bytes.len())
        } else {
            "not a .npy file: missing the \\x93NUMPY magic".into()
        }));
    }
    if bytes.len() < 8 {
        return Err(err("truncated .npy header: no version bytes".into()));
    }
    let version = (bytes[6], bytes[7]);
    let (len_size, utf8) = match version.0 {
        1 => (2, false),
        2 => (4, false),
        3 => (4, true),
        major => {
            return Err(err(format!(
                "unsupported .npy format version {major}.{} (expected 1.0, 2.0 or 3.0)",
                version.1
            )))
        }
    };
    let start = 8 + len_size;
    if bytes.len() < start {
        return Err(err("truncated .npy header: no header length".into()));
    }
    let header_len = if len_size == 2 {
        u16::from_le_bytes([bytes[8], bytes[9]]) as usize
    } else {
        u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize
    };
    let data_offset = start + header_len;
    if bytes.len() < data_offset {
        return Err(err(format!(
            "truncated .npy header: it declares {header_len} bytes, the file holds {}",
            bytes.len() - start
        )));
    }
    let raw = &bytes[start..data_offset];
    let text: String = if utf8 {
        std::str::from_utf8(raw)
            .map_err(|e| err(format!("bad .npy header: not UTF-8 ({e})")))?
            .to_string()
    } else {
        // Versions 1 and 2 are latin-1: every byte is one character.
        raw.iter().map(|&b| b as char).collect()
    };

    let dict = match Literal::parse(&text) {
        Ok(Literal::Dict(entries)) => entries,
        Ok(other) => {
            return Err(err(format!(
                "bad .npy header: expected a dict, got {}",
                other.kind()
            )))
        }
        Err(e) => return Err(err(format!("bad .npy header: {e}"))),
    };
    let mut descr = None;
    let mut fortran_order = None;
    let mut shape = None;
    for (key, value) in dict {
        let Literal::Str(key) = key else {
            return Err(err(format!(
                "bad .npy header: dict key must be a string, got {}",
                key.kind()
            )));
        };
        match key.as_str() {
            "descr" => {
                descr = Some(match value {
                    Literal::Str(s) => s,
                    // A structured dtype (a list of fields) is never a logit array.
                    other => other.to_string(),
                })
            }
            "fortran_order" => match value {
                Literal::Bool(b) => fortran_order = Some(b),
                other => {
                    return Err(err(format!(
                        "bad .npy header: fortran_order must be True or False, got {}",
                        other.kind()
                    )))
                }
            },
            "shape" => {
                let Literal::Tuple(dims) = value else {
                    return Err(err(format!(
                        "bad .npy header: shape must be a tuple, got {}",
                        value.kind()
                    )));
                };
                let dims = dims
                    .into_iter()
                    .map(|d| match d {
                        Literal::Int(n) => usize::try_from(n).ok(),
                        _ => None,
                    })
                    .collect::<Option<Vec<usize>>>()
                    .ok_or_else(|| {
                        err("bad .npy header: shape holds something other than sizes".into())
                    })?;
                shape = Some(dims);
            }
            other => {
                let expected = "descr, fortran_order, shape";
                return Err(err(format!(
                    "bad .npy header: unexpected key '{other}' (expected {expected})"
                )));
            }
        }
    }
    let missing = |name: &str| err(format!("bad .npy header: no '{name}' key"));
    Ok(NpyHeader {
        version,
        descr: descr.ok_or_else(|| missing("descr"))?,
        fortran_order: fortran_order.ok_or_else(|| missing("fortran_order"))?,
        shape: shape.ok_or_else(|| missing("shape"))?,
        data_offset,
    })
}

/// Parses a whole `.npy` file of `<f4`, `<f2` or `<i4` elements in C order.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<NpyArray> {
    let header = parse_header(path, bytes)?;
    let dtype =
        NpyDtype::from_descr(&header.descr).map_err(|dtype| SampleError::UnsupportedDtype {
            path: path.into(),
            dtype,
            expected: ANY_DTYPES,
        })?;
    decode(path, bytes, &header, dtype)
}

/// Parses a `.npy` file of logits: `<f4` or `<f2`, C order (any shape; the caller checks it).
pub fn parse_logits(path: &Path, bytes: &[u8]) -> Result<NpyArray> {
    let header = parse_header(path, bytes)?;
    let dtype = match NpyDtype::from_descr(&header.descr) {
        Ok(d @ (NpyDtype::F32 | NpyDtype::F16)) => Ok(d),
        Ok(other) => Err(other.descr().to_string()),
        Err(e) => Err(e),
    }
    .map_err(|dtype| SampleError::UnsupportedDtype {
        path: path.into(),
        dtype,
        expected: LOGIT_DTYPES,
    })?;
    decode(path, bytes, &header, dtype)
}

fn decode(path: &Path, bytes: &[u8], header: &NpyHeader, dtype: NpyDtype) -> Result<NpyArray> {
    let err = |msg: String| SampleError::file(path, msg);
    if header.fortran_order && header.shape.len() > 1 {
        return Err(err(
            "Fortran-order (column-major) arrays are not supported; save a C-order array \
             (np.ascontiguousarray)"
                .into(),
        ));
    }
    let shape_text = shape_literal(&header.shape);
    let need = header
        .len()
        .and_then(|n| n.checked_mul(dtype.size_bytes()))
        .ok_or_else(|| err(format!("shape {shape_text} is too large")))?;
    let data = &bytes[header.data_offset..];
    if data.len() < need {
        return Err(err(format!(
            "truncated .npy data: shape {shape_text} of {} needs {need} bytes, the file holds {}",
            dtype.descr(),
            data.len()
        )));
    }
    if data.len() > need {
        return Err(err(format!(
            "{} unexpected bytes after the data of shape {shape_text} of {}",
            data.len() - need,
            dtype.descr()
        )));
    }
    let data = match dtype {
        NpyDtype::F32 => NpyData::F32(
            data.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        NpyDtype::F16 => NpyData::F16(
            data.chunks_exact(2)
                .map(|c| f16::from_bits(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
        ),
        NpyDtype::I32 => NpyData::I32(
            data.chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
    };
    Ok(NpyArray {
        shape: header.shape.clone(),
        data,
    })
}

/// Reads a `.npy` file of `<f4`, `<f2` or `<i4` elements.
pub fn read(path: impl AsRef<Path>) -> Result<NpyArray> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| SampleError::file(path, e))?;
    parse(path, &bytes)
}

/// Serialises `data` of `shape` (C order) as a `.npy` file image, version 1.0 when the header
/// fits (2.0 otherwise), header padded so the data starts at a multiple of 64 bytes.
pub fn to_bytes<T: NpyElement>(shape: &[usize], data: &[T]) -> Result<Vec<u8>> {
    let len = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if len != Some(data.len()) {
        return Err(SampleError::Shape(format!(
            "{} elements do not fill shape {}",
            data.len(),
            shape_literal(shape)
        )));
    }
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}",
        T::DTYPE.descr(),
        shape_literal(shape)
    );
    let (version, len_size) = if header.len() + 1 + 10 <= u16::MAX as usize {
        (1u8, 2)
    } else {
        (2u8, 4)
    };
    let unpadded = MAGIC.len() + 2 + len_size + header.len() + 1;
    header.extend(std::iter::repeat_n(
        ' ',
        unpadded.next_multiple_of(64) - unpadded,
    ));
    header.push('\n');
    let mut out = Vec::with_capacity(unpadded + 64 + data.len() * T::DTYPE.size_bytes());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[version, 0]);
    if len_size == 2 {
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(header.as_bytes());
    for &x in data {
        x.extend_le(&mut out);
    }
    Ok(out)
}

/// Writes `data` of `shape` (C order) to a `.npy` file.
pub fn write<T: NpyElement>(path: impl AsRef<Path>, shape: &[usize], data: &[T]) -> Result<()> {
    let path = path.as_ref();
    let bytes = to_bytes(shape, data)?;
    std::fs::write(path, bytes).map_err(|e| SampleError::file(path, e))
}

/// A shape as a Python tuple literal: `()`, `(5,)`, `(2, 5)`.
fn shape_literal(shape: &[usize]) -> String {
    match shape {
        [] => "()".into(),
        [n] => format!("({n},)"),
        dims => format!(
            "({})",
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The subset of Python literals a `.npy` header holds.
#[derive(Clone, Debug, PartialEq)]
enum Literal {
    Str(String),
    Int(i128),
    Bool(bool),
    None,
    Tuple(Vec<Literal>),
    List(Vec<Literal>),
    Dict(Vec<(Literal, Literal)>),
}

impl Literal {
    fn kind(&self) -> &'static str {
        match self {
            Literal::Str(_) => "string",
            Literal::Int(_) => "integer",
            Literal::Bool(_) => "boolean",
            Literal::None => "None",
            Literal::Tuple(_) => "tuple",
            Literal::List(_) => "list",
            Literal::Dict(_) => "dict",
        }
    }

    /// Parses one literal filling `text` (surrounding whitespace allowed).
    fn parse(text: &str) -> std::result::Result<Literal, String> {
        let mut p = LiteralParser {
            chars: text.chars().collect(),
            pos: 0,
        };
        let value = p.value(0)?;
        p.skip_ws();
        if p.pos != p.chars.len() {
            return Err(format!(
                "unexpected text after the dict at character {}",
                p.pos
            ));
        }
        Ok(value)
    }
}

impl std::fmt::Display for Literal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn seq(f: &mut std::fmt::Formatter<'_>, items: &[Literal]) -> std::fmt::Result {
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{x}")?;
            }
            Ok(())
        }
        match self {
            Literal::Str(s) => write!(f, "'{s}'"),
            Literal::Int(n) => write!(f, "{n}"),
            Literal::Bool(b) => f.write_str(if *b { "True" } else { "False" }),
            Literal::None => f.write_str("None"),
            Literal::Tuple(items) => {
                f.write_str("(")?;
                seq(f, items)?;
                f.write_str(if items.len() == 1 { ",)" } else { ")" })
            }
            Literal::List(items) => {
                f.write_str("[")?;
                seq(f, items)?;
                f.write_str("]")
            }
            Literal::Dict(entries) => {
                f.write_str("{")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

struct LiteralParser {
    chars: Vec<char>,
    pos: usize,
}

impl LiteralParser {
    const MAX_DEPTH: usize = 32;

    fn skip_ws(&mut self) {
        while self.chars.get(self.pos).is_some_and(|c| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_ws();
        self.chars.get(self.pos).copied()
    }

    fn expect_end(&self, what: &str) -> String {
        format!("unexpected end of header inside {what}")
    }

    fn value(&mut self, depth: usize) -> std::result::Result<Literal, String> {
        if depth > Self::MAX_DEPTH {
            return Err("literal nested too deeply".into());
        }
        match self.peek() {
            None => Err("unexpected end of header".into()),
            Some('{') => {
                self.pos += 1;
                let mut entries = Vec::new();
                loop {
                    match self.peek() {
                        None => return Err(self.expect_end("a dict")),
                        Some('}') => {
                            self.pos += 1;
                            return Ok(Literal::Dict(entries));
                        }
                        _ => {}
                    }
                    let key = self.value(depth + 1)?;
                    if self.peek() != Some(':') {
                        return Err(format!(
                            "expected ':' after a dict key at character {}",
                            self.pos
                        ));
                    }
                    self.pos += 1;
                    let value = self.value(depth + 1)?;
                    entries.push((key, value));
                    match self.peek() {
                        Some(',') => self.pos += 1,
                        Some('}') => {}
                        None => return Err(self.expect_end("a dict")),
                        Some(c) => {
                            return Err(format!(
                                "unexpected '{c}' in a dict at character {}",
                                self.pos
                            ))
                        }
                    }
                }
            }
            Some(open @ ('(' | '[')) => {
                let close = if open == '(' { ')' } else { ']' };
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    match self.peek() {
                        None => return Err(self.expect_end("a tuple or list")),
                        Some(c) if c == close => {
                            self.pos += 1;
                            return Ok(if open == '(' {
                                Literal::Tuple(items)
                            } else {
                                Literal::List(items)
                            });
                        }
                        _ => {}
                    }
                    items.push(self.value(depth + 1)?);
                    match self.peek() {
                        Some(',') => self.pos += 1,
                        Some(c) if c == close => {}
                        None => return Err(self.expect_end("a tuple or list")),
                        Some(c) => {
                            return Err(format!(
                                "unexpected '{c}' in a sequence at character {}",
                                self.pos
                            ))
                        }
                    }
                }
            }
            Some(quote @ ('\'' | '"')) => {
                self.pos += 1;
                let mut s = String::new();
                loop {
                    match self.chars.get(self.pos).copied() {
                        None => return Err(self.expect_end("a string")),
                        Some('\\') => {
                            let escaped = self
                                .chars
                                .get(self.pos + 1)
                                .copied()
                                .ok_or_else(|| self.expect_end("a string"))?;
                            s.push(escaped);
                            self.pos += 2;
                        }
                        Some(c) if c == quote => {
                            self.pos += 1;
                            return Ok(Literal::Str(s));
                        }
                        Some(c) => {
                            s.push(c);
                            self.pos += 1;
                        }
                    }
                }
            }
            Some(c) if c == '-' || c.is_ascii_digit() => {
                let start = self.pos;
                self.pos += 1;
                while self.chars.get(self.pos).is_some_and(|c| c.is_ascii_digit()) {
                    self.pos += 1;
                }
                let digits: String = self.chars[start..self.pos].iter().collect();
                // Python 2 era numpy wrote long integers with an `L` suffix: `(3L, 4L)`.
                if matches!(self.chars.get(self.pos), Some('L' | 'l')) {
                    self.pos += 1;
                }
                digits
                    .parse::<i128>()
                    .map(Literal::Int)
                    .map_err(|_| format!("bad integer '{digits}' at character {start}"))
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.pos;
                while self
                    .chars
                    .get(self.pos)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
                {
                    self.pos += 1;
                }
                let word: String = self.chars[start..self.pos].iter().collect();
                match word.as_str() {
                    "True" => Ok(Literal::Bool(true)),
                    "False" => Ok(Literal::Bool(false)),
                    "None" => Ok(Literal::None),
                    _ => Err(format!("unexpected name '{word}' at character {start}")),
                }
            }
            Some(c) => Err(format!("unexpected '{c}' at character {}", self.pos)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("t.npy")
    }

    /// A file image with a hand-written header (version 1).
    fn with_header(header: &str, data: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn round_trips_every_type() {
        let f: Vec<f32> = vec![1.5, -2.0, f32::NEG_INFINITY, 0.0, 3.25, 7.0];
        let bytes = to_bytes(&[2, 3], &f).unwrap();
        assert_eq!(bytes[..8], *b"\x93NUMPY\x01\x00");
        let header = parse_header(p(), &bytes).unwrap();
        assert_eq!(header.data_offset % 64, 0);
        assert_eq!(header.descr, "<f4");
        assert!(!header.fortran_order);
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

        // Other key order, double quotes, Python 2 longs, version 3 (UTF-8).
        let header = r#"{"shape": (1L, 2L), "fortran_order": False, "descr": "<f2"}"#;
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[3, 0]);
        bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&[0, 0x3c, 0, 0x40]);
        let a = parse(p(), &bytes).unwrap();
        assert_eq!(a.shape, vec![1, 2]);
        assert_eq!(
            a.data,
            NpyData::F16(vec![f16::from_f32(1.0), f16::from_f32(2.0)])
        );

        // A 1-D array flagged Fortran order is laid out like a C one.
        let header = "{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }";
        assert!(parse(p(), &with_header(header, &1f32.to_le_bytes())).is_ok());
    }

    #[test]
    fn rejects_bad_headers() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"hello world, not numpy".to_vec(), "magic"),
            (b"\x93NUM".to_vec(), "only 4 bytes"),
            (b"\x93NUMPY".to_vec(), "version"),
            (b"\x93NUMPY\x07\x00\x10\x00".to_vec(), "version 7.0"),
            (
                b"\x93NUMPY\x01\x00\x50\x00{'descr'".to_vec(),
                "declares 80 bytes",
            ),
            (
                with_header("{'descr': '<f4', 'fortran_order': False}", &[]),
                "no 'shape'",
            ),
            (
                with_header(
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)",
                    &[],
                ),
                "end of header",
            ),
            (with_header("['descr']", &[]), "expected a dict"),
            (
                with_header("{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}", &[]),
                "fortran_order",
            ),
            (
                with_header("{'descr': '<f4', 'fortran_order': False, 'shape': 3}", &[]),
                "shape must be a tuple, got integer",
            ),
            (
                with_header(
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (-3,)}",
                    &[],
                ),
                "sizes",
            ),
            (
                with_header(
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}",
                    &[],
                ),
                "unexpected key 'x'",
            ),
            (
                with_header(
                    "{'descr': '<f4', 'fortran_order': Nope, 'shape': (1,)}",
                    &[],
                ),
                "Nope",
            ),
            (
                with_header(
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} junk",
                    &[],
                ),
                "after the dict",
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
