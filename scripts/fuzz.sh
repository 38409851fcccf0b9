#!/usr/bin/env bash
# Builds the libFuzzer target Fuzz/FuzzDecodePath.swift and runs it for SECONDS (default 60).
#
#   scripts/fuzz.sh [SECONDS]                  build, seed, fuzz, report
#   scripts/fuzz.sh --build-only               build .build-fuzz/fuzz-decode-path only
#   scripts/fuzz.sh --reproduce FILE...        run the target once over FILE... (a crash input)
#
# The target is compiled with `swiftc -O -sanitize=fuzzer,address -parse-as-library` (plus
# `-assert-config Debug`, so the decoders' unchecked-read assertions and the standard library's
# buffer bounds checks stay on under -O). SwiftPM's executable link step cannot be used: it
# aliases `main`, which clashes with libFuzzer's. So this script compiles the package's pure
# modules itself, from a snapshot of Sources/ (others may be editing the tree):
#   MirrorDecoding, PcapFormat, CaptureSystem (+ the CLinuxPacket and CFileInput C shims, libpcap,
#   zlib, libzstd),
#   PcapStorage, and a CollectorCore made of its files that import only those (Pipeline, Session,
#   SequenceTracker, SessionRules, CollectorConfiguration, Summary, ...; not the live capture,
#   services, TOML, logging or metrics) plus the fuzz entry point (it needs their internals).
# Every module is instrumented, so coverage covers the whole path.
#
# Inputs with selector bit 6 are capture files (classic pcap, pcapng, gzip/zstd): the readers run
# over them whole and streamed in windows, which must agree (see FuzzInput.swift).
# Corpus: seeds are regenerated from Tests/Fixtures/*.pcap (scripts/fuzz-seeds.py) into
# .build-fuzz/seeds; new units go to .build-fuzz/corpus (kept between runs); at the end, units
# that add edge coverage are merged into Fuzz/corpus (a few hundred small files, meant to be
# committed; FUZZ_MERGE=0 skips).
#
# A finding (crash, sanitizer report, oracle failure, timeout, OOM, leak) is copied to
# Tests/Fixtures/fuzz-regressions/, where FuzzRegressionTests replays it, and the script exits 1.
#
# Environment: FUZZ_JOBS (default 1 process), FUZZ_MAX_LEN (8192), FUZZ_FLAGS (extra libFuzzer
# flags), FUZZ_PIPELINE=0 (decoders only, ~10x faster), FUZZ_MERGE=0 (no corpus merge),
# FUZZ_SCRATCH (where pipeline runs write, default /dev/shm), FUZZ_BUILD (.build-fuzz),
# SWIFTC/CLANG (from PATH, else /opt/swift/usr/bin).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=$(mkdir -p "${FUZZ_BUILD:-$ROOT/.build-fuzz}" && cd "${FUZZ_BUILD:-$ROOT/.build-fuzz}" && pwd)
SWIFTC=${SWIFTC:-$(command -v swiftc || echo /opt/swift/usr/bin/swiftc)}
CLANG=${CLANG:-$(dirname "$SWIFTC")/clang}
BINARY=$BUILD/fuzz-decode-path
REGRESSIONS=$ROOT/Tests/Fixtures/fuzz-regressions
# CollectorCore sources for the fuzz build: every file that imports only the pure modules (so
# not the live capture, the services, TOML parsing, logging or metrics), minus CaptureWorker.
pure_core_files() {
    local file module ok
    for file in Sources/CollectorCore/*.swift; do
        ok=1
        for module in $(sed -nE 's/^(public |internal |package |@preconcurrency )*import ([A-Za-z_]+).*/\2/p' "$file"); do
            case $module in MirrorDecoding|PcapFormat|PcapStorage|CaptureSystem|Synchronization|Foundation|Glibc) ;; *) ok=0 ;; esac
        done
        [ "$(basename "$file")" = CaptureWorker.swift ] && ok=0
        [ $ok = 1 ] && basename "$file" .swift
    done
}
CORE_FILES=${FUZZ_CORE_FILES:-$(pure_core_files | tr '\n' ' ')}
export SWIFT_BACKTRACE=enable=no  # else Swift's backtracer holds the process after a finding
SYMBOLIZER=$(dirname "$SWIFTC")/llvm-symbolizer
[ -x "$SYMBOLIZER" ] && export ASAN_SYMBOLIZER_PATH=$SYMBOLIZER

mode=run
seconds=60
reproduce=()
case "${1:-}" in
    --build-only) mode=build ;;
    --reproduce) mode=reproduce; shift; reproduce=("$@") ;;
    -h|--help) awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; exit 0 ;;
    "") ;;
    *) [[ "$1" =~ ^[0-9]+$ ]] || { echo "usage: $0 [SECONDS] | --build-only | --reproduce FILE..." >&2; exit 2; }
       seconds=$1 ;;
esac

# --- build -----------------------------------------------------------------------------------
build() {
    local src=$BUILD/src obj=$BUILD/obj
    rm -rf "$src.new"
    mkdir -p "$src.new/CollectorCore" "$obj"
    cp -R Sources/MirrorDecoding Sources/PcapFormat Sources/CaptureSystem Sources/PcapStorage \
        Sources/CLinuxPacket Sources/CPcap Sources/CFileInput Sources/CZlib Sources/CZstd "$src.new/"
    for file in $CORE_FILES; do cp "Sources/CollectorCore/$file.swift" "$src.new/CollectorCore/"; done
    cp Fuzz/FuzzDecodePath.swift Tests/CollectorCoreTests/FuzzInput.swift "$src.new/CollectorCore/"
    local stamp
    stamp=$( (cd "$src.new" && find . -type f | sort | xargs sha256sum; "$SWIFTC" --version 2>&1; sha256sum "$ROOT/scripts/fuzz.sh") | sha256sum | cut -d' ' -f1)
    if [ -x "$BINARY" ] && [ "$(cat "$BUILD/stamp" 2>/dev/null)" = "$stamp" ]; then
        rm -rf "$src.new"
        echo "fuzz: $BINARY is up to date"
        return
    fi
    rm -rf "$src" && mv "$src.new" "$src"
    cat >"$obj/module.modulemap" <<EOF
module CLinuxPacket {
    header "$src/CLinuxPacket/include/CLinuxPacket.h"
    export *
}
module CFileInput {
    header "$src/CFileInput/include/CFileInput.h"
    export *
}
EOF
    local started=$SECONDS
    local flags=(-O -g -sanitize=fuzzer,address -parse-as-library -assert-config Debug -wmo
        -enable-upcoming-feature ExistentialAny -enable-upcoming-feature MemberImportVisibility
        -I "$obj" -Xcc "-fmodule-map-file=$obj/module.modulemap" -Xcc "-fmodule-map-file=$src/CPcap/module.modulemap"
        -Xcc "-fmodule-map-file=$src/CZlib/module.modulemap" -Xcc "-fmodule-map-file=$src/CZstd/module.modulemap")
    echo "fuzz: building (swiftc -O -sanitize=fuzzer,address -parse-as-library) into $BUILD"
    "$CLANG" -O1 -g -fsanitize=fuzzer-no-link,address -I "$src/CLinuxPacket/include" \
        -c "$src/CLinuxPacket/CLinuxPacket.c" -o "$obj/CLinuxPacket.o"
    "$CLANG" -O1 -g -fsanitize=fuzzer-no-link,address -I "$src/CFileInput/include" \
        -c "$src/CFileInput/CFileInput.c" -o "$obj/CFileInput.o"
    for module in MirrorDecoding PcapFormat CaptureSystem PcapStorage; do
        "$SWIFTC" "${flags[@]}" -module-name "$module" -emit-module -emit-module-path "$obj/$module.swiftmodule" \
            -c "$src/$module"/*.swift -o "$obj/$module.o" 2> >(grep -v '^$' >&2)
    done
    # The fuzz entry is compiled into CollectorCore (internal access); libFuzzer brings main.
    # (From $obj: with -g the driver leaves CollectorCore-N.swiftmodule in the working directory.)
    (cd "$obj" && "$SWIFTC" "${flags[@]}" -module-name CollectorCore "$src/CollectorCore"/*.swift \
        "$obj"/MirrorDecoding.o "$obj"/PcapFormat.o "$obj"/CaptureSystem.o "$obj"/PcapStorage.o "$obj"/CLinuxPacket.o \
        "$obj"/CFileInput.o -lpcap -lz -lzstd -use-ld=lld -o "$BINARY")
    echo "$stamp" >"$BUILD/stamp"
    echo "fuzz: built $BINARY in $((SECONDS - started)) s"
}

mkdir -p "$BUILD"
build
[ "$mode" = build ] && exit 0

common_flags=(-rss_limit_mb=2048 -timeout=10 "-artifact_prefix=$BUILD/artifacts/")
mkdir -p "$BUILD/artifacts"

# Pipeline runs write below a scratch directory of their own (tmpfs when there is one).
scratch_base=${FUZZ_SCRATCH:-/dev/shm}; [ -d "$scratch_base" ] && [ -w "$scratch_base" ] || scratch_base=${TMPDIR:-/tmp}
FUZZ_OUTPUT=$(mktemp -d "$scratch_base/span-fuzz.XXXXXX")
export FUZZ_OUTPUT
trap 'rm -rf "$FUZZ_OUTPUT"' EXIT

if [ "$mode" = reproduce ]; then
    [ "${#reproduce[@]}" -gt 0 ] || { echo "--reproduce needs files" >&2; exit 2; }
    "$BINARY" "${common_flags[@]}" "${reproduce[@]}"
    exit $?
fi

# --- seed ------------------------------------------------------------------------------------
rm -rf "$BUILD/seeds"
python3 scripts/fuzz-seeds.py Tests/Fixtures "$BUILD/seeds"
mkdir -p "$BUILD/corpus" Fuzz/corpus
corpora=("$BUILD/corpus" "$ROOT/Fuzz/corpus" "$BUILD/seeds")
# Known crash inputs and the adversarial inputs are seeds too (not the README or the manifest).
rm -rf "$BUILD/regressions" && mkdir -p "$BUILD/regressions"
find "$REGRESSIONS" -maxdepth 1 -type f ! -name '*.md' ! -name '*.json' -exec cp {} "$BUILD/regressions/" \; 2>/dev/null || true
corpora+=("$BUILD/regressions")

# --- fuzz ------------------------------------------------------------------------------------
log=$BUILD/fuzz-$(date -u +%Y%m%dT%H%M%SZ).log
before=$(ls "$BUILD/artifacts" | sort)
echo "fuzz: running ${seconds} s (log: $log)"
set +e
# shellcheck disable=SC2086
jobs=()
# -jobs (even 1) forks workers that log to fuzz-N.log in the working directory ($BUILD).
if [ "${FUZZ_JOBS:-1}" -gt 1 ]; then jobs=(-jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS"); rm -f "$BUILD"/fuzz-[0-9]*.log; fi
(cd "$BUILD" && exec timeout --kill-after=30 $((seconds + 120)) "$BINARY" "${common_flags[@]}" -max_total_time="$seconds" \
    -max_len="${FUZZ_MAX_LEN:-8192}" -print_final_stats=1 "${jobs[@]}" ${FUZZ_FLAGS:-} "${corpora[@]}") >"$log" 2>&1
status=$?
set -e
if [ "${#jobs[@]}" -gt 0 ]; then cat "$BUILD"/fuzz-[0-9]*.log >>"$log" 2>/dev/null || true; fi

# --- report ----------------------------------------------------------------------------------
final=$(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE|INITED).*cov:' "$log" | tail -1 || true)
execs=$( (grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" || true) | awk '{s += $2} END {print s + 0}')
rate=$( (grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" || true) | awk '{s += $2} END {print s + 0}')
peak=$( (grep -o 'stat::peak_rss_mb: *[0-9]*' "$log" || true) | awk '{if ($2 > m) m = $2} END {print m + 0}')
cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$final")
ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$final")
corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p' <<<"$final")
echo "fuzz: ${seconds} s, executions ${execs:-?} (${rate:-?}/s), coverage cov: ${cov:-?} ft: ${ft:-?}, corpus ${corp:-?}, peak RSS ${peak:-?} MB, exit status $status"

new_artifacts=$(comm -13 <(echo "$before") <(ls "$BUILD/artifacts" | sort) | grep -E '^(crash|leak|timeout|oom|slow-unit)-' || true)
if [ -n "$new_artifacts" ] || [ "$status" -ne 0 ]; then
    mkdir -p "$REGRESSIONS"
    for artifact in $new_artifacts; do
        cp "$BUILD/artifacts/$artifact" "$REGRESSIONS/$artifact"
        echo "fuzz: FINDING $artifact -> Tests/Fixtures/fuzz-regressions/$artifact"
    done
    grep -E -A40 'ERROR: AddressSanitizer|ERROR: libFuzzer|FUZZ ORACLE FAILED|Fatal error|SUMMARY:' "$log" | head -80 || true
    echo "fuzz: reproduce with scripts/fuzz.sh --reproduce Tests/Fixtures/fuzz-regressions/<file>"
    exit 1
fi

if [ "${FUZZ_MERGE:-1}" = 1 ]; then
    # Keep only units that add edges over what Fuzz/corpus already has (-use_counters=0: edge
    # coverage, not hit counts, so the committed corpus stays a few hundred small files).
    (cd "$BUILD" && timeout 600 "$BINARY" -merge=1 -use_counters=0 -rss_limit_mb=2048 -timeout=10 -max_len="${FUZZ_MAX_LEN:-8192}" \
        "$ROOT/Fuzz/corpus" "$BUILD/corpus" "$BUILD/seeds") >"$BUILD/merge.log" 2>&1 \
        && echo "fuzz: Fuzz/corpus now holds $(ls Fuzz/corpus | wc -l) units" \
        || echo "fuzz: corpus merge failed (see $BUILD/merge.log)"
fi
echo "fuzz: no finding"
