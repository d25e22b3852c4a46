# mmstat.mk — the mmstat CLI, libmmstat.a + mmstat.h shipped alone, and mmstatd's benchmark
# client.
TOOL_BINS += $(B)/bin/mmstat $(B)/bin/apache-mmstat $(B)/lib/libmmstat.a $(B)/include/mmstat.h

$(B)/lib/libmmstat.a: $(B)/c-core/mmstat.o
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^
$(B)/include/mmstat.h: c-core/mmstat.h
	@mkdir -p $(@D)
	cp $< $@
$(B)/bin/mmstat: c-core/tools/mmstat.c $(B)/lib/libmmstat.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_CORE) -Ic-core $< -o $@ $(B)/lib/libmmstat.a

BENCH_BINS += $(B)/bench/bench_mmstat
$(B)/bench/bench_mmstat: bench/c/bench_mmstat.c $(B)/lib/libmmstat.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_CORE) -Ic-core $< -o $@ $(B)/lib/libmmstat.a -pthread

# make install: the library and its header beside libcrowcore.
.PHONY: install-mmstat
install: install-mmstat
install-mmstat: all
	install -d $(LIBDIR) $(DESTDIR)$(PREFIX)/include
	install -m 644 $(B)/lib/libmmstat.a $(LIBDIR)/
	install -m 644 $(B)/include/mmstat.h $(DESTDIR)$(PREFIX)/include/

$(B)/bin/apache-mmstat: c-core/tools/apache-mmstat.c $(B)/lib/libmmstat.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_CORE) -Ic-core $< -o $@ $(B)/lib/libmmstat.a

# The scenario tests drive mmstatd with the benchmark client too.
ctests: $(B)/bench/bench_mmstat
$(B)/t/stat/mmstat-crash: t/scenarios/fixtures/mmstat-crash.c $(B)/lib/libmmstat.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_CORE) -Ic-core $< -o $@ $(B)/lib/libmmstat.a
ctests: $(B)/t/stat/mmstat-crash
