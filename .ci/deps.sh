#!/usr/bin/env bash
# Install what vmc needs on Debian, for one purpose:
#   .ci/deps.sh run   what `make run` needs: a C compiler, make, cmake,
#                     pkg-config and liblua5.4-dev (vmc-lua)
#   .ci/deps.sh       (or `all`) everything the project's targets use: the
#                     above, clang (`make fuzz`, CI's clang build) and
#                     python3 (the JSON checks of the tests)
# As root it installs what is missing; otherwise it prints the exact
# command and fails.
set -euo pipefail
what="${1:-all}"
case "$what" in
  run) tools="cc:gcc make:make cmake:cmake pkg-config:pkg-config" ;;
  all) tools="cc:gcc make:make cmake:cmake pkg-config:pkg-config clang:clang python3:python3" ;;
  *) echo "usage: $0 [run|all]" >&2; exit 2 ;;
esac
need=()
for tool in $tools; do
  command -v "${tool%%:*}" >/dev/null || need+=("${tool##*:}")
done
[ -e /usr/include/stdio.h ] || need+=(libc6-dev)
[ -e /usr/include/lua5.4/lua.h ] || need+=(liblua5.4-dev)
if [ ${#need[@]} -eq 0 ]; then
  echo "deps ($what): all there"
  exit 0
fi
if [ "$(id -u)" = 0 ]; then
  echo "deps ($what): installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  echo "deps ($what): installing ${need[*]} with sudo"
  sudo apt-get update -qq
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
else
  echo "deps ($what): missing ${need[*]}: run  sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
