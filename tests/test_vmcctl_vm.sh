#!/usr/bin/env bash
#
# test_vmcctl_vm.sh - `vmcctl vm`: a container's VMs and their images.  A
# worker (cli_fixture) gives container A two VMs with memory in them and
# leaves; then vm list (table and JSON), hibernate (the image appears in
# vmc/hibernate_dir/A/, list shows its size), the errors (hibernated
# already, not hibernated, no such VM), wake (the image goes), export to a
# file, import into container B made at A's arena base (VMC_ARENA_BASE),
# whose export must be the same bytes, import under another name (--as),
# the name taken, an image from elsewhere (C, another base: the message
# names vmc/arena_base), a truncated image, and usage errors (exit 2).
# Prints "N passed, N failed"; exits non-zero if anything failed.
#
set -u
. "$(dirname "$0")/cli.sh"

A=vmcctl-vm-a-$$ B=vmcctl-vm-b-$$ C=vmcctl-vm-c-$$
cli_names+=("$A" "$B" "$C")
DIR=$(mktemp -d /dev/shm/vmcctl-vm-XXXXXX)
trap 'cli_cleanup; rm -rf -- "$DIR"' EXIT
export VMC_HIBERNATE_DIR=$DIR
IMG=$DIR/t.img IMG2=$DIR/t2.img CUT=$DIR/cut.img

t "create A" 0 "^created $A" create "$A" --size 64M --fund 32M --page-kind 4k
fixture_start "$A" one two && fixture_stop
t "vm list" 0 '^ +[0-9]+ +one +idle +2.0 MiB +8.0 MiB +-$' vm list "$A"
t "vm list two" 0 ' two +idle ' vm list "$A"
t "vm list --json" 0 '"state": "idle"' vm list "$A" --json
if command -v python3 >/dev/null 2>&1; then
	ok "vm list --json is valid JSON" python3 -c '
import json, sys
s = json.load(sys.stdin)
v = {x["name"]: x for x in s["vms"]}
assert v["one"]["committed"] == 2 << 20 and v["one"]["image_bytes"] is None, v' <<<"$out"
fi

t "hibernate" 0 "^hibernated VM one in $A: image of " vm hibernate "$A" one
ok "the image is in hibernate_dir/NAME/" test -n "$(ls "$DIR/$A/"*.img 2>/dev/null)"
t "vm list hibernated" 0 ' one +hibernated +0 B +8.0 MiB +2.0 MiB$' vm list "$A"
t "hibernate again" 1 "hibernated already" vm hibernate "$A" one
t "export a hibernated VM" 0 "^exported VM one of $A to $IMG" vm export "$A" one "$IMG"
t "wake" 0 "^woke VM one in $A: 2.0 MiB committed" vm wake "$A" one
ok "the image is gone" test -z "$(ls "$DIR/$A/"*.img 2>/dev/null)"
t "wake again" 1 "not hibernated" vm wake "$A" one
t "hibernate unknown VM" 1 "no VM named nosuch" vm hibernate "$A" nosuch
t "export an idle VM" 0 "^exported VM one of $A to $IMG2" vm export "$A" one "$IMG2"
ok "idle and hibernated exports are the same bytes" cmp -s "$IMG" "$IMG2"

base=$(VMCCTL_JSON=1 "$VMCCTL" stat "$A" --json | sed -n 's/^  "arena_base": \([0-9]*\),$/\1/p')
ok "A's arena base" test -n "$base"
hex=$(printf '%#x' "$base")
VMC_ARENA_BASE=$hex t "create B at A's base" 0 "^created $B" create "$B" --size 64M --fund 32M \
	--page-kind 4k
t "import into B" 0 "^imported VM one into $B as id [0-9]+: 2.0 MiB committed" \
	vm import "$B" "$IMG"
t "export from B" 0 "" vm export "$B" one "$IMG2"
ok "B's export is A's, byte for byte" cmp -s "$IMG" "$IMG2"
t "import the name again" 1 "exists" vm import "$B" "$IMG"
t "import --as" 0 "^imported VM copy into $B" vm import "$B" "$IMG" --as copy
t "import from stdin" 0 "^imported VM piped into $B" vm import "$B" - --as piped <"$IMG"
t "vm list B" 0 ' copy +idle +2.0 MiB' vm list "$B"
head -c 1000 "$IMG" >"$CUT"
t "import a truncated image" 1 "truncated" vm import "$B" "$CUT" --as cut
t "import a missing file" 1 "cannot open" vm import "$B" "$DIR/nosuch.img"

t "create C elsewhere" 0 "^created $C" create "$C" --size 64M --fund 32M --page-kind 4k
t "import into another base" 1 "vmc/arena_base=$hex" vm import "$C" "$IMG"

t "vm without action" 2 "missing ACTION" vm
t "vm unknown action" 2 "unknown action 'frob'" vm frob
t "vm hibernate one argument" 2 "^usage: vmcctl vm hibernate NAME VM" vm hibernate "$A"
t "vm --help" 0 "^example:" vm --help
for a in list hibernate wake export import; do
	t "vm $a --help" 0 "^example:" vm "$a" --help
done
finish
