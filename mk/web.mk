# web: playwright-core (npm) for the browser test, installed into build/node/ with the
# machine's npm (Debian nodejs); the browser is Debian's chromium (tools/deps/web.list).
PLAYWRIGHT_VERSION ?= 1.65.1
PLAYWRIGHT := $(B)/node/node_modules/playwright-core/package.json

.PHONY: browser-deps
browser-deps: $(PLAYWRIGHT)
$(PLAYWRIGHT):
	@mkdir -p $(B)/node
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --silent \
	  --prefix $(B)/node playwright-core@$(PLAYWRIGHT_VERSION)

# crow.site embeds the README and lisp/web/README.md (read when site.lisp compiles).
$(B)/.programs: README.md lisp/web/README.md
