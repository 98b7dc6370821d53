#!/usr/bin/env bash
# The tools the tests need besides cargo, installed once per machine and cached
# outside the checkout (like the cargo target directory). Sourced by the other
# scripts; every function is idempotent and prints what it installs on stderr.
#
#   tandem_venv          Python virtualenv with the pinned PyPI tools: moto[server]
#                        (the AWS emulator), pyarrow (the independent Parquet reader),
#                        cfn-lint, cargo-lambda and zig; prints its bin directory
#   tandem_chromium      Debian's Chromium for the report tests; prints its path
#   tandem_node_modules  infra/node_modules from the lockfile, kept under
#                        ~/.cache/tandem/infra-<lock hash> and linked into place
#
# env: TANDEM_CACHE  where the caches live (default ~/.cache/tandem)

TANDEM_CACHE="${TANDEM_CACHE:-$HOME/.cache/tandem}"
TANDEM_PY_REQUIREMENTS=(
    "moto[server]==5.2.1"
    "pyarrow==26.0.1"
    "cfn-lint==1.51.0"
    "cargo-lambda==1.9.2"
)

tandem_venv() {
    local venv="$TANDEM_CACHE/venv"
    local stamp="$venv/.tandem-requirements"
    local want
    want=$(printf '%s\n' "${TANDEM_PY_REQUIREMENTS[@]}")
    if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        echo "tools: installing ${TANDEM_PY_REQUIREMENTS[*]} into $venv" >&2
        mkdir -p "$TANDEM_CACHE"
        python3 -m venv "$venv" >&2
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${TANDEM_PY_REQUIREMENTS[@]}" >&2
        printf '%s' "$want" >"$stamp"
    fi
    echo "$venv/bin"
}

tandem_chromium() {
    local bin
    bin=$(command -v chromium || true)
    if [ -z "$bin" ]; then
        echo "tools: installing Debian's chromium" >&2
        local sudo=""
        [ "$(id -u)" -ne 0 ] && sudo="sudo"
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >&2
        bin=$(command -v chromium)
    fi
    echo "$bin"
}

tandem_node_modules() {
    local infra
    infra="$(cd "$(dirname "${BASH_SOURCE[0]}")/../infra" && pwd)"
    local hash
    hash=$(sha256sum "$infra/package-lock.json" | cut -c1-16)
    local dir="$TANDEM_CACHE/infra-$hash"
    if [ ! -f "$dir/.complete" ]; then
        echo "tools: npm ci for infra/ into $dir" >&2
        rm -rf "$dir"
        mkdir -p "$dir"
        cp "$infra/package.json" "$infra/package-lock.json" "$dir/"
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
        touch "$dir/.complete"
    fi
    # node resolves packages from the real path, so the cache keeps the name
    # node_modules and the checkout links to it.
    if [ "$(readlink "$infra/node_modules" 2>/dev/null)" != "$dir/node_modules" ]; then
        rm -rf "$infra/node_modules"
        ln -s "$dir/node_modules" "$infra/node_modules"
    fi
}
