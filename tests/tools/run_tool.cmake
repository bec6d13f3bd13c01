# run_tool.cmake - one run of the capheap command-line tool, checked (tests/tools/).
#
#   cmake -DTOOL=<capheap> -DARGS=<words, joined by @@> [-DINPUT=<file for stdin>]
#         -DEXPECT_RC=<exit status> [-DEXPECT=<regexes, joined by @@>]
#         [-DREJECT=<regexes, joined by @@>] -P run_tool.cmake
#
# Passes iff the exit status is EXPECT_RC, every EXPECT regex matches the output
# (stdout and stderr together) and no REJECT regex does. The output is printed on
# failure. @@ separates the words because CMake lists cannot carry ';' through add_test
# and the tool's own capability syntax uses '|'.
foreach(var TOOL ARGS EXPECT_RC)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_tool.cmake: ${var} not set")
  endif()
endforeach()
string(REPLACE "@@" ";" args "${ARGS}")
set(input_args)
if(DEFINED INPUT AND NOT INPUT STREQUAL "")
  set(input_args INPUT_FILE "${INPUT}")
endif()
execute_process(COMMAND "${TOOL}" ${args} ${input_args}
                OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
set(all "${out}${err}")
set(problems "")
if(NOT rc STREQUAL "${EXPECT_RC}")
  string(APPEND problems "exit status ${rc}, expected ${EXPECT_RC}\n")
endif()
if(DEFINED EXPECT AND NOT EXPECT STREQUAL "")
  string(REPLACE "@@" ";" expect "${EXPECT}")
  foreach(re IN LISTS expect)
    if(NOT all MATCHES "${re}")
      string(APPEND problems "missing: ${re}\n")
    endif()
  endforeach()
endif()
if(DEFINED REJECT AND NOT REJECT STREQUAL "")
  string(REPLACE "@@" ";" reject "${REJECT}")
  foreach(re IN LISTS reject)
    if(all MATCHES "${re}")
      string(APPEND problems "present, but must not be: ${re}\n")
    endif()
  endforeach()
endif()
if(NOT problems STREQUAL "")
  message(FATAL_ERROR "capheap ${args}:\n${problems}--- stdout\n${out}--- stderr\n${err}")
endif()
