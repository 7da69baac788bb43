# Proves that mp installs as a usable package: `cmake --install` this build into a
# temporary prefix, then build tests/consumer/ against it twice, once with
# find_package(mp) and once with `pkg-config --cflags --libs mp`, and run both programs.
#
# Included by tests/CMakeLists.txt to register the test; the test itself runs this same
# file in script mode (cmake -P), where CMAKE_SCRIPT_MODE_FILE is set.

if(NOT CMAKE_SCRIPT_MODE_FILE)
  add_test(NAME Consumer.InstalledPackageWorksWithCMakeAndPkgConfig
    COMMAND ${CMAKE_COMMAND}
      -DMP_BUILD_DIR=${CMAKE_BINARY_DIR}
      -DCONSUMER_SRC=${CMAKE_CURRENT_LIST_DIR}/consumer
      -DWORK=${CMAKE_BINARY_DIR}/consumer-check
      -DGENERATOR=${CMAKE_GENERATOR}
      -DCXX=${CMAKE_CXX_COMPILER}
      "-DCXX_FLAGS=${CMAKE_CXX_FLAGS}"
      -DBUILD_TYPE=${CMAKE_BUILD_TYPE}
      -P ${CMAKE_CURRENT_LIST_FILE})
  set_tests_properties(Consumer.InstalledPackageWorksWithCMakeAndPkgConfig PROPERTIES TIMEOUT 900)
  return()
endif()

function(step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer check: ${what} failed (${rc})\n${out}\n${err}")
  endif()
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

function(expect_output program)
  foreach(line "consumer: main holds the lock" "consumer: child 1 holds the lock" "consumer: child exitcode 0")
    string(FIND "${step_output}" "${line}" at)
    if(at EQUAL -1)
      message(FATAL_ERROR "consumer check: ${program} did not print '${line}':\n${step_output}")
    endif()
  endforeach()
endfunction()

file(REMOVE_RECURSE ${WORK})
set(prefix ${WORK}/prefix)
step("cmake --install" ${CMAKE_COMMAND} --install ${MP_BUILD_DIR} --prefix ${prefix})

# 1. find_package(mp) + target_link_libraries(mp::mp)
step("configuring tests/consumer" ${CMAKE_COMMAND} -S ${CONSUMER_SRC} -B ${WORK}/build -G ${GENERATOR}
  -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_CXX_COMPILER=${CXX} "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}"
  -DCMAKE_BUILD_TYPE=${BUILD_TYPE})
step("building tests/consumer" ${CMAKE_COMMAND} --build ${WORK}/build)
step("running the CMake consumer" ${WORK}/build/consumer)
expect_output("the CMake consumer")

# 2. pkg-config, the way a Makefile would do it
file(GLOB_RECURSE pc_files ${prefix}/*/mp.pc)
list(LENGTH pc_files n)
if(NOT n EQUAL 1)
  message(FATAL_ERROR "consumer check: expected one installed mp.pc, found: ${pc_files}")
endif()
get_filename_component(pc_dir ${pc_files} DIRECTORY)
set(ENV{PKG_CONFIG_PATH} ${pc_dir})
step("pkg-config --cflags --libs mp" pkg-config --cflags --libs mp)
string(STRIP "${step_output}" pc_flags)
separate_arguments(pc_flags UNIX_COMMAND "${pc_flags}")
separate_arguments(extra UNIX_COMMAND "${CXX_FLAGS}")
step("compiling main.cpp with pkg-config's flags"
  ${CXX} ${extra} ${CONSUMER_SRC}/main.cpp ${pc_flags} -o ${WORK}/consumer-pkgconfig)
step("running the pkg-config consumer" ${WORK}/consumer-pkgconfig)
expect_output("the pkg-config consumer")
message(STATUS "consumer check: installed package works with find_package and pkg-config")
