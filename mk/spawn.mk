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
