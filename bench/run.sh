#!/bin/sh
# Run every benchmark of a build, in name order, forwarding their output.
#   bench/run.sh BUILD_DIR        (make bench runs: bench/run.sh build/release)
# Exits non-zero if any benchmark fails (a skipped page kind is not a failure).
set -u
if [ $# -ne 1 ]; then
	echo "usage: $0 BUILD_DIR" >&2
	exit 2
fi
dir="$1/bench"
if [ ! -d "$dir" ]; then
	echo "$0: no $dir: build first (make release)" >&2
	exit 2
fi
status=0
found=0
for b in "$dir"/bench_*; do
	[ -f "$b" ] && [ -x "$b" ] || continue
	found=1
	echo "### $(basename "$b")"
	if ! "$b"; then
		echo "### $(basename "$b") FAILED" >&2
		status=1
	fi
done
if [ "$found" -eq 0 ]; then
	echo "$0: no bench_* binaries in $dir" >&2
	exit 2
fi
exit $status
