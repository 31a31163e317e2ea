//! The device-image half of `build.rs` (included with `#[path]`).
//!
//! Embeds the kernel sources for NVRTC (`OUT_DIR/kernel_sources.rs`, always: a binary with a
//! fatbin can still be told to compile them at run time, see `src/gpu/kernels_image.rs`), finds
//! nvcc and builds `OUT_DIR/kernels.fatbin` (emitting `cfg(batchsample_fatbin)`) with its ptxas
//! report and compute_90 PTX beside it, for `tests/kernel_compile.rs`. Writes under `OUT_DIR`,
//! and into the build cache (`build/cache.rs`), which a rebuild of the same sources with the same
//! nvcc and flags copies from instead of compiling again.
//!
//! nvcc is looked for in this order; the first hit is used:
//! 1. `$BATCHSAMPLE_NVCC` (must exist when set),
//! 2. `$BATCHSAMPLE_CUDA_ROOT/bin/nvcc` (must exist when set),
//! 3. `target/cuda-wheels/nvidia/cu13/bin/nvcc` under the crate (`scripts/install-cuda-wheels`),
//! 4. `nvcc` on `PATH`,
//! 5. `/usr/local/cuda/bin/nvcc`.
//!
//! `BATCHSAMPLE_FORCE_NVRTC=1` skips the search: no fatbin, the sources only.
//! `BATCHSAMPLE_CUDA_ARCHS=sm_90` (a comma list of sm_80, sm_89, sm_90; sm_90 required, as it
//! carries the PTX) builds fewer architectures: `scripts/test --quick` uses it. Unset: all three.

use std::env;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cache::{tree, Cache, Key};

/// The cfg that `src/gpu/kernels_image.rs` selects the fatbin with.
pub const FATBIN_CFG: &str = "batchsample_fatbin";
/// Output names inside `OUT_DIR` (`src/gpu/kernels_image.rs` includes them).
pub const FATBIN_FILE: &str = "kernels.fatbin";
pub const SOURCES_RS_FILE: &str = "kernel_sources.rs";
pub const REPORT_FILE: &str = "ptxas-report.txt";
/// The compute_90 PTX that the fatbin carries, as nvcc generated it (kept for the PTX ISA check).
pub const PTX_FILE: &str = "kernels.compute_90.ptx";
/// The single translation unit `#include`-ing every `kernels/*.cu`, when there is more than one.
pub const UNITY_FILE: &str = "kernels_unity.cu";

/// The real targets: sm_80 (A100), sm_89 (L40/4090), sm_90 (H100/H200), plus compute_90 PTX.
/// sm_80 and sm_89 are both assembled from compute_80 PTX: cicc's compute_89 PTX was the same
/// text but for its `.target` line, and ptxas made the same SASS from either (only the cubin's
/// `.note.nv.cuinfo` names the PTX arch), so a second cicc run (~1 minute) bought nothing.
pub const ARCHS: &[&str] = &["sm_80", "sm_89", "sm_90"];

/// `-gencode` flags for the architectures asked for (all of [`ARCHS`] by default).
fn gencode(archs: &[&str]) -> Vec<String> {
    let mut flags = Vec::new();
    let from_80: Vec<&str> = archs
        .iter()
        .copied()
        .filter(|a| matches!(*a, "sm_80" | "sm_89"))
        .collect();
    if !from_80.is_empty() {
        flags.push("-gencode".to_string());
        flags.push(format!("arch=compute_80,code=[{}]", from_80.join(",")));
    }
    if archs.contains(&"sm_90") {
        flags.push("-gencode".to_string());
        flags.push("arch=compute_90,code=[sm_90,compute_90]".to_string());
    }
    flags
}

/// `$BATCHSAMPLE_CUDA_ARCHS` (comma list), else every architecture. Panics on a name it does not
/// know or a list without sm_90 (the PTX the fatbin carries is compute_90's).
fn requested_archs() -> Vec<&'static str> {
    println!("cargo::rerun-if-env-changed=BATCHSAMPLE_CUDA_ARCHS");
    let Some(list) = env::var("BATCHSAMPLE_CUDA_ARCHS")
        .ok()
        .filter(|v| !v.trim().is_empty())
    else {
        return ARCHS.to_vec();
    };
    let mut archs = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let known = ARCHS.iter().find(|a| **a == name).unwrap_or_else(|| {
            panic!("BATCHSAMPLE_CUDA_ARCHS: unknown architecture {name:?} (known: {ARCHS:?})")
        });
        if !archs.contains(known) {
            archs.push(*known);
        }
    }
    assert!(
        archs.contains(&"sm_90"),
        "BATCHSAMPLE_CUDA_ARCHS={list:?} must include sm_90 (it carries the compute_90 PTX)"
    );
    archs
}

/// Warnings are errors; ptxas reports registers and fails on spills or local memory.
/// Never `-arch=native`, never `--use_fast_math`.
const STRICT: &[&str] = &[
    "-Werror",
    "all-warnings",
    "-Xptxas",
    "-v,-warn-spills,-warn-lmem-usage,-Werror",
];

/// The files under `kernels/`.
pub struct KernelSet {
    /// `kernels/` (absolute).
    pub dir: PathBuf,
    /// Top-level `kernels/*.cu`, sorted, absolute: the translation units.
    pub translation_units: Vec<PathBuf>,
    /// Top-level `kernels/*.cuh`, sorted, absolute.
    pub headers: Vec<PathBuf>,
}

impl KernelSet {
    /// Lists `dir` and emits `rerun-if-changed` for it and for every file below it (recursively,
    /// so `kernels/host/**` is covered too).
    pub fn scan(dir: &Path) -> Self {
        println!("cargo::rerun-if-changed={}", dir.display());
        let (all, dirs) = tree(dir);
        for d in &dirs {
            println!("cargo::rerun-if-changed={}", d.display());
        }
        for f in &all {
            println!("cargo::rerun-if-changed={}", f.display());
        }
        let top = |ext: &str| -> Vec<PathBuf> {
            all.iter()
                .filter(|p| p.parent() == Some(dir) && p.extension().is_some_and(|e| e == ext))
                .cloned()
                .collect()
        };
        KernelSet {
            dir: dir.to_path_buf(),
            translation_units: top("cu"),
            headers: top("cuh"),
        }
    }
}

/// Embeds the sources, builds the fatbin when nvcc is there, and tells rustc which image the
/// crate has (see module docs).
pub fn build(kernels: &KernelSet, manifest_dir: &Path, out_dir: &Path, cache: Option<&Cache>) {
    println!("cargo::rustc-check-cfg=cfg({FATBIN_CFG})");
    for var in [
        "BATCHSAMPLE_NVCC",
        "BATCHSAMPLE_CUDA_ROOT",
        "BATCHSAMPLE_FORCE_NVRTC",
    ] {
        println!("cargo::rerun-if-env-changed={var}");
    }

    if kernels.translation_units.is_empty() {
        println!(
            "cargo::warning=no kernels/*.cu found: embedding an empty kernel source (the GPU \
             sampler cannot work; tests/kernel_compile.rs fails)"
        );
        write_sources_rs(kernels, out_dir, None);
        set_build_info("nvrtc-source (no kernels/*.cu)");
        return;
    }

    // One translation unit for both paths: the single .cu, or a generated unity file.
    let unity = unity_unit(kernels, out_dir);
    write_sources_rs(kernels, out_dir, unity.as_deref());

    if force_nvrtc() {
        set_build_info("nvrtc-source (BATCHSAMPLE_FORCE_NVRTC)");
        return;
    }
    let Some(nvcc) = find_nvcc(manifest_dir) else {
        set_build_info("nvrtc-source (no nvcc found)");
        return;
    };
    println!("cargo::rerun-if-changed={}", nvcc.display());

    let input = unity.unwrap_or_else(|| kernels.translation_units[0].clone());
    compile_fatbin(&nvcc, kernels, &input, manifest_dir, out_dir, cache);
    println!("cargo::rustc-cfg={FATBIN_CFG}");
    set_build_info(&format!("fatbin ({})", nvcc.display()));
}

fn set_build_info(info: &str) {
    println!("cargo::rustc-env=BATCHSAMPLE_KERNEL_BUILD={info}");
}

fn force_nvrtc() -> bool {
    env::var("BATCHSAMPLE_FORCE_NVRTC")
        .map(|v| !matches!(v.trim(), "" | "0" | "false" | "no" | "off"))
        .unwrap_or(false)
}

/// nvcc, by the search order in the module docs. An explicitly named nvcc that does not exist is
/// a configuration error and panics (rather than silently building something else).
fn find_nvcc(manifest_dir: &Path) -> Option<PathBuf> {
    if let Some(p) = env::var_os("BATCHSAMPLE_NVCC").filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "BATCHSAMPLE_NVCC={} does not exist (unset it, or set BATCHSAMPLE_FORCE_NVRTC=1)",
            p.display()
        );
        return Some(p);
    }
    if let Some(root) = env::var_os("BATCHSAMPLE_CUDA_ROOT").filter(|v| !v.is_empty()) {
        let p = Path::new(&root).join("bin").join(exe("nvcc"));
        assert!(
            p.is_file(),
            "BATCHSAMPLE_CUDA_ROOT is set but {} does not exist (unset it, or set \
             BATCHSAMPLE_FORCE_NVRTC=1)",
            p.display()
        );
        return Some(p);
    }
    let wheels = manifest_dir
        .join("target/cuda-wheels/nvidia/cu13/bin")
        .join(exe("nvcc"));
    if wheels.is_file() {
        return Some(wheels);
    }
    println!("cargo::rerun-if-env-changed=PATH");
    if let Some(path) = env::var_os("PATH") {
        for dir in env::split_paths(&path) {
            let p = dir.join(exe("nvcc"));
            if p.is_file() {
                return Some(p);
            }
        }
    }
    let usr = PathBuf::from("/usr/local/cuda/bin/nvcc");
    usr.is_file().then_some(usr)
}

fn exe(name: &str) -> String {
    format!("{name}{}", env::consts::EXE_SUFFIX)
}

/// With several `kernels/*.cu`, writes `OUT_DIR/kernels_unity.cu` including them all (one module,
/// one fatbin, one NVRTC program) and returns its path; with one, returns `None`.
fn unity_unit(kernels: &KernelSet, out_dir: &Path) -> Option<PathBuf> {
    if kernels.translation_units.len() < 2 {
        return None;
    }
    let mut text =
        String::from("// Generated by build.rs: every kernels/*.cu as one translation unit.\n");
    for tu in &kernels.translation_units {
        let name = tu.file_name().unwrap().to_string_lossy();
        writeln!(text, "#include \"{name}\"").unwrap();
    }
    let path = out_dir.join(UNITY_FILE);
    write_if_changed(&path, text.as_bytes());
    Some(path)
}

/// What the fatbin's cache entry holds.
const CACHED: &[&str] = &[FATBIN_FILE, REPORT_FILE, PTX_FILE];

fn compile_fatbin(
    nvcc: &Path,
    kernels: &KernelSet,
    input: &Path,
    manifest_dir: &Path,
    out_dir: &Path,
    cache: Option<&Cache>,
) {
    let out = out_dir.join(FATBIN_FILE);
    let report = out_dir.join(REPORT_FILE);
    for f in CACHED {
        let _ = fs::remove_file(out_dir.join(f));
    }
    // nvcc's and gcc's temporaries go under OUT_DIR too; --keep leaves the PTX there.
    let tmp = out_dir.join("nvcc-tmp");
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).expect("create OUT_DIR/nvcc-tmp");

    // nvcc runs the architectures' pipelines in parallel (--threads) and ptxas splits the
    // kernels over threads (--split-compile; each kernel is compiled on its own either way, so
    // the SASS is the same). Cargo's job count bounds both.
    let jobs = env::var("NUM_JOBS")
        .ok()
        .and_then(|j| j.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let mut flags: Vec<OsString> = ["-std=c++17", "--fatbin"].map(OsString::from).to_vec();
    flags.extend(gencode(&requested_archs()).into_iter().map(OsString::from));
    flags.extend(STRICT.iter().map(OsString::from));
    flags.push("-I".into());
    flags.push(rel(&kernels.dir, manifest_dir).into());
    // The wheels (and CUDA 13 toolkits) keep CUB/libcu++ (`nv/target`) in include/cccl.
    if let Some(root) = nvcc.parent().and_then(Path::parent) {
        let cccl = root.join("include").join("cccl");
        if cccl.is_dir() {
            flags.push("-I".into());
            flags.push(cccl.into());
        }
    }

    let input_name = rel(input, out_dir).to_string_lossy().into_owned();
    let key = fatbin_key(&input_name, &kernels.dir, &flags, nvcc);
    if let Some(cache) = cache {
        if cache.fetch("fatbin", &key, CACHED, out_dir) {
            let _ = fs::remove_dir_all(&tmp);
            return;
        }
    }

    let mut cmd = Command::new(nvcc);
    cmd.current_dir(manifest_dir)
        .env("TMPDIR", &tmp)
        .args(&flags)
        .arg(format!("--threads={jobs}"))
        .arg(format!("-Xptxas=--split-compile={jobs}"))
        .arg("--keep")
        .arg("--keep-dir")
        .arg(&tmp)
        .arg(rel(input, manifest_dir))
        .arg("-o")
        .arg(&out);

    let shown = show_command(&cmd);
    let result = cmd.output();
    let (ok, log) = match result {
        Ok(o) => {
            let mut log = String::from_utf8_lossy(&o.stdout).into_owned();
            log.push_str(&String::from_utf8_lossy(&o.stderr));
            (
                o.status.success() && out.is_file(),
                format!("{log}\n[nvcc exit status: {}]\n", o.status),
            )
        }
        Err(e) => (false, format!("could not run {}: {e}\n", nvcc.display())),
    };
    let text = format!("$ {shown}\n{log}");
    fs::write(&report, &text).expect("write OUT_DIR/ptxas-report.txt");

    if !ok {
        // The whole log as warnings (cargo shows them above the failure), the errors on stderr.
        let _ = fs::remove_file(&out);
        for line in text.lines() {
            println!("cargo::warning={line}");
        }
        eprintln!(
            "error: nvcc failed to compile the kernels; the build fails rather than fall back to \
             NVRTC (set BATCHSAMPLE_FORCE_NVRTC=1 only to bypass nvcc deliberately).\n\
             Full log (also printed as warnings above): {}",
            report.display()
        );
        for line in text
            .lines()
            .skip(1)
            .filter(|l| l.contains("error") || l.contains("warning"))
        {
            eprintln!("  {line}");
        }
        std::process::exit(1);
    }

    // nvcc names the kept PTX `<input stem>.compute_90.ptx`, or `<input stem>.ptx` when it is
    // the only virtual architecture; the rest of --keep's files (the preprocessed sources, the
    // cubins: ~60 MB) go.
    let stem = input
        .file_stem()
        .expect("input has a name")
        .to_string_lossy();
    let kept = [format!("{stem}.compute_90.ptx"), format!("{stem}.ptx")]
        .into_iter()
        .map(|name| tmp.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("nvcc --keep left no compute_90 PTX in {}", tmp.display()));
    fs::rename(&kept, out_dir.join(PTX_FILE))
        .unwrap_or_else(|e| panic!("move {}: {e}", kept.display()));
    let _ = fs::remove_dir_all(&tmp);
    if let Some(cache) = cache {
        cache.store("fatbin", &key, CACHED, out_dir);
    }
}

/// The fatbin's cache key: the translation unit's name, every file under `kernels_dir` (names
/// and bytes: the unity file is made of the names), the flags, and the compiler as installed.
/// Not the job count (`--threads`, `--split-compile`): the SASS is the same whatever it is.
pub fn fatbin_key(input_name: &str, kernels_dir: &Path, flags: &[OsString], nvcc: &Path) -> Key {
    let mut key = Key::new("fatbin");
    key.add_str(input_name).add_tree(kernels_dir);
    for f in flags {
        key.add_str(&f.to_string_lossy());
    }
    add_compiler_identity(&mut key, nvcc);
    key
}

/// nvcc as installed: its `--version`, and the path, size and mtime of nvcc, cicc, ptxas and the
/// header directories (a reinstalled wheel or toolkit changes them).
fn add_compiler_identity(key: &mut Key, nvcc: &Path) {
    let version = Command::new(nvcc)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    key.add_str(&version);
    let nvcc = nvcc.canonicalize().unwrap_or_else(|_| nvcc.to_path_buf());
    key.add_metadata(&nvcc);
    if let Some(root) = nvcc.parent().and_then(Path::parent) {
        for part in [
            "bin/ptxas",
            "nvvm/bin/cicc",
            "include",
            "include/cccl",
            "include/crt",
        ] {
            key.add_metadata(&root.join(part));
        }
    }
}

/// `path` relative to `base` when below it (shorter, stable compiler diagnostics).
fn rel(path: &Path, base: &Path) -> PathBuf {
    path.strip_prefix(base)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| path.to_path_buf())
}

fn show_command(cmd: &Command) -> String {
    let mut s: OsString = cmd.get_program().to_os_string();
    for a in cmd.get_args() {
        s.push(" ");
        s.push(a);
    }
    s.to_string_lossy().into_owned()
}

/// `OUT_DIR/kernel_sources.rs`: `SOURCE` (the translation unit) and `HEADERS` (what it may
/// `#include` by bare name: every `kernels/*.cuh`, plus every `kernels/*.cu` when `SOURCE` is the
/// unity file), all `include_str!` of the files themselves, so rustc tracks them as well.
fn write_sources_rs(kernels: &KernelSet, out_dir: &Path, unity: Option<&Path>) {
    let lit = |p: &Path| format!("{:?}", p.to_str().expect("kernel paths must be UTF-8"));
    let mut rs = String::from("// Generated by build.rs (build/fatbin.rs). Do not edit.\n");
    match unity.or(kernels.translation_units.first().map(PathBuf::as_path)) {
        Some(u) => writeln!(
            rs,
            "pub(crate) const SOURCE: &str = include_str!({});",
            lit(u)
        )
        .unwrap(),
        None => rs.push_str("pub(crate) const SOURCE: &str = \"\";\n"),
    }
    rs.push_str("pub(crate) const HEADERS: &[(&str, &str)] = &[\n");
    let mut files: Vec<&PathBuf> = kernels.headers.iter().collect();
    if unity.is_some() {
        files.extend(&kernels.translation_units);
    }
    files.sort();
    for f in files {
        let name = f
            .file_name()
            .unwrap()
            .to_str()
            .expect("kernel names must be UTF-8");
        writeln!(rs, "    ({name:?}, include_str!({})),", lit(f)).unwrap();
    }
    rs.push_str("];\n");
    write_if_changed(&out_dir.join(SOURCES_RS_FILE), rs.as_bytes());
}

fn write_if_changed(path: &Path, bytes: &[u8]) {
    if fs::read(path).ok().as_deref() != Some(bytes) {
        fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}
