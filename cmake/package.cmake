# The Debian packages (`make deb`, CPack's DEB generator), from a build
# configured with CMAKE_INSTALL_PREFIX=/usr:
#   libvmc      libvmc.so.0 (the runtime library)
#   libvmc-dev  vmc.h, libvmc.so, libvmc.a, vmc.pc and the CMake package
#   vmc-tools   vmcctl
# dpkg-shlibdeps works out what each needs from the system (libc6); the dev
# and tools packages depend on libvmc of the same version; libvmc has a
# shlibs file for packages built on it, and runs ldconfig when installed.
# Each description's first line is the package's summary.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME vmc)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "vmc maintainers <maintainers@users.noreply.r-seed-5e90465d.example>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# install with DESTDIR, so that install-time paths (vmc.pc) say /usr
set(CPACK_SET_DESTDIR ON)
set(CPACK_STRIP_FILES ON)

set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL lib dev tools)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# vmcctl's libvmc.so.0 is not installed anywhere yet: dpkg-shlibdeps finds it here
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS ${CMAKE_BINARY_DIR})
set(CPACK_DEBIAN_ENABLE_COMPONENT_DEPENDS ON)

set(CPACK_DEBIAN_LIB_PACKAGE_NAME libvmc)
set(CPACK_DEBIAN_LIB_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)   # only libvmc has a shared library
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY ">=")
set(CPACK_COMPONENT_LIB_DESCRIPTION
  "VM containers: isolated, shareable heaps for managed runtimes
vmc gives language VMs (JVMs, Lua/JS engines, WebAssembly hosts) isolated,
shareable heaps in one shared memory pool: worker processes attach a VM,
run it and detach it, and no other VM's memory is reachable meanwhile.
This package has the shared library.")

set(CPACK_DEBIAN_DEV_PACKAGE_NAME libvmc-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_COMPONENT_DEV_DEPENDS lib)
set(CPACK_COMPONENT_DEV_DESCRIPTION
  "VM containers: development files
The header vmc.h, the static library, the pkg-config file (vmc.pc) and the
CMake package (find_package(vmc CONFIG), target vmc::vmc) of vmc.")

set(CPACK_DEBIAN_TOOLS_PACKAGE_NAME vmc-tools)
set(CPACK_DEBIAN_TOOLS_PACKAGE_SECTION admin)
set(CPACK_COMPONENT_TOOLS_DEPENDS lib)
set(CPACK_COMPONENT_TOOLS_DESCRIPTION
  "VM containers: administration tool
vmcctl lists, creates, inspects (as text, JSON or Prometheus metrics),
balloons, checks and destroys vmc containers, manages their shared regions
and prepares the host's hugepages.")

include(CPack)
