# cli.sh - what the vmcctl test scripts share (sourced, not run): the
# check t of a vmcctl run (beside ok, report and finish of check.sh), the
# container names and files a script made (removed on exit whatever
# happens), and a worker holding VMs ($CLI_FIXTURE, tests/cli_fixture.c).
#
# Every failing vmcctl run is also held to two rules of its messages: no
# internal function name ("vmc_config_set: ..."), and no raw byte count
# (a bare number of 7 digits or more): sizes are printed in units.
# BYTES_OK=1 before t lifts the second for a message the library still
# writes in bytes.

VMCCTL=${VMCCTL:-./build/debug/vmcctl}
CLI_FIXTURE=${CLI_FIXTURE:-./build/debug/tests/cli_fixture}
export VMC_VERBOSE=0
unset VMC_PROFILE VMC_POOL_SIZE VMC_FUND_SIZE VMC_PAGE_KIND VMC_WINDOW_SIZE \
      VMC_MAX_WORKERS VMC_MAX_VMS VMC_CODE_CACHE_SIZE VMC_REGION_SPACE \
      VMC_CODE_CACHE_PROTECT VMC_SPAN_TOTAL
# the figures below are granule counts of 2 MiB granules, on every page kind
export VMC_GRANULE_SIZE=2M

for prog in "$VMCCTL" "$CLI_FIXTURE"; do
	if [ ! -x "$prog" ]; then
		echo "${0##*/}: $prog is not an executable (set VMCCTL and CLI_FIXTURE)" >&2
		exit 1
	fi
done

. "$(dirname "${BASH_SOURCE[0]}")/check.sh"
out='' rc=0
cli_names=() cli_files=() fixture_pid=''

cli_cleanup() {
	fixture_stop
	for n in "${cli_names[@]}"; do
		"$VMCCTL" destroy "$n" >/dev/null 2>&1
	done
	rm -f -- "${cli_files[@]}"
}
trap cli_cleanup EXIT

# t DESCRIPTION EXPECTED_RC PATTERN ARGS...: run vmcctl ARGS, expect the
# exit code and (unless PATTERN is empty) a line of output (stdout and
# stderr) matching the extended regex PATTERN.
t() {
	local desc=$1 want=$2 pat=$3
	shift 3
	out=$("$VMCCTL" "$@" 2>&1)
	rc=$?
	if [ "$rc" -ne "$want" ]; then
		echo "FAIL: $desc: vmcctl $*: exit $rc, expected $want"
	elif [ -n "$pat" ] && ! grep -Eq -- "$pat" <<<"$out"; then
		echo "FAIL: $desc: vmcctl $*: output does not match /$pat/"
	elif [ "$rc" -ne 0 ] && grep -Eq 'vmc_[a-z_]+:' <<<"$out"; then
		echo "FAIL: $desc: vmcctl $*: an internal function name in the message"
	elif [ "$rc" -ne 0 ] && [ -z "${BYTES_OK:-}" ] &&
	     grep -Eq '(^|[ (=])[0-9]{7,}([ ),.]|$)' <<<"$out"; then
		echo "FAIL: $desc: vmcctl $*: a byte count without a unit in the message"
	else
		passed=$((passed + 1))
		return 0
	fi
	report "$out"
	failed=$((failed + 1))
	return 1
}

# fixture_start CONTAINER VM...: a worker with these VMs, the last one
# attached; returns once they are in place (1 if the worker failed).
fixture_start() {
	local said
	said=$(mktemp)
	cli_files+=("$said")
	"$CLI_FIXTURE" "$@" >"$said" 2>&1 &
	fixture_pid=$!
	for _ in $(seq 300); do
		grep -q '^ready$' "$said" && return 0
		kill -0 "$fixture_pid" 2>/dev/null || break
		sleep 0.1
	done
	echo "FAIL: cli_fixture $* did not get ready"
	report "$(cat "$said")"
	failed=$((failed + 1))
	fixture_stop
	return 1
}

# fixture_stop: the worker detaches, leaves and exits (0 if all went well).
fixture_stop() {
	local status
	[ -n "$fixture_pid" ] || return 0
	kill -TERM "$fixture_pid" 2>/dev/null
	wait "$fixture_pid" 2>/dev/null
	status=$?
	fixture_pid=''
	return "$status"
}
