#!/usr/bin/env bash
# Run libFuzzer targets for a while each.
#
#   scripts/fuzz.sh SECONDS target...
#
# Each target runs as build/fuzz/<target> on build/fuzz/corpus-<target>, a
# working copy of fuzz/corpus/<target without "fuzz_">, so new inputs never
# land in the checked-in corpus. One line per target; a crash prints its
# report and the path of the input that caused it, and the exit status is
# non-zero if any target crashed or could not run.
set -u
cd "$(dirname "$0")/.."

if [ $# -lt 2 ] || ! [[ $1 =~ ^[0-9]+$ ]]; then
	echo "usage: $0 SECONDS target..." >&2
	exit 2
fi
secs=$1
shift

# UBSan findings must stop the run like ASan ones do.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

failed=0
for t in "$@"; do
	t=${t##*/}
	bin=build/fuzz/$t
	seeds=fuzz/corpus/${t#fuzz_}
	work=build/fuzz/corpus-$t
	log=build/fuzz/$t.log
	if [ ! -x "$bin" ]; then
		echo "fuzz $t: not built ($bin missing; run make fuzz-build)"
		failed=1
		continue
	fi
	mkdir -p "$work"
	if [ -d "$seeds" ]; then
		for f in "$seeds"/*; do
			[ -f "$f" ] && { [ -e "$work/${f##*/}" ] || cp "$f" "$work/"; }
		done
	fi
	# -timeout catches inputs that make a parser slow (quadratic
	# behaviour is a denial of service in a proxy).
	# A dictionary of the grammar's words, and options of the target's
	# own (fuzz/<target>.options, one line), where there are.
	extra=()
	[ -f "fuzz/$t.dict" ] && extra+=(-dict="fuzz/$t.dict")
	if [ -f "fuzz/$t.options" ]; then
		read -ra opts <"fuzz/$t.options" || true
		extra+=("${opts[@]}")
	fi
	"$bin" -max_total_time="$secs" -timeout=10 -print_final_stats=1 "${extra[@]}" \
		-artifact_prefix="build/fuzz/$t-" "$work" >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	if [ $rc -eq 0 ]; then
		echo "fuzz $t: ok (${runs:-?} runs)"
	else
		echo "fuzz $t: CRASH (exit $rc, ${runs:-?} runs), log $log"
		grep -E '^(==[0-9]+==ERROR|SUMMARY|sluice: assertion)|runtime error|Test unit written' \
			"$log" | head -n 20 | sed 's/^/  /'
		failed=1
	fi
done
exit $failed
