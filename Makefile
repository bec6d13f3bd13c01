# capheap: a thin wrapper over CMake (the real build is CMakeLists.txt).
#
#   make demo    install cmake and gcc if missing (scripts/deps.sh --demo), build and run
#                examples/demo (boots a simulated ESP32-S3 with 8 MiB PSRAM, allocates like a
#                camera + Wi-Fi firmware, prints heap info and the check)
#   make test    install missing Debian packages (scripts/deps.sh), build, run every test (ctest)
#   make bench   install missing packages (scripts/deps.sh --bench: mimalloc, jemalloc), Release
#                build (-O2 -DNDEBUG) and the benchmark table (bench/run.sh)
#   make size    code size on Cortex-M4 and RV32IMC, per-heap RAM metadata (scripts/size.sh)
#   make target-test   the tests that run on emulated Cortex-M and RV32 cores under QEMU
#                (scripts/deps.sh --ci installs what they need; scripts/target-test.sh)
#   make install PREFIX=/usr/local   Release build (-O2 -DNDEBUG) of the libraries, installed
#   make clean
#
# Variables: BUILD_DIR (default build), BUILD_TYPE (default Debug), CMAKE_ARGS (extra -D...),
# JOBS (default: number of cores), BENCH_ARGS (options for bench/run.sh, e.g. "--runs 1").
# Bench, size, target-test and install builds go to $(BUILD_DIR)-release, $(BUILD_DIR)-size,
# $(BUILD_DIR)-target and $(BUILD_DIR)-install.
#
# demo, build and install need no test framework: without cmocka the tests are left out
# (tests/CMakeLists.txt says so). `make test` installs it first (scripts/deps.sh).

MAKEFLAGS  += --no-print-directory

BUILD_DIR  ?= build
BUILD_TYPE ?= Debug
CMAKE      ?= cmake
CTEST      ?= ctest
CMAKE_ARGS ?=
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
PREFIX     ?= /usr/local
BENCH_DIR  ?= $(BUILD_DIR)-release
SIZE_DIR   ?= $(BUILD_DIR)-size
TARGET_DIR ?= $(BUILD_DIR)-target
INSTALL_DIR ?= $(BUILD_DIR)-install
BENCH_ARGS ?=

.PHONY: all build configure demo test deps bench size target-test install clean

all: build

configure:
	$(CMAKE) -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS)

build: configure
	$(CMAKE) --build $(BUILD_DIR) -j $(JOBS)

# The demo needs only a compiler and cmake: deps.sh --demo installs those (as root) or
# prints the line that would.
demo:
	bash scripts/deps.sh --demo
	$(MAKE) --no-print-directory configure
	$(CMAKE) --build $(BUILD_DIR) -j $(JOBS) --target demo
	$(BUILD_DIR)/examples/demo

deps:
	bash scripts/deps.sh

# `build` configures again after deps.sh: a cmocka installed just now is then found (CMake
# searches cached NOTFOUND results anew). A build without the tests (cmocka still missing)
# has only a failing stand-in test and a few examples; --no-tests=error also fails a build
# directory configured with CAPHEAP_BUILD_TESTS=OFF and no examples.
test: deps
	$(MAKE) --no-print-directory build
	$(CTEST) --test-dir $(BUILD_DIR) --output-on-failure --no-tests=error -j $(JOBS)

bench:
	bash scripts/deps.sh --bench
	$(CMAKE) -S . -B $(BENCH_DIR) -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS_RELEASE="-O2 -DNDEBUG" \
		-DCAPHEAP_POISONING=NONE -DCAPHEAP_BUILD_TESTS=OFF -DCAPHEAP_BUILD_EXAMPLES=OFF \
		-DCAPHEAP_BUILD_BENCH=ON $(CMAKE_ARGS)
	$(CMAKE) --build $(BENCH_DIR) -j $(JOBS)
	@if [ -f bench/run.sh ]; then \
		bash bench/run.sh $(BENCH_ARGS) $(abspath $(BENCH_DIR)); \
	else \
		echo "make bench: bench/run.sh does not exist yet" >&2; exit 1; \
	fi
	@if [ -f bench/preload.sh ]; then bash bench/preload.sh $(abspath $(BENCH_DIR)); fi

size:
	bash scripts/size.sh $(SIZE_DIR)

target-test:
	bash scripts/deps.sh --ci
	JOBS=$(JOBS) bash scripts/target-test.sh $(abspath $(TARGET_DIR))

# What is installed is what programs link: an optimised library (-O2 -DNDEBUG), built in its
# own directory so that it never picks up the Debug build's settings. Only the libraries are
# built (no tests, bench or examples, so no cmocka). The prefix is given at configure time
# as well, so that GNUInstallDirs picks the library directory for it (lib/<multiarch> for /usr).
install:
	$(CMAKE) -S . -B $(INSTALL_DIR) -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS_RELEASE="-O2 -DNDEBUG" \
		-DCMAKE_INSTALL_PREFIX=$(abspath $(PREFIX)) -DCAPHEAP_BUILD_TESTS=OFF \
		-DCAPHEAP_BUILD_BENCH=OFF -DCAPHEAP_BUILD_EXAMPLES=OFF $(CMAKE_ARGS)
	$(CMAKE) --build $(INSTALL_DIR) -j $(JOBS)
	$(CMAKE) --install $(INSTALL_DIR) --prefix $(abspath $(PREFIX))

clean:
	rm -rf $(BUILD_DIR) $(BENCH_DIR) $(SIZE_DIR) $(TARGET_DIR) $(INSTALL_DIR)
