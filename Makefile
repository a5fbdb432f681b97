# The three commands (see README.md).  CMake and ctest do the work.
JOBS  ?= $(shell nproc)
FUZZ_API_SECONDS ?= 120
CMAKE ?= cmake
CPACK ?= cpack

.PHONY: all run deps test bench asan tsan release debug fuzz clean install deb

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

# The main job: vmc-lua hosting the sample Lua tenants.  It installs what
# the run needs (`.ci/deps.sh run`: liblua5.4-dev and a toolchain; as root,
# or it prints the command), builds vmc-lua and vmcctl, and runs the demo.
# Quiet: one line per step; the steps' whole output goes to $(RUN_LOG).
RUN_LOG := build/run.log

run:
	@mkdir -p build && : >$(RUN_LOG)
	@step() { printf '%-52s' "make run: $$1 ..."; shift; \
	  if "$$@" >>$(RUN_LOG) 2>&1; then echo " ok"; \
	  else echo " FAILED"; tail -n 25 $(RUN_LOG); echo "make run: the whole log is $(RUN_LOG)"; \
	    exit 1; fi; }; \
	step "what the run needs (.ci/deps.sh run)" ./.ci/deps.sh run && \
	step "configure build/release" $(CMAKE) -S . -B build/release -DCMAKE_BUILD_TYPE=Release && \
	step "build vmc-lua and vmcctl" $(CMAKE) --build build/release -j$(JOBS) --target vmc-lua vmcctl
	@echo "make run: build output in $(RUN_LOG); now ./build/release/examples/lua/vmc-lua --demo"
	@./build/release/examples/lua/vmc-lua --demo

# Everything the project's targets use (clang for `make fuzz`, python3 for tests).
deps:
	@./.ci/deps.sh all

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

# `make install` installs the release build into the configured prefix
# (/usr/local); `make install PREFIX=DIR` into DIR (DESTDIR is honoured too).
install: release
	$(CMAKE) --install build/release $(if $(PREFIX),--prefix "$(abspath $(PREFIX))")

# Debian packages (libvmc, libvmc-dev, vmc-tools) in build/deb, for /usr.
# Only the installed targets are built.  Needs dpkg-dev and file.
deb:
	@command -v dpkg-shlibdeps >/dev/null && command -v file >/dev/null || \
	  { echo "make deb: needs dpkg-dev and file: apt-get install -y dpkg-dev file" >&2; exit 1; }
	$(CMAKE) -S . -B build/deb -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
	  -DVMC_INSTALL_RPATH=OFF -DCMAKE_SKIP_INSTALL_ALL_DEPENDENCY=ON >/dev/null
	$(CMAKE) --build build/deb -j$(JOBS) --target vmc_shared vmc_static vmcctl
	rm -f build/deb/*.deb
	cd build/deb && $(CPACK) -G DEB

clean:
	rm -rf build
