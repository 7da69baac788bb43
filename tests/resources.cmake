# Suite-wide resource check: no shared-memory segment named by mp ("mp-*") may survive the
# suite. The listing is taken before any test runs and compared after all have ended (every
# discovered test requires the mp_suite fixture); the resource tracker removes segments of
# crashed creators asynchronously, so the check waits up to 30 s for it before failing.
set(MP_SHM_BASELINE ${CMAKE_CURRENT_BINARY_DIR}/shm_baseline.txt)
add_test(NAME suite.shm_baseline
  COMMAND sh -c "ls /dev/shm | grep '^mp-' > '${MP_SHM_BASELINE}' || true")
set_tests_properties(suite.shm_baseline PROPERTIES FIXTURES_SETUP mp_suite)
add_test(NAME suite.no_leaked_shm
  COMMAND sh -c "for i in $(seq 300); do leaked=$(ls /dev/shm | grep '^mp-' | grep -vxF -f '${MP_SHM_BASELINE}'); [ -z \"$leaked\" ] && exit 0; sleep 0.1; done; echo \"leaked /dev/shm segments: $leaked\"; exit 1")
set_tests_properties(suite.no_leaked_shm PROPERTIES FIXTURES_CLEANUP mp_suite)
