#!/usr/bin/env bash
#
# consumers.sh prefix|deb - vmc as its users take it: installed, then used
# from outside the tree.  CI runs it from the top of the tree.
#
#   prefix  `make install PREFIX=$HOME/.local`, the README's line as it
#           stands, with HOME a scratch directory: vmc.pc must name that
#           prefix, and the installed vmcctl must run as it is (its RPATH).
#   deb     `make deb`, then each package unpacked (dpkg -x) into a scratch
#           root: three packages (libvmc, libvmc-dev, vmc-tools) whose
#           files all lie under /usr, split as README.md says, with the
#           dependencies dpkg-shlibdeps found (libc6) and libvmc of the same
#           version, a shlibs file, vmc.pc saying /usr and no RPATH.
#
# Then the README's example is built twice outside the tree - its hello.c
# with its pkg-config line, and with its CMakeLists.txt and cmake line -
# and both programs run against the installed libvmc.so.0 (ldd must show
# that one), as does the installed vmcctl.  Prints "N passed, N failed".
#
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:-}
. "$src/tests/check.sh"
case $mode in
prefix|deb) ;;
*) echo "usage: consumers.sh prefix|deb" >&2; exit 2 ;;
esac

scratch=$(mktemp -d /tmp/vmc-consumers.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
export HOME=$scratch VMC_VERBOSE=0
unset LD_LIBRARY_PATH PKG_CONFIG_PATH
version=$(sed -n 's/^project(vmc VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")

readme() {
	bash "$src/tests/readme_block.sh" "$1" "$src/README.md"
}

# run DESCRIPTION DIR LINE: run the shell line LINE in DIR.
run() {
	local desc=$1 dir=$2 line=$3 log
	log=$(cd "$dir" && bash -ec "$line" 2>&1)
	ok "$desc: $line" test $? -eq 0 || report "$(tail -n 30 <<<"$log")"
}

# uses PROGRAM LIB [DIR]: PROGRAM loads LIB as libvmc.so.0 (with DIR as
# LD_LIBRARY_PATH if given).
uses() {
	local found
	found=$(if [ -n "${3:-}" ]; then export LD_LIBRARY_PATH=$3; fi; ldd "$1" |
		awk '$1 == "libvmc.so.0" { print $3 }')
	[ -n "$found" ] && [ "$(readlink -f "$found")" = "$(readlink -f "$2")" ]
}

# consumers VMCCTL LIB PREFIX PC_LINES: the README's example, built with
# the pkg-config lines PC_LINES and with CMake (its cmake line, the prefix
# $HOME/.local read as PREFIX), each run against LIB.
consumers() {
	local vmcctl=$1 lib=$2 prefix=$3 pc=$4 cm
	mkdir -p "$scratch/pc" "$scratch/cmake"
	readme example >"$scratch/pc/hello.c"
	readme example >"$scratch/cmake/hello.c"
	readme cmake >"$scratch/cmake/CMakeLists.txt"
	"$vmcctl" destroy readme-demo >/dev/null 2>&1   # left by a killed run
	run "pkg-config consumer" "$scratch/pc" "$pc"
	ok "pkg-config consumer loads $lib" uses "$scratch/pc/hello" "$lib" "${lib%/*}"
	cm=$(readme cmake-build)
	run "CMake consumer" "$scratch/cmake" "${cm//'$HOME/.local'/$prefix}"
	ok "CMake consumer loads $lib" uses "$scratch/cmake/build/hello" "$lib"
	ok "the consumers removed their container" \
		grep -qx 'no container matches' <(LD_LIBRARY_PATH=${lib%/*} "$vmcctl" list readme-demo)
}

from_prefix() {
	local p=$HOME/.local
	run "install into a prefix" "$src" "$(readme install | grep -F 'PREFIX=$HOME/.local')"
	ok "vmc.pc names the prefix" grep -qx "prefix=$p" "$p/lib/pkgconfig/vmc.pc"
	ok "vmcctl runs from the prefix as it is" \
		test "$("$p/bin/vmcctl" --version)" = "vmcctl $version"
	ok "vmcctl loads the prefix's libvmc" uses "$p/bin/vmcctl" "$p/lib/libvmc.so.0"
	consumers "$p/bin/vmcctl" "$p/lib/libvmc.so.0" "$p" "$(readme pkg-config)"
}

# has DEB FILE...: the package holds exactly these files (and directories).
has() {
	local deb=$1 got want
	shift
	got=$(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { print $6 }' | sed 's|^\./||' | sort)
	want=$(printf '%s\n' "$@" | sort)
	ok "${deb##*/} holds $*" test "$got" = "$want" || report "$got"
}

from_packages() {
	local root=$scratch/root arch lib multi deb=()
	arch=$(dpkg --print-architecture)
	run "build the packages" "$src" "$(readme deb | grep -x 'make deb')"
	for p in libvmc libvmc-dev vmc-tools; do
		deb[${#deb[@]}]=$src/build/deb/${p}_${version}_$arch.deb
		ok "package $p built" test -f "${deb[-1]}"
	done
	ok "three packages, no others" test "$(ls "$src"/build/deb/*.deb | wc -l)" -eq 3
	for d in "${deb[@]}"; do
		[ -f "$d" ] && dpkg -x "$d" "$root"
	done
	ok "everything lies under /usr" test "$(ls -A "$root")" = usr
	lib=$(find "$root/usr/lib" -name libvmc.so.0)
	multi=${lib#"$root"/usr/lib/}
	multi=${multi%libvmc.so.0}
	has "${deb[0]}" "usr/lib/${multi}libvmc.so.0" "usr/lib/${multi}libvmc.so.$version"
	has "${deb[1]}" usr/include/vmc.h "usr/lib/${multi}libvmc.so" "usr/lib/${multi}libvmc.a" \
		"usr/lib/${multi}pkgconfig/vmc.pc" "usr/lib/${multi}cmake/vmc/vmcConfig.cmake" \
		"usr/lib/${multi}cmake/vmc/vmcConfigVersion.cmake" \
		"usr/lib/${multi}cmake/vmc/vmcTargets.cmake" \
		"usr/lib/${multi}cmake/vmc/vmcTargets-release.cmake"
	has "${deb[2]}" usr/bin/vmcctl
	ok "libvmc depends on libc6 (shlibdeps)" \
		grep -q '^libc6 (>= ' <(dpkg-deb -f "${deb[0]}" Depends)
	for d in "${deb[1]}" "${deb[2]}"; do
		ok "${d##*/} depends on libvmc $version" \
			grep -q "libvmc (= $version)" <(dpkg-deb -f "$d" Depends)
	done
	ok "vmc-tools depends on libc6 (shlibdeps)" \
		grep -q 'libc6 (>= ' <(dpkg-deb -f "${deb[2]}" Depends)
	ok "libvmc has a shlibs file" \
		grep -qx "libvmc 0 libvmc (>= $version)" <(dpkg-deb -I "${deb[0]}" shlibs)
	ok "vmc.pc says /usr" grep -qx 'prefix=/usr' "$root/usr/lib/${multi}pkgconfig/vmc.pc"
	ok "vmcctl has no RPATH" test -z "$(readelf -d "$root/usr/bin/vmcctl" | grep -i rpath)"
	ok "the packaged vmcctl runs" test "$(LD_LIBRARY_PATH=${lib%/*} \
		"$root/usr/bin/vmcctl" --version)" = "vmcctl $version"
	# pkg-config and the loader look in the scratch root, not in /usr
	export PKG_CONFIG_SYSROOT_DIR=$root PKG_CONFIG_LIBDIR=$root/usr/lib/${multi}pkgconfig \
	       PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 PKG_CONFIG_ALLOW_SYSTEM_LIBS=1
	consumers "$root/usr/bin/vmcctl" "$lib" "$root/usr" \
		"export LD_LIBRARY_PATH=${lib%/*}; $(readme pkg-config | grep '^cc ')"
}

if [ "$mode" = prefix ]; then
	from_prefix
else
	from_packages
fi
finish
