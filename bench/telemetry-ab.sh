#!/usr/bin/env bash
# Telemetry off against a build without telemetry, in one sitting:
# instructions per GetCase counted by callgrind (bench/callgrind.sh), so
# the figure does not move with whatever else the machine runs.
# BENCHMARKS.md, "Telemetry off against a build without it".
#
#   bench/telemetry-ab.sh [DURATION]          e.g. bench/telemetry-ab.sh 20s
#
# Checks out HEAD twice into temporary git worktrees, applies
# bench/no-telemetry.patch to one (no span, no trace ids, no metric call on
# the request path or in the log writer; the JSON line per request kept,
# with the same fields), builds both in release into the same target
# folder (dependencies built once; the sluis crate once per tree) and copies
# each build's `sluis` and `bench` to target/telemetry-ab/{with,without}.
# Then, for each build in turn, a 1 s and a DURATION run of callgrind.sh;
# instructions per request = (Ir_long - Ir_1s) / (entries_long - entries_1s).
# Neither build exports anything: the node's configuration names no OTLP
# endpoint, so "with" is telemetry as shipped and switched off.
#
# Environment: WITH=DIR takes `sluis` and `bench` of the "with" build from
# DIR (e.g. target/release of this tree, built at HEAD as committed)
# instead of building HEAD again. COMPARE=1 also runs `bench compare --rounds 3 --duration 5s
# --rate 800,3000` of each build (wall clock: meaningful only on an idle
# machine). CARGO_TARGET_DIR as cargo's (default: this tree's target/; the
# last build done, HEAD as committed, is left in target/release).
set -euo pipefail
duration=${1:-20s}
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
out=$root/target/telemetry-ab
rev=$(git -C "$root" rev-parse HEAD)
tmp=$(mktemp -d)
cleanup() {
    for b in with without; do
        git -C "$root" worktree remove --force "$tmp/$b" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
builds="without"
if [ -n "${WITH:-}" ]; then
    mkdir -p "$out/with"
    cp "$WITH/sluis" "$WITH/bench" "$out/with/"
else
    builds="without with"
fi
for b in $builds; do
    git -C "$root" worktree add --detach "$tmp/$b" "$rev" >/dev/null
done
if ! git -C "$tmp/without" apply "$root/bench/no-telemetry.patch"; then
    echo "bench/no-telemetry.patch no longer applies to $rev: redo it against the telemetry code as it is now" >&2
    exit 1
fi
mkdir -p "$out"
for b in $builds; do
    echo "building $b ($rev)" >&2
    (cd "$tmp/$b" && CARGO_TARGET_DIR=$target cargo build --release --quiet \
        -p sluis --bin sluis -p sluis-bench --bin bench)
    mkdir -p "$out/$b"
    cp "$target/release/sluis" "$target/release/bench" "$out/$b/"
done
run() { # label duration -> "instructions entries"
    BIN=$out/$2 "$root/bench/callgrind.sh" "$1" "$3" |
        sed -E 's/.*instructions ([0-9]+), access log entries added ([0-9]+).*/\1 \2/'
}
{
    echo "telemetry off vs without, $rev, $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
    for b in with without; do
        read -r ir1 n1 < <(run "ab-$b-1s" "$b" 1s)
        read -r ir2 n2 < <(run "ab-$b" "$b" "$duration")
        echo "$b: 1s $ir1 instructions / $n1 entries; $duration $ir2 / $n2; per request $(( (ir2 - ir1) / (n2 - n1) ))"
    done
    echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out/result.txt"
if [ -n "${COMPARE:-}" ]; then
    for b in with without; do
        echo "bench compare, $b:"
        "$out/$b/bench" compare --rounds 3 --duration 5s --rate 800,3000
    done | tee "$out/compare.txt"
fi
