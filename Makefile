# sluice - build, test and run.
#
#   make            build build/sluice (release, -O2 -g)
#   make run        install what is missing, build, run on 127.0.0.1:3128
#   make test       install test dependencies, build release and sanitizer
#                   builds, run unit and integration tests under both
#   make asan       build build/asan/sluice (ASan + UBSan)
#   make fuzz       build fuzz targets and run each for FUZZ_SECONDS
#   make check-src  include-layering, banned functions and format checks
#   make valgrind   the integration suite with build/sluice under valgrind
#   make bench-evict hit ratio of the cache's eviction against LRU (a simulation)

CC      ?= gcc
ifeq ($(origin CC),default)
CC      := gcc
endif
CSTD    := -std=c17 -D_GNU_SOURCE
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wpointer-arith -Wformat=2 -Wvla
CFLAGS  ?= -O2 -g
ALL_CFLAGS = $(CSTD) $(WARN) $(CFLAGS) -Isrc -MMD -MP -fno-strict-aliasing -pthread
LDLIBS  := -lcares -lxxhash -lpthread

ASAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
              -fno-sanitize-recover=undefined

SRC      := $(sort $(wildcard src/*/*.c))
MAIN_SRC := src/cmd/main.c
LIB_SRC  := $(filter-out $(MAIN_SRC),$(SRC))
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))

B  := build
BA := build/asan

LIB_OBJ   := $(LIB_SRC:%.c=$(B)/obj/%.o)
LIB_OBJ_A := $(LIB_SRC:%.c=$(BA)/obj/%.o)
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)
UNIT_BIN_A := $(UNIT_SRC:tests/unit/%.c=$(BA)/tests/%)

.PHONY: all asan units units-asan run test deps deps-test fuzz fuzz-build check-src valgrind clean bench-evict

all: $(B)/sluice units

asan: $(BA)/sluice units-asan

units: $(UNIT_BIN)
units-asan: $(UNIT_BIN_A)

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BA)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) $(ASAN_FLAGS) -Isrc -MMD -MP -pthread -c -o $@ $<

$(B)/libsluice.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BA)/libsluice.a: $(LIB_OBJ_A)
	@mkdir -p $(dir $@)
	@rm -f $@
	ar rcs $@ $^

$(B)/sluice: $(B)/obj/$(MAIN_SRC:.c=.o) $(B)/libsluice.a
	$(CC) $(CFLAGS) -pthread -o $@ $^ $(LDLIBS)

$(BA)/sluice: $(BA)/obj/$(MAIN_SRC:.c=.o) $(BA)/libsluice.a
	$(CC) $(ASAN_FLAGS) -pthread -o $@ $^ $(LDLIBS)

$(B)/tests/%: tests/unit/%.c tests/unit/unit.h $(B)/libsluice.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/unit -o $@ $< $(B)/libsluice.a $(LDLIBS)

$(BA)/tests/%: tests/unit/%.c tests/unit/unit.h $(BA)/libsluice.a
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) $(ASAN_FLAGS) -Isrc -Itests/unit -pthread -o $@ $< $(BA)/libsluice.a $(LDLIBS)

deps:
	@scripts/deps.sh run

deps-test:
	@scripts/deps.sh test

run: deps
	@$(MAKE) --no-print-directory $(B)/sluice
	./$(B)/sluice $(if $(CONF),-c $(CONF),)

test: deps-test
	@$(MAKE) --no-print-directory all asan
	@scripts/run-tests.sh

FUZZ_SECONDS ?= 30
FUZZ_TARGETS := $(patsubst fuzz/%.c,%,$(sort $(wildcard fuzz/fuzz_*.c)))
FUZZ_LIB_SRC := $(filter src/base/% src/http/% src/conf/% src/cache/policy.c src/cache/key.c src/cache/diskfmt.c src/cache/mem.c src/cache/evict.c,$(LIB_SRC))

fuzz-build: $(FUZZ_TARGETS:%=$(B)/fuzz/%)

$(B)/fuzz/%: fuzz/%.c $(FUZZ_LIB_SRC)
	@mkdir -p $(dir $@)
	clang $(CSTD) -g -O1 -fsanitize=fuzzer,address,undefined -Isrc -o $@ $< $(FUZZ_LIB_SRC) -lxxhash

fuzz: deps-test fuzz-build
	@scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

check-src:
	@scripts/check-src.sh

# The integration suite with the release binary under valgrind's memcheck
# (slow: timeouts are stretched; VALGRIND_TESTS picks a subset by name).
VALGRIND_TESTS ?=
valgrind: deps-test $(B)/sluice
	SLUICE_BIN=scripts/valgrind-sluice.sh SLUICE_TIMEOUT_SCALE=6 \
		python3 tests/integration/run.py $(if $(VALGRIND_TESTS),-k $(VALGRIND_TESTS),)

$(B)/bench/evict_sim: bench/tools/evict_sim.c $(B)/libsluice.a
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) -O2 -g -Wall -Wextra -Werror -Isrc -o $@ $< $(B)/libsluice.a -lm $(LDLIBS)

bench-evict: $(B)/bench/evict_sim
	$(B)/bench/evict_sim

clean:
	rm -rf $(B)

-include $(shell find $(B) -name '*.d' 2>/dev/null)
