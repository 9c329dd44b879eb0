/* SPDX-License-Identifier: GPL-2.0 */
/*
 * scull's ioctl commands, numbered as in LDD3's scull.h, for C programs.
 *
 * S: set through a pointer, T: set from the argument ("tell"), G: get through a pointer,
 * Q: return as the result ("query"), X: exchange through a pointer, H: set from the argument
 * and return the old value ("shift"). Setting needs CAP_SYS_ADMIN (EPERM otherwise); new
 * sizes apply to a device from its next trim (an open for writing only).
 */
#ifndef SCULL_IOCTL_H
#define SCULL_IOCTL_H

#include <linux/ioctl.h>

#define SCULL_IOC_MAGIC 'k'

#define SCULL_IOCRESET    _IO(SCULL_IOC_MAGIC, 0)
#define SCULL_IOCSQUANTUM _IOW(SCULL_IOC_MAGIC, 1, int)
#define SCULL_IOCSQSET    _IOW(SCULL_IOC_MAGIC, 2, int)
#define SCULL_IOCTQUANTUM _IO(SCULL_IOC_MAGIC, 3)
#define SCULL_IOCTQSET    _IO(SCULL_IOC_MAGIC, 4)
#define SCULL_IOCGQUANTUM _IOR(SCULL_IOC_MAGIC, 5, int)
#define SCULL_IOCGQSET    _IOR(SCULL_IOC_MAGIC, 6, int)
#define SCULL_IOCQQUANTUM _IO(SCULL_IOC_MAGIC, 7)
#define SCULL_IOCQQSET    _IO(SCULL_IOC_MAGIC, 8)
#define SCULL_IOCXQUANTUM _IOWR(SCULL_IOC_MAGIC, 9, int)
#define SCULL_IOCXQSET    _IOWR(SCULL_IOC_MAGIC, 10, int)
#define SCULL_IOCHQUANTUM _IO(SCULL_IOC_MAGIC, 11)
#define SCULL_IOCHQSET    _IO(SCULL_IOC_MAGIC, 12)

/* scullpipe's buffer size, from a pipe's next open with no file open; any scull device. */
#define SCULL_P_IOCTSIZE  _IO(SCULL_IOC_MAGIC, 13)
#define SCULL_P_IOCQSIZE  _IO(SCULL_IOC_MAGIC, 14)

#define SCULL_IOC_MAXNR 14

#endif /* SCULL_IOCTL_H */
