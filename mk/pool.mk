# pool.mk — the slab pool's benchmark (bench/c/bench_pool.c; bench/c/bench_pool.sh runs it once
# per allocator, jemalloc and mimalloc through LD_PRELOAD).
BENCH_BINS += $(B)/bench/bench_pool
$(B)/bench/bench_pool: bench/c/bench_pool.c $(B)/libcrowcore.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_CORE) -Ic-core $< -o $@ $(B)/libcrowcore.a $(CORE_LIBS) -ldl
