#!/usr/bin/env bash
# vmc-lua --serve end to end, as a user runs it: serve the sample tenants
# and a broken one on a socket, send the README's session with --client (and
# with socat and nc too, when they are installed), check the defects of issue
# 12 stay fixed (an empty line or a line starting with NUL gets its reply; a
# client that half-closes gets every reply), use the control socket (stats,
# stats --json, reload of a fixed script), check that `vmcctl stat` shows the
# tenants as VMs, stop it with SIGTERM, and check that it cleaned up.
#   VMC_LUA=path/to/vmc-lua VMCCTL=path/to/vmcctl VMC_LUA_TENANTS=dir bash test_serve.sh
set -euo pipefail
: "${VMC_LUA:?set VMC_LUA}" "${VMCCTL:?set VMCCTL}" "${VMC_LUA_TENANTS:?set VMC_LUA_TENANTS}"
name="vmclua-serve-$$"
dir="/tmp/$name.d"
sock="/tmp/$name.sock"
log="/tmp/$name.log"
fail() { echo "FAIL: $*" >&2; cat "$log" >&2 || true; exit 1; }
same() { [ "$1" = "$2" ] || fail "$3: got
$1
wanted
$2"; }

mkdir -p "$dir"
cp "$VMC_LUA_TENANTS"/*.lua "$dir"
printf 'function handle(\n' >"$dir/broken.lua"
"$VMC_LUA" --serve "$sock" --tenants "$dir" --workers 2 --pool 64M --name "$name" 2>"$log" &
pid=$!
trap 'kill -9 $pid 2>/dev/null || true; "$VMCCTL" destroy "$name" >/dev/null 2>&1 || true; rm -rf "$sock" "$sock.ctl" "$log" "$dir"' EXIT
for _ in $(seq 200); do [ -S "$sock.ctl" ] && break; sleep 0.05; done
[ -S "$sock.ctl" ] || fail "no socket"
grep -q "tenant broken FAILED TO LOAD" "$log" || fail "the broken tenant is not reported"

# the README's session
out=$(printf 'counter incr\ncounter incr\nwordfreq to be or not to be\n' | "$VMC_LUA" --client "$sock")
same "$out" $'OK 1\nOK 2\nOK 6 words, 4 distinct; top be=2 to=2 not=1' "the README's first lines"
out=$(printf 'spin forever\nspin hi\nmemhog 100000\nmemhog 64\n' | "$VMC_LUA" --client "$sock")
same "$out" $'ERR CPU budget exceeded (50000000 Lua instructions per request)\nOK hi (request 2)\nERR not enough memory\nOK held 64 KiB; request 1' \
  "the README's second lines"
if command -v socat >/dev/null; then
  out=$(printf 'counter get\n' | socat -t5 - UNIX-CONNECT:"$sock")
  same "$out" "OK 2" "socat"
fi
if nc -h 2>&1 | grep -Eq '[[:space:]]-N[[:space:]]'; then
  out=$(printf 'counter get\n' | nc -N -U "$sock")
  same "$out" "OK 2" "nc -N"
fi

# every line gets one reply: empty lines, NUL, unknown tenants, errors, the
# broken tenant; the client waits for them all (it used to hang here)
out=$(printf '\ncounter get\n\000x\nnobody x\ncounter bogus\nbroken x\ncounter get' |
      timeout 20 "$VMC_LUA" --client "$sock") || fail "--client: status $?"
[ "$(echo "$out" | wc -l)" = 7 ] || fail "7 lines, 7 replies: $out"
echo "$out" | sed -n 1p | grep -q '^ERR empty line' || fail "empty line"
echo "$out" | sed -n 2p | grep -q '^OK 2$' || fail "counter"
echo "$out" | sed -n 3p | grep -q '^ERR byte 0x00 at offset 0' || fail "NUL"
echo "$out" | sed -n 4p | grep -q "^ERR unknown tenant 'nobody'" || fail "unknown tenant"
echo "$out" | sed -n 5p | grep -q '^ERR counter:.*unknown request' || fail "Lua error"
echo "$out" | sed -n 6p | grep -q "^ERR tenant 'broken' failed to load: broken:2:" || fail "broken"
echo "$out" | sed -n 7p | grep -q '^OK 2$' || fail "a last line without LF"

# a slow request after the client's EOF still gets its reply
out=$(printf 'spin 3000000\n' | "$VMC_LUA" --client "$sock")
same "$out" "OK 3000000 iterations (request 3)" "half-close"

# the control socket
stats=$("$VMC_LUA" --control "$sock.ctl" stats)
echo "$stats" | grep -Eq '^counter +ready +[0-9]+ +1 ' || fail "stats: $stats"
echo "$stats" | grep -Eq '^broken +broken ' || fail "stats: broken: $stats"
json=$("$VMC_LUA" --control "$sock.ctl" stats --json)
if command -v python3 >/dev/null; then
  echo "$json" | python3 -c '
import json, sys
d = json.load(sys.stdin)
t = {x["name"]: x for x in d["tenants"]}
assert t["spin"]["budget_kills"] == 1 and t["memhog"]["nomem"] == 1, t
assert t["broken"]["state"] == "broken" and len(d["workers"]) >= 2, d' || fail "stats --json: $json"
fi
printf 'function handle(b) return "fixed " .. b end\n' >"$dir/broken.lua"
out=$("$VMC_LUA" --control "$sock.ctl" reload broken)
same "$out" "OK tenant 'broken' reloaded: a fresh state" "reload"
out=$(printf 'broken now\n' | "$VMC_LUA" --client "$sock")
same "$out" "OK fixed now" "the fixed tenant"
"$VMC_LUA" --control "$sock.ctl" reload nobody >/dev/null && fail "reload of an unknown tenant"

stat=$("$VMCCTL" stat "$name")
for t in counter memhog wordfreq; do
  echo "$stat" | grep -Eq "^ +[0-9]+ $t +idle" || fail "vmcctl stat does not show tenant $t"
done
echo "vmcctl stat shows the tenants: $(echo "$stat" | grep -Eo ' (counter|memhog|wordfreq) ' | tr -d ' ' | tr '\n' ' ')"

kill -TERM $pid
wait $pid || fail "vmc-lua --serve exited with $?"
[ ! -e "$sock" ] && [ ! -e "$sock.ctl" ] || fail "socket left behind"
[ ! -e "/dev/shm/vmc.$name.meta" ] || fail "container left behind"
echo "serve: OK"
