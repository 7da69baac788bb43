# Proves that mp installs as a usable package: `cmake --install` this build into a
# temporary prefix, then build tests/consumer/ (which sets no C++ standard) against it:
# 1. find_package(mp) + mp::mp with MPI and fmt made unfindable (mp::mp needs neither);
# 2. find_package(mp COMPONENTS mpi) + mp::mpi, when mp was built with MPI; asking for it
#    with MPI unfindable fails naming MPI;
# 3. pkg-config, with exactly the README's command shape; libcrypto stays private;
# 4. the version agrees everywhere: <mp/version.hpp>, find_package, pkg-config, project();
# 5. an mp built without MPI (its installed config, simulated) rejects COMPONENTS mpi clearly.
#
# Included by tests/CMakeLists.txt to register the test; the test itself runs this same
# file in script mode (cmake -P), where CMAKE_SCRIPT_MODE_FILE is set.

if(NOT CMAKE_SCRIPT_MODE_FILE)
  if(NOT MP_COMPILER_CHECKS)
    return()  # release build only (tests/CMakeLists.txt)
  endif()
  add_test(NAME Consumer.InstalledPackageWorksWithCMakeAndPkgConfig
    COMMAND ${CMAKE_COMMAND}
      -DMP_BUILD_DIR=${CMAKE_BINARY_DIR}
      -DCONSUMER_SRC=${CMAKE_CURRENT_LIST_DIR}/consumer
      -DWORK=${CMAKE_BINARY_DIR}/consumer-check
      -DGENERATOR=${CMAKE_GENERATOR}
      -DCXX=${CMAKE_CXX_COMPILER}
      "-DCXX_FLAGS=${CMAKE_CXX_FLAGS}"
      -DBUILD_TYPE=${CMAKE_BUILD_TYPE}
      -DMP_VERSION=${PROJECT_VERSION}
      -P ${CMAKE_CURRENT_LIST_FILE})
  set_tests_properties(Consumer.InstalledPackageWorksWithCMakeAndPkgConfig PROPERTIES TIMEOUT 900)
  return()
endif()

set(CHECK_NAME "consumer check")
include(${CMAKE_CURRENT_LIST_DIR}/helpers/check_steps.cmake)

file(REMOVE_RECURSE ${WORK})
set(prefix ${WORK}/prefix)
step("cmake --install" ${CMAKE_COMMAND} --install ${MP_BUILD_DIR} --prefix ${prefix})
# A machine without MPI, as CMake sees it: a FindMPI module that finds nothing.
file(WRITE ${WORK}/no-mpi/FindMPI.cmake "set(MPI_FOUND FALSE)  # tests/consumer.cmake: no MPI here\n")
set(no_mpi -DCMAKE_MODULE_PATH=${WORK}/no-mpi)
set(configure ${CMAKE_COMMAND} -S ${CONSUMER_SRC} -G ${GENERATOR} -DCMAKE_PREFIX_PATH=${prefix}
  -DCMAKE_CXX_COMPILER=${CXX} "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}" -DCMAKE_BUILD_TYPE=${BUILD_TYPE})

# 1. find_package(mp) + target_link_libraries(mp::mp): needs neither MPI nor fmt
step("configuring tests/consumer with MPI and fmt unfindable" ${configure} -B ${WORK}/build
  ${no_mpi} -DCMAKE_DISABLE_FIND_PACKAGE_fmt=ON)
string(FIND "${step_output}" "consumer: find_package(mp) found version ${MP_VERSION}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "consumer check: find_package(mp) did not find version ${MP_VERSION}:\n${step_output}")
endif()
step("building tests/consumer" ${CMAKE_COMMAND} --build ${WORK}/build)
step("running the CMake consumer" ${WORK}/build/consumer)
expect_program_output("the CMake consumer")

# 2. find_package(mp COMPONENTS mpi) + mp::mpi
file(GLOB mpi_targets ${prefix}/*/cmake/mp/mpMpi*Targets.cmake)
if(mpi_targets)
  step("configuring tests/consumer with COMPONENTS mpi" ${configure} -B ${WORK}/build-mpi -DCONSUMER_WITH_MPI=ON)
  step("building tests/consumer with mp::mpi" ${CMAKE_COMMAND} --build ${WORK}/build-mpi)
  step_fails("configuring tests/consumer with COMPONENTS mpi and MPI unfindable" "dependency MPI could not be found"
    ${configure} -B ${WORK}/build-mpi-hidden -DCONSUMER_WITH_MPI=ON ${no_mpi})
endif()

# 3. pkg-config, the way a Makefile would do it: the README's command
file(GLOB_RECURSE pc_files ${prefix}/*/mp.pc)
list(LENGTH pc_files n)
if(NOT n EQUAL 1)
  message(FATAL_ERROR "consumer check: expected one installed mp.pc, found: ${pc_files}")
endif()
get_filename_component(pc_dir ${pc_files} DIRECTORY)
set(ENV{PKG_CONFIG_PATH} ${pc_dir})
step("pkg-config --print-requires mp" pkg-config --print-requires mp)
if(NOT step_output STREQUAL "")  # libcrypto is Requires.private; fmt is not used at all
  message(FATAL_ERROR "consumer check: mp.pc makes its users require: ${step_output}")
endif()
step("pkg-config --modversion mp" pkg-config --modversion mp)
string(STRIP "${step_output}" pc_version)
if(NOT pc_version STREQUAL MP_VERSION)
  message(FATAL_ERROR "consumer check: pkg-config --modversion mp says ${pc_version}, project() says ${MP_VERSION}")
endif()
# README.md, "Using mp in your project": g++ -o app app.cpp $(pkg-config --cflags --libs --static mp)
step("compiling main.cpp with the README's pkg-config command"
  sh -c "${CXX} ${CXX_FLAGS} -o ${WORK}/consumer-pkgconfig ${CONSUMER_SRC}/main.cpp $(pkg-config --cflags --libs --static mp)")
get_filename_component(libdir ${pc_dir} DIRECTORY)  # for a shared libmp in this scratch prefix
step("running the pkg-config consumer" ${CMAKE_COMMAND} -E env LD_LIBRARY_PATH=${libdir} ${WORK}/consumer-pkgconfig)
expect_program_output("the pkg-config consumer")

# 5. An mp built with MP_WITH_MPI=OFF installs a config whose MP_WITH_MPI is OFF and no
#    mpMpi*Targets.cmake; rebuilding mp for that is costly, so edit this install to match.
file(GLOB config ${prefix}/*/cmake/mp/mpConfig.cmake)
file(READ ${config} text)
string(REGEX REPLACE "set\\(_mp_built_with_mpi \"[^\"]*\"\\)" "set(_mp_built_with_mpi \"OFF\")" edited "${text}")
if(edited STREQUAL text)
  message(FATAL_ERROR "consumer check: ${config} does not set _mp_built_with_mpi")
endif()
file(WRITE ${config} "${edited}")
file(GLOB mpi_files ${prefix}/*/cmake/mp/mpMpi*Targets*.cmake)
if(mpi_files)
  file(REMOVE ${mpi_files})
endif()
step_fails("configuring tests/consumer with COMPONENTS mpi against an mp built without MPI"
  "was built without MPI (MP_WITH_MPI=OFF), so it has no mp::mpi"
  ${configure} -B ${WORK}/build-no-mpi -DCONSUMER_WITH_MPI=ON)
message(STATUS "consumer check: installed package works with find_package (with and without mpi) and pkg-config")
