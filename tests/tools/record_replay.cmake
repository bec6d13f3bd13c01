# record_replay.cmake - a trace recorded through the allocation hooks replays to the same heaps.
#
#   cmake -DRECORDER=<record_trace> -DTOOL=<capheap> -DTRACE=<file to write> -P record_replay.cmake
#
# record_trace runs its workload on the simulated ESP32-S3 with 2 MiB PSRAM, writing the trace
# from its hooks, and prints the heaps' state at the end. `capheap replay esp32s3 TRACE --psram 2M`
# must then read every line (no trace error), serve every call (the hooks see no failed call, so
# a recorded trace has none), end with the same blocks live and the same free bytes per capability.
foreach(var RECORDER TOOL TRACE)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "record_replay.cmake: ${var} not set")
  endif()
endforeach()
execute_process(COMMAND "${RECORDER}" "${TRACE}" OUTPUT_VARIABLE rec RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "record_trace failed (${rc}):\n${rec}")
endif()
foreach(key INTERNAL DMA SPIRAM)
  if(NOT rec MATCHES "${key} free ([0-9]+)")
    message(FATAL_ERROR "record_trace printed no '${key} free':\n${rec}")
  endif()
  set(free_${key} "${CMAKE_MATCH_1}")
endforeach()
string(REGEX MATCH "live ([0-9]+)" _ "${rec}")
set(live "${CMAKE_MATCH_1}")

execute_process(COMMAND "${TOOL}" replay esp32s3 "${TRACE}" --psram 2M
                OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
set(expect "at the end: ${live} blocks live" "every allocation was served")
set(want_rc 0)
# the caps table's row: total, free, min free, largest
foreach(key INTERNAL DMA SPIRAM)
  list(APPEND expect "\n  ${key} +[0-9]+ +${free_${key}} ")
endforeach()
set(problems "")
if(NOT rc EQUAL want_rc)
  string(APPEND problems "exit status ${rc}, expected ${want_rc}\n")
endif()
foreach(re IN LISTS expect)
  if(NOT out MATCHES "${re}")
    string(APPEND problems "missing: ${re}\n")
  endif()
endforeach()
if(NOT problems STREQUAL "")
  message(FATAL_ERROR "${problems}--- record_trace\n${rec}--- capheap replay\n${out}--- stderr\n${err}")
endif()
message(STATUS "replayed to the same heaps: ${live} blocks live, free ${free_INTERNAL} / ${free_DMA} / ${free_SPIRAM}")
