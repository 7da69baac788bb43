# Proves that `cpack -G DEB` makes working Debian packages of this (release) build
# (cmake/packaging.cmake): libmpN (the shared library), libmp-dev (headers, libmp.a, the
# libmp.so link, CMake config, mp.pc), and libmp-mpiN/libmp-mpi-dev when built with MPI.
# 1. each package's Depends: dpkg-shlibdeps' libc6/libssl3/libstdc++6 for the shared
#    libraries, the runtime package (= version) and the -dev packages for the -dev ones;
# 2. each package's files; the shared library's SONAME (libmp.so.MAJOR, readelf);
#    no installed file names the build or source tree (the CMake config is relocatable);
# 3. unpacked (dpkg-deb -x) into a scratch root, not installed on the machine:
#    find_package(mp) gives the shared libmp (mp::mp); mp_SHARED_LIBS=OFF the static one;
#    COMPONENTS mpi fails naming libmp-mpi-dev until that package is unpacked too, then works;
#    tests/consumer builds and runs against the shared libmp (LD_LIBRARY_PATH into the root);
# 4. pkg-config: the same program linked with `--libs` (shared libmp) and, fully static,
#    with `-static ... --libs --static`, and run.
# It reuses the built libraries (cpack only installs them): release preset only.
#
# Included by tests/CMakeLists.txt to register the test; the test itself runs this same
# file in script mode (cmake -P), where CMAKE_SCRIPT_MODE_FILE is set.

if(NOT CMAKE_SCRIPT_MODE_FILE)
  find_program(MP_DPKG_DEB dpkg-deb)
  find_program(MP_READELF readelf)
  if(NOT MP_COMPILER_CHECKS OR NOT MP_BUILD_SHARED OR NOT MP_DPKG_DEB OR NOT MP_READELF)
    return()  # the sanitizer builds are not packaged
  endif()
  add_test(NAME Package.DebianPackagesInstallAndBuildTheConsumer
    COMMAND ${CMAKE_COMMAND}
      -DMP_BUILD_DIR=${CMAKE_BINARY_DIR}
      -DMP_SOURCE_DIR=${PROJECT_SOURCE_DIR}
      -DCONSUMER_SRC=${CMAKE_CURRENT_LIST_DIR}/consumer
      -DWORK=${CMAKE_BINARY_DIR}/package-check
      -DGENERATOR=${CMAKE_GENERATOR}
      -DCXX=${CMAKE_CXX_COMPILER}
      -DCPACK=${CMAKE_CPACK_COMMAND}
      -DMP_DPKG_DEB=${MP_DPKG_DEB}
      -DMP_READELF=${MP_READELF}
      -DLIBDIR=${CMAKE_INSTALL_LIBDIR}
      -DMP_VERSION=${PROJECT_VERSION}
      -DMP_SOVERSION=${PROJECT_VERSION_MAJOR}
      -DMP_WITH_MPI=${MP_WITH_MPI}
      -P ${CMAKE_CURRENT_LIST_FILE})
  set_tests_properties(Package.DebianPackagesInstallAndBuildTheConsumer PROPERTIES TIMEOUT 900)
  return()
endif()

set(CHECK_NAME "package check")
include(${CMAKE_CURRENT_LIST_DIR}/helpers/check_steps.cmake)

function(expect_not what text)  # none of ARGN is in text
  foreach(part IN LISTS ARGN)
    string(FIND "${text}" "${part}" at)
    if(NOT at EQUAL -1)
      message(FATAL_ERROR "package check: ${what} has '${part}', and must not:\n${text}")
    endif()
  endforeach()
endfunction()

file(REMOVE_RECURSE ${WORK})
step("cpack -G DEB" ${CPACK} -G DEB --config ${MP_BUILD_DIR}/CPackConfig.cmake -B ${WORK}/debs)

# 1. Metadata
set(lib libmp${MP_SOVERSION})
set(packages ${lib} libmp-dev)
if(MP_WITH_MPI)
  list(APPEND packages libmp-mpi${MP_SOVERSION} libmp-mpi-dev)
endif()
foreach(p IN LISTS packages)
  file(GLOB deb ${WORK}/debs/${p}_${MP_VERSION}_*.deb)
  if(NOT deb)
    file(GLOB made ${WORK}/debs/*.deb)
    message(FATAL_ERROR "package check: cpack made no ${p}_${MP_VERSION}_<arch>.deb, only: ${made}")
  endif()
  set(deb_${p} ${deb})
  step("dpkg-deb -I ${p}" ${MP_DPKG_DEB} -I ${deb})
  set(info_${p} "${step_output}")
  step("dpkg-deb -c ${p}" ${MP_DPKG_DEB} -c ${deb})
  set(files_${p} "${step_output}")
endforeach()
expect("${lib}'s control" "${info_${lib}}" "Package: ${lib}" "Version: ${MP_VERSION}" "Section: libs"
  "libc6 (>=" "libssl3 (>=" "libstdc++6 (>=" "Maintainer: ")
expect("${lib}'s control" "${info_${lib}}" "shlibs" "postinst")  # for dpkg-shlibdeps of its users; ldconfig
step("dpkg-deb -f ${lib} shlibs" sh -c "${MP_DPKG_DEB} --ctrl-tarfile ${deb_${lib}} | tar -xO ./shlibs")
expect("${lib}'s shlibs" "${step_output}" "libmp ${MP_SOVERSION} ${lib} (>= ${MP_VERSION})")
expect("libmp-dev's control" "${info_libmp-dev}" "Package: libmp-dev" "Section: libdevel"
  "Depends: ${lib} (= ${MP_VERSION}), libcereal-dev, libssl-dev")
if(MP_WITH_MPI)
  expect("libmp-mpi${MP_SOVERSION}'s control" "${info_libmp-mpi${MP_SOVERSION}}"
    "${lib} (= ${MP_VERSION})" "libopenmpi3 (>=" "libc6 (>=")
  expect("libmp-mpi-dev's control" "${info_libmp-mpi-dev}"
    "libmp-mpi${MP_SOVERSION} (= ${MP_VERSION})" "libmp-dev (= ${MP_VERSION})" "libopenmpi-dev")
endif()

# 2. Contents
set(so libmp.so.${MP_SOVERSION})
set(real libmp.so.${MP_VERSION})
expect("${lib}'s files" "${files_${lib}}" "./usr/${LIBDIR}/${so} -> ${real}" "./usr/${LIBDIR}/${real}")
expect_not("${lib}'s files" "${files_${lib}}" "include/" ".a\n" "libmp.so ->" "cmake/")
expect("libmp-dev's files" "${files_libmp-dev}" "./usr/include/mp/mp.hpp" "./usr/include/mp/version.hpp"
  "./usr/include/mp/internal/call.hpp" "./usr/${LIBDIR}/libmp.a" "./usr/${LIBDIR}/libmp.so -> ${so}"
  "./usr/${LIBDIR}/cmake/mp/mpConfig.cmake" "./usr/${LIBDIR}/cmake/mp/mpConfigVersion.cmake"
  "./usr/${LIBDIR}/cmake/mp/mpStaticTargets.cmake" "./usr/${LIBDIR}/cmake/mp/mpSharedTargets.cmake"
  "./usr/${LIBDIR}/pkgconfig/mp.pc")
expect_not("libmp-dev's files" "${files_libmp-dev}" "${real}" "mpi")  # the runtime's; mp::mpi's
if(MP_WITH_MPI)
  expect("libmp-mpi${MP_SOVERSION}'s files" "${files_libmp-mpi${MP_SOVERSION}}"
    "./usr/${LIBDIR}/libmp_mpi.so.${MP_SOVERSION} -> libmp_mpi.so.${MP_VERSION}")
  expect("libmp-mpi-dev's files" "${files_libmp-mpi-dev}" "./usr/include/mp/mpi.hpp" "./usr/${LIBDIR}/libmp_mpi.a"
    "./usr/${LIBDIR}/libmp_mpi.so -> libmp_mpi.so.${MP_SOVERSION}"
    "./usr/${LIBDIR}/cmake/mp/mpMpiStaticTargets.cmake" "./usr/${LIBDIR}/cmake/mp/mpMpiSharedTargets.cmake")
endif()

# 3. Unpacked into a scratch root: first libmp without mp::mpi's packages
set(root ${WORK}/root)
step("dpkg-deb -x ${lib}" ${MP_DPKG_DEB} -x ${deb_${lib}} ${root})
step("dpkg-deb -x libmp-dev" ${MP_DPKG_DEB} -x ${deb_libmp-dev} ${root})
set(libdir ${root}/usr/${LIBDIR})
step("readelf -d ${real}" ${MP_READELF} -d ${libdir}/${real})
expect("${real}'s dynamic section" "${step_output}" "Library soname: [${so}]" "[libcrypto.so.3]")
expect_not("${real}'s dynamic section" "${step_output}" "RPATH" "RUNPATH")
file(GLOB_RECURSE installed LIST_DIRECTORIES false ${root}/usr/${LIBDIR}/cmake/* ${root}/usr/${LIBDIR}/pkgconfig/*)
foreach(f IN LISTS installed)
  file(READ ${f} text)
  expect_not("the installed ${f}" "${text}" "${MP_BUILD_DIR}" "${MP_SOURCE_DIR}" "/usr/local")
endforeach()

# One consumer build directory, reconfigured (CMake checks the compiler once).
set(configure ${CMAKE_COMMAND} -S ${CONSUMER_SRC} -B ${WORK}/build -G ${GENERATOR}
  -DCMAKE_PREFIX_PATH=${root}/usr -DCMAKE_CXX_COMPILER=${CXX})
if(MP_WITH_MPI)
  step_fails("configuring tests/consumer with COMPONENTS mpi before libmp-mpi-dev is unpacked"
    "mp at ${root}/usr has mp::mp but not the shared mp::mpi (mpMpiSharedTargets.cmake): install it (Debian package: libmp-mpi-dev)"
    ${configure} -DCONSUMER_WITH_MPI=ON)
  step("dpkg-deb -x libmp-mpi${MP_SOVERSION}" ${MP_DPKG_DEB} -x ${deb_libmp-mpi${MP_SOVERSION}} ${root})
  step("dpkg-deb -x libmp-mpi-dev" ${MP_DPKG_DEB} -x ${deb_libmp-mpi-dev} ${root})
  step("readelf -d libmp_mpi.so.${MP_VERSION}" ${MP_READELF} -d ${libdir}/libmp_mpi.so.${MP_VERSION})
  expect("libmp_mpi.so.${MP_VERSION}'s dynamic section" "${step_output}"
    "Library soname: [libmp_mpi.so.${MP_SOVERSION}]" "[${so}]")
  expect_not("libmp_mpi.so.${MP_VERSION}'s dynamic section" "${step_output}" "${MP_BUILD_DIR}")
  step("configuring tests/consumer with COMPONENTS mpi" ${configure} -DCONSUMER_WITH_MPI=ON)
endif()
step("configuring tests/consumer with mp_SHARED_LIBS=OFF" ${configure} -DCONSUMER_WITH_MPI=OFF -Dmp_SHARED_LIBS=OFF)
expect("find_package(mp) with mp_SHARED_LIBS=OFF" "${step_output}" "consumer: mp::mp is the STATIC libmp")
# The default: the shared libmp, built and run
step("configuring tests/consumer" ${configure} -Ump_SHARED_LIBS)
expect("find_package(mp)" "${step_output}" "consumer: find_package(mp) found version ${MP_VERSION}"
  "consumer: mp::mp is the SHARED libmp")
step("building tests/consumer" ${CMAKE_COMMAND} --build ${WORK}/build --target consumer)
step("readelf -d consumer" ${MP_READELF} -d ${WORK}/build/consumer)
expect("the consumer's dynamic section" "${step_output}" "Shared library: [${so}]")
set(run_shared ${CMAKE_COMMAND} -E env LD_LIBRARY_PATH=${libdir})
step("running the CMake consumer" ${run_shared} ${WORK}/build/consumer)
expect_program_output("the CMake consumer")

# 4. pkg-config: compiled once, linked with the shared and (fully static) the static libmp
set(ENV{PKG_CONFIG_PATH} ${libdir}/pkgconfig)
step("compiling main.cpp with pkg-config --cflags"
  sh -c "${CXX} -c -o ${WORK}/main.o ${CONSUMER_SRC}/main.cpp $(pkg-config --cflags mp)")
step("linking with pkg-config --libs" sh -c "${CXX} -o ${WORK}/consumer-shared ${WORK}/main.o $(pkg-config --libs mp)")
step("readelf -d consumer-shared" ${MP_READELF} -d ${WORK}/consumer-shared)
expect("the pkg-config consumer's dynamic section" "${step_output}" "Shared library: [${so}]")
step("running the pkg-config consumer" ${run_shared} ${WORK}/consumer-shared)
expect_program_output("the pkg-config consumer")
step("linking with -static and pkg-config --libs --static"
  sh -c "${CXX} -static -o ${WORK}/consumer-static ${WORK}/main.o $(pkg-config --libs --static mp)")
step("readelf -d consumer-static" ${MP_READELF} -d ${WORK}/consumer-static)
expect_not("the static pkg-config consumer's dynamic section" "${step_output}" "NEEDED")
step("running the static pkg-config consumer" ${WORK}/consumer-static)
expect_program_output("the static pkg-config consumer")
message(STATUS "package check: ${packages} install, and tests/consumer builds and runs against them (CMake, pkg-config)")
