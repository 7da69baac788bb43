# Steps of the script-mode checks that build tests/consumer against an installed mp
# (tests/consumer.cmake: `cmake --install`; tests/package.cmake: the Debian packages).
# The including script sets CHECK_NAME ("consumer check", "package check") for messages.

# Runs ARGN; fails the check unless it succeeds. Its stdout is left in step_output.
function(step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${CHECK_NAME}: ${what} failed (${rc})\n${out}\n${err}")
  endif()
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

# Each of ARGN is in text (runs of spaces and newlines count as one space: CMake wraps its
# messages).
function(expect what text)
  string(REGEX REPLACE "[ \n]+" " " flat "${text}")
  foreach(part IN LISTS ARGN)
    string(FIND "${flat}" "${part}" at)
    if(at EQUAL -1)
      message(FATAL_ERROR "${CHECK_NAME}: ${what} does not have '${part}':\n${text}")
    endif()
  endforeach()
endfunction()

# A step that must fail, saying `reason`.
function(step_fails what reason)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(rc EQUAL 0)
    message(FATAL_ERROR "${CHECK_NAME}: ${what} succeeded, but it must fail\n${out}\n${err}")
  endif()
  expect("the failure of ${what}" "${out} ${err}" "${reason}")
endfunction()

# The last step's output is tests/consumer's, line by line as written; its version line is
# MP_VERSION_STRING (MAJOR.MINOR.PATCH), which must be project()'s version.
function(expect_program_output what)
  foreach(line "consumer: mp version ${MP_VERSION} (${MP_VERSION})" "consumer: main holds the lock"
               "consumer: child 1 holds the lock" "consumer: child exitcode 0"
               "consumer: authkey challenge answered")
    string(FIND "${step_output}" "${line}" at)
    if(at EQUAL -1)
      message(FATAL_ERROR "${CHECK_NAME}: ${what} did not print '${line}':\n${step_output}")
    endif()
  endforeach()
endfunction()
