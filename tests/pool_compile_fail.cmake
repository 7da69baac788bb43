# Pool's compile-time rule: sending a lambda with captures to a worker process is a
# compile error with an explanation (tests/compile_fail/pool_capturing_lambda.cpp).
if(NOT MP_COMPILER_CHECKS)
  return()  # release build only (tests/CMakeLists.txt)
endif()
add_test(NAME PoolCompileFail.CapturingLambdaIsRejectedWithAHelpfulMessage
  COMMAND ${CMAKE_CXX_COMPILER} -std=c++20 -fsyntax-only -I${PROJECT_SOURCE_DIR}/include
          ${CMAKE_CURRENT_SOURCE_DIR}/compile_fail/pool_capturing_lambda.cpp)
set_tests_properties(PoolCompileFail.CapturingLambdaIsRejectedWithAHelpfulMessage PROPERTIES
  PASS_REGULAR_EXPRESSION "Pass the captured values as arguments instead")
