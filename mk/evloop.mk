# evloop.mk — the event loop's benchmark server.  build/bench/evhello is a C-only HTTP hello
# world on crow_ev (evhello -p PORT -t THREADS) for comparing the loop's ceiling with nginx
# under wrk; build/bench/bench_evloop is the same binary under the name bench/c-core.bench
# runs, through bench/c/bench_evloop.sh, which starts it and nginx and prints the section.
EVHELLO := $(B)/bench/evhello
BENCH_BINS += $(EVHELLO) $(B)/bench/bench_evloop
$(EVHELLO): bench/c/evhello.c $(B)/libcrowcore.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_CORE) -Ic-core $< -o $@ $(B)/libcrowcore.a $(CORE_LIBS)
$(B)/bench/bench_evloop: $(EVHELLO)
	cp $< $@
