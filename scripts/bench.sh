#!/usr/bin/env bash
# The README's benchmark section from one run on this machine:
#   1. criterion: each stage's CPU per child (stage/k40, stage/k1000);
#   2. `tandem loadtest` against its file-layout floor (`tandem-bench floor`: the same
#      creates, reads and links with dummy bytes of the real sizes), runs alternated,
#      medians, on the working disk and on /dev/shm, 400,000 records K=40 and
#      10,000,000 records K=1000;
#   3. `tandem api serve` on the embedded store: writes, reads and list per second over
#      32 keep-alive connections.
# Prints a Markdown report and writes it to $TARGET/bench/report.md.
#
# Settings (environment): RUNS (alternated runs per row, default 5), API_SECONDS (per
# phase, default 5), DISK_DIR (default $TARGET/bench-disk: the working disk),
# SHM_DIR (default /dev/shm/tandem-bench).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-5}
API_SECONDS=${API_SECONDS:-5}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
DISK_DIR=${DISK_DIR:-$TARGET/bench-disk}
SHM_DIR=${SHM_DIR:-/dev/shm/tandem-bench}
OUT=$TARGET/bench
mkdir -p "$OUT"

cleanup() { rm -rf "$DISK_DIR" "$SHM_DIR"; }
trap cleanup EXIT

cargo build --release -p tandem-cli -p tandem-bench
TANDEM=$TARGET/release/tandem
BENCH=$TARGET/release/tandem-bench

echo "== criterion: per-stage CPU per child" >&2
cargo bench -p tandem-bench --bench pipeline -- 'stage/' --warm-up-time 1 --measurement-time 3 >&2

: >"$OUT/compare.jsonl"
for label in disk shm; do
  dir=$DISK_DIR
  [ "$label" = shm ] && dir=$SHM_DIR
  if [ "$label" = shm ] && [ ! -d /dev/shm ]; then
    echo "no /dev/shm: skipping the tmpfs rows" >&2
    continue
  fi
  for shape in "400000 40" "10000000 1000"; do
    set -- $shape
    echo "== loadtest vs floor: $label, $1 records, K=$2, $RUNS runs each" >&2
    "$BENCH" compare --tandem "$TANDEM" --dir "$dir" --label "$label" \
      --records "$1" --ids-per-node "$2" --runs "$RUNS" >>"$OUT/compare.jsonl"
  done
done

echo "== API: 32 connections, ${API_SECONDS}s per phase" >&2
"$BENCH" api --tandem "$TANDEM" --dir "$TARGET" --connections 32 --seconds "$API_SECONDS" >"$OUT/api.json"

python3 - "$TARGET/criterion" "$OUT" <<'EOF' | tee "$OUT/report.md"
import json, os, sys, platform
crit, out = sys.argv[1], sys.argv[2]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
mem = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))) / 1024 / 1024
print(f"Machine: {os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Linux {platform.release()}.\n")
print("Loadtest (prepare + three stages + verify, process start to exit, `--keep`) against")
print("the floor of its own file layout, medians of alternated runs:\n")
print("| file system | records | K | loadtest | floor | ratio |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for line in open(os.path.join(out, "compare.jsonl")):
    r = json.loads(line)
    print(f"| {r['label']} | {r['records']:,} | {r['ids_per_node']} | {r['loadtest_s']:.2f} s | {r['floor_s']:.2f} s | {r['ratio']:.1f}x |")
print("\nPer-child CPU of each stage in memory (criterion, median):\n")
print("| stage | K=40 | K=1000 |")
print("| --- | ---: | ---: |")
for name in ["procure_generate_write", "process_decode_transform_write", "egress_check_restamp", "verify_read_check"]:
    cells = []
    for k in (40, 1000):
        p = os.path.join(crit, f"stage_k{k}", name, "new", "estimates.json")
        try:
            ns = json.load(open(p))["median"]["point_estimate"]
            cells.append(f"{ns / 1000:.1f} µs ({k * 1e9 / ns / 1e6:.2f} M IDs/s)")
        except OSError:
            cells.append("n/a")
    print(f"| {name} | {cells[0]} | {cells[1]} |")
a = json.load(open(os.path.join(out, "api.json")))
print(f"\n`tandem api serve`, embedded store, {a['connections']} keep-alive connections, {a['seconds_per_phase']} s per phase:\n")
print("| requests | per second | p50 | p99 | errors |")
print("| --- | ---: | ---: | ---: | ---: |")
for k, what in [("writes", "POST /addProduct"), ("reads", "GET /getProduct"), ("list", "GET /getProducts?limit=25")]:
    p = a[k]
    print(f"| {what} | {p['requests_per_s']:,.0f} | {p['p50_ms']:.1f} ms | {p['p99_ms']:.1f} ms | {p['errors']} |")
EOF
