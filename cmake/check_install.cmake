# cmake/check_install.cmake - the installed package works for a user's project (issue 2:
# "installable, with a capheapConfig.cmake and a pkg-config file").
#
#   cmake -DBUILD_DIR=<capheap build> -DSOURCE_DIR=<tests/install> -DWORK_DIR=<scratch>
#         -DC_COMPILER=<cc> [-DC_FLAGS="<flags>"] -DPOISONING=<NONE|LIGHT|COMPREHENSIVE>
#         -DSHARED=<0|1> [-DPKG_CONFIG=<pkg-config>] [-DC_STANDARD=<99|11>]
#         [-DCXX_COMPILER=<c++>] -P check_install.cmake
#
# Run as the ctest install_consumer (tests/CMakeLists.txt). In order:
#   1. `cmake --install BUILD_DIR --prefix WORK_DIR/prefix`, and the files a user looks for
#      are there (headers, the generated config.h, libcapheap.a, capheapConfig.cmake,
#      capheap.pc; libcapheap.so when SHARED);
#   2. tests/install configured against that prefix alone (CMAKE_PREFIX_PATH): find_package
#      (capheap 0.1) gives capheap::capheap (and capheap::capheap_shared when SHARED) and the
#      build's poisoning mode; consumer_static (and consumer_shared) built and run, and
#      consumer_shared loads libcapheap.so from the prefix; with CXX_COMPILER (the build made
#      capheap_sim_cxx), consumer_sim_cxx too, a C++ program linked with capheap::capheap_sim_cxx;
#   3. with PKG_CONFIG: consumer.c compiled with `pkg-config --cflags --libs capheap` (the
#      shared library when SHARED, else the archive) and with `--static` flags against the
#      archive, and both run.
# C_FLAGS are the build's own (-m32, sanitizers), so the consumer matches the library, and
# the consumer is compiled as the library's C standard, C_STANDARD (strict ISO, -std=c99 or
# -std=c11), so that a C99 build's installed headers are shown to serve a C99 program,
# with -Wall -Wextra -Wpedantic -Werror: the headers must not warn in a user's build.
# Each program prints "capheap consumer: ok" and exits 0 when every call did what the API
# says (tests/install/consumer.c).
foreach(_v BUILD_DIR SOURCE_DIR WORK_DIR C_COMPILER POISONING)
  if(NOT DEFINED ${_v} OR "${${_v}}" STREQUAL "")
    message(FATAL_ERROR "check_install.cmake: ${_v} is required")
  endif()
endforeach()
separate_arguments(_flags UNIX_COMMAND "${C_FLAGS}")
if(C_STANDARD)
  list(APPEND _flags "-std=c${C_STANDARD}")
endif()
list(APPEND _flags -Wall -Wextra -Wpedantic -Werror)
set(_prefix "${WORK_DIR}/prefix")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

# Run a command; on failure stop the test with what it printed.
function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _err)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "install_consumer: ${what} failed (${_rc}):\n${_out}${_err}")
  endif()
  set(run_output "${_out}" PARENT_SCOPE)
endfunction()

# A consumer program: it must run and say ok.
function(run_consumer what exe)
  run("${what}" "${exe}")
  if(NOT run_output MATCHES "capheap consumer: ok")
    message(FATAL_ERROR "install_consumer: ${what} did not say ok:\n${run_output}")
  endif()
  message("${what}: ${run_output}")
endfunction()

# 1. install
run("cmake --install" "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${_prefix}")
file(GLOB_RECURSE _config "${_prefix}/*/capheapConfig.cmake")
file(GLOB_RECURSE _pc "${_prefix}/*/capheap.pc")
file(GLOB_RECURSE _archive "${_prefix}/*/libcapheap.a")
file(GLOB_RECURSE _shared "${_prefix}/*/libcapheap.so")
set(_missing "")
foreach(_h esp_heap_caps.h esp_heap_caps_init.h heap_memory_layout.h multi_heap.h esp_heap_trace.h
           esp_heap_task_info.h capheap/config.h capheap/caps.h capheap/sim.h)
  if(NOT EXISTS "${_prefix}/include/${_h}")
    list(APPEND _missing "include/${_h}")
  endif()
endforeach()
foreach(_f _config _pc _archive)
  if(NOT ${_f})
    list(APPEND _missing "${_f}")
  endif()
endforeach()
if(SHARED AND NOT _shared)
  list(APPEND _missing "libcapheap.so")
endif()
if(_missing)
  message(FATAL_ERROR "install_consumer: not installed: ${_missing}")
endif()
get_filename_component(_libdir "${_archive}" DIRECTORY)

# 2. find_package(capheap)
set(_bin "${WORK_DIR}/consumer")
set(_cxx_args "")
if(CXX_COMPILER)
  set(_cxx_args "-DEXPECT_SIM_CXX=ON" "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}" "-DCMAKE_CXX_FLAGS=${C_FLAGS}")
endif()
run("configuring tests/install with find_package(capheap)"
    "${CMAKE_COMMAND}" -S "${SOURCE_DIR}" -B "${_bin}" "-DCMAKE_PREFIX_PATH=${_prefix}"
    "-DCMAKE_C_COMPILER=${C_COMPILER}" "-DCMAKE_C_FLAGS=${C_FLAGS}"
    "-DEXPECT_POISONING=${POISONING}" "-DEXPECT_SHARED=${SHARED}" "-DC_STANDARD=${C_STANDARD}"
    ${_cxx_args})
run("building tests/install" "${CMAKE_COMMAND}" --build "${_bin}")
run_consumer("find_package, capheap::capheap" "${_bin}/consumer_static")
run_consumer("find_package, capheap::capheap_sim_libc" "${_bin}/consumer_sim_libc")
if(CXX_COMPILER)
  run_consumer("find_package, capheap::capheap_sim_cxx" "${_bin}/consumer_sim_cxx")
endif()
if(SHARED)
  run_consumer("find_package, capheap::capheap_shared" "${_bin}/consumer_shared")
  find_program(_ldd ldd)
  if(_ldd)
    run("ldd consumer_shared" "${_ldd}" "${_bin}/consumer_shared")
    if(NOT run_output MATCHES "libcapheap\\.so[^\n]*=> ${_prefix}/")
      message(FATAL_ERROR "install_consumer: consumer_shared does not load the installed libcapheap.so:\n${run_output}")
    endif()
  endif()
endif()

# 3. pkg-config
if(NOT PKG_CONFIG)
  message("pkg-config not found: the capheap.pc part is skipped (Debian: apt-get install pkg-config)")
  return()
endif()
get_filename_component(_pcdir "${_pc}" DIRECTORY)
set(ENV{PKG_CONFIG_PATH} "${_pcdir}")
run("pkg-config --cflags --libs capheap" "${PKG_CONFIG}" --cflags --libs capheap)
separate_arguments(_pc_flags UNIX_COMMAND "${run_output}")
run("pkg-config --static --libs capheap" "${PKG_CONFIG}" --static --libs capheap)
separate_arguments(_pc_static UNIX_COMMAND "${run_output}")
run("pkg-config --cflags capheap" "${PKG_CONFIG}" --cflags capheap)
separate_arguments(_pc_cflags UNIX_COMMAND "${run_output}")
run("compiling with pkg-config's flags"
    "${C_COMPILER}" ${_flags} "${SOURCE_DIR}/consumer.c" ${_pc_flags} "-Wl,-rpath,${_libdir}"
    -o "${WORK_DIR}/pc_default")
run_consumer("pkg-config capheap" "${WORK_DIR}/pc_default")
run("compiling with pkg-config --static's flags"
    "${C_COMPILER}" ${_flags} "${SOURCE_DIR}/consumer.c" ${_pc_cflags} -Wl,-Bstatic ${_pc_static}
    -Wl,-Bdynamic -o "${WORK_DIR}/pc_static")
run_consumer("pkg-config --static capheap" "${WORK_DIR}/pc_static")
