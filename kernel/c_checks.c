// SPDX-License-Identifier: GPL-2.0
/*
 * What scull's Rust code reaches without bindgen, checked by the C compiler against the real
 * headers: compiled to assembly only, never linked, like the kernel's asm-offsets.c. Kbuild
 * turns each DEFINE() below into a Rust constant in c_checks.rsi, which chrdev.rs includes,
 * and every static_assert() fails the build when a header stops matching what the Rust code
 * assumes. Why this and not a linked C helper: README.md, "The abstractions, for driver
 * engineers".
 */

#include <linux/build_bug.h>
#include <linux/cdev.h>
#include <linux/compiler.h>
#include <linux/fs.h>
#include <linux/kbuild.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/stddef.h>
#include <linux/tty.h>

/* chrdev.rs reads `struct cdev *` at this offset; the type check keeps that read right. */
static_assert(__same_type(((struct inode *)NULL)->i_cdev, struct cdev *));

/*
 * The prototypes proc_fs.rs and tty.rs declare by hand, each copied here in C: a header
 * change fails the build here, and the Rust declaration beside its header reference is the
 * one line to change with it.
 */
static_assert(__same_type(&proc_create_single_data,
			  struct proc_dir_entry *(*)(const char *, umode_t,
						     struct proc_dir_entry *,
						     int (*)(struct seq_file *, void *),
						     void *)));
static_assert(__same_type(&proc_create_seq_private,
			  struct proc_dir_entry *(*)(const char *, umode_t,
						     struct proc_dir_entry *,
						     const struct seq_operations *,
						     unsigned int, void *)));
static_assert(__same_type(&proc_remove, void (*)(struct proc_dir_entry *)));
static_assert(__same_type(&get_current_tty, struct tty_struct *(*)(void)));
static_assert(__same_type(&tty_devnum, dev_t (*)(struct tty_struct *)));
static_assert(__same_type(&tty_kref_put, void (*)(struct tty_struct *)));

/* Never called: the compiler only has to emit its DEFINE() markers into c_checks.s. */
static void __used scull_c_checks(void)
{
	DEFINE(INODE_I_CDEV, offsetof(struct inode, i_cdev));
}
