#!/usr/bin/env bash
# instructions-per-frame.sh [BINARY] - instructions the replay path spends per frame, counted by
# valgrind (deterministic, unlike times on a shared VM): replay of 200,000 and of 100,000 64-byte
# ERSPAN II frames in 16 sessions (generated with ../shared/bench/gen_load.py), and the
# difference divided by 100,000, so start-up and exit cancel out. The binary is copied without
# its debug info first (valgrind 3.19 cannot read Swift 6's DWARF). Prints `instructions/frame N`.
set -euo pipefail
cd "$(dirname "$0")/.."
BINARY=${1:-.build/release/span-collector}
GEN=${GEN_LOAD:-../shared/bench/gen_load.py}
for tool in valgrind strip python3; do command -v $tool >/dev/null || { echo "missing $tool" >&2; exit 2; }; done
WORK=$(mktemp -d /tmp/ipf.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
python3 "$GEN" "$WORK/200k.pcap" --packets 200000 --sessions 16 --sizes 64 >/dev/null 2>&1
python3 "$GEN" "$WORK/100k.pcap" --packets 100000 --sessions 16 --sizes 64 >/dev/null 2>&1
strip --strip-debug -o "$WORK/binary" "$BINARY"
count() {
    rm -rf "$WORK/out" && mkdir "$WORK/out"
    valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.$2" "$WORK/binary" replay "$1" \
        --output "$WORK/out" --json >/dev/null 2>"$WORK/valgrind.$2"
    grep -o 'Collected : [0-9]*' "$WORK/valgrind.$2" | awk '{print $3}'
}
large=$(count "$WORK/200k.pcap" large)
small=$(count "$WORK/100k.pcap" small)
echo "instructions/frame $(((large - small) / 100000))"
