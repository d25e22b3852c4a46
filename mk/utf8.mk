# utf8: the crow-utf8 tool and the codec benchmark (against glibc iconv and utf8proc).
TOOL_BINS  += $(B)/bin/crow-utf8
BENCH_BINS += $(B)/bench/bench_utf8

$(B)/bin/crow-utf8: c-core/tools/crow-utf8.c $(B)/libcrowcore.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_CORE) -Ic-core $< -o $@ $(B)/libcrowcore.a $(CORE_LIBS)

$(B)/bench/bench_utf8: bench/c/bench_utf8.c $(B)/libcrowcore.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_CORE) -Ic-core $< -o $@ $(B)/libcrowcore.a -lutf8proc $(CORE_LIBS)
