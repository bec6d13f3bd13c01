# cmake/fail_test.cmake - a CTest command that fails with a message:
#   cmake -DCAPHEAP_FAIL_MESSAGE="why" -P cmake/fail_test.cmake
# It stands in for tests a configuration could not build (tests/CMakeLists.txt without
# cmocka), so that running ctest there fails and says why rather than passing on what is left.
message(FATAL_ERROR "${CAPHEAP_FAIL_MESSAGE}")
