# frame: the framer benchmark (HTTP head, lines, SMTP DATA, chunked; baselines memmem/memchr/memcpy).
BENCH_BINS += $(B)/bench/bench_frame
$(B)/bench/bench_frame: bench/c/bench_frame.c $(B)/libcrowcore.a c-core/frame.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_CORE) -Ic-core $< -o $@ $(B)/libcrowcore.a $(CORE_LIBS)
