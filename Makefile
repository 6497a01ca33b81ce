# Thin wrapper around CMake. `make` builds, `make run` serves www/, `make test`
# runs every test in a normal build (gcc), then under ThreadSanitizer and under
# ASan+UBSan (clang), each in a build directory of its own.
BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
BENCH_BUILD ?= build-bench
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
PREFIX     ?= /usr/local
CTEST_ARGS ?= --output-on-failure -j $(JOBS)
FORMAT_FILES = include/*.h src/*.[ch] src/*/*.[ch] programs/*/*.[ch] tests/*/*.[ch] examples/*.c \
               bench/*.h bench/*/*.c fuzz/*.c
FUZZ_BUILD ?= build-fuzz
FUZZ_TIME  ?= 60

.PHONY: all build run test bench fuzz install format format-check clean

all: build

# The build that `make install` installs: no test hooks in it (the sanitizer
# builds have them, so the fallback tests run there).
build:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=$(PREFIX) \
	    -DRITUAL_TEST_HOOKS=OFF >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# Serves the demo site in www/ on http://127.0.0.1:8080/ (Ctrl-C stops it).
run: build
	./$(BUILD)/ritual http --listen 127.0.0.1:8080 --root www --access-log -

$(ASAN_BUILD)/CMakeCache.txt:
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang \
	    -DRITUAL_SANITIZE=address,undefined -DRITUAL_TEST_HOOKS=ON >/dev/null

$(TSAN_BUILD)/CMakeCache.txt:
	@cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang \
	    -DRITUAL_SANITIZE=thread -DRITUAL_TEST_HOOKS=ON >/dev/null

test: build $(ASAN_BUILD)/CMakeCache.txt $(TSAN_BUILD)/CMakeCache.txt
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	@cmake --build $(TSAN_BUILD) -j $(JOBS)
	@echo "== tests (gcc, RelWithDebInfo) =="
	cd $(BUILD) && ctest $(CTEST_ARGS)
	@echo "== tests (clang, ThreadSanitizer) =="
	cd $(TSAN_BUILD) && ctest $(CTEST_ARGS)
	@echo "== tests (clang, ASan+UBSan) =="
	cd $(ASAN_BUILD) && ctest $(CTEST_ARGS)

# The short benchmark (under 5 minutes); `bench/run --full --build build-bench`
# runs the whole matrix. Results go to docs/bench/.
bench:
	@cmake -S . -B $(BENCH_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRITUAL_BENCH=ON >/dev/null
	@cmake --build $(BENCH_BUILD) -j $(JOBS)
	bench/run --build $(BENCH_BUILD)

# libFuzzer on the HTTP parser, on the server and on the PROXY header parser, FUZZ_TIME seconds each
# (default 60), each from a scratch copy of its checked-in corpus; a crash
# leaves its input in $(FUZZ_BUILD)/ to be added to fuzz/corpus/. `make test`
# replays the corpora.
fuzz:
	@cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
	    -DRITUAL_FUZZ=ON >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_parser fuzz_server fuzz_tls fuzz_proxy
	@for f in parser server tls proxy; do \
	    rm -rf $(FUZZ_BUILD)/corpus-$$f && cp -r fuzz/corpus/$$f $(FUZZ_BUILD)/corpus-$$f && \
	    echo "== fuzz_$$f for $(FUZZ_TIME) s" && \
	    (cd $(FUZZ_BUILD) && ./fuzz/fuzz_$$f corpus-$$f -max_total_time=$(FUZZ_TIME) \
	        -timeout=10 -print_final_stats=1 2>&1 | tail -n 8) || exit 1; \
	done

install: build
	cmake --install $(BUILD)

format:
	clang-format -i $(FORMAT_FILES)

format-check:
	clang-format --dry-run --Werror $(FORMAT_FILES)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(BENCH_BUILD) $(FUZZ_BUILD)
