# crow — top-level build.  `make` builds the C core and every executable; `make test`,
# `make run` and `make bench` first install what is missing (tools/deps.sh).
#
# C:    c-core/*.c  -> build/c-core/*.o -> build/libcrowcore.a + build/libcrowcore.so
#       (and an ASan+UBSan copy under build/asan/ for the C tests)
# Lisp: build.lisp (ECL, ASDF with its cache under build/asdf/) -> build/bin/*
# Areas add rules in mk/*.mk (C tools, fuzzers, benchmarks) so this file stays small.

SHELL       := /bin/bash
CC          ?= gcc
ECL         ?= ecl
PREFIX      ?= /usr/local
DESTDIR     ?=
CROW_SHARED ?= $(abspath ../shared)
export CROW_SHARED

B := build
WARN   := -Wall -Wextra -Wshadow -Wpointer-arith -Wstrict-prototypes -Wmissing-prototypes
ifeq ($(CI),true)
WARN   += -Werror
endif
CFLAGS_CORE := -std=gnu11 -O2 -g -fPIC -D_GNU_SOURCE -pthread $(WARN) -MMD -MP
CFLAGS_ASAN := -std=gnu11 -O1 -g -fPIC -D_GNU_SOURCE -pthread $(WARN) -MMD -MP \
               -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
CORE_LIBS   := -pthread -lm -lssl -lcrypto -lcrypt

CORE_SRC  := $(wildcard c-core/*.c)
CORE_HDR  := $(wildcard c-core/*.h)
CORE_OBJ  := $(CORE_SRC:c-core/%.c=$(B)/c-core/%.o)
ASAN_OBJ  := $(CORE_SRC:c-core/%.c=$(B)/asan/c-core/%.o)

CTEST_SRC := $(wildcard t/c/test_*.c)
CTEST_BIN := $(CTEST_SRC:t/c/%.c=$(B)/t/c/%)
CTEST_ASAN:= $(CTEST_SRC:t/c/%.c=$(B)/asan/t/c/%)

LISP_SRC  := crow.asd build.lisp $(shell find ecl-unix lisp -name '*.lisp' 2>/dev/null)
# Every Lisp executable build.lisp makes (one per line of its program table).
PROGRAMS  := $(shell grep -o 'program "[a-z0-9-]*"' build.lisp | cut -d\" -f2)
PROG_BIN  := $(PROGRAMS:%=$(B)/bin/%)

.PHONY: all lib programs ctests tools swank-cache deps deps-check test run bench bench-bins fuzz fuzz-bins \
        install clean distclean
all: lib programs ctests tools swank-cache

# ---------------------------------------------------------------- packages
deps:
	tools/deps.sh install
deps-check:
	@tools/deps.sh check >/dev/null 2>&1 || tools/deps.sh install

# ---------------------------------------------------------------- C core
lib: $(B)/libcrowcore.a $(B)/libcrowcore.so

$(B)/c-core/%.o: c-core/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_CORE) -Ic-core -c $< -o $@
$(B)/asan/c-core/%.o: c-core/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ASAN) -Ic-core -c $< -o $@

$(B)/libcrowcore.a: $(CORE_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^
$(B)/libcrowcore.so: $(CORE_OBJ)
	$(CC) -shared -o $@ $^ $(CORE_LIBS)
$(B)/asan/libcrowcore.a: $(ASAN_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

# C unit tests: t/c/test_<mod>.c, each a TAP-printing program, plain and sanitized.
ctests: $(CTEST_BIN) $(CTEST_ASAN)
$(B)/t/c/%: t/c/%.c $(wildcard t/c/*.h) $(B)/libcrowcore.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_CORE) -Ic-core -It/c $< -o $@ $(B)/libcrowcore.a $(CORE_LIBS)
$(B)/asan/t/c/%: t/c/%.c $(wildcard t/c/*.h) $(B)/asan/libcrowcore.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ASAN) -Ic-core -It/c $< -o $@ $(B)/asan/libcrowcore.a $(CORE_LIBS)

# ---------------------------------------------------------------- Lisp programs
# One ECL run builds every program; ASDF recompiles only what changed.
programs: $(B)/.programs
$(PROG_BIN): $(B)/.programs
$(B)/.programs: $(LISP_SRC) $(B)/libcrowcore.a $(B)/libcrowcore.so
	@mkdir -p $(B)/bin
	$(ECL) --norc --shell build.lisp
	@touch $@

# swank (Debian's cl-swank) compiled once into build/swank-cache/, where make run and the tests
# point CROW_CACHE, so no server pays the first compile (about a minute) at start-up.
swank-cache: $(B)/swank-cache/.stamp
$(B)/swank-cache/.stamp: $(B)/.programs
	@mkdir -p $(@D)
	CROW_CACHE=$(abspath $(B)/swank-cache) $(B)/bin/crow-sh -e '(crow.sh:load-swank)' >/dev/null
	@touch $@

# ---------------------------------------------------------------- test, run, bench
test: deps-check
	@$(MAKE) --no-print-directory -j$(shell nproc) all fuzz-bins
	@t/run

run: deps-check
	@$(MAKE) --no-print-directory -j$(shell nproc) all
	@tools/supervise

bench: deps-check
	@$(MAKE) --no-print-directory -j$(shell nproc) all bench-bins
	@bench/run

# ---------------------------------------------------------------- fuzzing (libFuzzer, clang)
# t/fuzz/fuzz_<name>.c is built twice against the whole core: as is, and with
# -DCROW_PLANTED_BUG (each module plants one deliberate bug under that macro, which the smoke
# run in `make test` must find).  `make fuzz FUZZ_SECONDS=N` runs each for N seconds.
FUZZ_SECONDS ?= 60
FUZZ_SRC   := $(wildcard t/fuzz/fuzz_*.c)
FUZZ_BINS  := $(FUZZ_SRC:t/fuzz/%.c=$(B)/fuzz/%) $(FUZZ_SRC:t/fuzz/%.c=$(B)/fuzz/%_planted)
FUZZ_FLAGS := -std=gnu11 -O1 -g -D_GNU_SOURCE -pthread -Ic-core \
              -fsanitize=address,undefined -fno-sanitize-recover=all
# The core is compiled once per variant (instrumented for coverage), then each target links it.
FUZZ_OBJ   := $(CORE_SRC:c-core/%.c=$(B)/fuzz/obj/%.o)
FUZZ_OBJP  := $(CORE_SRC:c-core/%.c=$(B)/fuzz/objp/%.o)
.SECONDARY: $(FUZZ_OBJ) $(FUZZ_OBJP)
$(B)/fuzz/obj/%.o: c-core/%.c $(CORE_HDR)
	@mkdir -p $(@D)
	clang $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
$(B)/fuzz/objp/%.o: c-core/%.c $(CORE_HDR)
	@mkdir -p $(@D)
	clang $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -DCROW_PLANTED_BUG -c $< -o $@
$(B)/fuzz/%: t/fuzz/%.c $(FUZZ_OBJ)
	@mkdir -p $(@D)
	clang $(FUZZ_FLAGS) -fsanitize=fuzzer $< $(FUZZ_OBJ) -o $@ -lm -lssl -lcrypto -lcrypt
$(B)/fuzz/%_planted: t/fuzz/%.c $(FUZZ_OBJP)
	@mkdir -p $(@D)
	clang $(FUZZ_FLAGS) -fsanitize=fuzzer -DCROW_PLANTED_BUG $< $(FUZZ_OBJP) -o $@ -lm -lssl -lcrypto -lcrypt
fuzz: fuzz-bins
	tools/fuzz-all $(FUZZ_SECONDS)

# ---------------------------------------------------------------- install
BINDIR  := $(DESTDIR)$(PREFIX)/bin
LIBDIR  := $(DESTDIR)$(PREFIX)/lib
INCDIR  := $(DESTDIR)$(PREFIX)/include/crow
MANDIR  := $(DESTDIR)$(PREFIX)/share/man/man1
ETCDIR  := $(DESTDIR)$(PREFIX)/share/crow/examples
install: all
	install -d $(BINDIR) $(LIBDIR) $(INCDIR) $(MANDIR) $(ETCDIR)
	install -m 755 $(filter-out %.d,$(wildcard $(B)/bin/*)) $(BINDIR)/
	install -m 644 $(B)/libcrowcore.a $(LIBDIR)/
	install -m 755 $(B)/libcrowcore.so $(LIBDIR)/
	install -m 644 $(filter-out %_int.h,$(CORE_HDR)) $(INCDIR)/
	install -m 644 $(wildcard man/*.1) $(MANDIR)/
	cd etc && find . -path ./run.d -prune -o -type f -print | while read -r f; do \
	  install -D -m 644 "$$f" "$(ETCDIR)/$$f"; done

clean:
	rm -rf $(B)/c-core $(B)/asan $(B)/t $(B)/bin $(B)/*.a $(B)/*.so $(B)/.programs
distclean:
	rm -rf $(B) var

# Areas add C tools (TOOL_BINS, into build/bin/) and benchmarks (BENCH_BINS) in mk/*.mk.
-include $(wildcard mk/*.mk)
tools: $(TOOL_BINS)
bench-bins: $(BENCH_BINS)
fuzz-bins: $(FUZZ_BINS)
-include $(CORE_OBJ:.o=.d) $(ASAN_OBJ:.o=.d)
