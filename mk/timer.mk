# timer.mk — the timer wheel / token bucket benchmark (bench/c/bench_timer.c), against libuv's
# timer heap (libuv1-dev, from tools/deps/c-core.list; without it the column prints "—").
UV_HDR := $(firstword $(wildcard /usr/include/uv.h))
UV_LIB := $(firstword $(wildcard /usr/lib/x86_64-linux-gnu/libuv.so /usr/lib/x86_64-linux-gnu/libuv.so.1))
ifneq ($(and $(UV_HDR),$(UV_LIB)),)
BENCH_TIMER_UV := -DHAVE_LIBUV -I$(dir $(UV_HDR)) $(UV_LIB)
endif
BENCH_BINS += $(B)/bench/bench_timer
$(B)/bench/bench_timer: bench/c/bench_timer.c $(B)/libcrowcore.a c-core/timer.h c-core/throttle.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_CORE) -Ic-core $< -o $@ $(B)/libcrowcore.a $(BENCH_TIMER_UV) $(CORE_LIBS)
