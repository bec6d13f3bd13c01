# cmake/check_headers.cmake - every installed header compiles on its own, warning-free,
# in C++ (the headers promise extern "C" use from C++ programs, as ESP-IDF's do).
#
#   cmake -DCXX=<c++ compiler> -DHEADERS=<dir;dir> -DINCLUDES=<dir;dir> [-DFLAGS=<flags>]
#         -P check_headers.cmake
#
# For each *.h directly in the HEADERS directories, a translation unit that includes only
# that header is compiled with -fsyntax-only -Wall -Wextra -Wpedantic -Werror. Run as the
# ctest headers_cxx (tests/CMakeLists.txt). An audit found esp_heap_trace.h warning under
# g++ -Wpedantic; this keeps every header from doing so again.
if(NOT CXX OR NOT HEADERS OR NOT INCLUDES)
  message(FATAL_ERROR "check_headers.cmake: CXX, HEADERS and INCLUDES are required")
endif()
set(_inc "")
foreach(_d IN LISTS INCLUDES)
  list(APPEND _inc "-I${_d}")
endforeach()
separate_arguments(_flags UNIX_COMMAND "${FLAGS}")
set(_failed 0)
set(_count 0)
foreach(_dir IN LISTS HEADERS)
  file(GLOB _headers "${_dir}/*.h")
  foreach(_h IN LISTS _headers)
    math(EXPR _count "${_count} + 1")
    execute_process(
      COMMAND "${CXX}" -x c++ -std=c++11 -fsyntax-only -Wall -Wextra -Wpedantic -Werror ${_flags} ${_inc}
              -include "${_h}" -
      INPUT_FILE /dev/null
      RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _err)
    if(NOT _rc EQUAL 0)
      message("FAILED (C++): ${_h}\n${_out}${_err}")
      math(EXPR _failed "${_failed} + 1")
    endif()
  endforeach()
endforeach()
if(_failed GREATER 0)
  message(FATAL_ERROR "${_failed} of ${_count} headers do not compile warning-free as C++")
endif()
message("all ${_count} headers compile warning-free as C++ (${CXX})")
