#!/usr/bin/env bash
# vmc-lua --serve end to end: serve the sample tenants on a socket, talk to
# it with --client, check that `vmcctl stat` shows the tenants as VMs of
# the same names, stop it with SIGTERM, and check that it cleaned up.
#   VMC_LUA=path/to/vmc-lua VMCCTL=path/to/vmcctl VMC_LUA_TENANTS=dir bash test_serve.sh
set -euo pipefail
: "${VMC_LUA:?set VMC_LUA}" "${VMCCTL:?set VMCCTL}" "${VMC_LUA_TENANTS:?set VMC_LUA_TENANTS}"
name="vmclua-serve-$$"
sock="/tmp/$name.sock"
log="/tmp/$name.log"
fail() { echo "FAIL: $*" >&2; cat "$log" >&2 || true; exit 1; }

"$VMC_LUA" --serve "$sock" --tenants "$VMC_LUA_TENANTS" --workers 2 --pool 64M --name "$name" 2>"$log" &
pid=$!
trap 'kill -9 $pid 2>/dev/null || true; "$VMCCTL" destroy "$name" >/dev/null 2>&1 || true; rm -f "$sock" "$log"' EXIT
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
[ -S "$sock" ] || fail "no socket"

out=$(printf 'counter incr\ncounter incr\ncounter get\nmemhog 100000\nmemhog 64\nnobody x\nwordfreq a b a\ncounter bogus\n' |
      "$VMC_LUA" --client "$sock")
echo "$out"
expected=$'OK 1\nOK 2\nOK 2'
[ "$(echo "$out" | head -3)" = "$expected" ] || fail "counter replies"
echo "$out" | sed -n 4p | grep -q '^ERR not enough memory$' || fail "memhog over its limit"
echo "$out" | sed -n 5p | grep -q '^OK held 64 KiB' || fail "memhog recovers"
echo "$out" | sed -n 6p | grep -q "^ERR unknown tenant 'nobody'" || fail "unknown tenant"
echo "$out" | sed -n 7p | grep -q '^OK 3 words, 2 distinct; top a=2 b=1' || fail "wordfreq"
echo "$out" | sed -n 8p | grep -q '^ERR counter:.*unknown request' || fail "Lua error"

stat=$("$VMCCTL" stat "$name")
for t in counter memhog wordfreq; do
  echo "$stat" | grep -Eq "^ +[0-9]+ $t +idle" || fail "vmcctl stat does not show tenant $t"
done
echo "vmcctl stat shows the tenants: $(echo "$stat" | grep -Eo ' (counter|memhog|wordfreq) ' | tr -d ' ' | tr '\n' ' ')"

kill -TERM $pid
wait $pid || fail "vmc-lua --serve exited with $?"
[ ! -e "$sock" ] || fail "socket left behind"
[ ! -e "/dev/shm/vmc.$name.meta" ] || fail "container left behind"
echo "serve: OK"
