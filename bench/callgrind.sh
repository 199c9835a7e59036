#!/usr/bin/env bash
# Instructions per GetCase of a release node, counted by callgrind: a
# figure that does not move with whatever else the machine runs (wall-clock
# throughput on a shared machine does). BENCHMARKS.md, "Instructions per
# request".
#
#   bench/callgrind.sh LABEL DURATION          e.g. bench/callgrind.sh main 20s
#
# Makes a bench node (`bench setup`, 100 cases), serves it under
# `valgrind --tool=callgrind`, loads it with `bench loadgen --closed`
# (10 connections x 4 in flight, as `compare`) for DURATION, stops it with
# SIGINT and prints the instructions the node ran and the access log entries
# the run added. Two runs of different lengths give instructions per
# request as (Ir2 - Ir1) / (entries2 - entries1): start-up and shutdown
# cancel out. Kernel work (fsync, socket writes) is not counted.
#
# Environment: BIN (folder with release `sluis` and `bench`, default
# target/release), PORT (default 17443; PORT+1 is the probes listener),
# NOOFFICER=1 (no officer key: no data subject id sealed per record),
# SLUIS_LOG (default info; `warn` drops the JSON line per request).
# Output in target/callgrind/LABEL (callgrind.out, node.err, loadgen.out);
# `callgrind_annotate --inclusive=yes target/callgrind/LABEL/callgrind.out`
# lists where the instructions went.
set -euo pipefail
label=${1:?label}
duration=${2:?duration, e.g. 20s}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${BIN:-$root/target/release}
port=${PORT:-17443}
out=$root/target/callgrind/$label
rm -rf "$out"
mkdir -p "$out"
"$bin/bench" setup --dir "$out/node" --cases 100 --listen "127.0.0.1:$port" >"$out/setup.out" 2>&1
if [ -n "${NOOFFICER:-}" ]; then
    sed -i 's/^officer_key = /# officer_key = /' "$out/node/sluis.toml"
fi
count() { sqlite3 "$out/node/sluis.db" 'SELECT count(*) FROM access_log'; }
before=$(count)
cd "$out/node"
SLUIS_LOG=${SLUIS_LOG:-info} valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out" \
    "$bin/sluis" serve --config "$out/node/sluis.toml" 2>"$out/node.err" &
node=$!
for _ in $(seq 1 600); do
    if (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    sleep 1
done
sleep 2
"$bin/bench" loadgen --workload "$out/node/workload.json" --closed \
    --connections 10 --in-flight 4 --warmup 1s --duration "$duration" >"$out/loadgen.out" 2>&1
sleep 2
kill -INT "$node"
wait "$node" || true
after=$(count)
ir=$(awk '/^summary:/ {print $2}' "$out/callgrind.out")
echo "$label: instructions $ir, access log entries added $((after - before))"
