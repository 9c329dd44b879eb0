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

# Debian 13's own kernel (trixie-backports), which the debian flavour builds for and boots.
DEBIAN_KERNEL_RELEASE=${SCULL_DEBIAN_KERNEL_RELEASE:-7.3.4+deb13-amd64}
# The Debian 13 build root that scripts/debian-kernel makes where the host is not Debian 13.
DEBIAN_ROOT=${SCULL_DEBIAN_ROOT:-$SCULL_CACHE/debian13-root}

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

# Where scripts/debian-kernel keeps the Rust metadata (a KDIR) for Debian's release $1.
debian_kdir() {
	printf '%s/debian/kdir-%s\n' "$SCULL_CACHE" "$1"
}

# Where it unpacks Debian's image and modules of release $1, for scripts/vm.
debian_image_dir() {
	printf '%s/debian/image-%s\n' "$SCULL_CACHE" "$1"
}

# The rust-src library of the root's rustc, as a path inside the root.
debian_rust_lib_src() {
	local lib
	for lib in "${DEBIAN_ROOT%/}"/usr/src/rustc-*/library; do
		[ -d "$lib/core" ] && { printf '%s\n' "${lib#"${DEBIAN_ROOT%/}"}"; return; }
	done
	die "no rust-src library in ${DEBIAN_ROOT%/}/usr/src: is the rust-src package installed?"
}
