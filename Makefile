# The three commands (see README.md).  CMake and ctest do the work.
JOBS  ?= $(shell nproc)
FUZZ_API_SECONDS ?= 120
CMAKE ?= cmake

.PHONY: all run deps test bench asan tsan release debug fuzz clean install

all: debug

debug:
	$(CMAKE) -S . -B build/debug -DCMAKE_BUILD_TYPE=Debug >/dev/null
	$(CMAKE) --build build/debug -j$(JOBS)

release:
	$(CMAKE) -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
	$(CMAKE) --build build/release -j$(JOBS)

asan:
	$(CMAKE) -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DVMC_SANITIZE=address,undefined >/dev/null
	$(CMAKE) --build build/asan -j$(JOBS)
	cd build/asan && ctest --output-on-failure -j$(JOBS)

tsan:
	$(CMAKE) -S . -B build/tsan -DCMAKE_BUILD_TYPE=Debug -DVMC_SANITIZE=thread >/dev/null
	$(CMAKE) --build build/tsan -j$(JOBS)
	cd build/tsan && ctest --output-on-failure -j$(JOBS)

# The whole suite: the debug build (assertions on), then ASan+UBSan.
test: debug
	cd build/debug && ctest --output-on-failure -j$(JOBS)
	$(MAKE) --no-print-directory asan

# The main job: vmc-lua hosting the sample Lua tenants (needs liblua5.4-dev,
# which `make deps` installs as root, or tells you how to).
run: deps release
	./build/release/examples/lua/vmc-lua --demo

deps:
	@./.ci/deps.sh

bench: release
	./bench/run.sh build/release

fuzz:
	$(CMAKE) -S . -B build/fuzz -DCMAKE_C_COMPILER=clang -DVMC_FUZZ=ON \
	  -DVMC_SANITIZE=address,undefined >/dev/null
	$(CMAKE) --build build/fuzz -j$(JOBS) --target fuzz_meta fuzz_meta_replay fuzz_api
	mkdir -p build/fuzz/corpus build/fuzz/corpus-api
	./build/fuzz/tests/fuzz_meta_replay --seed build/fuzz/corpus/valid
	./build/fuzz/tests/fuzz_meta -max_total_time=60 -max_len=65536 build/fuzz/corpus
	VMC_VERBOSE=0 ./build/fuzz/tests/fuzz_api -max_total_time=$(FUZZ_API_SECONDS) -max_len=4096 \
	  -print_final_stats=1 build/fuzz/corpus-api

install: release
	$(CMAKE) --install build/release

clean:
	rm -rf build
