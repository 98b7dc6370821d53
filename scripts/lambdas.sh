#!/usr/bin/env bash
# Builds the four Lambda bootstraps (prepare, watch, product_api, post_backup) with
# cargo-lambda for provided.al2023 and checks that none needs a glibc symbol newer
# than the runtime's (2.34). The infra bundling (cdk synth) reuses this build.
#
# usage: scripts/lambdas.sh [x86_64|arm64]      (default x86_64)
# env:   TANDEM_LAMBDA_TARGET_DIR  build directory (default ~/.cache/tandem-lambda-target)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tools.sh
source scripts/tools.sh
# cargo-lambda and zig come from the tools virtualenv.
export PATH="$(tandem_venv):$PATH"

arch="${1:-x86_64}"
case "$arch" in
    x86_64) triple=x86_64-unknown-linux-gnu ;;
    arm64) triple=aarch64-unknown-linux-gnu ;;
    *) echo "lambdas: unknown architecture $arch: use x86_64 or arm64" >&2; exit 2 ;;
esac
glibc=2.34
export CARGO_TARGET_DIR="${TANDEM_LAMBDA_TARGET_DIR:-$HOME/.cache/tandem-lambda-target}"

cargo lambda build --profile lambda --target "$triple.$glibc" --locked -p tandem-lambdas >&2

status=0
for bin in prepare watch product_api post_backup; do
    boot="$CARGO_TARGET_DIR/lambda/$bin/bootstrap"
    if [ ! -x "$boot" ]; then
        echo "lambdas: $boot was not built" >&2
        status=1
        continue
    fi
    newest=$(objdump -T "$boot" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -t. -k1,1n -k2,2n -k3,3n -u | tail -1)
    if [ "$(printf '%s\n%s\n' "$newest" "$glibc" | sort -t. -k1,1n -k2,2n -k3,3n | tail -1)" != "$glibc" ]; then
        echo "lambdas: $bin needs GLIBC_$newest, newer than provided.al2023's $glibc" >&2
        status=1
    else
        echo "lambdas: $bin: $(du -h "$boot" | cut -f1), newest glibc symbol GLIBC_$newest (runtime has $glibc)" >&2
    fi
done
exit $status
