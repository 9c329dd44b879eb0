# SPDX-License-Identifier: GPL-2.0
#
# scull-rs: LDD3's scull and complete drivers as out-of-tree Rust kernel modules.
#
#   make                 build scull.ko and complete.ko against KDIR
#   make check           everything: setup, build, lint, tests in a VM (what CI runs)
#   make demo            boot a VM and run the README's examples
#   make fuzz            the model tests for FUZZ_SECONDS each (default 600), fresh sequences
#   make bench           scull against tmpfs on a non-debug kernel (table, JSON, PNG in bench/)
#   make test            the suite in a VM (TESTS='tests/FILE.py -k NAME' for a part of it)
#   make vm              interactive shell in a VM; VM_CMD='...' runs a command instead
#   make lint            rustfmt, shellcheck and pyflakes checks, and a CLIPPY=1 build with
#                        warnings as errors
#   make rust-analyzer   write rust-project.json for editors
#   make clean           remove build outputs
#
# KDIR defaults to the test kernel that scripts/setup builds and caches, else to the
# running kernel's build tree. Any Rust-enabled (CONFIG_RUST=y), built kernel tree works.

SCULL_CACHE ?= $(HOME)/.cache/scull-rs
TEST_KERNEL := $(SCULL_CACHE)/test-kernel

ifeq ($(origin KDIR),undefined)
  ifneq ($(wildcard $(TEST_KERNEL)/scull-rs.mk),)
    KDIR := $(TEST_KERNEL)
  else
    KDIR := /lib/modules/$(shell uname -r)/build
  endif
endif

# A kernel built by scripts/setup says which LLVM= it was built with; modules must match.
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

# The kernel's source tree: KDIR itself, or what an O= build dir points to.
KSRC := $(shell readlink -f $(KDIR)/source 2>/dev/null || echo $(KDIR))

KMAKE = $(MAKE) -C $(KDIR) M=$(CURDIR) $(if $(LLVM),LLVM=$(LLVM))
# The checker's module misbehaves on purpose: a build of its own, for check-checker only.
KMAKE_CHECKER = $(MAKE) -C $(KDIR) M=$(CURDIR)/tests/checker $(if $(LLVM),LLVM=$(LLVM))
RUST_SOURCES := $(wildcard *.rs tests/checker/*.rs)
# What `make lint` checks besides Rust: scripts are told apart by their #! line (the
# sourced scripts/lib/*.sh name their shell to shellcheck themselves).
SHELL_SCRIPTS = $(shell for f in scripts/* .ci/run; do \
	head -n 1 "$$f" 2>/dev/null | grep -qE '^\#!.*[/ ](ba)?sh$$' && echo "$$f"; done) \
	$(wildcard scripts/lib/*.sh)
PYTHON_SOURCES = $(wildcard tests/*.py tests/checker/*.py) $(shell for f in scripts/*; do \
	head -n 1 "$$f" 2>/dev/null | grep -q '^\#!.*python' && echo "$$f"; done)
VM := scripts/vm

.PHONY: all modules clean check test lint fmt rust-analyzer vm demo setup check-checker checker-module bench fuzz

all: modules

modules:
	@KDIR='$(KDIR)' LLVM='$(LLVM)' scripts/check-kdir
	$(KMAKE) modules

clean:
	@if [ -d '$(KDIR)' ]; then $(KMAKE) clean && $(KMAKE_CHECKER) clean; fi
	rm -f rust-project.json

setup:
	scripts/setup

# Everything CI runs: prepares the machine (seconds when already done), builds, lints,
# proves the checker works, then runs the tests in the VM (their summary comes last).
check: setup
	$(MAKE) modules
	$(MAKE) lint
	$(MAKE) check-checker
	$(MAKE) test

# The test suite in the VM: loads the modules, runs pytest, checks kmemleak and the log.
# TESTS='tests/test_scull_io.py -k lseek' runs only those (pytest arguments).
test:
	$(VM) --timeout $${SCULL_TEST_TIMEOUT:-3000} -- scripts/guest-test $(TESTS)

# The model tests only, each state machine fed fresh random sequences for FUZZ_SECONDS; a
# failure prints its shrunk sequence of calls as a reproducer. All the run's checks apply.
FUZZ_SECONDS ?= 600
fuzz: modules
	$(VM) --timeout $$(( $(FUZZ_SECONDS) * 4 + 900 )) -- scripts/guest-test --fuzz $(FUZZ_SECONDS)

# Proves the checker catches a leak, a WARNING and a lockdep report (in a VM of its own,
# since a lockdep report turns lockdep off for the rest of that boot).
check-checker: checker-module
	$(VM) --timeout 600 -- scripts/guest-test --checker

# tests/checker/kcheck_selftest.ko, which tests/checker/test_checker.py loads.
checker-module:
	@KDIR='$(KDIR)' LLVM='$(LLVM)' scripts/check-kdir
	$(KMAKE_CHECKER) modules

# Clippy builds every module (the checker's too) from a scratch copy of the sources, so
# that the .ko files of the last `make` stay as they are. (The kernel's own MO= output
# directory cannot do this: it refuses a source directory that has been built in.)
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
	echo "clippy build in $$scratch"; \
	$(MAKE) -C $(KDIR) M=$$scratch $(if $(LLVM),LLVM=$(LLVM)) CLIPPY=1 KRUSTFLAGS=-Dwarnings modules; \
	$(MAKE) -C $(KDIR) M=$$scratch/tests/checker $(if $(LLVM),LLVM=$(LLVM)) CLIPPY=1 \
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
