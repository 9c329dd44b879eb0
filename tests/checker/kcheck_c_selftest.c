// SPDX-License-Identifier: GPL-2.0
/*
 * The C half of the checker's misbehaving module, for the two reports that Rust code cannot
 * make: UBSAN instruments only C, and a KASAN report needs an out-of-bounds access, which
 * safe Rust cannot express (and scull-rs keeps raw pointers out of its Rust modules). It
 * misbehaves at load time, as kcheck_selftest.ko does, and only for tests/checker/.
 */

#include <linux/compiler.h>
#include <linux/module.h>
#include <linux/slab.h>

static int misbehave;
module_param(misbehave, int, 0444);
MODULE_PARM_DESC(misbehave, "0: nothing, 1: KASAN slab-out-of-bounds read, 2: UBSAN array-index-out-of-bounds");

/* Not a multiple of KASAN's 8-byte granule: the byte past the end is poisoned. */
#define OBJECT_SIZE 123

static int read_past_the_end(void)
{
	char *object = kmalloc(OBJECT_SIZE, GFP_KERNEL);
	size_t index = OBJECT_SIZE;
	char value;

	if (!object)
		return -ENOMEM;
	/* Hidden from the compiler, which would otherwise warn or drop the access. */
	OPTIMIZER_HIDE_VAR(index);
	value = READ_ONCE(object[index]);
	kfree(object);
	pr_info("read %d past the end of a %d-byte object on purpose\n", value, OBJECT_SIZE);
	return 0;
}

static int index_past_an_array(void)
{
	int array[4] = { 1, 2, 3, 4 };
	size_t index = ARRAY_SIZE(array);
	int value;

	/* A plain read: UBSAN lets the address one past the end be taken, not read. */
	OPTIMIZER_HIDE_VAR(index);
	value = array[index];
	pr_info("indexed past a %zu-element array on purpose (%d)\n", ARRAY_SIZE(array), value);
	return 0;
}

static int __init kcheck_c_selftest_init(void)
{
	switch (misbehave) {
	case 0:
		return 0;
	case 1:
		return read_past_the_end();
	case 2:
		return index_past_an_array();
	default:
		pr_err("misbehave=%d is not a known misbehaviour\n", misbehave);
		return -EINVAL;
	}
}

static void __exit kcheck_c_selftest_exit(void)
{
}

module_init(kcheck_c_selftest_init);
module_exit(kcheck_c_selftest_exit);

MODULE_DESCRIPTION("Misbehaves on purpose to test scull-rs's KASAN and UBSAN checks");
MODULE_LICENSE("GPL");
