# halo -- the two commands: `make run` and `make test` (README.md).
#
# Both install what is missing (as root, with apt-get; otherwise they print
# the exact apt-get line), build with CMake, and go.

BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_FUZZ ?= build-fuzz
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CONFIG     ?= halo.yaml
FUZZ_SECONDS ?= 30
FUZZ_SECONDS_CI ?= 10

# Debian 12 packages needed to build, test and run.
PKGS = build-essential cmake pkg-config tzdata \
       libgrpc-dev protobuf-c-compiler libprotobuf-c-dev libmicrohttpd-dev \
       libyaml-dev libsqlite3-dev libjansson-dev zlib1g-dev librdkafka-dev libpq-dev sqlite3 \
       libcurl4-openssl-dev libgnutls28-dev
TEST_PKGS = curl kcat protobuf-compiler postgresql openssl
FUZZ_PKGS = clang libclang-rt-14-dev

.PHONY: all build run test test-unit test-asan deps test-deps fuzz bench \
        bench-sqlite bench-kafka bench-pg bench-analyze format \
        format-check clean e2e-deps install uninstall check-builds

all: build

deps:
	@./.ci/install-deps $(PKGS)

test-deps:
	@./.ci/install-deps $(PKGS) $(TEST_PKGS)
	@command -v node >/dev/null 2>&1 || ./.ci/install-deps nodejs npm

$(BUILD)/Makefile: CMakeLists.txt
	cmake -S . -B $(BUILD) -DHALO_WERROR=ON

build: deps $(BUILD)/Makefile
	cmake --build $(BUILD) -j$(JOBS)

run: build
	./$(BUILD)/halo serve --config $(CONFIG)

e2e-deps: test-deps
	cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error

# Formatting, every test through ctest, then the whole suite again under
# ASan+UBSan, then the Release and clang builds, then every fuzz target
# briefly.
test: test-deps e2e-deps format-check
	cmake -S . -B $(BUILD) -DHALO_WERROR=ON
	cmake --build $(BUILD) -j$(JOBS)
	cd $(BUILD) && ctest --output-on-failure --timeout 600
	cmake -S . -B $(BUILD_ASAN) -DHALO_WERROR=ON -DHALO_SANITIZE=ON \
	      -DCMAKE_BUILD_TYPE=Debug
	cmake --build $(BUILD_ASAN) -j$(JOBS)
	cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    HALO_SANITIZED=1 ctest --output-on-failure --timeout 900
	$(MAKE) check-builds
	$(MAKE) fuzz FUZZ_SECONDS=$(FUZZ_SECONDS_CI)

# libFuzzer targets (clang), each run briefly: make fuzz FUZZ_SECONDS=60.
# `make test` ends with a CI-sized run of every target (FUZZ_SECONDS_CI);
# a crash, a leak or a hang (10 s per input) fails it.
FUZZ_TARGETS = $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
fuzz:
	@./.ci/install-deps $(PKGS) $(FUZZ_PKGS)
	CC=clang cmake -S . -B $(BUILD_FUZZ) -DHALO_FUZZ=ON -DHALO_WERROR=ON \
	      -DCMAKE_BUILD_TYPE=Debug
	cmake --build $(BUILD_FUZZ) -j$(JOBS) --target $(FUZZ_TARGETS)
	@set -e; for f in $(BUILD_FUZZ)/fuzz_*; do \
	  [ -x "$$f" ] || continue; name=$$(basename $$f); \
	  mkdir -p $(BUILD_FUZZ)/corpus/$$name; \
	  seeds=""; [ -d tests/fuzz/corpus/$$name ] && seeds=tests/fuzz/corpus/$$name; \
	  echo "== $$name ($(FUZZ_SECONDS)s)"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
	      $(BUILD_FUZZ)/corpus/$$name $$seeds; \
	done

# Ingest into SQLite (bench/run.sh), OTLP -> Kafka and Kafka -> SQLite
# against the mock cluster (bench/kafka.sh), then both into a throwaway
# PostgreSQL server (bench/pg.sh).
bench: build test-deps
	./bench/run.sh
	./bench/kafka.sh
	./bench/pg.sh

bench-sqlite: build
	./bench/run.sh

bench-kafka: build
	./bench/kafka.sh

bench-pg: build test-deps
	./bench/pg.sh

bench-analyze: build test-deps
	./bench/analyze.sh

# Bare-metal install (deploy/README.md): make && sudo make install
# PREFIX, SYSCONFDIR, UNITDIR and DESTDIR as usual; HALO_BINARY is what
# gets installed (default: the build's). Configuration files already in
# SYSCONFDIR/halo are kept (the new ones land beside them as *.new).
PREFIX     ?= /usr/local
SYSCONFDIR ?= /etc
UNITDIR    ?= $(PREFIX)/lib/systemd/system
HALO_BINARY ?= $(BUILD)/halo
CONFIGS    = halo.yaml deploy/halo-ingest.yaml deploy/halo-persist.yaml \
             deploy/halo-analyzer.yaml

install:
	@test -x $(HALO_BINARY) || { echo "make install: $(HALO_BINARY) is missing: run make first" >&2; exit 1; }
	install -D -m 0755 $(HALO_BINARY) $(DESTDIR)$(PREFIX)/bin/halo
	install -d $(DESTDIR)$(SYSCONFDIR)/halo $(DESTDIR)$(UNITDIR) \
	    $(DESTDIR)$(PREFIX)/share/doc/halo
	@for f in $(CONFIGS); do \
	    t=$(DESTDIR)$(SYSCONFDIR)/halo/$$(basename $$f); \
	    if [ -e $$t ]; then \
	        install -m 0644 $$f $$t.new; echo "kept $$t; the new one is $$t.new"; \
	    else \
	        install -m 0644 $$f $$t; echo "installed $$t"; \
	    fi; \
	done
	sed -e 's|/usr/local/bin/halo|$(PREFIX)/bin/halo|g' \
	    -e 's|/usr/local/share/doc|$(PREFIX)/share/doc|g' \
	    -e 's|/etc/halo|$(SYSCONFDIR)/halo|g' \
	    deploy/halo.service > $(DESTDIR)$(UNITDIR)/halo.service
	install -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/halo/README.md
	install -m 0644 deploy/README.md $(DESTDIR)$(PREFIX)/share/doc/halo/deploy.md

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/halo $(DESTDIR)$(UNITDIR)/halo.service
	rm -rf $(DESTDIR)$(PREFIX)/share/doc/halo
	@echo "kept $(DESTDIR)$(SYSCONFDIR)/halo (your configuration)"

# The two other builds a packager or a contributor is likely to make, with
# -Werror: gcc at -O3 (CMake Release: its inliner sees more, so it warns
# more) and clang. Builds only, no tests: about a minute for both here.
check-builds: deps
	@command -v clang >/dev/null 2>&1 || ./.ci/install-deps $(FUZZ_PKGS)
	cmake -S . -B build-release -DHALO_WERROR=ON -DCMAKE_BUILD_TYPE=Release
	cmake --build build-release -j$(JOBS)
	CC=clang cmake -S . -B build-clang -DHALO_WERROR=ON
	cmake --build build-clang -j$(JOBS)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	@command -v clang-format >/dev/null 2>&1 || ./.ci/install-deps clang-format
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_FUZZ) build-release build-clang
