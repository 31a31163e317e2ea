//! The kernels compile — the fatbin that `build.rs` built with nvcc from the pinned CUDA 13.0
//! wheels for sm_80, sm_89 and sm_90 (warnings, spills and local memory are errors), and the
//! embedded sources through NVRTC, as the run-time path compiles them — and the kernel images
//! embedded by `build.rs` are complete. No GPU needed.
//!
//! The nvcc checks read what the build wrote beside the fatbin (`OUT_DIR/ptxas-report.txt`, the
//! kept compute_90 PTX) rather than compiling the kernels again: the build is the compile (it
//! fails on a spill), and these tests hold its report to every architecture and kernel.
//! Without the wheels or libnvrtc these tests print `SKIP: ...` and pass; with `CI=true` they
//! fail instead (`.ci/run` installs the wheels). Run them through `scripts/test`, which installs
//! the wheels and sets `BATCHSAMPLE_CUDA_ROOT` and `LD_LIBRARY_PATH` (cudarc dlopens the bare
//! name `libnvrtc.so.13`, so the loader path must be set before the process starts).

use std::collections::BTreeSet;
use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[allow(dead_code)]
#[path = "../src/gpu/kernels_image.rs"]
mod kernels_image;

// The build script's cache and fatbin key, as build.rs includes them (`crate::cache`).
#[allow(dead_code)]
#[path = "../build/cache.rs"]
mod cache;
#[allow(dead_code)]
#[path = "../build/fatbin.rs"]
mod fatbin;

use kernels_image::{embedded_fatbin, embedded_source, KernelImage, BUILD_INFO};

/// The GPU machines run driver 580 (CUDA 13.0): it loads PTX ISA up to 9.0.
const MAX_PTX_VERSION: (u32, u32) = (9, 0);
const ARCHS: &[&str] = &["sm_80", "sm_89", "sm_90"];
/// What build.rs leaves beside the fatbin (build/fatbin.rs: REPORT_FILE, PTX_FILE).
const REPORT: &str = concat!(env!("OUT_DIR"), "/ptxas-report.txt");
const NVCC_PTX: &str = concat!(env!("OUT_DIR"), "/kernels.compute_90.ptx");

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn kernels_dir() -> PathBuf {
    manifest_dir().join("kernels")
}

fn in_ci() -> bool {
    env::var("CI").is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
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

/// The architectures the fatbin must hold: all three, or `$BATCHSAMPLE_CUDA_ARCHS` as
/// `scripts/test --quick` sets it for the build and the tests alike (never under `CI=true`).
fn expected_archs() -> Vec<String> {
    match env::var("BATCHSAMPLE_CUDA_ARCHS") {
        Ok(list) if !list.trim().is_empty() => {
            assert!(
                !in_ci(),
                "BATCHSAMPLE_CUDA_ARCHS={list:?} under CI=true: CI builds every architecture"
            );
            list.split(',')
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty())
                .collect()
        }
        _ => ARCHS.iter().map(|a| a.to_string()).collect(),
    }
}

/// The fatbin this build embedded, or `None` after a skip (no nvcc at build time).
fn fatbin_or_skip() -> Option<&'static [u8]> {
    let fatbin = embedded_fatbin();
    if fatbin.is_none() {
        skip(&format!("no fatbin in this build ({BUILD_INFO})"));
    }
    fatbin
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

/// The `.version X.Y` of a PTX text.
fn ptx_version(ptx: &str) -> Option<(u32, u32)> {
    let line = ptx
        .lines()
        .find_map(|l| l.trim().strip_prefix(".version"))?;
    let (maj, min) = line.trim().split_once('.')?;
    Some((maj.trim().parse().ok()?, min.trim().parse().ok()?))
}

/// The kernels a PTX text defines (its `.entry` names).
fn ptx_entries(ptx: &str) -> BTreeSet<String> {
    ptx.lines()
        .filter_map(|l| l.split(".entry").nth(1))
        .filter_map(|rest| {
            let name: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
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

/// (1) The build's nvcc run: strict flags, every architecture, and for each of them every kernel
/// with a register count and no spills, stack frame or local memory. Prints the per-kernel table.
#[test]
fn fatbin_build_has_every_kernel_for_every_arch_without_spills() {
    if fatbin_or_skip().is_none() {
        return;
    }
    let log = std::fs::read_to_string(REPORT)
        .unwrap_or_else(|e| panic!("{REPORT}: {e} (build.rs writes it with the fatbin)"));
    let command = log.lines().next().unwrap_or_default();
    for flag in [
        "-Werror all-warnings",
        "-warn-spills",
        "-warn-lmem-usage",
        "-Werror",
    ] {
        assert!(
            command.contains(flag),
            "the fatbin was built without {flag}: {command}"
        );
    }
    assert!(
        !command.contains("fast_math") && !command.contains("fast-math"),
        "the fatbin was built with fast math: {command}"
    );
    let nvcc_ptx = std::fs::read_to_string(NVCC_PTX)
        .unwrap_or_else(|e| panic!("{NVCC_PTX}: {e} (build.rs keeps nvcc's compute_90 PTX)"));
    let kernels = ptx_entries(&nvcc_ptx);
    assert!(!kernels.is_empty(), "no .entry in nvcc's PTX");

    let entries = parse_ptxas(&log);
    let mut failures = String::new();
    let mut table = String::from(
        "kernel                                   arch   regs  smem  stack  spill st/ld\n",
    );
    for arch in expected_archs() {
        let of_arch: Vec<&PtxasEntry> = entries.iter().filter(|e| e.arch == arch).collect();
        let names: BTreeSet<String> = of_arch.iter().map(|e| e.kernel.clone()).collect();
        if names != kernels {
            writeln!(
                failures,
                "{arch}: ptxas compiled {names:?}, the PTX defines {kernels:?}"
            )
            .unwrap();
        }
        for e in of_arch {
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
    println!("{BUILD_INFO} -- ptxas report:\n{table}");
    assert!(failures.is_empty(), "{failures}");
}

/// nvcc's PTX (what the fatbin carries for compute_90) stays within the driver's PTX ISA.
#[test]
fn fatbin_ptx_version_within_driver_limit() {
    if fatbin_or_skip().is_none() {
        return;
    }
    let ptx = std::fs::read_to_string(NVCC_PTX).unwrap_or_else(|e| panic!("{NVCC_PTX}: {e}"));
    let v = ptx_version(&ptx).expect("no .version line in nvcc's PTX");
    println!("nvcc PTX .version {}.{}", v.0, v.1);
    assert!(
        v <= MAX_PTX_VERSION,
        "PTX .version {}.{} > 9.0: driver 580 rejects it (wheels not pinned to 13.0?)",
        v.0,
        v.1
    );
    assert!(ptx.contains(".target sm_90"), "nvcc's PTX is not for sm_90");
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

/// (2) The embedded fatbin has SASS for every architecture and the compute_90 PTX.
#[test]
fn embedded_fatbin_is_complete() {
    let Some(bytes) = fatbin_or_skip() else {
        return;
    };
    println!("kernel image: {BUILD_INFO}");
    let entries: BTreeSet<(u16, u32)> = fatbin_entries(bytes).into_iter().collect();
    println!(
        "fatbin: {} bytes, entries (kind 1 = PTX, 2 = SASS, sm): {entries:?}",
        bytes.len()
    );
    for arch in expected_archs() {
        let sm: u32 = arch.trim_start_matches("sm_").parse().expect("sm_XY");
        assert!(
            entries.contains(&(2, sm)),
            "fatbin lacks SASS for {arch}: {entries:?}"
        );
    }
    assert!(
        entries.contains(&(1, 90)),
        "fatbin lacks compute_90 PTX: {entries:?}"
    );
}

/// (3) The embedded sources, which every build carries, are the files in `kernels/`: every
/// header, and the translation unit (the one `.cu`, or a unity file including each of them).
#[test]
fn embedded_sources_are_the_kernel_files() {
    let units = kernel_units();
    let KernelImage::Source { source, headers } = embedded_source() else {
        panic!("embedded_source() is not a source image");
    };
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
            let text = std::fs::read_to_string(u).unwrap();
            assert!(
                source.contains(&format!("#include \"{name}\"")),
                "unity source lacks {name}"
            );
            let got = headers.iter().find(|(n, _)| *n == name).map(|(_, t)| *t);
            assert_eq!(
                got,
                Some(text.as_str()),
                "embedded {name} missing or stale; have {names:?}"
            );
        }
    }
}

/// (4) Every kernel through NVRTC (cudarc), as the run-time path compiles them: the embedded
/// translation unit, with the embedded headers written to a directory that is the only include
/// path (src/gpu/device.rs), and the same kernels as nvcc's PTX when the build has a fatbin.
#[test]
fn embedded_source_compiles_with_nvrtc() {
    if cuda_root().is_none() {
        skip("CUDA 13.0 wheels not found (scripts/install-cuda-wheels)");
        return;
    }
    if !nvrtc_present() {
        skip("libnvrtc.so.13 not loadable: set LD_LIBRARY_PATH=$CU/lib before starting the tests");
        return;
    }
    let image = embedded_source();
    let KernelImage::Source { source, .. } = image else {
        unreachable!()
    };
    let tmp = tempfile::tempdir().unwrap();
    image.write_headers(tmp.path()).unwrap();
    let includes = vec![tmp.path().to_path_buf()];
    let ptx = nvrtc_compile(source, "kernels.cu", &includes)
        .unwrap_or_else(|e| panic!("embedded source: {e}"));
    check_nvrtc_ptx("embedded source", &ptx);
    let compiled = ptx_entries(&ptx);
    println!("NVRTC compiled {} kernels", compiled.len());
    assert!(!compiled.is_empty(), "no .entry in NVRTC's PTX");
    if embedded_fatbin().is_some() {
        let nvcc_ptx =
            std::fs::read_to_string(NVCC_PTX).unwrap_or_else(|e| panic!("{NVCC_PTX}: {e}"));
        assert_eq!(
            compiled,
            ptx_entries(&nvcc_ptx),
            "NVRTC and nvcc compiled different kernel sets"
        );
    }
}

/// (5) The run-time choice between the images (`BATCHSAMPLE_KERNEL_IMAGE`).
#[test]
fn kernel_image_choice() {
    let is_source = |r: Result<(KernelImage, &str), String>| {
        matches!(r.expect("a valid choice").0, KernelImage::Source { .. })
    };
    assert!(is_source(kernels_image::choose_image("source")));
    assert!(is_source(kernels_image::choose_image(" nvrtc ")));
    assert!(kernels_image::choose_image("ptx").is_err());
    let auto = kernels_image::choose_image("").expect("auto");
    match (auto.0, embedded_fatbin()) {
        (KernelImage::Fatbin(bytes), Some(built)) => assert_eq!(bytes.as_ptr(), built.as_ptr()),
        (KernelImage::Source { .. }, None) => {
            assert!(kernels_image::choose_image("fatbin").is_err())
        }
        (got, built) => panic!(
            "auto chose {got:?} with fatbin {:?}",
            built.map(<[u8]>::len)
        ),
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

/// (6) The build cache's key changes with every input that decides the fatbin — a kernel file's
/// bytes, a file added, a flag, the translation unit — and with nothing else (where `OUT_DIR`
/// is, which differs per profile and tool, does not enter it): a stale hit would ship old
/// kernels, a needless miss costs minutes of nvcc.
#[test]
fn build_cache_key_follows_the_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("kernels");
    std::fs::create_dir_all(dir.join("host")).unwrap();
    std::fs::write(dir.join("a.cu"), "kernel a").unwrap();
    std::fs::write(dir.join("b.cuh"), "header b").unwrap();
    std::fs::write(dir.join("host/simt.h"), "shim").unwrap();
    let nvcc = tmp.path().join("no-nvcc-here");
    let flags: Vec<std::ffi::OsString> = vec!["-std=c++17".into(), "--fatbin".into()];
    let key = |unit: &str, flags: &[std::ffi::OsString]| {
        fatbin::fatbin_key(unit, &dir, flags, &nvcc).hex()
    };
    let base = key("kernels_unity.cu", &flags);
    assert_eq!(base, key("kernels_unity.cu", &flags), "not deterministic");
    assert_eq!(base.len(), 32);

    std::fs::write(dir.join("b.cuh"), "header b'").unwrap();
    let edited = key("kernels_unity.cu", &flags);
    assert_ne!(edited, base, "a header's bytes");
    std::fs::write(dir.join("host/simt.h"), "shim'").unwrap();
    let nested = key("kernels_unity.cu", &flags);
    assert_ne!(nested, edited, "a file below kernels/");
    std::fs::write(dir.join("c.cu"), "kernel c").unwrap();
    let added = key("kernels_unity.cu", &flags);
    assert_ne!(added, nested, "a file added");
    let mut more = flags.clone();
    more.push("-G".into());
    assert_ne!(key("kernels_unity.cu", &more), added, "a flag");
    assert_ne!(key("a.cu", &flags), added, "the translation unit");
    // Length-prefixed fields: moving a byte from one field to the next is a different key.
    let mut a = cache::Key::new("k");
    a.add_str("ab").add_str("c");
    let mut b = cache::Key::new("k");
    b.add_str("a").add_str("bc");
    assert_ne!(a.hex(), b.hex());
}

/// (7) Where the cache lives, and what a fetch, a store and pruning do.
#[test]
fn build_cache_stores_fetches_and_prunes() {
    use std::ffi::OsStr;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("target/debug/build/batchsample-0123/out");
    assert_eq!(
        cache::root_for(&out, None),
        Some(tmp.path().join("target/batchsample-build-cache"))
    );
    let cross = tmp
        .path()
        .join("target/x86_64-unknown-linux-gnu/release/build/b-1/out");
    assert_eq!(
        cache::root_for(&cross, None),
        Some(
            tmp.path()
                .join("target/x86_64-unknown-linux-gnu/batchsample-build-cache")
        )
    );
    assert_eq!(cache::root_for(&tmp.path().join("elsewhere"), None), None);
    assert_eq!(cache::root_for(&out, Some(OsStr::new("off"))), None);
    assert_eq!(
        cache::root_for(&out, Some(OsStr::new("/c"))),
        Some(PathBuf::from("/c"))
    );

    let c = cache::Cache::at(tmp.path().join("cache")).unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&dst).unwrap();
    let key = |n: &str| {
        let mut k = cache::Key::new("t");
        k.add_str(n);
        k
    };
    assert!(
        !c.fetch("t", &key("0"), &["f"], &dst),
        "an empty cache hits"
    );
    std::fs::write(src.join("f"), "zero").unwrap();
    std::fs::write(src.join("g"), "gee").unwrap();
    c.store("t", &key("0"), &["f", "g"], &src);
    assert!(c.fetch("t", &key("0"), &["f", "g"], &dst));
    assert_eq!(std::fs::read_to_string(dst.join("f")).unwrap(), "zero");
    assert!(
        !c.fetch("t", &key("0"), &["f", "h"], &dst),
        "a file the entry lacks"
    );
    // A second store of the same key keeps the first entry (another build got there first).
    std::fs::write(src.join("f"), "other").unwrap();
    c.store("t", &key("0"), &["f", "g"], &src);
    assert!(c.fetch("t", &key("0"), &["f"], &dst));
    assert_eq!(std::fs::read_to_string(dst.join("f")).unwrap(), "zero");
    // Pruning keeps the most recently used entries of the kind, and no temporary directories.
    for n in ["1", "2", "3", "4"] {
        std::thread::sleep(std::time::Duration::from_millis(20));
        c.store("t", &key(n), &["f"], &src);
    }
    let names: BTreeSet<String> = std::fs::read_dir(tmp.path().join("cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(
        !c.fetch("t", &key("0"), &["f"], &dst),
        "the oldest was kept"
    );
    assert!(
        c.fetch("t", &key("4"), &["f"], &dst),
        "the newest was pruned"
    );
}
