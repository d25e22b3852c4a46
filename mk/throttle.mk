# throttle.mk — the bandwidth-throttling accuracy benchmark.  build/bench/throttle_accuracy (not
# named bench_* so c-core.bench does not run it) is run by bench/throttle.bench, which adds
# nginx's limit_rate as the peer and writes bench/results/throttle.md.
BENCH_BINS += $(B)/bench/throttle_accuracy
$(B)/bench/throttle_accuracy: bench/c/bench_throttle_accuracy.c t/c/evnet.h $(B)/libcrowcore.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_CORE) -Ic-core -It/c $< -o $@ $(B)/libcrowcore.a $(CORE_LIBS)
