#!/usr/bin/env bash
# Install what vmc needs to build everything on Debian: a C toolchain,
# cmake, pkg-config and liblua5.4-dev (for vmc-lua).  As root it installs
# what is missing; otherwise it prints the exact command and fails.
set -euo pipefail
need=()
for tool in cmake:cmake gcc:gcc clang:clang make:make pkg-config:pkg-config python3:python3; do
  command -v "${tool%%:*}" >/dev/null || need+=("${tool##*:}")
done
[ -e /usr/include/stdio.h ] || need+=(libc6-dev)
[ -e /usr/include/lua5.4/lua.h ] || need+=(liblua5.4-dev)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "deps: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  echo "deps: installing ${need[*]} with sudo"
  sudo apt-get update -qq
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
else
  echo "deps: missing ${need[*]}: run  sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
