# Cross-compile capheap for an Arm Cortex-M4 (Debian: gcc-arm-none-eabi, libnewlib-arm-none-eabi).
#   cmake -S . -B build-m4 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-cortex-m4.cmake \
#         -DCAPHEAP_PORT=baremetal -DCMAKE_BUILD_TYPE=MinSizeRel
# Only the static library is built (no OS, no shared libraries); tests, bench and
# examples are host programs and are switched off by default here.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)

set(CMAKE_C_COMPILER arm-none-eabi-gcc)
set(CMAKE_AR arm-none-eabi-ar CACHE FILEPATH "Archiver")
set(CMAKE_RANLIB arm-none-eabi-ranlib CACHE FILEPATH "Ranlib")
# Each function and object in its own section, so that a firmware linked with --gc-sections
# pays only for what it calls (docs/porting.md).
set(CMAKE_C_FLAGS_INIT "-mcpu=cortex-m4 -mthumb -ffunction-sections -fdata-sections")
# No startup code or linker script here: compiler checks build a static library.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

set(CAPHEAP_PORT baremetal CACHE STRING "Platform port: host or baremetal")
set(CAPHEAP_BUILD_TESTS OFF CACHE BOOL "Build the tests (tests/)")
set(CAPHEAP_BUILD_BENCH OFF CACHE BOOL "Build the benchmarks (bench/)")
set(CAPHEAP_BUILD_EXAMPLES OFF CACHE BOOL "Build the examples (examples/)")
