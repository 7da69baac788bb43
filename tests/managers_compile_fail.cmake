# A proxy method is described once (mp::Method<"name", Ret(Args...)>) and used by the
# server's table and the client's proxy, so a mismatch between them is a compile error,
# not a decode error at run time: binding a function of another signature, or calling
# with an argument that does not convert, must fail with the descriptor's static_assert.
if(NOT MP_COMPILER_CHECKS)
  return()  # release build only (tests/CMakeLists.txt)
endif()
add_test(NAME ManagersCompileFail.ServerFunctionThatDiffersFromTheDescriptorIsRejected
  COMMAND ${CMAKE_CXX_COMPILER} -std=c++20 -fsyntax-only -I${PROJECT_SOURCE_DIR}/include
          ${CMAKE_CURRENT_SOURCE_DIR}/compile_fail/manager_method_mismatch.cpp)
set_tests_properties(ManagersCompileFail.ServerFunctionThatDiffersFromTheDescriptorIsRejected PROPERTIES
  PASS_REGULAR_EXPRESSION "fn's signature differs from the method descriptor's")
add_test(NAME ManagersCompileFail.ProxyCallWithAnArgumentOfAnotherTypeIsRejected
  COMMAND ${CMAKE_CXX_COMPILER} -std=c++20 -fsyntax-only -I${PROJECT_SOURCE_DIR}/include
          ${CMAKE_CURRENT_SOURCE_DIR}/compile_fail/manager_call_mismatch.cpp)
set_tests_properties(ManagersCompileFail.ProxyCallWithAnArgumentOfAnotherTypeIsRejected PROPERTIES
  PASS_REGULAR_EXPRESSION "an argument does not convert to the parameter type the method descriptor declares")
