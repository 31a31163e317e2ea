//! A content-addressed cache for what the build script compiles (the nvcc fatbin and the host
//! SIMT shim's static library), shared by every build of the crate in one target directory.
//!
//! Why: cargo runs the build script once per profile and per tool — `cargo test`, `cargo build
//! --release`, `cargo clippy` (whose build script is compiled by clippy-driver) and `cargo check`
//! each get their own `OUT_DIR` — and nvcc takes minutes for the kernels. Keyed by everything
//! that decides the output (the sources' bytes, the compiler's identity, the command line), a
//! second build of the same kernels copies the first one's files instead of compiling again.
//!
//! Where: `<target-dir>/batchsample-build-cache/<kind>-<key>/`, found from `OUT_DIR`'s layout
//! (`<target-dir>/[<triple>/]<profile>/build/<pkg>-<hash>/out`), or `$BATCHSAMPLE_BUILD_CACHE`
//! when set (`off` disables it). Entries are written to a temporary directory and renamed into
//! place, so concurrent builds never see half an entry; the oldest entries beyond
//! [`KEEP_PER_KIND`] are removed.

use std::env;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Entries kept per kind (each fatbin entry is ~40 MB: the fatbin plus its compute_90 PTX).
const KEEP_PER_KIND: usize = 3;

/// A 128-bit FNV-1a hash (two 64-bit lanes with different offsets): stable across Rust
/// versions and platforms, unlike `DefaultHasher`. Collisions are not a concern at this scale;
/// it is not a security boundary.
pub struct Key {
    a: u64,
    b: u64,
}

impl Key {
    pub fn new(kind: &str) -> Self {
        let mut k = Key {
            a: 0xcbf2_9ce4_8422_2325,
            b: 0x6c62_272e_07bb_0142,
        };
        k.add(kind.as_bytes());
        k
    }

    /// Adds a length-prefixed field, so that `("ab", "c")` and `("a", "bc")` differ.
    pub fn add(&mut self, bytes: &[u8]) -> &mut Self {
        for &x in (bytes.len() as u64).to_le_bytes().iter().chain(bytes) {
            self.a = (self.a ^ x as u64).wrapping_mul(0x0000_0100_0000_01b3);
            self.b = (self.b ^ x as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }

    pub fn add_str(&mut self, s: &str) -> &mut Self {
        self.add(s.as_bytes())
    }

    /// Adds every file under `dir`: its path relative to `dir` and its bytes, in sorted order.
    pub fn add_tree(&mut self, dir: &Path) -> &mut Self {
        for f in tree(dir).0 {
            let name = f.strip_prefix(dir).unwrap_or(&f);
            self.add_str(&name.to_string_lossy());
            self.add(&fs::read(&f).unwrap_or_else(|e| panic!("read {}: {e}", f.display())));
        }
        self
    }

    /// Adds what identifies an installed file without reading it: path, size and mtime.
    pub fn add_metadata(&mut self, path: &Path) -> &mut Self {
        self.add_str(&path.to_string_lossy());
        if let Ok(m) = fs::metadata(path) {
            self.add(&m.len().to_le_bytes());
            let mtime = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            self.add(&mtime.to_le_bytes());
        }
        self
    }

    pub fn hex(&self) -> String {
        format!("{:016x}{:016x}", self.a, self.b)
    }
}

pub struct Cache {
    root: PathBuf,
}

/// The files and the directories below `dir` (recursively), each list sorted.
pub fn tree(dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    fn walk(dir: &Path, files: &mut Vec<PathBuf>, dirs: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => {
                    walk(&path, files, dirs);
                    dirs.push(path);
                }
                Ok(_) => files.push(path),
                Err(_) => {}
            }
        }
    }
    let (mut files, mut dirs) = (Vec::new(), Vec::new());
    walk(dir, &mut files, &mut dirs);
    files.sort();
    dirs.sort();
    (files, dirs)
}

/// Where the cache lives for `OUT_DIR` and a `BATCHSAMPLE_BUILD_CACHE` setting: the setting's
/// directory, nowhere for `off`/`0`/`false`/`no`, else `<target-dir>/batchsample-build-cache`
/// found from `OUT_DIR`'s layout; nowhere when the layout is not cargo's.
pub fn root_for(out_dir: &Path, setting: Option<&OsStr>) -> Option<PathBuf> {
    match setting.filter(|v| !v.is_empty()) {
        Some(v) if matches!(v.to_str(), Some("off" | "0" | "false" | "no")) => None,
        Some(v) => Some(PathBuf::from(v)),
        None => {
            // out -> <pkg>-<hash> -> build -> <profile> -> target dir (or <triple> dir)
            let build = out_dir.ancestors().nth(2)?;
            if build.file_name()? != "build" || out_dir.file_name()? != "out" {
                return None;
            }
            Some(build.ancestors().nth(2)?.join("batchsample-build-cache"))
        }
    }
}

impl Cache {
    /// The cache for this build, or `None` when disabled or `OUT_DIR` is not laid out as cargo
    /// lays it out (then every build compiles, as without a cache).
    pub fn open(out_dir: &Path) -> Option<Cache> {
        println!("cargo::rerun-if-env-changed=BATCHSAMPLE_BUILD_CACHE");
        Cache::at(root_for(
            out_dir,
            env::var_os("BATCHSAMPLE_BUILD_CACHE").as_deref(),
        )?)
    }

    /// The cache in `root` (created if missing).
    pub fn at(root: PathBuf) -> Option<Cache> {
        fs::create_dir_all(&root).ok()?;
        Some(Cache { root })
    }

    fn entry(&self, kind: &str, key: &Key) -> PathBuf {
        self.root.join(format!("{kind}-{}", key.hex()))
    }

    /// Copies `files` of the entry into `dest`; false (and nothing trusted) if any is missing.
    pub fn fetch(&self, kind: &str, key: &Key, files: &[&str], dest: &Path) -> bool {
        let entry = self.entry(kind, key);
        if !files.iter().all(|f| entry.join(f).is_file()) {
            return false;
        }
        let ok = files
            .iter()
            .all(|f| fs::copy(entry.join(f), dest.join(f)).is_ok());
        if ok {
            // Marks the entry as recently used for pruning.
            let _ = fs::write(entry.join(".used"), b"");
        }
        ok
    }

    /// Stores `files` from `src` as the entry, then prunes old entries of the same kind. Failures
    /// are ignored: the cache only ever saves time.
    pub fn store(&self, kind: &str, key: &Key, files: &[&str], src: &Path) {
        let entry = self.entry(kind, key);
        let tmp = self
            .root
            .join(format!(".tmp-{kind}-{}-{}", key.hex(), std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        if fs::create_dir_all(&tmp).is_err() {
            return;
        }
        let copied = files
            .iter()
            .all(|f| fs::copy(src.join(f), tmp.join(f)).is_ok());
        if !copied || fs::write(tmp.join(".used"), b"").is_err() {
            let _ = fs::remove_dir_all(&tmp);
            return;
        }
        // Another build may have stored the same entry meanwhile: keep theirs.
        if fs::rename(&tmp, &entry).is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        self.prune(kind);
    }

    fn prune(&self, kind: &str) {
        let prefix = format!("{kind}-");
        let Ok(read) = fs::read_dir(&self.root) else {
            return;
        };
        let mut entries: Vec<(SystemTime, PathBuf)> = read
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .map(|e| {
                let used = fs::metadata(e.path().join(".used"))
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                (used, e.path())
            })
            .collect();
        entries.sort_by_key(|e| std::cmp::Reverse(e.0));
        for (_, old) in entries.into_iter().skip(KEEP_PER_KIND) {
            let _ = fs::remove_dir_all(old);
        }
    }
}
