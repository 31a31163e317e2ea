//! Every `kernels/*.cu` compiles — with nvcc from the pinned CUDA 13.0 wheels for sm_80, sm_89 and
//! sm_90 separately (warnings, spills and local memory are errors) and with NVRTC through cudarc —
//! and the kernel image embedded by `build.rs` is complete. No GPU needed.
//!
//! Without the wheels or libnvrtc these tests print `SKIP: ...` and pass; with `CI=true` they
//! fail instead (`.ci/run` installs the wheels). Run them through `scripts/test`, which installs
//! the wheels and sets `BATCHSAMPLE_CUDA_ROOT` and `LD_LIBRARY_PATH` (cudarc dlopens the bare
//! name `libnvrtc.so.13`, so the loader path must be set before the process starts).

use std::collections::BTreeSet;
use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

#[allow(dead_code)]
#[path = "../src/gpu/kernels_image.rs"]
mod kernels_image;

use kernels_image::{kernel_image, KernelImage, BUILD_INFO};

/// The GPU machines run driver 580 (CUDA 13.0): it loads PTX ISA up to 9.0.
const MAX_PTX_VERSION: (u32, u32) = (9, 0);
const ARCHS: &[&str] = &["sm_80", "sm_89", "sm_90"];

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn kernels_dir() -> PathBuf {
    manifest_dir().join("kernels")
}

fn in_ci() -> bool {
    env::var("CI").is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
}

fn force_nvrtc() -> bool {
    env::var("BATCHSAMPLE_FORCE_NVRTC")
        .is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false" | "no" | "off"))
}

/// Prints `SKIP: why` (the caller then returns), or panics under `CI=true`.
fn skip(why: &str) {
    assert!(
        !in_ci(),
        "{why} -- CI=true, so this is a failure, not a skip (.ci/run / scripts/test install the \
         wheels and set LD_LIBRARY_PATH)"
    );
    println!("SKIP: {why} (run scripts/test)");
}

/// Top-level `kernels/*.cu`, sorted; panics when there are none.
fn kernel_units() -> Vec<PathBuf> {
    let mut units: Vec<PathBuf> = std::fs::read_dir(kernels_dir())
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "cu"))
                .collect()
        })
        .unwrap_or_default();
    units.sort();
    assert!(
        !units.is_empty(),
        "no kernels/*.cu found in {}",
        kernels_dir().display()
    );
    units
}

fn kernel_headers() -> Vec<PathBuf> {
    let mut hs: Vec<PathBuf> = std::fs::read_dir(kernels_dir())
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "cuh"))
                .collect()
        })
        .unwrap_or_default();
    hs.sort();
    hs
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// The CUDA root to test with: `$BATCHSAMPLE_CUDA_ROOT`, else the pinned wheels under
/// `target/cuda-wheels` (`$CUDA_WHEELS_DIR` when set, as `scripts/install-cuda-wheels` uses it).
fn cuda_root() -> Option<PathBuf> {
    if let Some(r) = env::var_os("BATCHSAMPLE_CUDA_ROOT").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(r));
    }
    let wheels = env::var_os("CUDA_WHEELS_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("target/cuda-wheels"));
    let cu = wheels.join("nvidia/cu13");
    cu.is_dir().then_some(cu)
}

fn nvcc() -> Option<PathBuf> {
    let root = cuda_root()?;
    let nvcc = root.join("bin/nvcc");
    nvcc.is_file().then_some(nvcc)
}

/// `-I` flags every compile gets: `kernels/`, and the cccl headers (`nv/target`, CUB) if present.
fn include_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![root.join("include")];
    let cccl = root.join("include/cccl");
    if cccl.is_dir() {
        dirs.push(cccl);
    }
    dirs.push(kernels_dir());
    dirs
}

/// The `.version X.Y` of a PTX text.
fn ptx_version(ptx: &str) -> Option<(u32, u32)> {
    let line = ptx
        .lines()
        .find_map(|l| l.trim().strip_prefix(".version"))?;
    let (maj, min) = line.trim().split_once('.')?;
    Some((maj.trim().parse().ok()?, min.trim().parse().ok()?))
}

/// Per-kernel figures parsed from `ptxas -v`.
#[derive(Debug, Default, Clone)]
struct PtxasEntry {
    kernel: String,
    arch: String,
    registers: Option<u32>,
    stack_frame: u64,
    spill_stores: u64,
    spill_loads: u64,
    smem: u64,
}

/// Number right before `unit` in `line` (e.g. `"0 bytes spill stores"` -> 0).
fn number_before(line: &str, unit: &str) -> Option<u64> {
    let head = &line[..line.find(unit)?];
    head.split(|c: char| !c.is_ascii_digit())
        .rfind(|s| !s.is_empty())?
        .parse()
        .ok()
}

fn parse_ptxas(log: &str) -> Vec<PtxasEntry> {
    let mut out: Vec<PtxasEntry> = Vec::new();
    for line in log.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            let mut parts = rest.split('\'');
            let kernel = parts.next().unwrap_or_default().to_string();
            let arch = parts.nth(1).unwrap_or_default().to_string();
            out.push(PtxasEntry {
                kernel,
                arch,
                ..Default::default()
            });
            continue;
        }
        let Some(cur) = out.last_mut() else { continue };
        if line.contains("bytes stack frame") {
            cur.stack_frame = number_before(line, "bytes stack frame").unwrap_or(0);
            cur.spill_stores = number_before(line, "bytes spill stores").unwrap_or(0);
            cur.spill_loads = number_before(line, "bytes spill loads").unwrap_or(0);
        } else if line.contains("Used ") && line.contains(" registers") {
            cur.registers = number_before(line, " registers").map(|r| r as u32);
            cur.smem = number_before(line, "bytes smem").unwrap_or(0);
        }
    }
    out
}

/// (1) nvcc from the pinned wheels, `-cubin` for each arch separately, strict flags; prints the
/// per-kernel register / spill report and fails on any error, spill or local memory.
#[test]
fn nvcc_cubin_each_arch_without_spills() {
    let units = kernel_units();
    let Some(nvcc) = nvcc() else {
        skip("nvcc from the CUDA 13.0 wheels not found (scripts/install-cuda-wheels)");
        return;
    };
    let root = cuda_root().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = String::new();
    let mut table = String::from(
        "kernel                                   arch   regs  smem  stack  spill st/ld\n",
    );
    for unit in &units {
        for arch in ARCHS {
            let cubin = tmp.path().join(format!("{}.{arch}.cubin", file_name(unit)));
            let mut cmd = Command::new(&nvcc);
            cmd.env("TMPDIR", tmp.path())
                .args(["-std=c++17", &format!("-arch={arch}"), "-cubin"])
                .args(["-Werror", "all-warnings"])
                .args(["-Xptxas", "-v,-warn-spills,-warn-lmem-usage,-Werror"]);
            for d in include_dirs(&root) {
                cmd.arg("-I").arg(d);
            }
            cmd.arg(unit).arg("-o").arg(&cubin);
            let out = cmd.output().expect("run nvcc");
            let log = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let entries = parse_ptxas(&log);
            // The exit status, checked directly (not through a pipe).
            if !out.status.success() {
                writeln!(
                    failures,
                    "nvcc {arch} {} failed ({}):\n{log}",
                    file_name(unit),
                    out.status
                )
                .unwrap();
            } else if entries.is_empty() {
                writeln!(
                    failures,
                    "nvcc {arch} {}: no ptxas report parsed:\n{log}",
                    file_name(unit)
                )
                .unwrap();
            }
            for e in entries {
                let regs = e.registers.map_or("?".into(), |r| r.to_string());
                writeln!(
                    table,
                    "{:<40} {:<6} {:>4} {:>5} {:>6} {:>5}/{}",
                    e.kernel, e.arch, regs, e.smem, e.stack_frame, e.spill_stores, e.spill_loads
                )
                .unwrap();
                if e.registers.is_none() {
                    writeln!(
                        failures,
                        "{} {}: no register count in the ptxas report",
                        e.kernel, e.arch
                    )
                    .unwrap();
                }
                if e.spill_stores + e.spill_loads > 0 || e.stack_frame > 0 {
                    writeln!(
                        failures,
                        "{} {}: spills {}/{} bytes, stack frame {} bytes (local memory)",
                        e.kernel, e.arch, e.spill_stores, e.spill_loads, e.stack_frame
                    )
                    .unwrap();
                }
            }
        }
    }
    println!("nvcc {} -- ptxas report:\n{table}", nvcc.display());
    assert!(failures.is_empty(), "{failures}");
}

/// nvcc's PTX (what the fatbin carries for compute_90) stays within the driver's PTX ISA.
#[test]
fn nvcc_ptx_version_within_driver_limit() {
    let units = kernel_units();
    let Some(nvcc) = nvcc() else {
        skip("nvcc from the CUDA 13.0 wheels not found (scripts/install-cuda-wheels)");
        return;
    };
    let root = cuda_root().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for unit in &units {
        let ptx_path = tmp.path().join(format!("{}.ptx", file_name(unit)));
        let mut cmd = Command::new(&nvcc);
        cmd.env("TMPDIR", tmp.path())
            .args(["-std=c++17", "-arch=compute_90", "-ptx"]);
        for d in include_dirs(&root) {
            cmd.arg("-I").arg(d);
        }
        let out = cmd
            .arg(unit)
            .arg("-o")
            .arg(&ptx_path)
            .output()
            .expect("run nvcc");
        assert!(
            out.status.success(),
            "nvcc -ptx {} failed:\n{}{}",
            file_name(unit),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let ptx = std::fs::read_to_string(&ptx_path).unwrap();
        let v = ptx_version(&ptx).expect("no .version line in nvcc's PTX");
        println!("{}: nvcc PTX .version {}.{}", file_name(unit), v.0, v.1);
        assert!(
            v <= MAX_PTX_VERSION,
            "PTX .version {}.{} > 9.0: driver 580 rejects it (wheels not pinned to 13.0?)",
            v.0,
            v.1
        );
    }
}

fn nvrtc_present() -> bool {
    // SAFETY: only dlopens libnvrtc to see whether it loads.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// Compiles `source` with NVRTC (compute_90, C++17, no fast math) and returns the PTX.
fn nvrtc_compile(source: &str, name: &str, include_dirs: &[PathBuf]) -> Result<String, String> {
    let opts = cudarc::nvrtc::CompileOptions {
        arch: Some("compute_90"),
        include_paths: include_dirs
            .iter()
            .map(|d| d.to_string_lossy().into_owned())
            .collect(),
        options: vec!["--std=c++17".into()],
        use_fast_math: None,
        name: Some(name.into()),
        ..Default::default()
    };
    match cudarc::nvrtc::compile_ptx_with_opts(source, opts) {
        Ok(ptx) => Ok(ptx.to_src()),
        Err(cudarc::nvrtc::CompileError::CompileError {
            nvrtc,
            options,
            log,
        }) => Err(format!(
            "NVRTC {nvrtc:?} with {options:?}:\n{}\n(hint: NVRTC does not define INFINITY; use \
             __int_as_float(0x7f800000))",
            log.to_string_lossy()
        )),
        Err(e) => Err(format!("NVRTC: {e:?}")),
    }
}

fn check_nvrtc_ptx(what: &str, ptx: &str) {
    let v = ptx_version(ptx).unwrap_or_else(|| panic!("{what}: no .version line in NVRTC's PTX"));
    println!(
        "{what}: NVRTC PTX .version {}.{}, {} bytes",
        v.0,
        v.1,
        ptx.len()
    );
    assert!(
        v <= MAX_PTX_VERSION,
        "{what}: PTX .version {}.{} > 9.0: driver 580 rejects it (libnvrtc not from the 13.0 wheels?)",
        v.0,
        v.1
    );
    assert!(
        ptx.contains(".target sm_90"),
        "{what}: PTX is not for sm_90"
    );
}

/// (2) Every kernel through NVRTC (cudarc), as the run-time path does.
#[test]
fn nvrtc_compiles_each_kernel() {
    let units = kernel_units();
    let Some(root) = cuda_root() else {
        skip("CUDA 13.0 wheels (headers for NVRTC) not found (scripts/install-cuda-wheels)");
        return;
    };
    if !nvrtc_present() {
        skip("libnvrtc.so.13 not loadable: set LD_LIBRARY_PATH=$CU/lib before starting the tests");
        return;
    }
    let includes = include_dirs(&root);
    for unit in &units {
        let src = std::fs::read_to_string(unit).unwrap();
        let name = file_name(unit);
        let ptx = nvrtc_compile(&src, &name, &includes).unwrap_or_else(|e| panic!("{name}: {e}"));
        check_nvrtc_ptx(&name, &ptx);
    }
}

const FATBIN_MAGIC: u32 = 0xBA55_ED50;

/// `(kind, sm)` of each entry of a fatbin: kind 1 = PTX, 2 = ELF (SASS).
fn fatbin_entries(bytes: &[u8]) -> Vec<(u16, u32)> {
    let u16_at = |o: usize| u16::from_le_bytes(bytes[o..o + 2].try_into().unwrap());
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap());
    assert!(
        bytes.len() >= 16 && u32_at(0) == FATBIN_MAGIC,
        "not a fatbin (bad magic)"
    );
    let header = u16_at(6) as usize;
    let end = header + u64_at(8) as usize;
    assert!(end <= bytes.len(), "fatbin truncated");
    let mut entries = Vec::new();
    let mut off = header;
    while off + 32 <= end {
        let kind = u16_at(off);
        let entry_header = u32_at(off + 4) as usize;
        let payload = u64_at(off + 8) as usize;
        entries.push((kind, u32_at(off + 28)));
        assert!(entry_header > 0, "malformed fatbin entry");
        off += entry_header + payload;
    }
    entries
}

/// The image `build.rs` embedded: a fatbin with SASS for every target (+ PTX), or the complete
/// sources, which NVRTC then compiles from the embedded headers alone.
#[test]
fn embedded_kernel_image_is_complete() {
    let units = kernel_units();
    println!("kernel image: {BUILD_INFO}");
    match kernel_image() {
        KernelImage::Fatbin(bytes) => {
            assert!(
                !force_nvrtc(),
                "BATCHSAMPLE_FORCE_NVRTC is set but a fatbin was embedded"
            );
            let entries: BTreeSet<(u16, u32)> = fatbin_entries(bytes).into_iter().collect();
            println!(
                "fatbin: {} bytes, entries (kind 1 = PTX, 2 = SASS, sm): {entries:?}",
                bytes.len()
            );
            for sm in [80, 89, 90] {
                assert!(
                    entries.contains(&(2, sm)),
                    "fatbin lacks SASS for sm_{sm}: {entries:?}"
                );
            }
            assert!(
                entries.contains(&(1, 90)),
                "fatbin lacks compute_90 PTX: {entries:?}"
            );
        }
        KernelImage::Source { source, headers } => {
            if in_ci() && !force_nvrtc() {
                panic!("CI=true without BATCHSAMPLE_FORCE_NVRTC, but no fatbin was built: {BUILD_INFO}");
            }
            let names: BTreeSet<&str> = headers.iter().map(|(n, _)| *n).collect();
            for h in kernel_headers() {
                let text = std::fs::read_to_string(&h).unwrap();
                let name = file_name(&h);
                let got = headers.iter().find(|(n, _)| *n == name).map(|(_, t)| *t);
                assert_eq!(
                    got,
                    Some(text.as_str()),
                    "embedded header {name} missing or stale; have {names:?}"
                );
            }
            if units.len() == 1 {
                let text = std::fs::read_to_string(&units[0]).unwrap();
                assert_eq!(
                    source,
                    text,
                    "embedded source is not {}",
                    units[0].display()
                );
            } else {
                for u in &units {
                    let name = file_name(u);
                    assert!(
                        source.contains(&format!("#include \"{name}\"")),
                        "unity source lacks {name}"
                    );
                    assert!(
                        names.contains(name.as_str()),
                        "embedded headers lack {name}"
                    );
                }
            }
            // Compile what is embedded as the run time does (src/gpu/device.rs): the embedded
            // headers written to a directory that is the only include path.
            if !nvrtc_present() {
                skip("libnvrtc.so.13 not loadable; embedded source not compiled");
                return;
            }
            let tmp = tempfile::tempdir().unwrap();
            kernel_image().write_headers(tmp.path()).unwrap();
            let includes = vec![tmp.path().to_path_buf()];
            let ptx = nvrtc_compile(source, "kernels.cu", &includes)
                .unwrap_or_else(|e| panic!("embedded source: {e}"));
            check_nvrtc_ptx("embedded source", &ptx);
        }
    }
}

#[test]
fn ptxas_report_parser() {
    let log = "ptxas info    : Compiling entry function 'k' for 'sm_90'\n\
               ptxas info    : Function properties for k\n    \
               16 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads\n\
               ptxas info    : Used 40 registers, used 1 barriers, 1024 bytes smem, 372 bytes cmem[0]\n";
    let e = &parse_ptxas(log)[0];
    assert_eq!((e.kernel.as_str(), e.arch.as_str()), ("k", "sm_90"));
    assert_eq!(
        (
            e.registers,
            e.smem,
            e.stack_frame,
            e.spill_stores,
            e.spill_loads
        ),
        (Some(40), 1024, 16, 8, 4)
    );
    assert_eq!(
        ptx_version("//\n.version 9.0\n.target sm_90\n"),
        Some((9, 0))
    );
}
