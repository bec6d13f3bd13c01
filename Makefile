# capheap: a thin wrapper over CMake (the real build is CMakeLists.txt).
#
#   make demo    configure, build and run examples/demo (boots a simulated ESP32-S3 with 8 MiB
#                PSRAM, allocates like a camera + Wi-Fi firmware, prints heap info and the check)
#   make test    install missing Debian packages (scripts/deps.sh), build, run every test (ctest)
#   make bench   Release build (-O2 -DNDEBUG) and the benchmark table (bench/run.sh)
#   make size    code size on Cortex-M4 and RV32IMC, per-heap RAM metadata (scripts/size.sh)
#   make install PREFIX=/usr/local
#   make clean
#
# Variables: BUILD_DIR (default build), BUILD_TYPE (default Debug), CMAKE_ARGS (extra -D...),
# JOBS (default: number of cores), BENCH_ARGS (options for bench/run.sh, e.g. "--runs 1").
# Bench and size builds go to $(BUILD_DIR)-release and $(BUILD_DIR)-size.

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
BENCH_ARGS ?=

.PHONY: all build configure demo test deps bench size install clean

all: build

configure:
	$(CMAKE) -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS)

build: configure
	$(CMAKE) --build $(BUILD_DIR) -j $(JOBS)

demo: configure
	$(CMAKE) --build $(BUILD_DIR) -j $(JOBS) --target demo
	$(BUILD_DIR)/examples/demo

deps:
	bash scripts/deps.sh

test: deps
	$(MAKE) --no-print-directory build
	$(CTEST) --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS)

bench:
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

install: build
	$(CMAKE) --install $(BUILD_DIR) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD_DIR) $(BENCH_DIR) $(SIZE_DIR)
