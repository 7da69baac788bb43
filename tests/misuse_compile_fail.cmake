# Misusing a call is a compile error whose FIRST diagnostic is a static_assert naming the
# call and saying what to write instead (issue 21): the ten likeliest mistakes of code
# ported from Python. One -fsyntax-only compile each (compile_fail/first_error.cmake),
# about 3 s; in the release preset only: the sanitizer builds use the same compiler on the
# same headers (their flags do not reach these compiles), so they would repeat the result.
if(NOT MP_COMPILER_CHECKS)
  return()  # release build only (tests/CMakeLists.txt)
endif()
set(MP_MISUSE_CASES
  "pool_apply_async_callback_without_args|pool.apply_async(f, args...): f cannot be called with these arguments"
  "pool_apply_argument_mismatch|pool.apply(f, args...): f cannot be called with these arguments"
  "pool_map_two_parameters|pool.map(f, items): f must take one item as its only argument"
  "pool_starmap_not_tuples|pool.starmap(f, items): each item must be a std::tuple, std::pair or std::array"
  "pool_map_not_a_range|pool.map(f, items): items must be a range"
  "executor_capturing_lambda|mp::Pool / mp::ProcessPoolExecutor: this callable cannot be sent to a worker process"
  "pool_argument_not_transferable|an argument (or map item) of this type cannot be sent to a worker process"
  "executor_result_not_transferable|the function's result type cannot be sent back from the worker process"
  "process_argument_mismatch|mp::Process(fn, args...): fn cannot be called with these arguments"
  "connection_send_not_transferable|mp::Connection::send(value): this type cannot be sent between processes"
  "codec_struct_field_not_transferable|mp::codec: a field of this struct cannot be sent to another process")
foreach(case ${MP_MISUSE_CASES})
  string(REPLACE "|" ";" parts "${case}")
  list(GET parts 0 name)
  list(GET parts 1 expect)
  add_test(NAME MisuseCompileFail.${name}
    COMMAND ${CMAKE_COMMAND} -DCXX=${CMAKE_CXX_COMPILER} -DINCLUDE=${PROJECT_SOURCE_DIR}/include
            -DSOURCE=${CMAKE_CURRENT_SOURCE_DIR}/compile_fail/${name}.cpp "-DEXPECT=${expect}"
            -P ${CMAKE_CURRENT_SOURCE_DIR}/compile_fail/first_error.cmake)
endforeach()
