#!/usr/bin/env bash
# Runs every test of the repository: formatting, lints, unit and integration tests
# (with the AWS ones against a local moto_server started by scripts/emulator.sh, the
# pyarrow and headless-Chromium checks included), the benchmarks once each (as tests),
# end-to-end runs of the built binary checked against the reference oracle
# (scripts/workload_oracle.py), the Lambda bootstraps built for provided.al2023 with
# their glibc checked (scripts/lambdas.sh), and the CDK app: its assertion tests, a real
# synth under cdk-nag, and cfn-lint (scripts/infra.sh).
#
# usage: scripts/test.sh
# env:   CARGO_TARGET_DIR  where to build (default: cargo's; .ci/run uses a persistent one)
#        TANDEM_CACHE      where the tools live (default: ~/.cache/tandem; scripts/tools.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tools.sh
source scripts/tools.sh

step() { printf '\n==> %s\n' "$*" >&2; }

step "tools (Python tools, Chromium, the CDK app's node modules)"
venv_bin=$(tandem_venv)
export TANDEM_PYTHON="$venv_bin/python"
TANDEM_CHROMIUM=$(tandem_chromium)
export TANDEM_CHROMIUM
tandem_node_modules

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked --features tandem-dr/dynamodb -- -D warnings

step "cargo test (unit, integration, CLI; AWS against the local emulator; pyarrow; Chromium)"
scripts/emulator.sh cargo test --workspace --lib --bins --tests --locked --features tandem-dr/dynamodb -- --include-ignored

step "cargo test --benches (each benchmark once)"
cargo test -p tandem-bench --benches --locked

step "end to end: tandem loadtest against the Python oracle"
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
tandem="$target_dir/debug/tandem"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
check() { # records first_id seed ids_per_node
    local out want got
    out=$("$tandem" loadtest --records "$1" --first-id "$2" --seed "$3" --ids-per-node "$4" \
        --root "$work/vol" --bucket "file://$work/bucket" --json)
    got=$(printf '%s' "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); v=d["verify"]; print("ok=%s rows=%d checksum=%d" % (d["ok"], v["rows"], v["checksum"]))')
    want=$(python3 scripts/workload_oracle.py "$1" "$2" "$3" | sed -E 's/^rows=([0-9]+) id_sum=[0-9]+ checksum=([0-9]+)$/ok=True rows=\1 checksum=\2/')
    if [ "$got" != "$want" ]; then
        echo "MISMATCH for N=$1 first_id=$2 seed=$3 K=$4: tandem $got, oracle $want" >&2
        return 1
    fi
    echo "N=$1 first_id=$2 seed=$3 K=$4: $got (matches the oracle)" >&2
}
check 1000 1 42 40
check 12345 1000000 7 17
check 400000 1 42 40
check 99999 18446744073709451617 3 10
echo "4 passed, 0 failed" >&2

step "Lambda bootstraps for provided.al2023 (cargo-lambda, glibc <= 2.34)"
scripts/lambdas.sh

step "infra: tsc, jest, cdk synth with cdk-nag, cfn-lint"
scripts/infra.sh
