# Debian packages from this build: `cpack -G DEB` in the build directory (README:
# "Debian packages"). One package per install component, as Debian splits a library:
#   libmpN         runtime      libmp.so.N, libmp.so.N.x.y (N = SONAME version)
#   libmp-dev      dev          headers, libmp.a, libmp.so, CMake config, mp.pc
#   libmp-mpiN     mpi_runtime  libmp_mpi.so.N...        (when built with MP_WITH_MPI)
#   libmp-mpi-dev  mpi_dev      <mp/mpi.hpp>, libmp_mpi.a, libmp_mpi.so, its CMake targets
# mp::mpi is its own pair of packages because it brings Open MPI: libmp-dev users get none.
# The runtime packages' Depends come from dpkg-shlibdeps (libc6, libssl3, libstdc++6, ...);
# the -dev packages depend on their runtime package (= this version) and on the -dev
# packages their headers, static libraries and CMake config need.

set(MP_PACKAGE_CONTACT "mp maintainers <maintainers@mp.invalid>" CACHE STRING "Maintainer field of the Debian packages")
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME mp)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "${MP_PACKAGE_CONTACT}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # libmp-dev_0.1.0_amd64.deb
set(CPACK_DEBIAN_ENABLE_COMPONENT_DEPENDS ON)  # CPACK_COMPONENT_<C>_DEPENDS -> "pkg (= version)"
set(CPACK_DEBIAN_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS ${PROJECT_BINARY_DIR})  # libmp.so.N, for libmp_mpi's
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)  # DEBIAN/shlibs of the runtime packages, for their users
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY ">=")  # "libmp 0 libmp0 (>= 0.1.0)"

set(CPACK_COMPONENTS_ALL dev)
if(MP_BUILD_SHARED)
  list(APPEND CPACK_COMPONENTS_ALL runtime)
  set(CPACK_COMPONENT_DEV_DEPENDS runtime)
endif()
set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME libmp${PROJECT_VERSION_MAJOR})
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SHLIBDEPS ON)
set(CPACK_COMPONENT_RUNTIME_DESCRIPTION "${PROJECT_DESCRIPTION} (shared library)")
set(CPACK_DEBIAN_DEV_PACKAGE_NAME libmp-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "libcereal-dev, libssl-dev")  # headers include cereal; libmp.a and mp.pc need libcrypto
set(CPACK_COMPONENT_DEV_DESCRIPTION "${PROJECT_DESCRIPTION} (headers, static and shared library, CMake and pkg-config files)")

if(MP_WITH_MPI)
  list(APPEND CPACK_COMPONENTS_ALL mpi_dev)
  set(CPACK_COMPONENT_MPI_DEV_DEPENDS dev)
  if(MP_BUILD_SHARED)
    list(APPEND CPACK_COMPONENTS_ALL mpi_runtime)
    set(CPACK_COMPONENT_MPI_RUNTIME_DEPENDS runtime)
    list(APPEND CPACK_COMPONENT_MPI_DEV_DEPENDS mpi_runtime)
  endif()
  set(CPACK_DEBIAN_MPI_RUNTIME_PACKAGE_NAME libmp-mpi${PROJECT_VERSION_MAJOR})
  set(CPACK_DEBIAN_MPI_RUNTIME_PACKAGE_SECTION libs)
  set(CPACK_DEBIAN_MPI_RUNTIME_PACKAGE_SHLIBDEPS ON)
  set(CPACK_COMPONENT_MPI_RUNTIME_DESCRIPTION "mp::mpi, mp's Pool over the ranks of an MPI job (shared library)")
  set(CPACK_DEBIAN_MPI_DEV_PACKAGE_NAME libmp-mpi-dev)
  set(CPACK_DEBIAN_MPI_DEV_PACKAGE_DEPENDS "libopenmpi-dev")  # find_package(mp COMPONENTS mpi) finds MPI
  set(CPACK_COMPONENT_MPI_DEV_DESCRIPTION "mp::mpi, mp's Pool over the ranks of an MPI job (header, libraries, CMake files)")
endif()
include(CPack)
