#!/usr/bin/env bash
# Soak test: live capture in two network namespaces for a while, under mixed traffic, with
# rotation every few seconds; then checks that nothing leaked and every packet is accounted for.
#
#   scripts/soak.sh [SECONDS] [--rotate N] [options]          (root; default 180 s, rotate 5 s)
#
# Options:
#   --rotate N         --rotate-interval of the collector (default 5)
#   --hup N            also send SIGHUP (finish every file) every N seconds; 0 = never (default 30)
#   --rate PPS         valid traffic rate, make_load.py mixed ERSPAN II/III/VXLAN (default 2000)
#   --malformed-rate   malformed fixture frames per second (default 200)
#   --random-rate      random-bytes frames per second (default 100)
#   --flood-rate       session-flood frames per second (default 200)
#   --flood-keys N     distinct session keys in the flood (default 6000; IPv4 + IPv6 exporters)
#   --sample N         seconds between RSS/fd samples (default 2)
#   --warmup N         seconds excluded from the flatness checks (default: 25% of the run, >= 20)
#   --rss-tolerance P  post-warm-up RSS max-min and first-to-last-third growth, % of median (default 20)
#   --binary PATH      use this span-collector instead of building release (`swift build -c release`)
#   -- ARGS...         further arguments for `span-collector run` (e.g. -- --max-buffer-memory 64M)
#   --work DIR         traffic, output and logs (default /dev/shm/span-soak-PID; removed unless --keep)
#   --keep             keep the work directory
#
# Traffic (tcpreplay, each stream looped at a bounded rate from the sender namespace):
#   valid      make_load.py --type mixed: ERSPAN II, III and VXLAN, 8 sessions, GRE sequences
#   malformed  the malformed/not-mirror fixtures (m04, malformed_outer, snap_truncated_headers, ...)
#   random     random bytes behind Ethernet/IPv4/IPv6/VLAN headers
#   flood      one frame per distinct (exporter, ERSPAN id): a session-table flood
# Checks (exit 1 if any fails): the collector never dies and exits 0 on SIGTERM; the JSON
# summary's accounting law holds exactly; capinfos accepts every finished file and they hold
# exactly packets_written packets; no .part is left; /metrics answers throughout; after warm-up
# RSS is flat (max-min and the growth from the first to the last third of the samples each
# < tolerance × median); open descriptors (one per session file open in the current rotation
# interval, so they swing) show no upward trend, and once the traffic stops and SIGHUP finishes
# every file they are back to the count before the traffic (+2).
#
# Safety: traffic exists only on a veth pair between two namespaces this script creates
# (198.51.100.0/24, 2001:db8::/32 and, inside the frames, 192.0.2.0/24); every wait is bounded;
# the EXIT trap removes the namespaces and signals only the PIDs this script started.
set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=180 ROTATE=5 HUP=30 RATE=2000 MALFORMED_RATE=200 RANDOM_RATE=100 FLOOD_RATE=200 FLOOD_KEYS=6000
SAMPLE=2 WARMUP="" TOLERANCE=20 BINARY="" WORK="" KEEP=0 EXTRA=()
while [ $# -gt 0 ]; do
    case "$1" in
        --rotate) ROTATE=$2; shift 2 ;;
        --hup) HUP=$2; shift 2 ;;
        --rate) RATE=$2; shift 2 ;;
        --malformed-rate) MALFORMED_RATE=$2; shift 2 ;;
        --random-rate) RANDOM_RATE=$2; shift 2 ;;
        --flood-rate) FLOOD_RATE=$2; shift 2 ;;
        --flood-keys) FLOOD_KEYS=$2; shift 2 ;;
        --sample) SAMPLE=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --rss-tolerance) TOLERANCE=$2; shift 2 ;;
        --binary) BINARY=$2; shift 2 ;;
        --work) WORK=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --) shift; EXTRA=("$@"); break ;;
        -h|--help) awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; exit 0 ;;
        [0-9]*) DURATION=$1; shift ;;
        *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
for value in "$DURATION" "$ROTATE" "$HUP" "$RATE" "$MALFORMED_RATE" "$RANDOM_RATE" "$FLOOD_RATE" "$FLOOD_KEYS" "$SAMPLE" "$TOLERANCE" ${WARMUP:+"$WARMUP"}; do
    [[ "$value" =~ ^[0-9]+$ ]] || { echo "not a number: $value" >&2; exit 2; }
done
[ "$DURATION" -ge 30 ] || { echo "run at least 30 s" >&2; exit 2; }
[ "$ROTATE" -ge 1 ] && [ "$SAMPLE" -ge 1 ] || { echo "--rotate and --sample must be >= 1" >&2; exit 2; }
[ -n "$WARMUP" ] || WARMUP=$(( DURATION / 4 > 20 ? DURATION / 4 : 20 ))
[ "$(id -u)" = 0 ] || { echo "soak.sh needs root (network namespaces, AF_PACKET)" >&2; exit 2; }
for tool in ip tcpreplay capinfos python3 curl timeout; do
    command -v "$tool" >/dev/null || { echo "missing $tool (make deps installs it)" >&2; exit 2; }
done

log() { printf '%s soak: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# --- build ---------------------------------------------------------------------------------------
if [ -z "$BINARY" ]; then
    log "building release (swift build -c release${SOAK_SCRATCH:+ --scratch-path $SOAK_SCRATCH})"
    timeout 3600 swift build -c release ${SOAK_SCRATCH:+--scratch-path "$SOAK_SCRATCH"} >&2 || { echo "build failed" >&2; exit 2; }
    BINARY=$(swift build -c release ${SOAK_SCRATCH:+--scratch-path "$SOAK_SCRATCH"} --show-bin-path)/span-collector
fi
[ -x "$BINARY" ] || { echo "no collector binary at $BINARY" >&2; exit 2; }

# --- set-up --------------------------------------------------------------------------------------
TAG=$$
NSA=span-soak-$TAG-a NSB=span-soak-$TAG-b
WORK=${WORK:-/dev/shm/span-soak-$TAG}
OUT=$WORK/out
COLLECTOR_PID="" SENDER_PIDS="" HUP_PID=""
cleanup() {
    local pid
    for pid in $SENDER_PIDS $HUP_PID $COLLECTOR_PID; do kill -TERM "$pid" 2>/dev/null; done
    for _ in $(seq 1 50); do
        local alive=0
        for pid in $SENDER_PIDS $HUP_PID $COLLECTOR_PID; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for pid in $SENDER_PIDS $HUP_PID $COLLECTOR_PID; do kill -KILL "$pid" 2>/dev/null; done
    ip netns del "$NSA" 2>/dev/null
    ip netns del "$NSB" 2>/dev/null
    if [ "$KEEP" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$WORK" "$OUT"
log "traffic files in $WORK"
F=$ROOT/Tests/Fixtures
python3 "$F/make_load.py" "$WORK/valid.pcap" --packets 20000 --sessions 8 --type mixed --seed 3 -q >&2 || exit 2
python3 scripts/soak-traffic.py concat "$WORK/malformed.pcap" "$F"/m04_truncated_headers.pcap "$F"/malformed_outer.pcap \
    "$F"/snap_truncated_headers.pcap "$F"/m07_gre_routing.pcap "$F"/m08_gre_version.pcap "$F"/m12_erspan_version.pcap \
    "$F"/m19_gre_not_mirror.pcap "$F"/m23_inner_truncated.pcap "$F"/erspan3_frame_type.pcap "$F"/not_mirror.pcap \
    "$F"/m20_m22_vxlan_flags.pcap "$F"/ipv4_fragments_overlap.pcap "$F"/ipv4_fragments_incomplete.pcap \
    "$F"/m01_ipv4_fragments.pcap "$F"/m03_ipv6_fragments.pcap "$F"/ipv6_ext_headers.pcap || exit 2
python3 scripts/soak-traffic.py random "$WORK/random.pcap" --frames 3000 || exit 2
python3 scripts/soak-traffic.py flood "$WORK/flood.pcap" --keys "$FLOOD_KEYS" || exit 2

ip netns add "$NSA" && ip netns add "$NSB" || exit 2
ip link add vA netns "$NSA" type veth peer name vB netns "$NSB" || exit 2
ip -n "$NSA" link set vA mtu 9000 address 02:00:00:00:00:aa up
ip -n "$NSB" link set vB mtu 9000 address 02:00:00:00:00:bb up
ip -n "$NSA" addr add 198.51.100.1/24 dev vA
ip -n "$NSB" addr add 198.51.100.2/24 dev vB
ip -n "$NSA" addr add 2001:db8::1/64 dev vA nodad
ip -n "$NSB" addr add 2001:db8::2/64 dev vB nodad
ip -n "$NSA" link set lo up
ip -n "$NSB" link set lo up

PORT=$((20000 + TAG % 20000))
# `ip netns exec` execs the collector, so $! is the collector's own PID.
ip netns exec "$NSB" "$BINARY" run --interface vB --output "$OUT" --json --rotate-interval "$ROTATE" \
    --metrics-listen "127.0.0.1:$PORT" --status-interval 10 --ring-size 16M --block-size 1M "${EXTRA[@]}" \
    >"$WORK/summary.json" 2>"$WORK/collector.log" &
COLLECTOR_PID=$!
ready=0
for _ in $(seq 1 300); do
    kill -0 "$COLLECTOR_PID" 2>/dev/null || break
    grep -q capturing "$WORK/collector.log" && { ready=1; break; }
    sleep 0.1
done
[ $ready = 1 ] || { echo "collector did not start:" >&2; cat "$WORK/collector.log" >&2; exit 1; }
log "collector $COLLECTOR_PID capturing on vB (rotate ${ROTATE}s, metrics 127.0.0.1:$PORT in $NSB)"

# --- traffic, signals and samples ------------------------------------------------------------------
sample() {  # RSS_KB FDS of the collector
    echo "$(awk '/^VmRSS:/ {print $2}' "/proc/$COLLECTOR_PID/status" 2>/dev/null || echo 0) $(ls "/proc/$COLLECTOR_PID/fd" 2>/dev/null | wc -l)"
}
read -r rss_baseline fds_baseline <<<"$(sample)"
send() {  # FILE PPS: loop FILE at PPS until the run is over (timeout bounds it)
    [ "$2" -gt 0 ] || return 0
    timeout --kill-after=5 "$DURATION" ip netns exec "$NSA" tcpreplay -q -K --no-flow-stats --loop=0 --pps="$2" -i vA "$1" \
        >>"$WORK/tcpreplay.log" 2>&1 &
    SENDER_PIDS="$SENDER_PIDS $!"
}
send "$WORK/valid.pcap" "$RATE"
send "$WORK/malformed.pcap" "$MALFORMED_RATE"
send "$WORK/random.pcap" "$RANDOM_RATE"
send "$WORK/flood.pcap" "$FLOOD_RATE"
if [ "$HUP" -gt 0 ]; then
    ( end=$((SECONDS + DURATION)); while [ $SECONDS -lt $end ]; do sleep "$HUP"; kill -HUP "$COLLECTOR_PID" 2>/dev/null || exit 0; done ) &
    HUP_PID=$!
fi

echo -e "t\trss_kb\tfds\tmetrics\tmetrics_seconds\tmetrics_bytes\tbuffer_memory_bytes" >"$WORK/samples.tsv"
start=$SECONDS died=0 metrics_failures=0
while [ $((SECONDS - start)) -lt "$DURATION" ]; do
    if ! kill -0 "$COLLECTOR_PID" 2>/dev/null; then died=1; break; fi
    read -r rss fds <<<"$(sample)"
    if timing=$(ip netns exec "$NSB" curl -sf -m 10 -o "$WORK/metrics.txt" -w '%{time_total}\t%{size_download}' "http://127.0.0.1:$PORT/metrics"); then
        m=ok
        buffers=$(awk '$1 == "span_collector_buffer_memory_bytes" {printf "%d", $2}' "$WORK/metrics.txt")
    else
        m=fail timing="10\t0" metrics_failures=$((metrics_failures + 1)) buffers=0
    fi
    echo -e "$((SECONDS - start))\t${rss:-0}\t$fds\t$m\t$timing\t${buffers:-0}" >>"$WORK/samples.tsv"
    sleep "$SAMPLE"
done
log "traffic done; stopping"
for pid in $SENDER_PIDS $HUP_PID; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -TERM "$pid" 2>/dev/null
done
SENDER_PIDS="" HUP_PID=""
sleep 2  # the rings' last blocks (block timeout) and the writers
status=255 rss_rest=0 fds_rest=0
if [ $died = 0 ] && kill -0 "$COLLECTOR_PID" 2>/dev/null; then
    # At rest: no traffic, every file finished (SIGHUP): the descriptors must be back to where
    # they were before the traffic (a leak check independent of how many sessions are open).
    kill -HUP "$COLLECTOR_PID"
    sleep 3
    read -r rss_rest fds_rest <<<"$(sample)"
    kill -TERM "$COLLECTOR_PID"
    for _ in $(seq 1 600); do kill -0 "$COLLECTOR_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$COLLECTOR_PID" 2>/dev/null; then
        log "collector ignored SIGTERM for 60 s: SIGKILL"
        kill -KILL "$COLLECTOR_PID"
    fi
fi
wait "$COLLECTOR_PID" 2>/dev/null; status=$?
COLLECTOR_PID=""

# --- checks ----------------------------------------------------------------------------------------
find "$OUT" -type f \( -name '*.pcap' -o -name '*.pcapng' \) -print0 >"$WORK/files.list"
parts=$(find "$OUT" -name '*.part' | wc -l)
files=$(tr -cd '\0' <"$WORK/files.list" | wc -c)
log "capinfos over $files files"
: >"$WORK/capinfos.tsv"
capinfos_failed=0
if [ "$files" -gt 0 ]; then
    xargs -0 -n 200 timeout 600 capinfos -T -r -c <"$WORK/files.list" >>"$WORK/capinfos.tsv" 2>"$WORK/capinfos.err" || capinfos_failed=1
fi

python3 - "$WORK" "$DURATION" "$WARMUP" "$TOLERANCE" "$status" "$died" "$parts" "$files" "$capinfos_failed" \
    "$metrics_failures" "$rss_baseline" "$fds_baseline" "$rss_rest" "$fds_rest" <<'EOF'
import json, statistics, sys
(work, duration, warmup, tolerance, status, died, parts, files, capinfos_failed, metrics_failures,
 rss_baseline, fds_baseline, rss_rest, fds_rest) = sys.argv[1:]
rss_baseline, fds_baseline, rss_rest, fds_rest = int(rss_baseline), int(fds_baseline), int(rss_rest), int(fds_rest)
duration, warmup, tolerance = int(duration), int(warmup), float(tolerance)
status, died, parts, files = int(status), int(died), int(parts), int(files)
failures = []
def check(ok, what):
    print(("  ok    " if ok else "  FAIL  ") + what)
    if not ok:
        failures.append(what)

samples = []
for line in open(f"{work}/samples.tsv").read().splitlines()[1:]:
    t, rss, fds, metrics, seconds, size, buffers = line.split("\t")
    samples.append((int(t), int(rss), int(fds), metrics, float(seconds), int(size), int(buffers)))
try:
    summary = json.load(open(f"{work}/summary.json"))
except ValueError:
    summary = None
written_in_files = 0
for line in open(f"{work}/capinfos.tsv"):
    fields = line.rstrip("\n").split("\t")
    if len(fields) >= 2 and fields[-1].strip().isdigit():
        written_in_files += int(fields[-1])

print("checks:")
check(died == 0 and status == 0, f"collector ran the whole time and exited 0 on SIGTERM (exit status {status})")
check(summary is not None, "one JSON summary on standard output")
if summary:
    received = summary["packets_received"]
    written = summary["packets_written"]
    dropped = sum(v for v in summary["dropped"].values() if isinstance(v, int))
    discarded = sum(v for v in summary["discarded"].values() if isinstance(v, int))
    pending = summary.get("reassembly", {}).get("pending_fragments", 0)
    check(received == written + dropped + discarded + pending,
          f"accounting law: received {received} == written {written} + dropped {dropped} + discarded {discarded}"
          + (f" + pending fragments {pending}" if pending else ""))
    reasons = summary.get("discard_reasons", {})
    check(sum(reasons.values()) == discarded, f"discard reasons add up to discarded ({sum(reasons.values())})")
    check(written_in_files == written, f"capinfos counts {written_in_files} packets in the files == packets_written {written}")
check(capinfos_failed == "0", f"capinfos accepted all {files} finished files")
check(parts == 0, f"no .part file left ({parts})")
slowest = max((s[4] for s in samples), default=0)
check(metrics_failures == "0", f"/metrics answered every sample within 10 s ({metrics_failures} failures, slowest {slowest:.2f} s)")

steady = [s for s in samples if s[0] >= warmup]
check(len(steady) >= 5, f"{len(steady)} samples after the {warmup} s warm-up")
if len(steady) >= 5:
    rss = [s[1] for s in steady]
    median = statistics.median(rss)
    third = max(1, len(rss) // 3)
    growth = statistics.mean(rss[-third:]) - statistics.mean(rss[:third])
    check(max(rss) - min(rss) <= tolerance / 100 * median,
          f"RSS flat after warm-up: max-min {max(rss) - min(rss)} KiB <= {tolerance:g}% of median {median:.0f} KiB")
    check(growth <= tolerance / 100 * median,
          f"no upward RSS trend: last third - first third = {growth:+.0f} KiB (<= {tolerance:g}% of median)")
    # Open files follow the sessions with traffic in the current rotation interval, so the
    # count swings; what must not happen is a growing floor or ceiling.
    fds = [s[2] for s in steady]
    check(max(fds[-third:]) <= max(fds[:third]) * (1 + tolerance / 100) + 8,
          f"no upward trend of open descriptors after warm-up: max of first third {max(fds[:third])}, of last third {max(fds[-third:])}")
check(died == 0 and fds_rest <= fds_baseline + 2,
      f"descriptors back at rest (traffic stopped, files finished): {fds_baseline} before traffic, {fds_rest} after")

print()
print("soak summary")
rows = [("duration", f"{duration} s (warm-up {warmup} s, {len(samples)} samples)")]
if samples:
    first, last = samples[0], samples[-1]
    rss_after = steady[0][1] if steady else first[1]
    rows += [("RSS", f"start {rss_baseline / 1024:.1f} MiB, after warm-up {rss_after / 1024:.1f} MiB, end {last[1] / 1024:.1f} MiB, "
                     f"max {max(s[1] for s in samples) / 1024:.1f} MiB, at rest {rss_rest / 1024:.1f} MiB"),
             ("open fds", f"start {fds_baseline}, end of traffic {last[2]}, max {max(s[2] for s in samples)}, at rest {fds_rest}"),
             ("batch buffers", f"after warm-up {steady[0][6] / 2**20 if steady else 0:.0f} MiB, end {last[6] / 2**20:.0f} MiB "
                               "(span_collector_buffer_memory_bytes)"),
             ("/metrics", f"median {statistics.median(s[4] for s in samples):.3f} s, slowest {max(s[4] for s in samples):.2f} s, "
                          f"largest {max(s[5] for s in samples) / 1024:.0f} KiB")]
if summary:
    rows += [("packets received", f"{summary['packets_received']}"),
             ("packets written", f"{summary['packets_written']} ({written_in_files} in files)"),
             ("sessions", f"{len(summary.get('sessions', []))}"),
             ("files", f"{files} finished ({parts} .part left)")]
    rows += [(f"dropped.{k}", f"{v}") for k, v in sorted(summary["dropped"].items()) if isinstance(v, int)]
    rows += [(f"discarded.{k}", f"{v}") for k, v in sorted(summary["discarded"].items()) if isinstance(v, int)]
    rows += [(f"  {k}", f"{v}") for k, v in sorted(summary.get("discard_reasons", {}).items()) if v]
    reassembly = summary.get("reassembly", {})
    if reassembly:
        rows.append(("reassembly", ", ".join(f"{k} {v}" for k, v in sorted(reassembly.items()))))
    lost = sum(s.get("lost", 0) for s in summary.get("sessions", []))
    queue_sessions = sum(1 for s in summary.get("sessions", []) if s.get("dropped_queue", 0))
    rows.append(("sessions with dropped_queue", f"{queue_sessions}"))
    rows.append(("sessions' lost (net)", f"{lost} (looped files restart their GRE sequences: not loss)"))
width = max(len(r[0]) for r in rows)
for name, value in rows:
    print(f"  {name.ljust(width)}  {value}")
print()
print("soak: " + ("PASS" if not failures else f"FAIL ({len(failures)} checks)"))
sys.exit(1 if failures else 0)
EOF
result=$?
[ $result = 0 ] || { log "collector log tail:"; tail -20 "$WORK/collector.log" >&2; }
exit $result
