# span-collector: the two commands the README starts with are `make run` and `make test`.
# Both install what they need on a fresh Debian machine (run as root, or with sudo).

SWIFT ?= swift
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEB_PACKAGES := libpcap-dev zlib1g-dev libzstd-dev gzip zstd tshark tcpdump tcpreplay iproute2 python3-pip systemd procps
SCAPY_VERSION := 2.8.0
OUTPUT ?= ./span-output
# The Debian package (`make deb`, `make lintian`).
DEB_PACKAGES += dpkg-dev fakeroot lintian

.PHONY: deps build release run test bench fuzz sanitize soak clean static install install-files deb lintian

## Install Debian packages and scapy (test fixture generator) when missing.
deps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	fi
	@python3 -c 'import scapy, sys; sys.exit(scapy.__version__ != "$(SCAPY_VERSION)")' 2>/dev/null || \
		python3 -m pip install -q "scapy==$(SCAPY_VERSION)" || \
		python3 -m pip install -q --break-system-packages "scapy==$(SCAPY_VERSION)"

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

## Run the collector on its built-in defaults: live capture on the default route's interface
## into $(OUTPUT) until Ctrl-C (needs root or CAP_NET_RAW).
run: release
	$(SUDO) .build/release/span-collector run --config config/span-collector.toml --output $(OUTPUT)

## Run the whole test suite. It builds the Debian package first: PackageTests unpack it.
test: deps deb
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

## Offline throughput against tcpdump (needs ../shared/bench).
bench: release
	SESSIONS=16 ../shared/bench/offline.sh .build/release/span-collector

## libFuzzer over the decode path and the pipeline (FUZZ_SECONDS, default 600).
FUZZ_SECONDS ?= 600
fuzz: deps
	scripts/fuzz.sh $(FUZZ_SECONDS)

## The test suite under AddressSanitizer and ThreadSanitizer (several minutes each).
sanitize: deps
	scripts/sanitize.sh address
	scripts/sanitize.sh thread

## Live capture in namespaces with mixed, malformed and flood traffic (SOAK_SECONDS, default 600).
SOAK_SECONDS ?= 600
soak: deps
	scripts/soak.sh $(SOAK_SECONDS) --rotate 5

clean:
	rm -rf .build .build-fuzz .build-asan .build-tsan dist

# --- Packaging: `make deb` (Debian) and `make install` (other systems). --------------------
# The version is written once, in Sources/PcapFormat/Version.swift.
VERSION := $(shell sed -n 's/^ *public static let string = "\(.*\)"$$/\1/p' Sources/PcapFormat/Version.swift)
DEB_ARCH := $(shell dpkg --print-architecture 2>/dev/null)
DEB := dist/span-collector_$(VERSION)_$(DEB_ARCH).deb
PREFIX ?= /usr/local
SYSCONFDIR ?= /etc
DESTDIR ?=
ZSH_COMPLETIONS ?= $(PREFIX)/share/zsh/site-functions
STATIC := .build/static

## The release binary with the Swift runtime and Foundation linked in (no toolchain needed
## where it runs), its man pages (swift-argument-parser's generate-manual plugin) and its
## shell completions, all in $(STATIC).
static: deps
	@test -n "$(VERSION)" || { echo "no version in Sources/PcapFormat/Version.swift"; exit 1; }
	@# The plugin builds the package to read the commands' help: in debug, which `make test`
	@# builds anyway (a release build without --static-swift-stdlib would recompile everything).
	$(SWIFT) package plugin generate-manual --multi-page --configuration debug
	@# SwiftPM does not relink a dynamically linked release binary for --static-swift-stdlib.
	rm -f .build/release/span-collector
	$(SWIFT) build -c release --static-swift-stdlib
	@if ldd .build/release/span-collector | grep -E 'libswift|libFoundation|libicu|libdispatch|/opt/swift'; then \
		echo "span-collector still links the Swift runtime"; exit 1; fi
	rm -rf $(STATIC) && mkdir -p $(STATIC)/man $(STATIC)/completions
	cp .build/release/span-collector $(STATIC)/
	strip --strip-unneeded $(STATIC)/span-collector
	for page in .build/plugins/GenerateManual/outputs/span-collector/*.1; do \
		gzip -9n < $$page > $(STATIC)/man/$$(basename $$page).gz; done
	@# Sourced by bash-completion, not run: no #! line.
	$(STATIC)/span-collector --generate-completion-script bash | sed '1{/^#!/d}' > $(STATIC)/completions/span-collector
	$(STATIC)/span-collector --generate-completion-script zsh > $(STATIC)/completions/_span-collector
	$(STATIC)/span-collector --generate-completion-script fish > $(STATIC)/completions/span-collector.fish

## Install under $(DESTDIR)$(PREFIX) (default /usr/local): the binary, the unit (its paths
## rewritten to the prefix), the sysusers.d entry, man pages, completions and docs. The
## configuration goes to $(SYSCONFDIR)/span-collector and never replaces an existing one.
install: static
	$(MAKE) --no-print-directory install-files

install-files:
	install -D -m 0755 $(STATIC)/span-collector $(DESTDIR)$(PREFIX)/bin/span-collector
	install -d $(DESTDIR)$(SYSCONFDIR)/span-collector
	test -e $(DESTDIR)$(SYSCONFDIR)/span-collector/span-collector.toml || \
		install -m 0644 config/span-collector.toml $(DESTDIR)$(SYSCONFDIR)/span-collector/span-collector.toml
	install -d $(DESTDIR)$(PREFIX)/lib/systemd/system
	sed -e 's#/usr/bin/span-collector#$(PREFIX)/bin/span-collector#g' \
		-e 's#/etc/span-collector/#$(SYSCONFDIR)/span-collector/#g' \
		-e 's#file:/usr/share/doc/#file:$(PREFIX)/share/doc/#' \
		config/span-collector.service > $(DESTDIR)$(PREFIX)/lib/systemd/system/span-collector.service
	chmod 0644 $(DESTDIR)$(PREFIX)/lib/systemd/system/span-collector.service
	install -D -m 0644 packaging/span-collector.sysusers $(DESTDIR)$(PREFIX)/lib/sysusers.d/span-collector.conf
	install -d $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0644 $(STATIC)/man/*.1.gz $(DESTDIR)$(PREFIX)/share/man/man1/
	install -D -m 0644 $(STATIC)/completions/span-collector \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions/span-collector
	install -D -m 0644 $(STATIC)/completions/_span-collector $(DESTDIR)$(ZSH_COMPLETIONS)/_span-collector
	install -D -m 0644 $(STATIC)/completions/span-collector.fish \
		$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/span-collector.fish
	install -d $(DESTDIR)$(PREFIX)/share/doc/span-collector
	install -m 0644 README.md docs/OPERATIONS.md docs/COUNTERS.md docs/FORMATS.md packaging/copyright \
		$(DESTDIR)$(PREFIX)/share/doc/span-collector/

## dist/span-collector_VERSION_ARCH.deb with Debian's own tools (no network).
DEB_ROOT := .build/deb/root
deb: static
	@head -1 packaging/changelog | grep -q "^span-collector ($(VERSION)) " || \
		{ echo "packaging/changelog does not start with version $(VERSION)"; exit 1; }
	rm -rf .build/deb && mkdir -p $(DEB_ROOT)/DEBIAN dist
	$(MAKE) --no-print-directory install-files DESTDIR=$(DEB_ROOT) PREFIX=/usr SYSCONFDIR=/etc \
		ZSH_COMPLETIONS=/usr/share/zsh/vendor-completions
	gzip -9n < packaging/changelog > $(DEB_ROOT)/usr/share/doc/span-collector/changelog.gz
	install -m 0755 packaging/postinst packaging/prerm packaging/postrm $(DEB_ROOT)/DEBIAN/
	echo /etc/span-collector/span-collector.toml > $(DEB_ROOT)/DEBIAN/conffiles
	mkdir -p .build/deb/debian && printf 'Source: span-collector\n\nPackage: span-collector\nArchitecture: any\n' > .build/deb/debian/control
	cd .build/deb && dpkg-shlibdeps -O -eroot/usr/bin/span-collector > shlibs
	sed -n 's/^shlibs:Depends=//p' .build/deb/shlibs > .build/deb/depends && test -s .build/deb/depends
	{ echo "Package: span-collector"; \
	  echo "Version: $(VERSION)"; \
	  echo "Architecture: $(DEB_ARCH)"; \
	  echo "Maintainer: span-collector maintainers <maintainers@users.noreply.r-seed-23cd12c2.example>"; \
	  echo "Installed-Size: $$(du -s -k --exclude=DEBIAN $(DEB_ROOT) | cut -f1)"; \
	  echo "Depends: $$(cat .build/deb/depends), systemd | systemd-standalone-sysusers"; \
	  echo "Section: net"; \
	  echo "Priority: optional"; \
	  echo "Description: port-mirror (ERSPAN, GRE-TEB, VXLAN, RSPAN) traffic to pcap files"; \
	  echo " span-collector receives port-mirror streams through AF_PACKET rings, strips the"; \
	  echo " encapsulation and writes the original frames into per-session rotated pcap or"; \
	  echo " pcapng files, counting every packet it could not keep and why."; \
	} > $(DEB_ROOT)/DEBIAN/control
	cd $(DEB_ROOT) && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum > DEBIAN/md5sums
	dpkg-deb --root-owner-group -Zxz --build $(DEB_ROOT) $(DEB)
	@ls -l $(DEB)

## lintian on the package (errors fail; warnings are listed in docs/OPERATIONS.md).
lintian: deb
	lintian --fail-on error $(DEB)
