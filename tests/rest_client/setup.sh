#!/usr/bin/env bash
# Install Confluent's own Node.js client for its REST Proxy, npm `kafka-rest` (from
# confluentinc/kafka-rest-node; it speaks Confluent's v1 API), with the examples it ships, into
# .cache/npm-kafka-rest/node_modules, unmodified, for tests/test_rest_proxy_client.py.
# Versions are pinned exactly (no lockfile: the three packages are the whole tree):
# kafka-rest's one dependency `async` (~0.9.0) and `minimist` (~1.1.0, a devDependency its
# examples require). npm checks each tarball against the registry's integrity hash.
# Idempotent: a complete install is left alone. Needs node and npm (tests/run installs
# Debian's nodejs and npm when they are missing).
#
#   tests/rest_client/setup.sh      install; prints the package directory
#   LANTERN_NPM_CACHE=DIR           install root (default: <repo>/.cache/npm-kafka-rest)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="${LANTERN_NPM_CACHE:-$ROOT/.cache/npm-kafka-rest}"
PACKAGES=(kafka-rest@0.0.5 async@0.9.2 minimist@1.1.3)

installed() {
    local spec name version
    for spec in "${PACKAGES[@]}"; do
        name="${spec%@*}"; version="${spec##*@}"
        [ -f "$DIR/node_modules/$name/package.json" ] || return 1
        node -e 'process.exit(require(process.argv[1]).version === process.argv[2] ? 0 : 1)' \
            "$DIR/node_modules/$name/package.json" "$version" || return 1
    done
}

command -v node >/dev/null && command -v npm >/dev/null || { echo "node and npm are needed" >&2; exit 1; }
if ! installed; then
    rm -rf "$DIR"
    mkdir -p "$DIR"
    npm install --prefix "$DIR" --no-package-lock --no-save --ignore-scripts --no-audit --no-fund \
        --loglevel=error "${PACKAGES[@]}"
    installed || { echo "npm install did not leave ${PACKAGES[*]} in $DIR" >&2; exit 1; }
fi
echo "$DIR/node_modules/kafka-rest"
