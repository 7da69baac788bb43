# cmake -DCXX=<compiler> -DINCLUDE=<dir> -DSOURCE=<file.cpp> -DEXPECT=<text> -P first_error.cmake
# Compiles SOURCE with -fsyntax-only; passes when compiling fails and the FIRST error the
# compiler reports contains EXPECT (so the static_assert is what the user reads first, not
# a note at the end of a cascade).
execute_process(COMMAND ${CXX} -std=c++20 -fsyntax-only -I${INCLUDE} ${SOURCE}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(rc EQUAL 0)
  message(FATAL_ERROR "${SOURCE} compiled, but it must not")
endif()
string(REGEX MATCH "error: [^\n]*" first "${out}")
string(FIND "${first}" "${EXPECT}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "the first error does not contain \"${EXPECT}\":\n${first}\n\nfull output:\n${out}")
endif()
