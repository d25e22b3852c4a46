# embed: `make site SITE=DIR NAME=PROG [CONFIG=FILE]` builds build/bin/PROG, crow-httpd with
# every file under DIR compiled in (tools/embed-site -> build/embed/PROG.c, served by vhosts
# with `embedded yes`) and, with CONFIG, that file as its configuration when no -f is given; the
# program logs, and answers --version and --help, as NAME.
SITE ?= etc/site
NAME ?= crow-site

.PHONY: site
site: $(B)/libcrowcore.a $(B)/libcrowcore.so
	@mkdir -p $(B)/embed $(B)/bin
	tools/embed-site $(SITE) $(B)/embed/$(NAME).c --name $(NAME) $(if $(CONFIG),--config $(CONFIG))
	$(CC) $(CFLAGS_CORE) -Ic-core -c $(B)/embed/$(NAME).c -o $(B)/embed/$(NAME).o
	$(ECL) --norc --shell build.lisp -- --site $(NAME) $(B)/embed/$(NAME).o
