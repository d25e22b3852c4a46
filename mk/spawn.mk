# spawn.mk — mmspawnd's test and benchmark program, static so it runs in an empty chroot.
SPAWN_PROBE := $(B)/t/spawn/spawn-probe
$(SPAWN_PROBE): t/scenarios/fixtures/spawn-probe.c
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -O2 $(WARN) -static $< -o $@
ctests: $(SPAWN_PROBE)
BENCH_BINS += $(SPAWN_PROBE)
CONNRATE := $(B)/bench/connrate
$(CONNRATE): bench/c/connrate.c
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -O2 $(WARN) -pthread $< -o $@
BENCH_BINS += $(CONNRATE)
# crow-spawner: mmspawnd's small spawner process (static: it may be started before a chroot
# and keeps working inside it).
TOOL_BINS += $(B)/bin/crow-spawner
$(B)/bin/crow-spawner: c-core/tools/crow-spawner.c $(B)/libcrowcore.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_CORE) -static -Ic-core $< -o $@ $(B)/libcrowcore.a $(CORE_LIBS)
BANNER := $(B)/bench/banner
$(BANNER): bench/c/banner.c
	@mkdir -p $(@D)
	if [ "$$(uname -m)" = x86_64 ]; then \
	  $(CC) -std=gnu11 -O2 $(WARN) -DCROW_NOLIBC -nostdlib -static -fno-stack-protector $< -o $@; \
	else $(CC) -std=gnu11 -O2 $(WARN) -static $< -o $@; fi
BENCH_BINS += $(BANNER)
