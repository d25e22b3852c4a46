# hash — benchmark against khash (htslib header) and uthash.
BENCH_BINS += $(B)/bench/bench_hash
$(B)/bench/bench_hash: bench/c/bench_hash.c $(B)/libcrowcore.a
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -O2 -g -D_GNU_SOURCE -pthread -Ic-core $< -o $@ $(B)/libcrowcore.a $(CORE_LIBS)
