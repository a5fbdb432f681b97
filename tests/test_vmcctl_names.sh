#!/usr/bin/env bash
#
# test_vmcctl_names.sh - names that vmcctl did not choose, on their way
# out.  `vmcctl list` (table and JSON) of a container and of metadata files
# that are no containers - a corrupt one, and one whose name holds a quote,
# a backslash, control characters and a byte that is not UTF-8 - each
# listed with the reason; regions with such names; VMs with quotes and
# backslashes in their names, held by a live worker (tests/cli_fixture.c)
# so that list, stat (table, JSON, Prometheus) show VMs, memory in use and
# a worker other than vmcctl.  Every name must come out of JSON (checked by
# python3's parser) as the same string (bytes that are not UTF-8 as
# U+FFFD), out of the Prometheus format escaped, and out of a table with
# '?' for control characters.  Only this run's containers and files are
# listed (by pattern): other containers on the host are left alone.
# Prints "N passed, N failed".
#
set -u
. "$(dirname "$0")/cli.sh"

NAME=vmcctl-names-$$         # a container, its regions
VNAME=vmcctl-names-vm-$$     # VMs with names that need escaping
cli_names+=("$NAME" "$VNAME")

t "create" 0 "^created $NAME: pool 256 MiB \(4k, granules of 2.0 MiB\), funded 64 MiB" \
	create "$NAME" --size 256M --fund 64M --page-kind 4k

# ------------------------------------------------------------------ list
LNAME=vmcctl-names-ls-$$      # metadata files that are no containers
junk=/dev/shm/vmc.$LNAME-junk.meta
odd=$LNAME-$'q"b\\s\x01c\x7f\xff'   # a name no container may have
cli_files+=("$junk" "/dev/shm/vmc.$odd.meta")
printf 'not a container' >"$junk"
: >"/dev/shm/vmc.$odd.meta"
t "list" 0 "^  $NAME +4k +256 MiB +64 MiB +0 B +0 +0\$" list "$NAME" "$LNAME-*"
ok "list heads its columns" grep -Eq '^  name +pages +size +funded +in use +VMs +workers$' <<<"$out"
ok "list: a corrupt file, with why" \
	grep -Eq "^  $LNAME-junk +(- +){6} error: .*shorter than the header" <<<"$out"
ok "list: a stray name, with why" \
	grep -Fq "  ${LNAME}-q\"b\\s?c?"$'\xff' <<<"$out"
ok "list: no control characters in the table" test "$(tr -d '\n' <<<"$out" | tr -d '[:print:]' |
	tr -d $'\xff' | wc -c)" -eq 0
t "list sorts by name" 0 '' list "$LNAME-*" "$NAME"
ok "list sorts by name (rows)" test "$(grep -c '^  vmcctl-names-' <<<"$out")" -eq 3 -a \
	"$(grep '^  vmcctl-names-' <<<"$out" | sort -c 2>&1 && echo sorted)" = sorted
t "list, no match" 0 '^no container matches$' list "vmcctl-nosuch-$$-*"
t "list --json" 0 '^\{"containers": \[' list "$NAME" "$LNAME-*" --json
if command -v python3 >/dev/null 2>&1; then
	ok "list --json is valid JSON" python3 -m json.tool <<<"$out" >/dev/null
	ok "list --json fields and names" python3 -c '
import json, sys
name, lname = sys.argv[1], sys.argv[2]
rows = json.load(sys.stdin)["containers"]
assert [r["name"] for r in rows] == sorted(r["name"] for r in rows), rows
byname = {r["name"]: r for r in rows}
c = byname[name]
assert c["error"] is None and c["page_kind"] == "4k" and c["pool_size"] == 256 << 20, c
assert c["funded_bytes"] == 64 << 20 and c["used_bytes"] == 0, c
assert c["vms"] == 0 and c["workers"] == 0, c
j = byname[lname + "-junk"]
assert "shorter than the header" in j["error"] and j["pool_size"] is None, j
odd = lname + "-q\"b\\s\x01c\x7f\ufffd"
assert odd in byname and byname[odd]["error"], byname.keys()
assert len(rows) == 3, rows' "$NAME" "$LNAME" <<<"$out"
fi
rm -f -- "$junk" "/dev/shm/vmc.$odd.meta"

# ------------------------------------------------------- regions
rodd=$'ctl\x01\t"q\\b\x7f\xff'     # quotes, a backslash, control bytes, not UTF-8
t "region create, odd name" 0 "^created region ctl" region create "$NAME" "$rodd" 2M
t "region list, odd name" 0 '^ +[0-9]+ ctl\?\?"q\\b\?'$'\xff'' +2 ' region list "$NAME"
t "region list --json, odd name" 0 '' region list "$NAME" --json
if command -v python3 >/dev/null 2>&1; then
	ok "region list --json, odd name, decodes" python3 -c '
import json, sys
names = [r["name"] for r in json.load(sys.stdin)["region_table"]]
assert "ctl\x01\t\"q\\b\x7f\ufffd" in names, names' <<<"$out"
fi
t "region destroy, odd name" 0 "^destroyed region ctl" region destroy "$NAME" "$rodd"

# ------------------------------------- VMs whose names need escaping, a worker
vms=('q"uote' 'back\slash' '\"both\\' 'plain')
t "create for VMs" 0 "^created $VNAME: pool 64 MiB \(4k, granules of 2.0 MiB\), funded 32 MiB" \
	create "$VNAME" --size=64M --fund=32M --page-kind=4k
if fixture_start "$VNAME" "${vms[@]}"; then
	t "list: VMs, a worker, memory in use" 0 "^  $VNAME +4k +64 MiB +32 MiB +20 MiB +4 +1\$" \
		list "$VNAME"
	t "stat: VM table" 0 '^ +[0-9]+ q"uote +idle +2 ' stat "$VNAME"
	ok "stat: backslashes as they are" grep -Eq '^ +[0-9]+ \\"both\\\\ +idle +6 ' <<<"$out"
	ok "stat: the attached VM" grep -Eq "^ +[0-9]+ plain +attached +8 +8 +8 +$fixture_pid " \
		<<<"$out"
	t "stat --json with VMs" 0 '"vm_table": \[' stat "$VNAME" --json
	if command -v python3 >/dev/null 2>&1; then
		ok "stat --json with VMs is valid JSON" python3 -m json.tool <<<"$out" >/dev/null
		ok "stat --json: VM names decode" python3 -c '
import json, sys
s = json.load(sys.stdin)
want = sys.argv[2:]
vms = s["vm_table"]
assert [v["name"] for v in vms] == want, vms
assert [v["committed"] for v in vms] == [(i + 1) << 21 for i in range(len(want))], vms
assert [v["state"] for v in vms] == ["idle"] * (len(want) - 1) + ["attached"], vms
w = [x for x in s["worker_slots"] if not x["vmcctl"]]
assert len(w) == 1 and w[0]["pid"] == int(sys.argv[1]) and w[0]["vm"] == want[-1], w' \
			"$fixture_pid" "${vms[@]}" <<<"$out"
	fi
	t "stat --prometheus" 0 '^# TYPE vmc_vm_committed_bytes gauge$' stat "$VNAME" --prometheus
	ok "prometheus: a quote escaped" grep -Fxq \
		"vmc_vm_committed_bytes{container=\"$VNAME\",vm=\"q\\\"uote\"} 2097152" <<<"$out"
	ok "prometheus: backslashes escaped" grep -Fxq \
		"vmc_vm_committed_bytes{container=\"$VNAME\",vm=\"\\\\\\\"both\\\\\\\\\"} 6291456" <<<"$out"
	ok "prometheus: the worker, not vmcctl" test "$(grep -c '^vmc_worker_alive{' <<<"$out")" = 1
	ok "prometheus: the worker's labels" grep -Eq \
		"^vmc_worker_alive\{container=\"$VNAME\",worker=\"[0-9]+\",pid=\"$fixture_pid\"\} 1\$" \
		<<<"$out"
	t "stat --json --prometheus" 2 '^vmcctl: stat: --json and --prometheus: choose one' \
		stat "$VNAME" --json --prometheus
	fixture_stop
	ok "the worker left cleanly" test $? -eq 0
fi
t "list: the worker gone" 0 "^  $VNAME +4k +64 MiB +32 MiB +20 MiB +4 +0\$" list "$VNAME"
t "check after the worker" 0 "^$VNAME: consistent$" check "$VNAME"

finish
