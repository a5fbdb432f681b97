#!/usr/bin/env bash
#
# test_prometheus.sh - `vmcctl stat --prometheus` read by a real parser:
# prometheus_client's text_string_to_metric_families (Debian's
# python3-prometheus-client; .ci/run installs it).  A container is read
# twice: empty, and with a worker (tests/cli_fixture.c) holding four VMs
# whose names hold quotes and backslashes.  Every family must parse, have
# help, a type, a vmc_ name (counters ending in _total) and the label
# container; the VM and worker families must carry the VM names exactly
# and the worker's slot and pid (vmcctl's own slot left out); the values
# must be the container's (pool, granules adding up, bytes committed per
# VM, attach and detach counts); the latency histograms must have rising
# buckets whose +Inf bucket is their count.  Skips (exit 77) if no python3
# here has the parser.  Prints "N passed, N failed".
#
set -u
. "$(dirname "$0")/cli.sh"

py=''
for p in python3 /usr/bin/python3; do
	if "$p" -c 'import prometheus_client.parser' >/dev/null 2>&1; then
		py=$p
		break
	fi
done
if [ -z "$py" ]; then
	echo "test_prometheus: skipped: no python3 here has prometheus_client" \
	     "(as root: apt-get install -y python3-prometheus-client)"
	exit 77
fi

NAME=vmcctl-test-prom-$$
cli_names+=("$NAME")
vms=('q"uote' 'back\slash' '\"both\\' 'plain')

# check DESCRIPTION PYTHON [ARGS...]: the last output, parsed; PYTHON sees
# `fams` (name -> family), `text` (the output) and `args`.
check() {
	local desc=$1 code=$2
	shift 2
	ok "$desc" "$py" -c '
import sys
from prometheus_client.parser import text_string_to_metric_families
text = sys.stdin.read()
args = sys.argv[1:]
fams = {f.name: f for f in text_string_to_metric_families(text)}
def value(name, **labels):
    got = [s.value for f in fams.values() for s in f.samples
           if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(got) == 1, (name, labels, got)
    return got[0]
'"$code" "$@" <<<"$out"
}

# the rules every reading must follow
rules='
types = {l.split()[2]: l.split()[3] for l in text.splitlines() if l.startswith("# TYPE ")}
assert types and all(n.startswith("vmc_") for n in types), types
assert all(n.endswith("_total") for n, t in types.items() if t == "counter"), types
for f in fams.values():
    assert f.documentation and f.type in ("gauge", "counter", "histogram"), f
    for s in f.samples:
        assert s.name.startswith("vmc_") and s.labels["container"] == args[0], s
for h in ("vmc_attach_duration_seconds", "vmc_detach_duration_seconds"):
    b = [s for s in fams[h].samples if s.name == h + "_bucket"]
    le = [float(s.labels["le"]) for s in b]
    assert le == sorted(le) and le[-1] == float("inf"), le
    assert all(x.value <= y.value for x, y in zip(b, b[1:])), b
    assert b[-1].value == value(h + "_count"), b'

t "create" 0 "^created $NAME" create "$NAME" --size 64M --fund 32M --page-kind 4k
t "stat --prometheus, no VMs" 0 '^# TYPE vmc_pool_bytes gauge$' stat "$NAME" --prometheus
check "no VMs: parses, follows the rules" "$rules"'
assert value("vmc_pool_bytes") == 64 << 20 and value("vmc_funded_bytes") == 32 << 20
assert value("vmc_vms") == 0 and value("vmc_workers") == 0
assert value("vmc_info", page_kind="4k") == 1
assert sum(s.value for s in fams["vmc_granules"].samples) == 32
assert fams["vmc_vm_committed_bytes"].samples == [] and fams["vmc_worker_alive"].samples == []
' "$NAME"

if fixture_start "$NAME" "${vms[@]}"; then
	t "stat --prometheus, a worker and VMs" 0 '^vmc_vm_state\{' stat "$NAME" --prometheus
	check "VMs: parses, follows the rules" "$rules" "$NAME"
	check "VMs: names and figures" '
vms, pid = args[2:], args[1]
assert value("vmc_vms") == 4 and value("vmc_workers") == 1
assert value("vmc_granules", state="used") == 10
names = [s.labels["vm"] for s in fams["vmc_vm_committed_bytes"].samples]
assert names == vms, names
for i, vm in enumerate(vms):
    assert value("vmc_vm_committed_bytes", vm=vm) == (i + 1) << 21, vm
    assert value("vmc_vm_limit_bytes", vm=vm) == 8 << 20, vm
    assert value("vmc_vm_attaches_total", vm=vm) == 1, vm
    state = "attached" if i == len(vms) - 1 else "idle"
    assert value("vmc_vm_state", vm=vm, state=state) == 1, vm
    assert sum(s.value for s in fams["vmc_vm_state"].samples if s.labels["vm"] == vm) == 1
w = fams["vmc_worker_alive"].samples
assert len(w) == 1 and w[0].labels["pid"] == pid and w[0].value == 1, w
assert w[0].labels["worker"].isdigit(), w
assert value("vmc_worker_attaches_total", pid=pid) == 4
assert value("vmc_attaches_total") == 4 == value("vmc_attach_duration_seconds_count")
assert value("vmc_detaches_total") == 3 == value("vmc_detach_duration_seconds_count")
' "$NAME" "$fixture_pid" "${vms[@]}"
	fixture_stop
	ok "the worker left cleanly" test $? -eq 0
fi
finish
