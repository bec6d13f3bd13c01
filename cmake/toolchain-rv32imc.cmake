# Cross-compile capheap for RV32IMC (Debian: gcc-riscv64-unknown-elf, picolibc-riscv64-unknown-elf).
#   cmake -S . -B build-rv -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-rv32imc.cmake \
#         -DCAPHEAP_PORT=baremetal -DCMAKE_BUILD_TYPE=MinSizeRel
# Debian's riscv64-unknown-elf-gcc ships no newlib; picolibc provides the C library
# headers (string.h, stdint.h ...) through --specs=picolibc.specs.
# Only the static library is built; tests, bench and examples are off by default.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR riscv32)

set(CMAKE_C_COMPILER riscv64-unknown-elf-gcc)
set(CMAKE_AR riscv64-unknown-elf-ar CACHE FILEPATH "Archiver")
set(CMAKE_RANLIB riscv64-unknown-elf-ranlib CACHE FILEPATH "Ranlib")
# Each function and object in its own section, so that a firmware linked with --gc-sections
# pays only for what it calls (docs/porting.md).
set(CMAKE_C_FLAGS_INIT "-march=rv32imc_zicsr -mabi=ilp32 --specs=picolibc.specs -ffunction-sections -fdata-sections")
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

set(CAPHEAP_PORT baremetal CACHE STRING "Platform port: host or baremetal")
set(CAPHEAP_BUILD_TESTS OFF CACHE BOOL "Build the tests (tests/)")
set(CAPHEAP_BUILD_BENCH OFF CACHE BOOL "Build the benchmarks (bench/)")
set(CAPHEAP_BUILD_EXAMPLES OFF CACHE BOOL "Build the examples (examples/)")
