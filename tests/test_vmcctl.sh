#!/usr/bin/env bash
#
# test_vmcctl.sh - the admin CLI end to end.  Runs vmcctl ($VMCCTL, default
# ./build/debug/vmcctl) through its global options (--help, --version)
# and command-line habits (getopt_long: --opt=value, prefixes, "--",
# POSIXLY_CORRECT), then a container's life - create, stat (table,
# histograms and JSON; the container has no VMs, so the VM table is empty
# and the attach figures are zero), balloon out and back, check, recover,
# destroy - and through the error cases (unknown container, bad sizes,
# unknown options, missing arguments), checking exit codes (0 ok, 1 error,
# 2 usage) and the key words of the output (tests/cli.sh also holds every
# error message to its rules: no internal function names, sizes in
# units).  A second container with a 4 MiB code cache goes through the
# shared regions: region create/list/destroy, stat's region and code cache
# figures (table and JSON), the errors (duplicate, missing, unaligned, too
# large, unfunded, out of region space), and, when python3 can load libvmc,
# a region held open by another process (openers, EBUSY, and a dead opener
# that no longer counts).  (test_vmcctl_names.sh has `vmcctl list` and
# the names that need escaping.)  The containers have names unique to this
# run and are destroyed on exit whatever happens.  Prints "N passed, N failed"; exits non-zero if
# anything failed.
#
set -u
. "$(dirname "$0")/cli.sh"

NAME=vmcctl-test-$$
RNAME=vmcctl-test-rg-$$      # the container with a code cache and regions
SNAME=vmcctl-test-rs-$$      # a small region space
cli_names+=("$NAME" "$RNAME" "$SNAME")
holder_pid=''
trap '[ -n "$holder_pid" ] && kill -9 "$holder_pid" 2>/dev/null; cli_cleanup' EXIT
SRC=$(cd "$(dirname "$0")/.." && pwd)

# ---------------------------------------------------------------- usage
t "top-level help" 0 '^usage: vmcctl \[--version\] \[--help\] COMMAND' --help
t "top-level -h" 0 'example:' -h
t "help create" 0 '^usage: vmcctl create NAME' help create
t "no arguments" 2 '^usage: vmcctl'
t "unknown command" 2 "^vmcctl: unknown command 'frobnicate'" frobnicate
for cmd in list create stat region balloon check destroy hugepages caps; do
	t "$cmd --help" 0 '^example:' "$cmd" --help
	t "$cmd -h" 0 "^usage: vmcctl $cmd" "$cmd" -h
done

# ----------------------------------------------- global options, exit codes
version=$(sed -n 's/^project(vmc VERSION \([0-9.]*\).*/\1/p' "$SRC/CMakeLists.txt")
t "--version" 0 "^vmcctl $version\$" --version
ok "--version is one line" test "$(wc -l <<<"$out")" -eq 1
t "-V" 0 "^vmcctl $version\$" -V
t "--version before a command" 0 "^vmcctl $version\$" --version list
t "unknown global option" 2 "^vmcctl: unknown option '--frob'" --frob list
t "help lists list" 0 '^  list +list the containers on this host$' --help
t "help documents exit 1" 0 '^  1  the operation failed' --help
t "help documents exit 2" 0 '^  2  the command line was wrong' --help
t "unknown option of a command" 2 "^vmcctl: caps: unknown option '--frob'" caps --frob
t "unknown short option" 2 "^vmcctl: caps: unknown option '-x'" caps -x
t "ambiguous option" 2 "^vmcctl: create: ambiguous option '--max' \(--max-workers, --max-vms\)" \
	create "$NAME" --max 3

# ------------------------------------------------------------ lifecycle
t "create" 0 "^created $NAME: pool 256 MiB \(4k, granules of 2.0 MiB\), funded 64 MiB, window" \
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
t "stat without code cache" 0 '^  code cache used +-$' stat "$NAME"
t "stat without regions" 0 '^  regions +0$' stat "$NAME"
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
assert s["regions"] == 0 and s["region_bytes"] == 0, s
assert s["code_cache_size"] == 0 and s["code_cache_used"] == 0, s
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
t "balloon rounds up to granules" 0 "^$NAME: unfunded 4.0 MiB \(was 0 B\), funded now 252 MiB" \
	balloon "$NAME" 3M
t "balloon back again" 0 "funded now 256 MiB" balloon "$NAME" 0
t "balloon beyond pool" 1 "^vmcctl: balloon $NAME to 1.0 GiB unfunded: .*\(256 MiB\)" \
	balloon "$NAME" 1G
t "balloon bad size" 2 "^vmcctl: balloon: bad TARGET: \"12x\" is not a size" balloon "$NAME" 12x
t "balloon size too large" 2 "^vmcctl: balloon: bad TARGET: .*too large" \
	balloon "$NAME" 16777216T
t "balloon negative" 2 "^vmcctl: balloon: unknown option '-2': .*cannot be negative" \
	balloon "$NAME" -2M

t "check" 0 "^$NAME: consistent$" check "$NAME"
t "check --recover" 0 "^$NAME: recovered 0 dead workers" check "$NAME" --recover
t "check --recover checks" 0 "^$NAME: consistent$" check "$NAME" --recover
t "no slot leaked" 0 '1 live / 0 dead \(not yet recovered\) / 64 max' stat "$NAME"

# ------------------------------------------------ regions and the code cache
for a in list create destroy; do
	t "region $a --help" 0 "^usage: vmcctl region $a " region "$a" --help
	t "region $a --help example" 0 '^example:' region "$a" --help
done
t "help region lists actions" 0 '^  region destroy NAME REGION' help region
t "region without action" 2 '^vmcctl: region: missing ACTION' region
t "region unknown action" 2 "^vmcctl: region: unknown action 'frob'" region frob "$RNAME"
t "create --help names --code-cache" 0 '^  --code-cache BYTES' create --help
t "create --help names --region-space" 0 '^  --region-space BYTES' create --help

t "create --code-cache" 0 \
	"^created $RNAME: pool 256 MiB \(4k, granules of 2.0 MiB\), funded 64 MiB, .*, code cache 4.0 MiB$" \
	create "$RNAME" --size 256M --fund 64M --page-kind 4k --code-cache 4M
t "stat code cache" 0 '^  code cache used +0 B / 4.0 MiB \(0.0%\)$' stat "$RNAME"
t "stat code cache granules" 0 '^  used +2 +4.0 MiB$' stat "$RNAME"
t "region list: no regions" 0 '^  regions +0$' region list "$RNAME"
t "region list: code cache row" 0 \
	'^ +0 \(code cache\) +4 0x[0-9a-f]+ +1  \(code cache: 0 B of 4.0 MiB used\)$' \
	region list "$RNAME"

t "region create" 0 \
	"^created region jars in $RNAME: 32 MiB at 0x[0-9a-f]+, open nowhere" \
	region create "$RNAME" jars 32M
jars_addr=$(grep -Eo '0x[0-9a-f]+' <<<"$out" | head -n1)
t "region create 2" 0 "^created region strings in $RNAME: 4.0 MiB" \
	region create "$RNAME" strings 4MiB
t "region list: jars" 0 "^ +[0-9]+ jars +32 $jars_addr +0$" region list "$RNAME"
t "region list: strings" 0 '^ +[0-9]+ strings +4 0x[0-9a-f]+ +0$' region list "$RNAME"
t "region list: totals" 0 '^  region bytes +36 MiB$' region list "$RNAME"
t "stat regions" 0 '^  regions +2$' stat "$RNAME"
t "stat region bytes" 0 '^  region bytes +36 MiB$' stat "$RNAME"
t "stat region granules" 0 '^  used +20 +40 MiB$' stat "$RNAME"

t "region create duplicate" 1 "^vmcctl: create region jars in $RNAME: .*exists" \
	region create "$RNAME" jars 2M
t "region create code cache's name" 1 "^vmcctl: create region .*exists" \
	region create "$RNAME" "(code cache)" 2M
t "region create rounds up" 0 "^created region odd in $RNAME: 4.0 MiB" \
	region create "$RNAME" odd 3M
t "region destroy the odd one" 0 "^destroyed region odd in $RNAME" region destroy "$RNAME" odd
t "region create zero" 1 "^vmcctl: create region zero in $RNAME: .*at least one byte" \
	region create "$RNAME" zero 0
t "region create larger than pool" 1 "^vmcctl: create region big in $RNAME: .*larger than the pool" \
	region create "$RNAME" big 512M
t "region create unfunded" 1 "^vmcctl: create region wide in $RNAME: .*contiguous free funded" \
	region create "$RNAME" wide 64M
t "region create long name" 1 "^vmcctl: create region x+ in $RNAME: .*1\.\.63" \
	region create "$RNAME" "$(printf 'x%.0s' $(seq 64))" 2M
t "region create bad size" 2 "^vmcctl: region create: bad SIZE: \"12q\" is not a size" \
	region create "$RNAME" q 12q
t "region create missing size" 2 '^vmcctl: region create: missing SIZE$' \
	region create "$RNAME" q
t "region create missing region" 2 '^vmcctl: region create: missing REGION SIZE$' \
	region create "$RNAME"
t "region destroy missing region" 2 '^vmcctl: region destroy: missing REGION$' \
	region destroy "$RNAME"
t "region list unknown container" 1 '^vmcctl: open vmcctl-nosuch-[0-9]+: ' \
	region list "vmcctl-nosuch-$$"
t "region create unknown container" 1 '^vmcctl: open ' \
	region create "vmcctl-nosuch-$$" jars 2M
t "region list after errors" 0 '^  regions +2$' region list "$RNAME"
t "check with regions" 0 "^$RNAME: consistent$" check "$RNAME"

t "region list --json" 0 '"region_table": \[' region list "$RNAME" --json
if command -v python3 >/dev/null 2>&1; then
	ok "region list --json is valid JSON" \
		python3 -c 'import json,sys; json.load(sys.stdin)' <<<"$out"
	ok "region list --json fields" python3 -c '
import json, sys
s = json.load(sys.stdin)
assert s["regions"] == 2 and s["region_bytes"] == 36 << 20, s
assert s["code_cache_size"] == 4 << 20 and s["code_cache_used"] == 0, s
t = {r["name"]: r for r in s["region_table"]}
assert len(t) == 3, t
c = t["(code cache)"]
assert c["index"] == 0 and c["code"] is True and c["size"] == 4 << 20, c
j = t["jars"]
assert j["code"] is False and j["size"] == 32 << 20 and j["openers"] == 0, j
assert j["addr"] == int(sys.argv[1], 16), (j, sys.argv[1])
assert t["strings"]["size"] == 4 << 20 and t["strings"]["index"] > 0, t
spans = sorted((r["addr"], r["addr"] + r["size"]) for r in t.values())
assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), spans' "$jars_addr" <<<"$out"
	t "stat --json with regions" 0 '"region_bytes": 37748736' stat "$RNAME" --json
	ok "stat --json region fields" python3 -c '
import json, sys
s = json.load(sys.stdin)
assert s["regions"] == 2 and s["region_bytes"] == 36 << 20, s
assert s["code_cache_size"] == 4 << 20 and s["code_cache_used"] == 0, s
assert s["granule_states"]["used"] == 20, s' <<<"$out"
	t "region list --json, no code cache" 0 '"region_table": \[\]' region list "$NAME" --json
	ok "region list --json, no code cache, fields" python3 -c '
import json, sys
s = json.load(sys.stdin)
assert s["region_table"] == [] and s["code_cache_size"] == 0 and s["regions"] == 0, s' \
		<<<"$out"
fi

# a region another process has open: openers, EBUSY, then that process dies.
# The holder is python3 loading vmcctl's libvmc with ctypes; a library it
# cannot load (a sanitizer build wants its runtime first) skips this part.
lib=$(ldd "$VMCCTL" 2>/dev/null | awk '/libvmc\.so/ { print $3; exit }')
held=''
if command -v python3 >/dev/null 2>&1 && [ -r "$lib" ] &&
   ! python3 -c 'import ctypes, sys; ctypes.CDLL(sys.argv[1])' "$lib" >/dev/null 2>&1; then
	echo "test_vmcctl: skipped the open-region checks (python3 cannot load $lib)"
elif command -v python3 >/dev/null 2>&1 && [ -r "$lib" ]; then
	ready=$(mktemp)
	python3 -c '
import ctypes, sys, time
try:
    lib = ctypes.CDLL(sys.argv[1])
except OSError as e:
    print("skip: %s" % e, flush=True)
    sys.exit(0)
c, addr = ctypes.c_void_p(), ctypes.c_void_p()
if lib.vmc_open(sys.argv[2].encode(), ctypes.byref(c)):
    sys.exit("holder: vmc_open failed")
if lib.vmc_region_open(c, b"jars", 1, ctypes.byref(addr)):   # VMC_REGION_WRITE
    sys.exit("holder: vmc_region_open failed")
zero = ctypes.string_at(addr, 8) == bytes(8)
ctypes.memmove(addr, b"vmcctl!", 8)
print("ready %#x %s" % (addr.value, "zero" if zero else "dirty"), flush=True)
time.sleep(60)' "$lib" "$RNAME" >"$ready" 2>&1 &
	holder_pid=$!
	for _ in $(seq 200); do
		grep -Eq '^(ready|skip)' "$ready" && break
		kill -0 "$holder_pid" 2>/dev/null || break
		sleep 0.05
	done
	if grep -q '^skip' "$ready"; then
		echo "test_vmcctl: skipped the open-region checks ($(head -c 200 "$ready"))"
	else
		held=1
		ok "holder opened jars at its address, zeroed" \
			grep -q "^ready $jars_addr zero$" "$ready"
		[ -s "$ready" ] && ! grep -q '^ready' "$ready" && sed 's/^/    | /' "$ready"
		t "region list: jars has an opener" 0 "^ +[0-9]+ jars +32 $jars_addr +1$" \
			region list "$RNAME"
		t "region destroy while open" 1 \
			"^vmcctl: destroy region jars in $RNAME: .*open" \
			region destroy "$RNAME" jars
	fi
	kill -9 "$holder_pid" 2>/dev/null
	wait "$holder_pid" 2>/dev/null
	holder_pid=''
	rm -f "$ready"
else
	echo "test_vmcctl: skipped the open-region checks (no python3 or no libvmc.so)"
fi
t "region destroy" 0 "^destroyed region jars in $RNAME: 32 MiB back to the pool$" \
	region destroy "$RNAME" jars
if [ -n "$held" ]; then
	t "dead opener's slot recovered" 0 '1 live / 0 dead' stat "$RNAME"
fi
t "region destroy again" 1 "^vmcctl: destroy region jars in $RNAME: no region named jars" \
	region destroy "$RNAME" jars
t "region destroy code cache" 1 "^vmcctl: destroy region \(code cache\) in $RNAME: " \
	region destroy "$RNAME" "(code cache)"
t "region destroy 2" 0 "^destroyed region strings in $RNAME: 4.0 MiB" \
	region destroy "$RNAME" strings
t "region list after destroy" 0 '^  region bytes +0 B$' region list "$RNAME"
ok "region list after destroy: only the code cache" \
	test "$(grep -c '^ \+[0-9]\+ ' <<<"$out")" = 1
t "region granules back" 0 '^  used +2 +4.0 MiB$' stat "$RNAME"
t "region space reusable" 0 "^created region jars in $RNAME: 32 MiB" \
	region create "$RNAME" jars 32M
t "check after regions" 0 "^$RNAME: consistent$" check "$RNAME"
t "destroy with a region" 0 "^destroyed $RNAME$" destroy "$RNAME"

# code cache and region space options
t "bad --code-cache" 2 '^vmcctl: create [^:]+: --code-cache abc: .*size' \
	create "$SNAME" --code-cache abc
t "--code-cache rounds up" 0 'code cache 4.0 MiB$' \
	create "$SNAME" --size 64M --fund 16M --page-kind 4k --code-cache 3M
t "destroy the code cache one" 0 "^destroyed $SNAME$" destroy "$SNAME"
# (the library's message counts in bytes: src/container.c)
BYTES_OK=1 t "--code-cache above --fund" 1 '^vmcctl: create [^:]+: .*fund' \
	create "$SNAME" --size 64M --fund 16M --page-kind 4k --code-cache 32M
t "bad --region-space" 2 '^vmcctl: create [^:]+: --region-space 1x: ' \
	create "$SNAME" --region-space 1x
t "create --region-space" 0 "^created $SNAME: pool 64 MiB \(4k, granules of 2.0 MiB\), funded 64 MiB, window" \
	create "$SNAME" --size 64M --fund 64M --page-kind 4k --region-space 4M
t "region fills the space" 0 "^created region a in $SNAME: 4.0 MiB" region create "$SNAME" a 4M
t "region beyond the space" 1 "^vmcctl: create region b in $SNAME: .*region_space" \
	region create "$SNAME" b 2M
t "region space freed" 0 "^destroyed region a in $SNAME" region destroy "$SNAME" a
t "region in freed space" 0 "^created region b in $SNAME: 2.0 MiB" region create "$SNAME" b 2M
t "destroy small region space" 0 "^destroyed $SNAME$" destroy "$SNAME"

# ------------------------------------------------ getopt_long's habits
t "--opt=value, prefixes" 0 "^created $SNAME: pool 64 MiB \(4k, granules of 2.0 MiB\), funded 16 MiB" \
	create "$SNAME" --si=64M --fund 16M --page=4k
POSIXLY_CORRECT=1 t "options after arguments, POSIXLY_CORRECT" 0 '"name": "vmcctl-' \
	stat "$SNAME" --json
t "-- ends the options" 0 "^destroyed $SNAME$" destroy -- "$SNAME"
t "-- then an option-like word" 2 "^vmcctl: stat: unexpected argument '--json'" \
	stat -- "$SNAME" --json

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
t "--size rounds up" 0 "^created vmcctl-x-$$: pool 4.0 MiB" \
	create "vmcctl-x-$$" --size 3M --fund 0 --page-kind 4k
t "destroy the rounded one" 0 "^destroyed vmcctl-x-$$$" destroy "vmcctl-x-$$"
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
t "create --profile" 0 "^created $NAME: pool 128 MiB \(4k, granules of 2.0 MiB\), funded 16 MiB" \
	create "$NAME" --profile "$profile" --fund 16M
rm -f "$profile"

# ------------------------------------------------------ funding on demand
t "destroy before on-demand create" 0 "^destroyed $NAME$" destroy "$NAME"
t "create --fund-policy ondemand" 0 \
	"^created $NAME: pool 128 MiB \(4k, granules of 2.0 MiB\), funded 0 B \(more on demand, 4.0 MiB at a time\)" \
	create "$NAME" --size 128M --page-kind 4k --granule 2M --fund-policy ondemand --fund-batch 4M
t "stat shows the policy" 0 'fund policy +ondemand, 4.0 MiB at a time' stat "$NAME"
t "stat --json shows the policy" 0 '"fund_policy": "ondemand"' stat "$NAME" --json
t "create --fund-policy bad" 2 'vmc/fund_policy = sometimes: expected upfront or ondemand' \
	create "$NAME-bad" --fund-policy sometimes

# --------------------------------------------------------------- destroy
t "destroy" 0 "^destroyed $NAME$" destroy "$NAME"
t "stat destroyed" 1 "^vmcctl: open $NAME: no container" stat "$NAME"

finish
