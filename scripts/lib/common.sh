# Shared settings for scull-rs's shell scripts; sourced, never run.
#
# Every pinned version lives here so that the cache key, the setup and the
# runtime checks agree on one set of numbers.

# shellcheck shell=bash
# The settings are used by the scripts that source this file, which shellcheck cannot see here.
# shellcheck disable=SC2034

SCULL_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SCULL_CACHE=${SCULL_CACHE:-$HOME/.cache/scull-rs}

# Debian's linux-source-7.3 (trixie-backports, arch all).
KERNEL_SERIES=7.3
KERNEL_DEB_VERSION=${SCULL_KERNEL_DEB_VERSION:-7.3.4-1~bpo13+1}
BINDGEN_VERSION=0.72.1
VIRTME_NG_VERSION=1.42
LLVM_MAJOR=19
# The prefix form of LLVM= picks clang, ld.lld, llvm-ar... from one LLVM
# release, whatever `clang` on PATH happens to be. Modules must be built with
# the very same value, so scripts/setup records it next to the kernel.
SCULL_LLVM=/usr/lib/llvm-$LLVM_MAJOR/bin/
# bindgen (through clang-sys) loads libclang at run time.
export LIBCLANG_PATH=/usr/lib/llvm-$LLVM_MAJOR/lib

BACKPORTS_SUITE=trixie-backports
BACKPORTS_MIRROR=http://deb.debian.org/debian

SCULL_TOOLS=$SCULL_CACHE/tools
SCULL_VENV=$SCULL_CACHE/venv
PATH=$SCULL_TOOLS/bin:$SCULL_VENV/bin:$HOME/.cargo/bin:$PATH
export PATH SCULL_CACHE

say() {
	printf '%s: %s\n' "${0##*/}" "$*" >&2
}

die() {
	printf '%s: error: %s\n' "${0##*/}" "$*" >&2
	exit 1
}

# Runs a command as root, through sudo when we are not root already.
as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		die "need root for: $*; run as root or install sudo"
	fi
}

# The rustc version that builds the kernel and the modules, e.g. 1.95.0.
rustc_version() {
	command -v rustc >/dev/null 2>&1 ||
		die "rustc not found; install Rust with rustup (https://rustup.rs) and put ~/.cargo/bin on PATH"
	rustc --version | awk '{ print $2 }'
}

# Directory where scripts/setup keeps the built kernel of a flavour
# ("test" or "bench"); a symlink to the build matching the current key.
kernel_link() {
	printf '%s/%s-kernel\n' "$SCULL_CACHE" "$1"
}
