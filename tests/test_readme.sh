#!/usr/bin/env bash
#
# test_readme.sh SRCDIR - README.md shows a program (its "example" block)
# that examples/hello/hello.c is, after hello.c's opening comment, line for
# line; the example test builds and runs hello.c, and CI builds it again
# from the README's own block against an installed vmc, so the README
# never shows code that does not work.  Prints "N passed, N failed".
#
set -u
src=${1:?usage: test_readme.sh SRCDIR}
. "$src/tests/check.sh"

shown=$(bash "$src/tests/readme_block.sh" example "$src/README.md")
built=$(awk 'past; /^ \*\/$/ { past = 1 }' "$src/examples/hello/hello.c")
ok "README.md shows a program" test -n "$shown"
if ! ok "README.md's example is examples/hello/hello.c" test "$shown" = "$built"; then
	report "$(diff <(printf '%s\n' "$shown") <(printf '%s\n' "$built"))"
fi
finish
