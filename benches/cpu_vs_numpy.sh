#!/usr/bin/env bash
# The CPU reference against the lesson's numpy approach, side by side in one run on this machine:
# 64 x 128256 f32 logits, temperature 0.8, top-k 50, top-p 0.9, the very same data for both.
#
#   benches/cpu_vs_numpy.sh            # RUST_RUNS=15 NUMPY_RUNS=5 by default
#
# Builds and runs the `cpu_vs_numpy` bench in its plain-timer mode (it writes the logits and its
# per-row kept-set sizes to target/cpu_vs_numpy/ and prints `cpu_ms` lines), then
# benches/numpy_baseline.py on the same file, and prints
#   cpu reference: X ms, numpy: Y ms, ratio Z
# for `cpu::sample_batch` as shipped (rayon, all cores, Gumbel draw), plus the inverse-CDF draw
# and one-thread numbers. numpy comes from the system python if it has it, else from a venv in
# target/numpy-venv (created with pip on first use).
set -euo pipefail
cd "$(dirname "$0")/.."

RUST_RUNS="${RUST_RUNS:-15}"
NUMPY_RUNS="${NUMPY_RUNS:-5}"
OUT=target/cpu_vs_numpy
mkdir -p "$OUT"

if python3 -c 'import numpy' 2>/dev/null; then
    PY=python3
else
    VENV=target/numpy-venv
    if ! "$VENV/bin/python" -c 'import numpy' 2>/dev/null; then
        echo "installing numpy into $VENV ..." >&2
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install --quiet numpy
    fi
    PY="$VENV/bin/python"
fi

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
cargo bench --bench cpu_vs_numpy --no-run --quiet 2>/dev/null || cargo bench --bench cpu_vs_numpy --no-run
BATCHSAMPLE_SIDE_BY_SIDE="$OUT" BATCHSAMPLE_RUNS="$RUST_RUNS" \
    cargo bench --bench cpu_vs_numpy --quiet 2>/dev/null | tee "$OUT/rust.txt"
"$PY" benches/numpy_baseline.py --logits "$OUT/logits.f32" --kept "$OUT/kept.txt" \
    --runs "$NUMPY_RUNS" | tee "$OUT/numpy.txt"

np_ms=$(awk '$1 == "numpy_ms" { print $2 }' "$OUT/numpy.txt")
cpu_ms() { awk -v m="$1" -v t="$2" '$1 == "cpu_ms" && $2 == m && (t == "all" ? $3 != 1 : $3 == t) { print $4; exit }' "$OUT/rust.txt"; }
ratio() { awk -v a="$np_ms" -v b="$1" 'BEGIN { printf "%.1f", a / b }'; }

g_all=$(cpu_ms gumbel all); g_one=$(cpu_ms gumbel 1)
i_all=$(cpu_ms inverse-cdf all); i_one=$(cpu_ms inverse-cdf 1)
# One core has no "all threads" line distinct from the one-thread line.
[ -n "$g_all" ] || g_all=$g_one
[ -n "$i_all" ] || i_all=$i_one
echo
echo "inverse-cdf draw: $i_all ms (ratio $(ratio "$i_all")); one thread: gumbel $g_one ms (ratio $(ratio "$g_one")), inverse-cdf $i_one ms (ratio $(ratio "$i_one"))"
echo "cpu reference: $g_all ms, numpy: $np_ms ms, ratio $(ratio "$g_all")"
