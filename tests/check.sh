# check.sh - the counting of the shell tests (sourced, not run): ok for a
# check, report to show what a failed one printed, finish for the closing
# "N passed, N failed" line and the exit code that goes with it.

passed=0 failed=0

# report OUTPUT: show output under a failure.
report() {
	local line
	while IFS= read -r line; do echo "    | $line"; done <<<"$1"
}

# ok DESCRIPTION COMMAND...: count a check that COMMAND succeeds; returns
# its success.
ok() {
	local desc=$1
	shift
	if "$@"; then
		passed=$((passed + 1))
		return 0
	fi
	echo "FAIL: $desc"
	failed=$((failed + 1))
	return 1
}

# finish: the count, and exit 0 only if nothing failed.
finish() {
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
	exit
}
