# mp::mpi's tests: tests/mpi/mpi_pool_test.cpp is one gtest program run under mpirun with 3
# ranks (rank 0 runs the tests, ranks 1 and 2 serve). Registered only when mp_mpi is built
# (MP_WITH_MPI). Included by tests/CMakeLists.txt.
#
# Sanitizers (these settings apply to these tests only):
# - ASan: Open MPI's own allocations that it never frees at MPI_Finalize (many in its
#   dlopen'ed, since unloaded, components) make LeakSanitizer fail every run, so
#   detect_leaks=0; ASan's other checks and UBSan stay on. (No leak report names mp code.)
# - TSan: tests/mpi/tsan.supp suppresses a lock-order report inside Open MPI's TCP
#   transport and the exception_ptr false positive explained there.
if(NOT TARGET mp_mpi)
  return()
endif()

add_executable(mpi_pool_test ${CMAKE_CURRENT_LIST_DIR}/mpi/mpi_pool_test.cpp)
target_link_libraries(mpi_pool_test PRIVATE mp::mpi GTest::gtest)
target_compile_options(mpi_pool_test PRIVATE -Wall -Wextra -Wno-missing-field-initializers)

set(MP_MPIRUN ${MPIEXEC_EXECUTABLE} --oversubscribe --allow-run-as-root)
# Open MPI in a container: no CMA single-copy (ptrace is usually denied), allow more ranks
# than cores, no warning about mp::Pool's fork().
set(MP_MPI_ENV
  OMPI_MCA_btl_vader_single_copy_mechanism=none
  OMPI_MCA_rmaps_base_oversubscribe=1
  OMPI_MCA_mpi_warn_on_fork=0
  OMPI_MCA_mpi_yield_when_idle=1
  "ASAN_OPTIONS=detect_leaks=0:abort_on_error=0"
  "TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=${CMAKE_CURRENT_LIST_DIR}/mpi/tsan.supp")

add_test(NAME MpiPool.AllUnderMpirunWith3Ranks
  COMMAND ${MP_MPIRUN} -n 3 $<TARGET_FILE:mpi_pool_test> --gtest_color=no --gtest_filter=-MpiRankLoss.*:MpiRankZeroLoss.*)
# A rank killed mid-task: Open MPI aborts the job on a rank's death unless recovery is on.
add_test(NAME MpiPool.RankDeathIsWorkerLost.Pidfd
  COMMAND ${MP_MPIRUN} --enable-recovery -n 3 $<TARGET_FILE:mpi_pool_test> --gtest_color=no --gtest_filter=MpiRankLoss.*)
# The same through heartbeats only, as for a rank on another host.
add_test(NAME MpiPool.RankDeathIsWorkerLost.Heartbeat
  COMMAND ${MP_MPIRUN} --enable-recovery -x MP_MPI_NO_PIDFD -x MP_MPI_HEARTBEAT_MS -n 3
          $<TARGET_FILE:mpi_pool_test> --gtest_color=no --gtest_filter=MpiRankLoss.*)
# Rank 0 killed: the serving ranks (same host: they watch its pid) stop, the job ends.
add_test(NAME MpiPool.RankZeroDeathEndsTheJob
  COMMAND ${MP_MPIRUN} --enable-recovery -n 3 $<TARGET_FILE:mpi_pool_test> --gtest_color=no --gtest_filter=MpiRankZeroLoss.*)
set_tests_properties(MpiPool.RankZeroDeathEndsTheJob PROPERTIES TIMEOUT 60 ENVIRONMENT "${MP_MPI_ENV}" LABELS mpi
  PASS_REGULAR_EXPRESSION "rank 0 died; rank [12] stops serving" FAIL_REGULAR_EXPRESSION "Sanitizer|runtime error")
set_tests_properties(MpiPool.AllUnderMpirunWith3Ranks PROPERTIES TIMEOUT 120 ENVIRONMENT "${MP_MPI_ENV}" LABELS mpi)
# Under --enable-recovery mpirun exits with 0 whatever the ranks return: judge by output.
set_tests_properties(MpiPool.RankDeathIsWorkerLost.Pidfd MpiPool.RankDeathIsWorkerLost.Heartbeat PROPERTIES
  TIMEOUT 120 LABELS mpi PASS_REGULAR_EXPRESSION "\\[  PASSED  \\] 1 test" FAIL_REGULAR_EXPRESSION "FAILED|Failure|Sanitizer|runtime error")
set_tests_properties(MpiPool.RankDeathIsWorkerLost.Pidfd PROPERTIES ENVIRONMENT "${MP_MPI_ENV}")
set_tests_properties(MpiPool.RankDeathIsWorkerLost.Heartbeat PROPERTIES
  ENVIRONMENT "${MP_MPI_ENV};MP_MPI_NO_PIDFD=1;MP_MPI_HEARTBEAT_MS=100")

if(TARGET mpi_pool)  # the example (examples/mpi/), run the way the docs show it
  add_test(NAME MpiPool.ExampleRunsUnderMpirun COMMAND ${MP_MPIRUN} -n 3 $<TARGET_FILE:mpi_pool>)
  set_tests_properties(MpiPool.ExampleRunsUnderMpirun PROPERTIES TIMEOUT 120 ENVIRONMENT "${MP_MPI_ENV}" LABELS mpi
    PASS_REGULAR_EXPRESSION "sum of squares 0\\.\\.99 = 328350.*served by ranks 1 2.*ValueError: no negative numbers.*done"
    FAIL_REGULAR_EXPRESSION "Sanitizer|runtime error")
endif()

# What the compiler rejects (tests/compile_fail/mpi_*.cpp), with the message it gives.
function(mp_mpi_compile_fail name message)
  if(NOT MP_COMPILER_CHECKS)
    return()  # release build only (tests/CMakeLists.txt)
  endif()
  add_test(NAME MpiCompileFail.${name}
    COMMAND ${CMAKE_CXX_COMPILER} -std=c++20 -fsyntax-only -I${PROJECT_SOURCE_DIR}/include
            ${CMAKE_CURRENT_LIST_DIR}/compile_fail/mpi_${name}.cpp)
  set_tests_properties(MpiCompileFail.${name} PROPERTIES PASS_REGULAR_EXPRESSION "${message}" LABELS mpi)
endfunction()
mp_mpi_compile_fail(unregistered_lambda "is not registered: add MP_REMOTE")
mp_mpi_compile_fail(capturing_lambda "pass the captured values as arguments")
