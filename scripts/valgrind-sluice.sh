#!/usr/bin/env bash
# Run build/sluice under valgrind's memcheck; the integration harness uses it
# as SLUICE_BIN for `make valgrind`. Errors and leaks are reported on stderr
# (which the harness scans) and make the exit status 99.
exec valgrind -q --error-exitcode=99 --leak-check=full \
	--errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
	"$(dirname "$0")/../build/sluice" "$@"
