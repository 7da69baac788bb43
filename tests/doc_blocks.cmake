# Every ```cpp block of README.md and docs/*.md compiles, with GCC and with Clang 14 (anything
# users compile must build with both): tests/doc_blocks.py makes all blocks one translation
# unit per compiler, and a failure names the Markdown file and line of the block.
# Only the release preset turns it on: the sanitizer builds would compile the same text again.
option(MP_CHECK_DOC_BLOCKS "Test that the C++ blocks of README.md and docs/*.md compile with g++ and clang++-14" OFF)
if(NOT MP_CHECK_DOC_BLOCKS)
  return()
endif()
find_package(Python3 REQUIRED COMPONENTS Interpreter)
find_program(MP_DOC_GXX NAMES g++-12 g++)
find_program(MP_DOC_CLANGXX NAMES clang++-14)  # Debian 12's clang, which scripts/setup installs
if(NOT MP_DOC_GXX OR NOT MP_DOC_CLANGXX)
  message(FATAL_ERROR "MP_CHECK_DOC_BLOCKS (on in the release preset) compiles the docs' C++ blocks with "
    "g++ and clang++-14, and one of them is missing: run ./scripts/setup, or configure with -DMP_CHECK_DOC_BLOCKS=OFF")
endif()
function(mp_doc_blocks_test name compiler)
  add_test(NAME DocBlocks.CompileWith${name}
    COMMAND Python3::Interpreter ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/doc_blocks.py
      --root ${PROJECT_SOURCE_DIR} --cxx ${compiler}
      -I ${PROJECT_SOURCE_DIR}/include -I ${PROJECT_BINARY_DIR}/include --iquote ${PROJECT_SOURCE_DIR}/bench)
endfunction()
mp_doc_blocks_test(GCC ${MP_DOC_GXX})
mp_doc_blocks_test(Clang14 ${MP_DOC_CLANGXX})
