# ferry build configuration. Override on the command line: make PREFIX=/opt/ferry
VERSION = 0.1.0

PREFIX    = /usr/local
BINDIR    = $(PREFIX)/bin
MANDIR    = $(PREFIX)/share/man
SYSCONFDIR = $(PREFIX)/etc
DATADIR   = $(PREFIX)/share/ferry
DESTDIR   =

CC        = cc
PKG_CONFIG = pkg-config
PKGS      = librabbitmq libcurl libarchive zlib libsodium libcjson sqlite3 libcrypto libpcre2-8 libmicrohttpd

CPPFLAGS  = -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -DFERRY_VERSION=\"$(VERSION)\" \
            -Ilib $(shell $(PKG_CONFIG) --cflags $(PKGS))
CFLAGS    = -std=c11 -Wall -Wextra -Werror -O2 -g -pipe
LDFLAGS   =
LDLIBS    = $(shell $(PKG_CONFIG) --libs $(PKGS))

# The intake stages (many small allocations a request: cJSON, SQLite) link
# mimalloc ahead of libc: 10-15% less CPU than glibc's malloc in
# ferry-request-validate (README "Performance"). make FAST_MALLOC= for libc's.
# --no-as-needed: a program whose own object calls no malloc (its work is in
# libferry.a) would otherwise have the linker drop mimalloc unnoticed.
FAST_MALLOC = -Wl,--no-as-needed -lmimalloc -Wl,--as-needed

# make SANITIZE=1: AddressSanitizer + UndefinedBehaviorSanitizer build in build/san
SAN_FLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
