#!/usr/bin/env bash
# Source checks CI runs with the tests:
#  1. layering: a module includes only its own layer or lower ones, and the
#     pure modules never include the event loop or socket code;
#  2. banned functions;
#  3. formatting (.clang-format), when clang-format is installed.
set -u
cd "$(dirname "$0")/.."
fail=0

# Layer of each directory under src/ (lower number = lower layer).
declare -A layer=(
	[base]=0
	[ev]=1 [buf]=1
	[net]=2 [http]=2 [obs]=2 [conf]=2
	[dns]=3 [proxy]=3 [cache]=3
	[cmd]=9
)
# Pure modules: bytes in, decisions out; no loop, no sockets. Whole
# directories, and single files in directories that also hold I/O code.
pure="http conf"
pure_files="src/cache/policy.c src/cache/policy.h src/cache/diskfmt.c src/cache/diskfmt.h"

for f in src/*/*.c src/*/*.h; do
	mod=$(basename "$(dirname "$f")")
	my=${layer[$mod]:-}
	is_pure=
	case " $pure " in *" $mod "*) is_pure=1 ;; esac
	case " $pure_files " in *" $f "*) is_pure=1 ;; esac
	if [ -z "$my" ]; then
		echo "$f: directory src/$mod has no layer in scripts/check-src.sh"
		fail=1
		continue
	fi
	while IFS= read -r inc; do
		dep=${inc%%/*}
		theirs=${layer[$dep]:-}
		[ -z "$theirs" ] && continue
		if [ "$theirs" -gt "$my" ]; then
			echo "$f: includes $inc from a higher layer ($dep above $mod)"
			fail=1
		fi
		if [ -n "$is_pure" ] && { [ "$dep" = ev ] || [ "$dep" = net ] || [ "$dep" = dns ] || [ "$dep" = proxy ]; }; then
			echo "$f: pure module includes $inc"
			fail=1
		fi
	done < <(grep -oE '^#include "[a-z]+/[a-z0-9_-]+\.h"' "$f" | sed -E 's/#include "(.*)"/\1/')
	if [ -n "$is_pure" ] && grep -nE '#include <(sys/epoll|netdb)\.h>' "$f"; then
		echo "$f: pure module includes event or resolver headers"
		fail=1
	fi
done

# Banned: unbounded copies, formatting without a size, tokenizers with
# hidden state, and number parsers whose errors go unchecked.
banned='\b(strcpy|strcat|strncpy|sprintf|vsprintf|gets|strtok|atoi|atol|atoll|strtol|strtoul|strtoll|sscanf)[[:space:]]*\('
if grep -nE "$banned" src/*/*.c src/*/*.h | grep -vE '\b(snprintf|vsnprintf)\('; then
	echo "banned function used (see above)"
	fail=1
fi

if command -v clang-format >/dev/null 2>&1; then
	if ! clang-format --dry-run -Werror src/*/*.c src/*/*.h tests/unit/*.c tests/unit/*.h \
		fuzz/*.c 2>/tmp/check-src-format.$$; then
		head -n 20 /tmp/check-src-format.$$
		echo "formatting differs from .clang-format (run: clang-format -i FILE)"
		fail=1
	fi
	rm -f /tmp/check-src-format.$$
fi

if [ $fail -eq 0 ]; then
	echo "check-src: ok"
fi
exit $fail
