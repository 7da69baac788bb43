# Replays the committed fuzz corpus (tests/fuzz/corpus/<name>/) through each fuzz target in
# the ordinary builds, so release/asan-ubsan/tsan runs catch regressions on known inputs
# without needing clang. The fuzzing itself runs in scripts/test.d/30-fuzz (`fuzz` preset).
file(GLOB MP_FUZZ_TARGETS CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/*_fuzz.cpp)
foreach(src ${MP_FUZZ_TARGETS})
  get_filename_component(name ${src} NAME_WE)
  string(REGEX REPLACE "_fuzz$" "" corpus ${name})
  add_executable(${name}_replay ${src} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/replay_main.cpp)
  target_link_libraries(${name}_replay PRIVATE mp::mp)
  target_include_directories(${name}_replay PRIVATE ${PROJECT_SOURCE_DIR}/src)
  if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${corpus})
    add_test(NAME fuzz_corpus.${corpus} COMMAND ${name}_replay ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${corpus})
    set_tests_properties(fuzz_corpus.${corpus} PROPERTIES TIMEOUT 300)
  endif()
endforeach()
