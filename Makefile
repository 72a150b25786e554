# systing: `make run` records a 5 s trace of this machine, `make test` runs every test.
# Both install what is missing first: Debian packages, Deno (from npm, into .tools/),
# the generated protobuf code and the BPF object.

SHELL := /bin/bash
.DEFAULT_GOAL := run

SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
TOOLS := .tools/node_modules/.bin
DENO := $(TOOLS)/deno
APT_PACKAGES := clang llvm libbpf-dev libbpf1 bpftool libelf-dev gcc g++ make linux-perf \
	systemtap-sdt-dev ca-certificates libc6-dbg

BPF_OBJ := build/systing.bpf.o
BPF_EMBED := src/gen/systing_bpf.ts
PROTO_TS := src/gen/perfetto_trace_pb.ts
GENERATED := $(PROTO_TS) $(BPF_EMBED)
DURATION ?= 5

.PHONY: run test build deps apt tools check bench dist clean

run: build
	$(DENO) run -A main.ts --duration $(DURATION) --output trace.pb

test: build
	$(DENO) fmt --check
	$(DENO) lint
	$(DENO) check main.ts 'src/**/*.ts' 'test/**/*.ts' 'bench/**/*.ts'
	$(DENO) test -A --parallel=false src/ test/

build: deps $(GENERATED)

deps: apt tools

# Installs only what is missing, so repeated runs cost nothing.
apt:
	@missing=$$(for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

tools: $(DENO)

$(DENO): .tools/package.json .tools/package-lock.json
	cd .tools && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(PROTO_TS): proto/perfetto_trace.proto proto/buf.gen.yaml proto/buf.yaml $(DENO)
	PATH=$$PWD/$(TOOLS):$$PATH buf generate proto --template proto/buf.gen.yaml

bpf/vmlinux.h:
	@test -r /sys/kernel/btf/vmlinux || { echo "this kernel has no BTF (/sys/kernel/btf/vmlinux): systing needs CONFIG_DEBUG_INFO_BTF=y" >&2; exit 1; }
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@

$(BPF_OBJ): bpf/systing.bpf.c bpf/systing.h bpf/vmlinux.h
	@mkdir -p build
	clang -O2 -g -target bpf -D__TARGET_ARCH_x86 -Wall -Werror -Ibpf -c $< -o $@.tmp
	llvm-strip -g $@.tmp && mv $@.tmp $@

# The object becomes a module of the program, so `deno run` and the compiled
# binary load the very same bytes with no file to ship beside them.
$(BPF_EMBED): $(BPF_OBJ)
	@mkdir -p src/gen
	{ echo '// Generated from $(BPF_OBJ) by make: the BPF object, embedded.'; \
	  printf 'export const bpfObjectBytes: Uint8Array<ArrayBuffer> = Uint8Array.fromBase64(\n  "%s",\n);\n' \
	    "$$(base64 -w0 $<)"; } > $@.tmp && mv $@.tmp $@

bench: build
	$(DENO) run -A bench/sched_bench.ts

# `deno compile` needs Deno's runtime (denort); offline, point DENORT_BIN at a copy.
dist: build
	@mkdir -p dist
	$(DENO) compile -A --include src/pipeline/drain_worker.ts --include src/cli/inspector_guard_worker.ts \
		--output dist/systing main.ts

clean:
	rm -rf build dist src/gen bpf/vmlinux.h
