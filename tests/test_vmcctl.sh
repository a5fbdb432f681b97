#!/usr/bin/env bash
#
# test_vmcctl.sh - the admin CLI end to end.  Runs vmcctl ($VMCCTL, default
# ./build/debug/vmcctl) through a container's life - create, stat (table,
# histograms and JSON; the container has no VMs, so the VM table is empty
# and the attach figures are zero), balloon out and back, check, recover,
# destroy - and through the
# error cases (unknown container, bad sizes, unknown options, missing
# arguments), checking exit codes (0 ok, 1 error, 2 usage) and the key
# words of the output.  The container has a name unique to this run and is
# destroyed on exit whatever happens.  Prints "N passed, N failed"; exits
# non-zero if anything failed.
#
set -u

VMCCTL=${VMCCTL:-./build/debug/vmcctl}
NAME=vmcctl-test-$$
export VMC_VERBOSE=0
unset VMC_PROFILE VMC_POOL_SIZE VMC_FUND_SIZE VMC_PAGE_KIND VMC_WINDOW_SIZE \
      VMC_MAX_WORKERS VMC_MAX_VMS

if [ ! -x "$VMCCTL" ]; then
	echo "test_vmcctl: $VMCCTL is not an executable (set VMCCTL)" >&2
	exit 1
fi
trap '"$VMCCTL" destroy "$NAME" >/dev/null 2>&1' EXIT

passed=0 failed=0 out='' rc=0

# t DESCRIPTION EXPECTED_RC PATTERN ARGS...: run vmcctl ARGS, expect the
# exit code and (unless PATTERN is empty) a line of output (stdout and
# stderr) matching the extended regex PATTERN.
t() {
	local desc=$1 want=$2 pat=$3 line
	shift 3
	out=$("$VMCCTL" "$@" 2>&1)
	rc=$?
	if [ "$rc" -ne "$want" ]; then
		echo "FAIL: $desc: vmcctl $*: exit $rc, expected $want"
	elif [ -n "$pat" ] && ! grep -Eq -- "$pat" <<<"$out"; then
		echo "FAIL: $desc: vmcctl $*: output does not match /$pat/"
	else
		passed=$((passed + 1))
		return 0
	fi
	while IFS= read -r line; do echo "    | $line"; done <<<"$out"
	failed=$((failed + 1))
	return 1
}

# ok DESCRIPTION CONDITION...: count a check done by other means.
ok() {
	local desc=$1
	shift
	if "$@"; then
		passed=$((passed + 1))
	else
		echo "FAIL: $desc"
		failed=$((failed + 1))
	fi
}

# ---------------------------------------------------------------- usage
t "top-level help" 0 '^usage: vmcctl COMMAND' --help
t "top-level -h" 0 'example:' -h
t "help create" 0 '^usage: vmcctl create NAME' help create
t "no arguments" 2 '^usage: vmcctl'
t "unknown command" 2 "^vmcctl: unknown command 'frobnicate'" frobnicate
for cmd in create stat balloon check destroy hugepages caps; do
	t "$cmd --help" 0 '^example:' "$cmd" --help
	t "$cmd -h" 0 "^usage: vmcctl $cmd" "$cmd" -h
done

# ------------------------------------------------------------ lifecycle
t "create" 0 "^created $NAME: pool 256 MiB \(4k\), funded 64 MiB, window" \
	create "$NAME" --size 256M --fund 64M --page-kind 4k
t "create again" 1 "^vmcctl: create $NAME: .*exists" \
	create "$NAME" --size 256M --fund 64M --page-kind 4k

t "stat" 0 'funded +64 MiB' stat "$NAME"
t "stat granules" 0 'unfunded +96 +192 MiB' stat "$NAME"
t "stat marks vmcctl's slot" 0 'yes +- +0 +0 +0 +0  \(vmcctl\)$' stat "$NAME"
t "stat workers" 0 '^  workers +1 live / 0 dead \(not yet recovered\) / 64 max$' stat "$NAME"
t "stat VM count" 0 '^  VMs +0 / 256 max$' stat "$NAME"
t "stat VM section" 0 '^VMs \(sizes in MiB\)$' stat "$NAME"
ok "stat VM table is empty" \
	test "$(grep -A1 '^VMs (sizes in MiB)$' <<<"$out" | tail -n1)" = "  none"
t "stat attach totals" 0 '^  affinity hits +0$' stat "$NAME"
t "stat attach latency" 0 '^  attach latency p99 +-$' stat "$NAME"
t "stat without --hist" 0 '' stat "$NAME"
ok "stat without --hist has no histograms" test -z "$(grep '^attach latency$' <<<"$out")"
t "stat --hist" 0 '^detach latency$' stat "$NAME" --hist
t "stat --help names --hist" 0 '^  --hist ' stat --help
t "stat --json" 0 '"funded_bytes": 67108864' stat "$NAME" --json
ok "stat --json has vms" grep -q '^  "vms": 0,$' <<<"$out"
ok "stat --json has attach" grep -q '^  "attach": {$' <<<"$out"
if command -v python3 >/dev/null 2>&1; then
	ok "stat --json is valid JSON" \
		python3 -c 'import json,sys; json.load(sys.stdin)' <<<"$out"
	ok "stat --json fields" python3 -c '
import json, sys
s = json.load(sys.stdin)
g = s["granule_states"]
assert s["pool_size"] == 256 << 20 and s["page_kind"] == "4k", s
assert g["unfunded"] == 96 and g["free"] == 32 and sum(g.values()) == s["granules"], g
assert s["workers"] == 1 and s["dead_workers"] == 0, s
w = s["worker_slots"]
assert len(w) == 1 and w[0]["vmcctl"] is True and w[0]["alive"] is True, w
assert w[0]["vm"] is None and w[0]["attaches"] == 0, w
assert isinstance(s["counters"]["fund_ops"], int), s
assert s["vms"] == 0 and s["max_vms"] == 256 and s["vm_table"] == [], s
a = s["attach"]
assert a["attaches"] == 0 and a["attach_p50_ns"] == 0, a
assert len(a["attach_hist"]) == 32 and len(a["detach_hist"]) == 32, a' <<<"$out"
fi

t "balloon inflate" 0 "^$NAME: unfunded 128 MiB \(was 192 MiB\), funded now 128 MiB" \
	balloon "$NAME" 128M
t "balloon deflate" 0 "^$NAME: unfunded 0 B \(was 128 MiB\), funded now 256 MiB" \
	balloon "$NAME" 0
t "balloon all out" 0 "^$NAME: unfunded 256 MiB \(was 0 B\), funded now 0 B" \
	balloon "$NAME" 256MiB
t "stat after balloon" 0 'funded +0 B' stat "$NAME"
t "balloon back" 0 "funded now 256 MiB" balloon "$NAME" 0
t "balloon unaligned" 1 "^vmcctl: balloon $NAME .*multiple of 2 MiB" balloon "$NAME" 3M
t "balloon beyond pool" 1 "^vmcctl: balloon $NAME " balloon "$NAME" 1G
t "balloon bad size" 2 "^vmcctl: balloon: bad size '12x'" balloon "$NAME" 12x

t "check" 0 "^$NAME: consistent$" check "$NAME"
t "check --recover" 0 "^$NAME: recovered 0 dead workers" check "$NAME" --recover
t "check --recover checks" 0 "^$NAME: consistent$" check "$NAME" --recover
t "no slot leaked" 0 '1 live / 0 dead \(not yet recovered\) / 64 max' stat "$NAME"

# ---------------------------------------------------------- error cases
t "stat unknown" 1 '^vmcctl: open vmcctl-nosuch-[0-9]+: no container' stat "vmcctl-nosuch-$$"
t "check unknown" 1 '^vmcctl: open ' check "vmcctl-nosuch-$$"
t "balloon unknown" 1 '^vmcctl: open ' balloon "vmcctl-nosuch-$$" 0
t "destroy unknown" 1 '^vmcctl: destroy vmcctl-nosuch-[0-9]+: ' destroy "vmcctl-nosuch-$$"
t "bad name" 1 '^vmcctl: create bad/name: ' create bad/name
t "bad --size" 2 '^vmcctl: create [^:]+: --size abc: .*size' create "vmcctl-x-$$" --size abc
t "bad --page-kind" 2 'expected auto, hugetlb, thp or 4k' \
	create "vmcctl-x-$$" --page-kind huge
t "bad --max-workers" 2 '^vmcctl: create ' create "vmcctl-x-$$" --max-workers 0
t "unaligned --size" 1 '^vmcctl: create [^:]+: .*multiple of 2 MiB' \
	create "vmcctl-x-$$" --size 3M --fund 0 --page-kind 4k
t "missing profile" 1 '^vmcctl: create [^:]+: profile /nonexistent' \
	create "vmcctl-x-$$" --profile /nonexistent
t "unknown option" 2 "^vmcctl: create: unknown option '--bogus'" create "$NAME" --bogus
t "option without value" 2 '^vmcctl: create: option --fund needs a value' create "$NAME" --fund
t "flag with value" 2 '^vmcctl: stat: option --json takes no value' stat "$NAME" --json=1
t "missing name" 2 '^vmcctl: stat: missing NAME' stat
t "missing target" 2 '^vmcctl: balloon: missing TARGET' balloon "$NAME"
t "extra argument" 2 "^vmcctl: destroy: unexpected argument 'extra'" destroy "$NAME" extra
t "bad page count" 2 "^vmcctl: hugepages: bad page count 'lots'" hugepages lots
t "caps" 0 '^hugepages +[0-9]+ free' caps

# a profile file is applied, and the options override it
profile=$(mktemp)
printf 'vmc/pool_size = 128M\nvmc/fund_size = 32M\nvmc/page_kind = 4k\n' >"$profile"
t "destroy before profile create" 0 "^destroyed $NAME$" destroy "$NAME"
t "create --profile" 0 "^created $NAME: pool 128 MiB \(4k\), funded 16 MiB" \
	create "$NAME" --profile "$profile" --fund 16M
rm -f "$profile"

# --------------------------------------------------------------- destroy
t "destroy" 0 "^destroyed $NAME$" destroy "$NAME"
t "stat destroyed" 1 "^vmcctl: open $NAME: no container" stat "$NAME"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
