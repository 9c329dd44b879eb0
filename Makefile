# SPDX-License-Identifier: GPL-2.0
#
# scull-rs: LDD3's scull and complete drivers as out-of-tree Rust kernel modules.
#
#   make                 build scull.ko and complete.ko against KDIR
#   make check           everything (what CI runs): the suite on Debian's own kernel, then
#                        setup of the debug kernel, lint, the checker and the whole suite on it
#   make demo            boot a VM and run the README's examples
#   make fuzz            the model tests for FUZZ_SECONDS each (default 600), fresh sequences
#   make bench           scull against tmpfs on a non-debug kernel (table, JSON, PNG in bench/)
#   make test            the suite in a VM (TESTS='tests/FILE.py -k NAME' for a part of it)
#   make vm              interactive shell in a VM; VM_CMD='...' runs a command instead
#   make lint            rustfmt, shellcheck and pyflakes checks, and CLIPPY=1 builds with
#                        warnings as errors, with each kernel's own compiler
#   make rust-analyzer   write rust-project.json for editors
#   make clean           remove build outputs
#
# SCULL_KERNEL picks the kernel that make builds for and that the VM boots:
#   debian   Debian 13's own 7.3 (trixie-backports), with the Rust metadata that
#            scripts/debian-kernel builds for it: no kernel build
#   test     the debug kernel (KASAN, kmemleak, lockdep, KUnit, fault injection) that
#            `scripts/setup --kernel test` builds
# It defaults to debian when that is prepared, else test. KDIR=/path/to/a/built/kernel
# overrides both (any Rust-enabled 7.3 tree).

SCULL_CACHE ?= $(HOME)/.cache/scull-rs
TEST_KERNEL := $(SCULL_CACHE)/test-kernel
DEBIAN_KDIR := $(shell scripts/debian-kernel --print-kdir)

ifeq ($(origin SCULL_KERNEL),undefined)
  ifneq ($(wildcard $(DEBIAN_KDIR)/scull-rs.mk),)
    SCULL_KERNEL := debian
  else
    SCULL_KERNEL := test
  endif
endif

ifeq ($(origin KDIR),undefined)
  ifeq ($(SCULL_KERNEL),debian)
    KDIR := $(DEBIAN_KDIR)
  else ifneq ($(wildcard $(SCULL_CACHE)/$(SCULL_KERNEL)-kernel/scull-rs.mk),)
    KDIR := $(SCULL_CACHE)/$(SCULL_KERNEL)-kernel
  else
    KDIR := /lib/modules/$(shell uname -r)/build
  endif
endif

# A kernel prepared by scripts/setup says which LLVM= it was built with; modules must match.
# One prepared by scripts/debian-kernel names the build root whose compilers must build them.
-include $(KDIR)/scull-rs.mk
ifdef SCULL_KERNEL_LLVM
  LLVM ?= $(SCULL_KERNEL_LLVM)
else ifneq ($(shell grep -s '^CONFIG_CC_IS_CLANG=y' $(KDIR)/.config),)
  LLVM ?= 1
endif
ifdef SCULL_RUST_LIB_SRC
  RUST_LIB_SRC ?= $(SCULL_RUST_LIB_SRC)
endif
# scripts/setup installs bindgen into the cache, not onto PATH.
ifneq ($(wildcard $(SCULL_CACHE)/tools/bin/bindgen),)
  BINDGEN ?= $(SCULL_CACHE)/tools/bin/bindgen
endif
IN_ROOT := $(if $(SCULL_KERNEL_ROOT),scripts/in-root $(SCULL_KERNEL_ROOT))

# The kernel's source tree: KDIR itself, or what an O= build dir points to.
KSRC := $(shell readlink -f $(KDIR)/source 2>/dev/null || echo $(KDIR))

KBUILD_ARGS = $(SCULL_KERNEL_MAKEFLAGS) $(if $(LLVM),LLVM=$(LLVM))
KMAKE = $(IN_ROOT) $(MAKE) -C $(KDIR) M=$(CURDIR) $(KBUILD_ARGS)
# The checker's module misbehaves on purpose: a build of its own, for check-checker only.
KMAKE_CHECKER = $(IN_ROOT) $(MAKE) -C $(KDIR) M=$(CURDIR)/tests/checker $(KBUILD_ARGS)
RUST_SOURCES := $(wildcard *.rs kernel/*.rs kernel/*/*.rs tests/checker/*.rs)
# What `make lint` checks besides Rust: scripts are told apart by their #! line (the
# sourced scripts/lib/*.sh name their shell to shellcheck themselves).
SHELL_SCRIPTS = $(shell for f in scripts/* .ci/run; do \
	head -n 1 "$$f" 2>/dev/null | grep -qE '^\#!.*[/ ](ba)?sh$$' && echo "$$f"; done) \
	$(wildcard scripts/lib/*.sh)
PYTHON_SOURCES = $(wildcard tests/*.py tests/checker/*.py) $(shell for f in scripts/*; do \
	head -n 1 "$$f" 2>/dev/null | grep -q '^\#!.*python' && echo "$$f"; done)
VM := scripts/vm --kernel $(SCULL_KERNEL)
# Debian's kernel has none of the debug options that some suites and checks need.
GUEST_TEST := scripts/guest-test $(if $(filter debian,$(SCULL_KERNEL)),--release)
# The suite loads scull about 80 times; on the debug kernel, KUnit would run its suites at
# each load. Booted with autorun off, the guest runs them once (scripts/guest-test).
SUITE_VM_ARGS := $(if $(filter debian,$(SCULL_KERNEL)),,--append kunit.autorun=0)

.PHONY: all modules clean check check-release check-debug test test-host lint fmt rust-analyzer \
	vm demo setup check-checker checker-module bench fuzz dkms clean-outputs

all: modules

# A build directory holds the objects of one KDIR: switching kernels cleans it first, so no
# object built by one compiler is linked with another's.
define kdir_switch
	@if [ -f $(1)/.scull-kdir ] && [ "$$(cat $(1)/.scull-kdir)" != '$(KDIR)' ]; then \
		echo "KDIR changed to $(KDIR): cleaning $(1)"; $(2) clean >/dev/null; fi
	@echo '$(KDIR)' >$(1)/.scull-kdir
endef

# After the build, scripts/check-panics fails on any panic path in scull-rs's own code.
modules:
	@KDIR='$(KDIR)' LLVM='$(LLVM)' scripts/check-kdir
	$(call kdir_switch,.,$(KMAKE))
	$(KMAKE) modules
	scripts/check-panics $(if $(shell grep -s '^CONFIG_RUST_DEBUG_ASSERTIONS=y' \
		$(KDIR)/.config),--debug-assertions) scull.ko complete.ko

clean:
	@if [ -d '$(KDIR)' ]; then $(KMAKE) clean && $(KMAKE_CHECKER) clean; fi
	rm -f rust-project.json .scull-kdir tests/checker/.scull-kdir

# DKMS's build (dkms.conf): the Rust metadata for the kernel it targets, then the modules.
# Its clean removes what a build leaves, with no KDIR needed.
dkms:
	scripts/debian-kernel --release '$(DKMS_KERNELVER)'
	$(MAKE) KDIR="$$(scripts/debian-kernel --release '$(DKMS_KERNELVER)' --print-kdir)" modules

clean-outputs:
	rm -f *.o *.ko *.mod *.mod.c .*.cmd *.rmeta modules.order Module.symvers .module-common.o \
		.scull-kdir kernel/c_checks.s kernel/c_checks.rsi kernel/.c_checks.*.cmd

setup:
	scripts/setup

# Everything CI runs, in two stages, each on its own kernel (their summaries come last):
#   1. Debian's own kernel, which needs no kernel build: the modules built with Debian's
#      compiler (warnings as errors), lint, and every suite that needs no debug option;
#   2. the debug kernel, built on first use and cached: the modules, lint, the checker,
#      and the whole suite under KASAN, kmemleak, lockdep, KUnit and fault injection.
check: setup test-host
	$(MAKE) SCULL_KERNEL=debian check-release
	scripts/setup --kernel test
	$(MAKE) SCULL_KERNEL=test check-debug

check-release: modules lint
	$(MAKE) test

check-debug: modules lint check-checker
	$(MAKE) test

# The build checks (scripts/check-kdir) against broken kernel trees, on the host.
test-host:
	/usr/bin/python3 -m pytest -p no:cacheprovider -q tests/host

# The test suite in the VM: loads the modules, runs pytest, checks kmemleak and the log.
# TESTS='tests/test_scull_io.py -k lseek' runs only those (pytest arguments).
test:
	$(VM) $(SUITE_VM_ARGS) --timeout $${SCULL_TEST_TIMEOUT:-4500} -- $(GUEST_TEST) $(TESTS)

# The model tests only, each state machine fed fresh random sequences for FUZZ_SECONDS; a
# failure prints its shrunk sequence of calls as a reproducer. All the run's checks apply.
FUZZ_SECONDS ?= 600
fuzz: modules
	$(VM) $(SUITE_VM_ARGS) --timeout $$(( $(FUZZ_SECONDS) * 4 + 900 )) -- $(GUEST_TEST) \
		--fuzz $(FUZZ_SECONDS)

# Proves the checker catches a leak, a WARNING and a lockdep report (in a VM of its own,
# since a lockdep report turns lockdep off for the rest of that boot). The guest is small
# because its kmemleak scans read all of its RAM, and it holds nothing else.
check-checker: checker-module
	SCULL_VM_MEMORY=$${SCULL_VM_MEMORY:-1G} $(VM) --timeout 600 -- scripts/guest-test --checker

# tests/checker/kcheck_selftest.ko, which tests/checker/test_checker.py loads.
checker-module:
	@KDIR='$(KDIR)' LLVM='$(LLVM)' scripts/check-kdir
	$(call kdir_switch,tests/checker,$(KMAKE_CHECKER))
	$(KMAKE_CHECKER) modules

# Clippy builds every module (the checker's too) from a scratch copy of the sources, so
# that the .ko files of the last `make` stay as they are, with KDIR's own compiler (the
# build root's for Debian's kernel). (The kernel's own MO= output directory cannot do this:
# it refuses a source directory that has been built in.)
lint:
	@KDIR='$(KDIR)' LLVM='$(LLVM)' scripts/check-kdir
	rustfmt --check --config-path $(KSRC)/.rustfmt.toml $(RUST_SOURCES)
	shellcheck -x $(SHELL_SCRIPTS)
	pyflakes3 $(PYTHON_SOURCES)
	@set -e; scratch=$$(mktemp -d "$${TMPDIR:-/tmp}/scull-lint.XXXXXX"); \
	trap 'rm -rf "$$scratch"' EXIT; \
	find . -name .git -prune -o -type f \
		\( -name Kbuild -o -name '*.rs' -o -name '*.h' -o -name '*.c' \) \
		-exec cp --parents -t "$$scratch" {} +; \
	echo "clippy build in $$scratch for $(KDIR)"; \
	$(IN_ROOT) $(MAKE) -C $(KDIR) M=$$scratch $(KBUILD_ARGS) CLIPPY=1 KRUSTFLAGS=-Dwarnings modules; \
	$(IN_ROOT) $(MAKE) -C $(KDIR) M=$$scratch/tests/checker $(KBUILD_ARGS) CLIPPY=1 \
		KRUSTFLAGS=-Dwarnings modules

fmt:
	rustfmt --config-path $(KSRC)/.rustfmt.toml $(RUST_SOURCES)

rust-analyzer:
	$(KMAKE) $(if $(RUST_LIB_SRC),RUST_LIB_SRC=$(RUST_LIB_SRC)) $(if $(BINDGEN),BINDGEN=$(BINDGEN)) \
		rust-analyzer

# Builds (once) and boots the bench kernel; BENCH_ARGS go to scripts/bench-guest.
bench:
	scripts/bench $(BENCH_ARGS)

vm: modules
ifdef VM_CMD
	$(VM) -- sh -c '$(VM_CMD)'
else
	$(VM)
endif

demo: modules
	$(VM) --timeout 600 -- scripts/demo
