# span-collector: the two commands the README starts with are `make run` and `make test`.
# Both install what they need on a fresh Debian machine (run as root, or with sudo).

SWIFT ?= swift
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEB_PACKAGES := libpcap-dev zlib1g-dev libzstd-dev gzip zstd tshark tcpdump tcpreplay iproute2 python3-pip systemd procps
SCAPY_VERSION := 2.8.0
OUTPUT ?= ./span-output

.PHONY: deps build release run test bench fuzz sanitize soak clean

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

## Run the whole test suite.
test: deps
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
	rm -rf .build .build-fuzz .build-asan .build-tsan
