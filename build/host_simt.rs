//! Build step of the host SIMT shim (feature `host-simt`): compiles the kernels' own `.cu` source
//! as C++20 with g++ against `kernels/host/simt.h`, so tests run the real kernel code on the CPU.
//!
//! Used by build.rs as `#[path = "build/host_simt.rs"] mod host_simt;`. For every source it
//! writes a copy into `OUT_DIR/host_simt/` with the `__shared__` declarations rewritten (which
//! `-include simt.h` alone cannot express), `#pragma unroll` and the includes that simt.h already
//! provides (`<assert.h>`, `<cuda_fp16.h>`, `<cuda_bf16.h>`, `<vector_types.h>`, ...) blanked,
//! and a `#line` so diagnostics and the runtime's messages name the original file and line.
//! Headers (`*.cuh`, `*.h`, `*.hpp`) beside each source get the same treatment, so a
//! `#include "x.cuh"` finds the rewritten copy first.
//!
//! Rewrites (one declarator per declaration, no initialiser, as CUDA requires anyway):
//! - `[static] __shared__ [__align__(n)] T x[N]...;` (function or file scope) becomes
//!   `static [__align__(n)] T x[N]; static ::host_simt::SharedReg ...(&x, sizeof(x));`: one
//!   storage per declaration (launches are serialised), registered so that the runtime poisons
//!   it (0xFF) before every block.
//! - `extern __shared__ [__align__(n)] T x[];` becomes a reference `T (&x)[]` to the dynamic
//!   shared memory arena, poisoned before every block for the launch's `dynamic_smem` bytes.

use std::collections::BTreeMap;
use std::env;
use std::fs;
use std::path::{Path, PathBuf};

use crate::cache::{Cache, Key};

/// Rewrites, compiles and links `kernel_sources` (the top-level `kernels/*.cu`), the shim's own
/// test kernels `tests/simt/selftest.cu` (always added: `src/host_simt/selftest.rs` wraps them) and the
/// shim runtime, as the static library `batchsample_host_simt` — or copies that library from the
/// build cache when the rewritten sources, the runtime and the compiler command are the same as
/// when it was stored. Panics with the compiler's or the rewriter's message on failure.
pub fn build(kernel_sources: &[PathBuf], out_dir: &Path, cache: Option<&Cache>) {
    let manifest =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR is not set"));
    let mut sources: Vec<PathBuf> = kernel_sources.to_vec();
    let selftest = manifest.join("tests").join("simt").join("selftest.cu");
    let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    if !sources.iter().any(|p| canon(p) == canon(&selftest)) {
        sources.push(selftest);
    }
    let shim_dir = manifest.join("kernels").join("host");
    let header = shim_dir.join("simt.h");
    let runtime = shim_dir.join("simt_runtime.cpp");
    println!("cargo:rerun-if-changed={}", header.display());
    println!("cargo:rerun-if-changed={}", runtime.display());
    println!("cargo:rerun-if-env-changed=BATCHSAMPLE_CUDA_ROOT");
    println!("cargo:rerun-if-env-changed=CUDA_WHEELS_DIR");

    let gen_root = out_dir.join("host_simt");
    let _ = fs::remove_dir_all(&gen_root);
    fs::create_dir_all(&gen_root).expect("create OUT_DIR/host_simt");

    let mut build = cc::Build::new();
    // No debug info whatever the profile says: it doubles g++'s time on the kernels, and one
    // command line for every profile lets `cargo test`, `cargo clippy` and `cargo build` share
    // one cached library. The link lines are printed below, the same on a hit and a miss.
    build
        .cpp(true)
        .std("c++20")
        .opt_level(2)
        .debug(false)
        .cargo_metadata(false)
        .warnings(true)
        .extra_warnings(false)
        .flag("-fno-strict-aliasing")
        .flag("-fstack-clash-protection")
        .flag("-Wno-unknown-pragmas")
        .flag("-include")
        .flag(header.as_os_str())
        .define("BATCHSAMPLE_HOST_SIMT", None)
        .include(&shim_dir);
    match cuda_include(&manifest) {
        Some(inc) => {
            println!("cargo:rerun-if-changed={}", inc.join("cuda_fp16.h").display());
            build.include(inc);
        }
        None => println!(
            "cargo:warning=host-simt: CUDA wheel headers not found (run scripts/install-cuda-wheels \
             or set BATCHSAMPLE_CUDA_ROOT); using the shim's minimal half/bf16/vector types"
        ),
    }

    // One mirror directory per source directory, holding the rewritten sources and headers.
    let mut mirrors: BTreeMap<PathBuf, PathBuf> = BTreeMap::new();
    for src in &sources {
        let src = src
            .canonicalize()
            .unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        let dir = src.parent().expect("source has a parent").to_path_buf();
        let next = mirrors.len();
        let mirror = match mirrors.get(&dir) {
            Some(m) => m.clone(),
            None => {
                let m = gen_root.join(format!("d{next}"));
                fs::create_dir_all(&m).expect("create mirror dir");
                for entry in fs::read_dir(&dir).expect("read kernel dir").flatten() {
                    let p = entry.path();
                    let is_header = p
                        .extension()
                        .is_some_and(|x| x == "cuh" || x == "h" || x == "hpp");
                    if is_header && p.is_file() {
                        let name = p.file_name().expect("file name");
                        rewrite_file(&manifest, &p, &m.join(name));
                    }
                }
                // A directory entry also notices kernels and headers added later.
                println!("cargo:rerun-if-changed={}", dir.display());
                build.include(&dir);
                mirrors.insert(dir.clone(), m.clone());
                m
            }
        };
        let name = src.file_name().expect("file name").to_string_lossy();
        let out = mirror.join(format!("{name}.cpp"));
        rewrite_file(&manifest, &src, &out);
        build.file(out);
    }
    build.file(&runtime);

    let mut key = Key::new("host-simt");
    let compiler = build.get_compiler();
    key.add_metadata(compiler.path());
    for arg in compiler.args() {
        key.add_str(&arg.to_string_lossy());
    }
    let version = compiler
        .to_command()
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    key.add_str(&version);
    // What g++ reads: the rewritten sources and headers, the shim, the CUDA headers' install.
    key.add_tree(&gen_root);
    key.add(&fs::read(&header).expect("read kernels/host/simt.h"));
    key.add(&fs::read(&runtime).expect("read kernels/host/simt_runtime.cpp"));
    if let Some(inc) = cuda_include(&manifest) {
        for h in [
            "cuda_fp16.h",
            "cuda_fp16.hpp",
            "cuda_bf16.h",
            "cuda_bf16.hpp",
        ] {
            key.add_metadata(&inc.join(h));
        }
    }

    let lib = format!("lib{LIB}.a");
    let hit = cache.is_some_and(|c| c.fetch("host-simt", &key, &[&lib], out_dir));
    if !hit {
        build.compile(LIB);
        if let Some(c) = cache {
            c.store("host-simt", &key, &[&lib], out_dir);
        }
    }
    for var in ["CXX", "CXXFLAGS", "HOST_CXX", "HOST_CXXFLAGS", "CXXSTDLIB"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rustc-link-search=native={}", out_dir.display());
    println!("cargo:rustc-link-lib=static={LIB}");
    let stdlib = if env::var("CARGO_CFG_TARGET_VENDOR").as_deref() == Ok("apple") {
        "c++"
    } else {
        "stdc++"
    };
    println!("cargo:rustc-link-lib={stdlib}");
}

/// The static library's name (`lib<LIB>.a` in `OUT_DIR`).
const LIB: &str = "batchsample_host_simt";

fn cuda_include(manifest: &Path) -> Option<PathBuf> {
    let mut roots = Vec::new();
    if let Some(r) = env::var_os("BATCHSAMPLE_CUDA_ROOT") {
        roots.push(PathBuf::from(r));
    }
    if let Some(d) = env::var_os("CUDA_WHEELS_DIR") {
        roots.push(PathBuf::from(d).join("nvidia").join("cu13"));
    }
    roots.push(
        manifest
            .join("target")
            .join("cuda-wheels")
            .join("nvidia")
            .join("cu13"),
    );
    roots.into_iter().map(|r| r.join("include")).find(|inc| {
        ["cuda_fp16.h", "cuda_bf16.h", "vector_types.h"]
            .iter()
            .all(|h| inc.join(h).is_file())
    })
}

fn rewrite_file(manifest: &Path, src: &Path, dst: &Path) {
    println!("cargo:rerun-if-changed={}", src.display());
    let text = fs::read_to_string(src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    let shown = src
        .strip_prefix(manifest)
        .unwrap_or(src)
        .display()
        .to_string();
    let body = rewrite_source(&text).unwrap_or_else(|e| panic!("host-simt: {shown}:{e}"));
    let quoted = shown.replace('\\', "\\\\").replace('"', "\\\"");
    fs::write(dst, format!("#line 1 \"{quoted}\"\n{body}"))
        .unwrap_or_else(|e| panic!("{}: {e}", dst.display()));
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ident,
    Punct(u8),
    Other,
}

#[derive(Clone, Copy)]
struct Tok {
    start: usize,
    end: usize,
    kind: Kind,
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}
fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Rewrites one translation unit; keeps every line where it was. Errors read "LINE: message".
pub fn rewrite_source(src: &str) -> Result<String, String> {
    let s = src.as_bytes();
    let n = s.len();
    let line_of = |pos: usize| s[..pos].iter().filter(|&&c| c == b'\n').count() + 1;
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let mut stmt: Vec<Tok> = Vec::new();
    let mut shared_in_stmt = false;
    let mut depth = 0i32;
    let mut line_start = true;
    let mut i = 0;
    while i < n {
        let c = s[i];
        if c == b'\n' {
            line_start = true;
            i += 1;
            continue;
        }
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'#' && line_start {
            // Preprocessor directive, continuation lines included.
            let start = i;
            while i < n && !(s[i] == b'\n' && s[i - 1] != b'\\') {
                i += 1;
            }
            let text = &src[start..i];
            let words: Vec<&str> = text[1..]
                .split(|ch: char| ch.is_whitespace() || ch == '<' || ch == '>' || ch == '"')
                .filter(|w| !w.is_empty())
                .collect();
            let blank = match words.as_slice() {
                ["pragma", "unroll", ..] => true,
                // simt.h has included these already (or stands in for them).
                ["include", h, ..] => matches!(
                    *h,
                    "assert.h"
                        | "cassert"
                        | "cuda_fp16.h"
                        | "cuda_bf16.h"
                        | "vector_types.h"
                        | "vector_functions.h"
                        | "cuda_runtime.h"
                ),
                _ => false,
            };
            if blank {
                let spaces: String = text
                    .chars()
                    .map(|ch| if ch == '\n' { '\n' } else { ' ' })
                    .collect();
                edits.push((start, i, spaces));
            }
            if !shared_in_stmt {
                stmt.clear();
            }
            continue;
        }
        line_start = false;
        if s[i..].starts_with(b"//") {
            while i < n && s[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if s[i..].starts_with(b"/*") {
            i += 2;
            while i < n && !s[i..].starts_with(b"*/") {
                i += 1;
            }
            i = (i + 2).min(n);
            continue;
        }
        let start = i;
        let kind;
        if c == b'"' {
            let raw = stmt.last().is_some_and(|t| {
                t.end == i
                    && t.kind == Kind::Ident
                    && matches!(&src[t.start..t.end], "R" | "u8R" | "uR" | "UR" | "LR")
            });
            if raw {
                let open = src[i + 1..].find('(').ok_or("unterminated raw string")? + i + 1;
                let close = format!("){}\"", &src[i + 1..open]);
                i = src[open..].find(&close).ok_or("unterminated raw string")? + open + close.len();
            } else {
                i += 1;
                while i < n && s[i] != b'"' {
                    i += if s[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            kind = Kind::Other;
        } else if c == b'\'' {
            i += 1;
            while i < n && s[i] != b'\'' {
                i += if s[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            kind = Kind::Other;
        } else if c.is_ascii_digit() || (c == b'.' && i + 1 < n && s[i + 1].is_ascii_digit()) {
            // pp-number, digit separators and exponent signs included
            i += 1;
            while i < n {
                let d = s[i];
                if is_ident_char(d) || d == b'.' {
                    i += 1;
                } else if d == b'\'' && i + 1 < n && is_ident_char(s[i + 1]) {
                    i += 2;
                } else if (d == b'+' || d == b'-') && matches!(s[i - 1], b'e' | b'E' | b'p' | b'P')
                {
                    i += 1;
                } else {
                    break;
                }
            }
            kind = Kind::Other;
        } else if is_ident_start(c) {
            while i < n && is_ident_char(s[i]) {
                i += 1;
            }
            kind = Kind::Ident;
        } else {
            i += 1;
            kind = Kind::Punct(c);
        }
        let tok = Tok {
            start,
            end: i.min(n),
            kind,
        };
        let text = &src[tok.start..tok.end];
        stmt.push(tok);
        if kind == Kind::Ident && text == "__shared__" {
            shared_in_stmt = true;
            depth = 0;
        }
        match kind {
            Kind::Punct(b'(' | b'[' | b'{') if shared_in_stmt => depth += 1,
            Kind::Punct(b')' | b']' | b'}') if shared_in_stmt => depth -= 1,
            Kind::Punct(b';') if shared_in_stmt && depth == 0 => {
                let first = stmt[0].start;
                let line = line_of(first);
                let text = rewrite_decl(src, &stmt, line).map_err(|e| format!("{line}: {e}"))?;
                edits.push((first, tok.end, text));
                stmt.clear();
                shared_in_stmt = false;
            }
            Kind::Punct(b';' | b'{' | b'}') if !shared_in_stmt => stmt.clear(),
            _ => {}
        }
    }
    if shared_in_stmt {
        let line = line_of(stmt[0].start);
        return Err(format!("{line}: unterminated __shared__ declaration"));
    }
    let mut out = String::with_capacity(src.len() + 256 * edits.len());
    let mut pos = 0;
    for (a, b, text) in edits {
        out.push_str(&src[pos..a]);
        out.push_str(&text);
        pos = b;
    }
    out.push_str(&src[pos..]);
    Ok(out)
}

/// One `__shared__` declaration (tokens up to and including `;`) to its host form.
fn rewrite_decl(src: &str, toks: &[Tok], line: usize) -> Result<String, String> {
    let t = |k: usize| &src[toks[k].start..toks[k].end];
    let at = (0..toks.len())
        .find(|&k| t(k) == "__shared__")
        .expect("has __shared__");
    // Only specifiers may precede `__shared__`.
    let mut k = 0;
    while k < at {
        match t(k) {
            "static" | "extern" | "volatile" | "const" | "__device__" => k += 1,
            "__align__" | "alignas" | "__attribute__" => {
                k = skip_group(src, toks, k + 1).ok_or("unbalanced parentheses")?;
            }
            "[" if k + 1 < at && t(k + 1) == "[" => {
                while k < at && !(t(k) == "]" && k > 0 && t(k - 1) == "]") {
                    k += 1;
                }
                k += 1;
            }
            other => {
                return Err(format!(
                    "unsupported __shared__ declaration: `{other}` before `__shared__`"
                ))
            }
        }
    }
    let is_extern = toks[..at].iter().any(|x| &src[x.start..x.end] == "extern");
    let last = toks.len() - 1; // the `;`
                               // Body: the tokens that remain, without storage specifiers (and without alignment for the
                               // extern form, whose arena is 1024-byte aligned).
    let mut body: Vec<usize> = Vec::new();
    let mut k = 0;
    while k < last {
        match t(k) {
            "__shared__" | "static" | "extern" => k += 1,
            "__align__" | "alignas" if is_extern => {
                k = skip_group(src, toks, k + 1).ok_or("unbalanced parentheses")?;
            }
            _ => {
                body.push(k);
                k += 1;
            }
        }
    }
    // One declarator, no initialiser.
    let (mut paren, mut angle) = (0i32, 0i32);
    let mut first_bracket = None;
    for (bi, &k) in body.iter().enumerate() {
        match t(k) {
            "(" | "[" | "{" => {
                if t(k) == "[" && paren == 0 && first_bracket.is_none() {
                    first_bracket = Some(bi);
                }
                paren += 1;
            }
            ")" | "]" | "}" => paren -= 1,
            "<" if paren == 0 => angle += 1,
            ">" if paren == 0 => angle -= 1,
            "," if paren == 0 && angle == 0 => {
                return Err("one declarator per __shared__ declaration, please".into())
            }
            "=" if paren == 0 && angle == 0 => {
                return Err("__shared__ variables cannot have an initialiser".into())
            }
            _ => {}
        }
    }
    let name_pos = match first_bracket {
        Some(bi) if bi > 0 => bi - 1,
        Some(_) => return Err("cannot find the declared name".into()),
        None if is_extern => return Err("expected `extern __shared__ T name[];`".into()),
        None => body.len().checked_sub(1).ok_or("empty declaration")?,
    };
    let name_tok = body[name_pos];
    if toks[name_tok].kind != Kind::Ident {
        return Err(format!(
            "cannot find the declared name (got `{}`)",
            t(name_tok)
        ));
    }
    let name = t(name_tok);
    let original = &src[toks[0].start..toks[last].end];
    if is_extern {
        if body.len() != name_pos + 3 || t(body[name_pos + 2]) != "]" {
            return Err("expected `extern __shared__ T name[];` (unknown bound)".into());
        }
        let elem: Vec<&str> = body[..name_pos].iter().map(|&k| t(k)).collect();
        let elem = elem.join(" ");
        let newlines = "\n".repeat(original.matches('\n').count());
        return Ok(format!(
            "static {elem} (&{name})[] = reinterpret_cast<{elem} (&)[]>(host_simt_dynamic_smem);\
             {newlines}"
        ));
    }
    // Static storage: blank the storage specifiers in place (keeps columns and lines).
    let mut text = String::from("static ");
    let mut pos = toks[0].start;
    for x in toks.iter() {
        let w = &src[x.start..x.end];
        if matches!(w, "__shared__" | "static" | "extern") {
            text.push_str(&src[pos..x.start]);
            text.push_str(&" ".repeat(w.len()));
            pos = x.end;
        }
    }
    text.push_str(&src[pos..toks[last].end]);
    text.push_str(&format!(
        " static ::host_simt::SharedReg host_simt_shared_{name}_{line}(&{name}, sizeof({name}));"
    ));
    Ok(text)
}

/// Index just past the balanced `( ... )` group starting at `k`.
fn skip_group(src: &str, toks: &[Tok], k: usize) -> Option<usize> {
    if k >= toks.len() || &src[toks[k].start..toks[k].end] != "(" {
        return None;
    }
    let mut d = 0;
    for (j, x) in toks.iter().enumerate().skip(k) {
        match &src[x.start..x.end] {
            "(" => d += 1,
            ")" => {
                d -= 1;
                if d == 0 {
                    return Some(j + 1);
                }
            }
            _ => {}
        }
    }
    None
}
