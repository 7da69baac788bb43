# mp::Queue<T> of a type the codec cannot carry is a compile-time error with a message that
# says what to do, not a runtime surprise. Compiling tests/queue_untransferable.cpp must fail
# with mp::Queue's static_assert text.
if(NOT MP_COMPILER_CHECKS)
  return()  # release build only (tests/CMakeLists.txt)
endif()
add_test(NAME QueueRejectsUntransferableTypeAtCompileTime
  COMMAND ${CMAKE_CXX_COMPILER} -std=c++20 -fsyntax-only -I${PROJECT_SOURCE_DIR}/include
          ${CMAKE_CURRENT_SOURCE_DIR}/queue_untransferable.cpp)
set_tests_properties(QueueRejectsUntransferableTypeAtCompileTime PROPERTIES
  PASS_REGULAR_EXPRESSION "mp::Queue<T>: T cannot be sent between processes")
