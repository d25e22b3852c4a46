# msgport: message ports, SPSC ring, thread pool, connect/accept — benchmark binary.
BENCH_BINS += $(B)/bench/bench_msgport
$(B)/bench/bench_msgport: bench/c/bench_msgport.c $(B)/libcrowcore.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_CORE) -Ic-core $< -o $@ $(B)/libcrowcore.a $(CORE_LIBS)
