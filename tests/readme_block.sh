#!/usr/bin/env bash
#
# readme_block.sh NAME [README]: print the fenced code block of README.md
# (or README) that follows the line `<!-- ci: NAME -->`, without its fences.
# CI and the tests take what the README tells a user to type from there,
# so that what it shows is what runs.  Exits 1 if there is no such block.
#
set -eu
awk -v mark="<!-- ci: $1 -->" '
	$0 == mark { want = 1; next }
	want && /^```/ { if (on) { found = 1; exit } on = 1; next }
	on { print }
	END { exit !found }' "${2:-README.md}"
