//! The device-image half of `build.rs` (included with `#[path]`).
//!
//! Finds nvcc and builds `OUT_DIR/kernels.fatbin` (emitting `cfg(batchsample_fatbin)`), or embeds
//! the kernel sources for NVRTC (`OUT_DIR/kernel_sources.rs`). Writes only under `OUT_DIR`.
//!
//! nvcc is looked for in this order; the first hit is used:
//! 1. `$BATCHSAMPLE_NVCC` (must exist when set),
//! 2. `$BATCHSAMPLE_CUDA_ROOT/bin/nvcc` (must exist when set),
//! 3. `target/cuda-wheels/nvidia/cu13/bin/nvcc` under the crate (`scripts/install-cuda-wheels`),
//! 4. `nvcc` on `PATH`,
//! 5. `/usr/local/cuda/bin/nvcc`.
//!
//! `BATCHSAMPLE_FORCE_NVRTC=1` skips the search and embeds the sources.

use std::env;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The cfg that `src/gpu/kernels_image.rs` selects the fatbin with.
pub const FATBIN_CFG: &str = "batchsample_fatbin";
/// Output names inside `OUT_DIR` (`src/gpu/kernels_image.rs` includes them).
pub const FATBIN_FILE: &str = "kernels.fatbin";
pub const SOURCES_RS_FILE: &str = "kernel_sources.rs";
pub const REPORT_FILE: &str = "ptxas-report.txt";
/// The single translation unit `#include`-ing every `kernels/*.cu`, when there is more than one.
pub const UNITY_FILE: &str = "kernels_unity.cu";

/// The real targets: sm_80 (A100), sm_89 (L40/4090), sm_90 (H100/H200) + compute_90 PTX.
const GENCODE: &[&str] = &[
    "-gencode",
    "arch=compute_80,code=sm_80",
    "-gencode",
    "arch=compute_89,code=sm_89",
    "-gencode",
    "arch=compute_90,code=[sm_90,compute_90]",
];
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
        let mut all = Vec::new();
        walk(dir, &mut all);
        all.sort();
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

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => {
                println!("cargo::rerun-if-changed={}", path.display());
                walk(&path, out);
            }
            Ok(_) => out.push(path),
            Err(_) => {}
        }
    }
}

/// Builds the fatbin, or embeds the sources, and tells rustc which (see module docs).
pub fn build(kernels: &KernelSet, manifest_dir: &Path, out_dir: &Path) {
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

    if force_nvrtc() {
        write_sources_rs(kernels, out_dir, unity.as_deref());
        set_build_info("nvrtc-source (BATCHSAMPLE_FORCE_NVRTC)");
        return;
    }
    let Some(nvcc) = find_nvcc(manifest_dir) else {
        write_sources_rs(kernels, out_dir, unity.as_deref());
        set_build_info("nvrtc-source (no nvcc found)");
        return;
    };
    println!("cargo::rerun-if-changed={}", nvcc.display());

    let input = unity.unwrap_or_else(|| kernels.translation_units[0].clone());
    compile_fatbin(&nvcc, kernels, &input, manifest_dir, out_dir);
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

fn compile_fatbin(
    nvcc: &Path,
    kernels: &KernelSet,
    input: &Path,
    manifest_dir: &Path,
    out_dir: &Path,
) {
    let out = out_dir.join(FATBIN_FILE);
    let report = out_dir.join(REPORT_FILE);
    let _ = fs::remove_file(&out);
    // nvcc's and gcc's temporaries go under OUT_DIR too.
    let tmp = out_dir.join("nvcc-tmp");
    fs::create_dir_all(&tmp).expect("create OUT_DIR/nvcc-tmp");

    let mut cmd = Command::new(nvcc);
    cmd.current_dir(manifest_dir)
        .env("TMPDIR", &tmp)
        .args(["-std=c++17", "--fatbin"])
        .args(GENCODE)
        .args(STRICT)
        .arg("-I")
        .arg(rel(&kernels.dir, manifest_dir));
    // The wheels (and CUDA 13 toolkits) keep CUB/libcu++ (`nv/target`) in include/cccl.
    if let Some(root) = nvcc.parent().and_then(Path::parent) {
        let cccl = root.join("include").join("cccl");
        if cccl.is_dir() {
            cmd.arg("-I").arg(cccl);
        }
    }
    cmd.arg(rel(input, manifest_dir)).arg("-o").arg(&out);

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
