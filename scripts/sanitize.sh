#!/usr/bin/env bash
# Runs the whole test suite under a sanitizer, in its own scratch path.
#
#   scripts/sanitize.sh address|thread [extra `swift test` arguments, e.g. --filter Pipeline]
#
# address: AddressSanitizer (.build-asan); thread: ThreadSanitizer (.build-tsan). Tests that need
# root networking (namespaces, AF_PACKET) run too when run as root; the collector processes they
# start are built with the same sanitizer. The output goes to .build-{asan,tsan}/test.log,
# sanitizer reports to .build-{asan,tsan}/sanitizer-reports/ (one file per process that had
# one); any report fails the run even when every test passed. Prints the build and test times.
#
# Environment: SWIFT (default swift), SANITIZE_JOBS (swift build -j, default: all cores).
set -uo pipefail

cd "$(dirname "$0")/.."
case "${1:-}" in
    address) scratch=.build-asan ;;
    thread) scratch=.build-tsan ;;
    *) echo "usage: $0 address|thread [swift test arguments]" >&2; exit 2 ;;
esac
sanitizer=$1
shift
SWIFT=${SWIFT:-swift}
export SWIFT_BACKTRACE=enable=no  # let the sanitizer report, not the Swift backtracer
symbolizer=$(dirname "$(command -v "$SWIFT")")/llvm-symbolizer
[ -x "$symbolizer" ] && export ASAN_SYMBOLIZER_PATH=$symbolizer TSAN_SYMBOLIZER_PATH=$symbolizer
# Reports go to files, one per process, so those of the collector processes the live tests
# start (built with the same sanitizer, next to the test bundle) are seen too. TSan keeps going
# after a report so one run shows them all; ASan stops the process at the first.
mkdir -p "$scratch"
reports_dir=$PWD/$scratch/sanitizer-reports
rm -rf "$reports_dir" && mkdir -p "$reports_dir"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:log_path=$reports_dir/asan}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=0:second_deadlock_stack=1:history_size=4:log_path=$reports_dir/tsan}
log=$scratch/test.log
jobs=()
[ -n "${SANITIZE_JOBS:-}" ] && jobs=(-j "$SANITIZE_JOBS")

started=$SECONDS
echo "sanitize: building tests with --sanitize=$sanitizer in $scratch"
if ! timeout 3600 "$SWIFT" build --build-tests --sanitize="$sanitizer" --scratch-path "$scratch" "${jobs[@]}" >"$scratch/build.log" 2>&1; then
    tail -40 "$scratch/build.log"
    echo "sanitize: build failed after $((SECONDS - started)) s"
    exit 1
fi
built=$SECONDS
echo "sanitize: built in $((built - started)) s; running the tests"
timeout 3600 "$SWIFT" test --skip-build --sanitize="$sanitizer" --scratch-path "$scratch" "$@" 2>&1 | tee "$log" |
    grep -E --line-buffered 'Test run with|Executed [0-9]+ tests|✘|error:|WARNING: ThreadSanitizer|ERROR: AddressSanitizer|SUMMARY: (Address|Thread)Sanitizer'
status=${PIPESTATUS[0]}
finished=$SECONDS
reports=$(cat "$reports_dir"/* "$log" 2>/dev/null | grep -cE 'WARNING: ThreadSanitizer|ERROR: AddressSanitizer|ERROR: LeakSanitizer')
if [ "$reports" != 0 ]; then
    grep -hE -A12 'WARNING: ThreadSanitizer|ERROR: AddressSanitizer|ERROR: LeakSanitizer' "$reports_dir"/* 2>/dev/null | head -60
fi
echo "sanitize: $sanitizer: build $((built - started)) s, tests $((finished - built)) s, swift test exit $status, $reports sanitizer report(s) (log: $log, reports: $reports_dir)"
[ "$status" = 0 ] && [ "$reports" = 0 ]
