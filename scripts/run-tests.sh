#!/usr/bin/env bash
# Run every unit and integration test against the release build and the
# sanitizer build; print each suite's result and one final total line.
set -u
cd "$(dirname "$0")/.."

passed=0 failed=0
log=build/test-logs
mkdir -p "$log"

count() { # $1 = output file; adds its last "N passed, N failed" line
	local line p f
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1)
	if [ -z "$line" ]; then
		echo "  (no result line: counted as 1 failure, see $1)"
		failed=$((failed + 1))
		return
	fi
	p=${line%% passed*}
	f=${line#*passed, }
	f=${f%% failed*}
	passed=$((passed + p))
	failed=$((failed + f))
}

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

for build in build build/asan; do
	for t in "$build"/tests/test_*; do
		[ -x "$t" ] || continue
		name=$(echo "$t" | tr / _)
		out="$log/$name.log"
		timeout 120 "$t" >"$out" 2>&1
		rc=$?
		grep -E '^(FAIL|    )' "$out" || true
		if [ $rc -ne 0 ] && ! grep -qE '^[0-9]+ passed, [1-9][0-9]* failed' "$out"; then
			echo "  $t exited $rc"
			tail -n 20 "$out"
			failed=$((failed + 1))
		fi
		echo "unit $t: $(grep -E '^[0-9]+ passed' "$out" | tail -n 1)"
		count "$out"
	done
	out="$log/integration_$(echo "$build" | tr / _).log"
	SLUICE_BIN="$build/sluice" timeout 1500 python3 tests/integration/run.py >"$out" 2>&1
	rc=$?
	grep -E '^(FAIL|    )' "$out" || true
	[ $rc -eq 124 ] && echo "  integration timed out"
	echo "integration $build/sluice: $(grep -E '^[0-9]+ passed' "$out" | tail -n 1)"
	count "$out"
done

# Source checks: layering, banned functions, formatting.
if scripts/check-src.sh >"$log/check-src.log" 2>&1; then
	echo "check-src: ok"
	passed=$((passed + 1))
else
	cat "$log/check-src.log"
	failed=$((failed + 1))
fi

# A short fuzz run of every target (FUZZ_SECONDS each; `make fuzz` for long runs).
if make --no-print-directory -s fuzz-build >"$log/fuzz-build.log" 2>&1; then
	while IFS= read -r line; do
		echo "$line"
		case "$line" in
		*": ok "*) passed=$((passed + 1)) ;;
		*) failed=$((failed + 1)) ;;
		esac
	done < <(scripts/fuzz.sh "${FUZZ_SECONDS:-10}" $(cd fuzz && ls fuzz_*.c | sed 's/\.c$//') 2>&1 | grep '^fuzz ')
else
	tail -n 20 "$log/fuzz-build.log"
	echo "fuzz targets did not build"
	failed=$((failed + 1))
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
