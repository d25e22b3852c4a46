# ftpbench.mk — bench/ftp.bench's login client: N concurrent FTP logins, epoll, per-session
# greeting->230 latencies (stand-alone C, no libcrowcore).
BENCH_BINS += $(B)/bench/ftplogins
$(B)/bench/ftplogins: bench/c/ftplogins.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_CORE) $< -o $@
