# ferry — see README.md. Targets: all check demo install uninstall clean lint fuzz
include config.mk

ifeq ($(SANITIZE),1)
BUILD    ?= build/san
CFLAGS   += $(SAN_FLAGS) -O1
LDFLAGS  += $(SAN_FLAGS)
FAST_MALLOC =
else
BUILD    ?= build
endif

LIBSRC   = $(wildcard lib/*.c)
LIBOBJ   = $(LIBSRC:%.c=$(BUILD)/obj/%.o)
LIBA     = $(BUILD)/lib/libferry.a
CMDSRC   = $(wildcard cmd/*.c)
PROGS    = $(CMDSRC:cmd/%.c=$(BUILD)/bin/ferry-%)
SCRIPTSRC = $(wildcard scripts/*)
SCRIPTS  = $(SCRIPTSRC:scripts/%=$(BUILD)/bin/%)
UNITSRC  = $(wildcard test/unit/*_test.c)
UNITS    = $(UNITSRC:test/unit/%.c=$(BUILD)/test/%)
TESTHELP = $(wildcard test/unit/tu_*.c)
BENCHSRC = $(wildcard test/bench/*.c)
BENCHES  = $(BENCHSRC:test/bench/%.c=$(BUILD)/test/bench-%)
MAN1     = $(wildcard man/*.1)
MAN7     = $(wildcard man/*.7)
BATS     = $(wildcard test/*.bats)

# fuzz harnesses (test/fuzz/<name>.c): fuzzers under clang in $(FUZZDIR),
# and, linked with test/fuzz/replay.c by $(CC), unit tests that replay
# test/fuzz/regress/<name>/ and test/fuzz/corpus/<name>/
FUZZNAMES = validate item tenant query names s3
FUZZUNITS = $(FUZZNAMES:%=$(BUILD)/test/fuzz_%_test)

all: $(PROGS) $(SCRIPTS) $(UNITS) $(FUZZUNITS) $(BENCHES)

$(BUILD)/obj/%.o: %.c $(wildcard lib/*.h) config.mk
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(LIBA): $(LIBOBJ)
	@mkdir -p $(@D)
	rm -f $@
	ar rcs $@ $(LIBOBJ)

$(BUILD)/bin/ferry-%: $(BUILD)/obj/cmd/%.o $(LIBA)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(MALLOC_LIBS) $(LIBA) $(LDLIBS)

# the intake stages: an allocator first in link order replaces malloc for
# the libraries too (SQLite, cJSON, librabbitmq)
INTAKE   = amqp-ingest request-validate notify
$(INTAKE:%=$(BUILD)/bin/ferry-%): MALLOC_LIBS = $(FAST_MALLOC)
$(INTAKE:%=$(BUILD)/bin/ferry-%): config.mk

# a new file renamed over the old: a shell reading the old one goes on
$(BUILD)/bin/%: scripts/% config.mk
	@mkdir -p $(@D)
	sed 's/@FERRY_VERSION@/$(VERSION)/g' $< >$@.new
	chmod +x $@.new
	mv -f $@.new $@

$(BUILD)/test/%_test: $(BUILD)/obj/test/unit/%_test.o $(TESTHELP:%.c=$(BUILD)/obj/%.o) $(LIBA)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(TESTHELP:%.c=$(BUILD)/obj/%.o) $(LIBA) $(LDLIBS)

$(BUILD)/test/bench-%: $(BUILD)/obj/test/bench/%.o $(LIBA)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(LIBA) $(LDLIBS)

$(BUILD)/test/fuzz_%_test: $(BUILD)/obj/test/fuzz/%.o $(BUILD)/obj/test/fuzz/replay.o $(LIBA)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(BUILD)/obj/test/fuzz/replay.o $(LIBA) $(LDLIBS)

$(FUZZNAMES:%=$(BUILD)/obj/test/fuzz/%.o) $(BUILD)/obj/test/fuzz/replay.o: test/fuzz/fuzz.h

# make fuzz: each harness (FUZZ=names for one) built by clang with libFuzzer,
# ASan and UBSan, its regressions replayed, then run FUZZ_SECONDS on a
# scratch copy of its seeds; findings in $(FUZZDIR)/artifacts, exit 1 on any.
# Own objects of lib/*.c, so a normal build is not mixed with clang's.
FUZZ         = $(FUZZNAMES)
FUZZ_SECONDS = 60
FUZZCC       = clang
FUZZDIR      = $(BUILD)/fuzz
FUZZFLAGS    = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
               -fno-sanitize-recover=undefined
FUZZOBJ      = $(LIBSRC:%.c=$(FUZZDIR)/obj/%.o)

$(FUZZDIR)/obj/%.o: %.c $(wildcard lib/*.h) test/fuzz/fuzz.h config.mk
	@mkdir -p $(@D)
	$(FUZZCC) $(CPPFLAGS) $(CFLAGS) $(FUZZFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZDIR)/fuzz-%: $(FUZZDIR)/obj/test/fuzz/%.o $(FUZZOBJ)
	$(FUZZCC) $(FUZZFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZOBJ) $(LDLIBS)

fuzz: $(FUZZ:%=$(FUZZDIR)/fuzz-%)
	@FUZZDIR=$(FUZZDIR) FUZZ_SECONDS=$(FUZZ_SECONDS) test/fuzz/run $(FUZZ)

bench: deps
	@$(MAKE) --no-print-directory all
	@FERRY_BUILD=$(BUILD) scripts/bench $(BENCHFLAGS)

deps:
	@scripts/install-deps

# Unit tests, then the bats suites against the freshly built programs.
check: deps
	@$(MAKE) --no-print-directory all
	@FERRY_BUILD=$(BUILD) test/run-tests

unit: all
	@FERRY_BUILD=$(BUILD) test/run-tests unit

demo: deps
	@$(MAKE) --no-print-directory all
	@FERRY_BUILD=$(BUILD) scripts/demo

lint: all
	mandoc -Tlint -W warning $(MAN1) $(MAN7)
	@if command -v shellcheck >/dev/null; then shellcheck $(filter-out scripts/%.js,$(SCRIPTSRC)) test/run-tests .ci/run; \
	else echo "lint: shellcheck not installed, scripts not checked"; fi

# install: programs and scripts in BINDIR, pages in MANDIR, the s6
# template, the sandbox's S3 server and the RabbitMQ definitions in DATADIR,
# and an example configuration in SYSCONFDIR/ferry: the envdir (a file
# already there is kept: it is the operator's), a tenant example and the s6
# tree. uninstall removes what install wrote, but envdir files changed since.
ETCFERRY = $(DESTDIR)$(SYSCONFDIR)/ferry
install: all
	mkdir -p $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man7
	cp -f $(PROGS) $(filter $(BUILD)/bin/ferry-%,$(SCRIPTS)) $(DESTDIR)$(BINDIR)/
	cp -f $(MAN1) $(DESTDIR)$(MANDIR)/man1/
	cp -f $(MAN7) $(DESTDIR)$(MANDIR)/man7/
	mkdir -p $(DESTDIR)$(DATADIR)/rabbitmq
	rm -rf $(DESTDIR)$(DATADIR)/s6
	cp -R etc/s6 $(DESTDIR)$(DATADIR)/s6
	cp -f scripts/sandbox-s3.js $(DESTDIR)$(DATADIR)/
	cp -f etc/rabbitmq/*.json $(DESTDIR)$(DATADIR)/rabbitmq/
	mkdir -p $(ETCFERRY)/env $(ETCFERRY)/tenants
	for f in etc/env/*; do [ -e $(ETCFERRY)/env/$${f##*/} ] || cp $$f $(ETCFERRY)/env/; done
	cp -f etc/README $(ETCFERRY)/README
	cp -f etc/tenants/*.example $(ETCFERRY)/tenants/
	rm -rf $(ETCFERRY)/s6
	cp -R etc/s6 $(ETCFERRY)/s6

uninstall:
	rm -f $(PROGS:$(BUILD)/bin/%=$(DESTDIR)$(BINDIR)/%) $(patsubst $(BUILD)/bin/%,$(DESTDIR)$(BINDIR)/%,$(filter $(BUILD)/bin/ferry-%,$(SCRIPTS)))
	rm -f $(MAN1:man/%=$(DESTDIR)$(MANDIR)/man1/%) $(MAN7:man/%=$(DESTDIR)$(MANDIR)/man7/%)
	rm -rf $(DESTDIR)$(DATADIR) $(ETCFERRY)/s6
	rm -f $(ETCFERRY)/README $(patsubst etc/tenants/%,$(ETCFERRY)/tenants/%,$(wildcard etc/tenants/*.example))
	for f in etc/env/*; do cmp -s $$f $(ETCFERRY)/env/$${f##*/} && rm -f $(ETCFERRY)/env/$${f##*/}; done; true
	-rmdir $(ETCFERRY)/env $(ETCFERRY)/tenants $(ETCFERRY) 2>/dev/null

clean:
	rm -rf build

.PHONY: all bench deps check unit demo lint install uninstall clean fuzz
.SECONDARY:
