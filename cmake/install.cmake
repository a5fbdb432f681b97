# Installing vmc: the library (shared and static), its header, vmcctl, and
# what other builds need to find it - a pkg-config file (vmc.pc) and a CMake
# package (find_package(vmc CONFIG) gives vmc::vmc and vmc::vmc_static).
# Everything is relative to the prefix chosen at install time, so
# `cmake --install build --prefix DIR` (`make install PREFIX=DIR`) gives a
# tree that works where it lands.  Components name the Debian packages the
# files go to (package.cmake): lib, dev and tools.
include(CMakePackageConfigHelpers)

# vmcctl links libvmc.so.0 and finds it through an RPATH relative to itself
# ($ORIGIN/../lib, or ../lib/<multiarch> with a /usr prefix on Debian), so an
# installed tree works from any prefix without LD_LIBRARY_PATH.  The Debian
# packages turn it off: /usr/lib/<multiarch> is on the loader's path.
option(VMC_INSTALL_RPATH "installed programs find libvmc relative to themselves" ON)

set_target_properties(vmc_shared PROPERTIES EXPORT_NAME vmc)
set_target_properties(vmc_static PROPERTIES EXPORT_NAME vmc_static)
# the same names for a project that builds vmc as a subdirectory
add_library(vmc::vmc ALIAS vmc_shared)
add_library(vmc::vmc_static ALIAS vmc_static)

install(TARGETS vmc_shared vmc_static EXPORT vmcTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT lib NAMELINK_COMPONENT dev
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)
install(FILES include/vmc.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev)

if(TARGET vmcctl)
  if(VMC_INSTALL_RPATH)
    file(RELATIVE_PATH bin_to_lib ${CMAKE_INSTALL_FULL_BINDIR} ${CMAKE_INSTALL_FULL_LIBDIR})
    set_target_properties(vmcctl PROPERTIES INSTALL_RPATH "$ORIGIN/${bin_to_lib}")
  endif()
  install(TARGETS vmcctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT tools)
endif()

# The CMake package: vmcTargets.cmake locates the files relative to itself.
set(VMC_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/vmc)
install(EXPORT vmcTargets NAMESPACE vmc:: DESTINATION ${VMC_CMAKE_DIR} COMPONENT dev)
configure_package_config_file(cmake/vmcConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/vmcConfig.cmake INSTALL_DESTINATION ${VMC_CMAKE_DIR})
# 0.x: the soname is libvmc.so.0 for every 0.y, so any 0.y satisfies 0.x
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/vmcConfigVersion.cmake
  COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/vmcConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/vmcConfigVersion.cmake
        DESTINATION ${VMC_CMAKE_DIR} COMPONENT dev)

# vmc.pc is written at install time, when the prefix is known.
foreach(dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${dir}}")
    set(VMC_PC_${dir} "${CMAKE_INSTALL_${dir}}")
  else()
    set(VMC_PC_${dir} "\${prefix}/${CMAKE_INSTALL_${dir}}")
  endif()
endforeach()
install(CODE "
  set(VMC_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  set(VMC_PC_LIBDIR [=[${VMC_PC_LIBDIR}]=])
  set(VMC_PC_INCLUDEDIR [=[${VMC_PC_INCLUDEDIR}]=])
  set(PROJECT_VERSION \"${PROJECT_VERSION}\")
  configure_file(\"${CMAKE_CURRENT_SOURCE_DIR}/cmake/vmc.pc.in\"
                 \"${CMAKE_CURRENT_BINARY_DIR}/vmc.pc\" @ONLY)" COMPONENT dev)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/vmc.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)
