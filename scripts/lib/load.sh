# Helpers shared by scull_load, scull_unload, misc_load and misc_unload; sourced, never run.
# They use shell builtins where they can: in a debug guest under emulation every exec costs
# a noticeable fraction of a second. POSIX sh has no local variables, so the helpers' own
# variables start with an underscore to stay clear of their callers'.
# shellcheck shell=sh

die() {
	printf '%s: %s\n' "${0##*/}" "$*" >&2
	exit 1
}

require_root() {
	[ "$(id -u)" -eq 0 ] || die "must be run as root (it $1 a kernel module)"
}

# Prints parameter $1's value $2 in decimal, read as the kernel reads an integer parameter
# (kstrtoint with base 0: 0x.. is hex, a leading 0 is octal, else decimal; an optional sign).
# Dies on anything else, so that the nodes made here always match what the module sees.
kernel_number() {
	case $2 in
	[+-]*) _sign=${2%"${2#?}"} _digits=${2#?} ;;
	*) _sign='' _digits=$2 ;;
	esac
	case $_digits in
	0[xX]) _valid= ;;
	0[xX]*) case ${_digits#??} in *[!0-9a-fA-F]*) _valid= ;; *) _valid=1 ;; esac ;;
	0*) case $_digits in *[!0-7]*) _valid= ;; *) _valid=1 ;; esac ;;
	[1-9]*) case $_digits in *[!0-9]*) _valid= ;; *) _valid=1 ;; esac ;;
	*) _valid= ;;
	esac
	[ -n "$_valid" ] || die "$1=$2: not a number the kernel reads (decimal, 0x hex or 0 octal)"
	printf '%d\n' "$((${_sign}${_digits}))"
}

# Succeeds when module $1 is loaded.
module_loaded() {
	while read -r _module _; do
		[ "$_module" = "$1" ] && return 0
	done </proc/modules
	return 1
}

# Prints the number that file $1 (/proc/devices or /proc/misc) gives name $2.
number_of() {
	while read -r _number _name; do
		if [ "$_name" = "$2" ]; then
			printf '%s\n' "$_number"
			return 0
		fi
	done <"$1"
	return 1
}

# LDD3: device nodes belong to group staff where it exists, else wheel; prints nothing
# when neither exists.
node_group() {
	for _candidate in staff wheel; do
		while IFS=: read -r _group _; do
			if [ "$_group" = "$_candidate" ]; then
				printf '%s\n' "$_candidate"
				return 0
			fi
		done </etc/group
	done
}

# Gives nodes "$@" LDD3's group and mode 664.
set_node_access() {
	_group=$(node_group)
	if [ -n "$_group" ]; then
		chgrp "$_group" "$@"
	fi
	chmod 664 "$@"
}

# Where the .ko files are: SCULL_MODULE_DIR, else the repository holding these scripts.
module_dir() {
	if [ -n "${SCULL_MODULE_DIR:-}" ]; then
		printf '%s\n' "$SCULL_MODULE_DIR"
	else
		case $0 in
		*/*) _dir=${0%/*} ;;
		*) _dir=. ;;
		esac
		(cd "$_dir/.." && pwd)
	fi
}
