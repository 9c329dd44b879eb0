// SPDX-License-Identifier: GPL-2.0
/*
 * pipe-bench: scullpipe against pipe(2), for scripts/bench-guest, which builds and runs it.
 *
 *   pipe-bench throughput BLOCK TOTAL CHANNEL
 *	a writer process moves TOTAL bytes through CHANNEL in writes of BLOCK bytes while
 *	this one reads them; prints the seconds from before the fork to the last byte read
 *   pipe-bench pingpong ROUNDS CHANNEL CHANNEL
 *	one byte there through the first channel and back through the second, ROUNDS times;
 *	prints the seconds a round trip took, on average
 *
 * A CHANNEL is a path (a scullpipe: both ends are opened on it) or pipe:SIZE, a pipe(2) whose
 * buffer F_SETPIPE_SZ sets to SIZE bytes. C, not Python, so that what is measured is the
 * pipes and not the interpreter: both contenders run this same code.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char buffer[1 << 20];

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static long number(const char *text)
{
	char *end;
	long value = strtol(text, &end, 10);

	if (*text == '\0' || *end != '\0' || value <= 0) {
		fprintf(stderr, "pipe-bench: '%s' is not a positive number\n", text);
		exit(2);
	}
	return value;
}

struct channel {
	int read_fd;
	int write_fd;
};

static struct channel open_channel(const char *spec)
{
	struct channel channel;

	if (strncmp(spec, "pipe:", 5) == 0) {
		int fds[2];
		long size = number(spec + 5);

		if (pipe(fds) != 0)
			die("pipe");
		if (fcntl(fds[1], F_SETPIPE_SZ, (int)size) != size) {
			fprintf(stderr, "pipe-bench: F_SETPIPE_SZ did not give %ld bytes\n", size);
			exit(1);
		}
		channel.read_fd = fds[0];
		channel.write_fd = fds[1];
	} else {
		channel.read_fd = open(spec, O_RDONLY);
		if (channel.read_fd < 0)
			die(spec);
		channel.write_fd = open(spec, O_WRONLY);
		if (channel.write_fd < 0)
			die(spec);
	}
	return channel;
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* Writes all `length` bytes, however many calls that takes. */
static void write_all(int fd, const char *data, long length)
{
	while (length > 0) {
		ssize_t n = write(fd, data, length);

		if (n < 0)
			die("write");
		data += n;
		length -= n;
	}
}

static void read_all(int fd, char *data, long length)
{
	while (length > 0) {
		ssize_t n = read(fd, data, length);

		if (n < 0)
			die("read");
		if (n == 0) {
			fprintf(stderr, "pipe-bench: end of file with %ld bytes to come\n", length);
			exit(1);
		}
		data += n;
		length -= n;
	}
}

static void wait_for(pid_t child)
{
	int status;

	if (waitpid(child, &status, 0) != child)
		die("waitpid");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "pipe-bench: the other process failed (status %#x)\n", status);
		exit(1);
	}
}

static double throughput(long block, long total, const char *spec)
{
	struct channel channel = open_channel(spec);
	double start = now();
	pid_t child = fork();

	if (child < 0)
		die("fork");
	if (child == 0) {
		close(channel.read_fd);
		for (long left = total; left > 0; left -= block)
			write_all(channel.write_fd, buffer, left < block ? left : block);
		_exit(0);
	}
	close(channel.write_fd);
	/* Reads ask for a whole block, as a reader of such a writer would. */
	for (long left = total; left > 0;) {
		ssize_t n = read(channel.read_fd, buffer, left < block ? left : block);

		if (n < 0)
			die("read");
		if (n == 0) {
			fprintf(stderr, "pipe-bench: end of file with %ld bytes to come\n", left);
			exit(1);
		}
		left -= n;
	}
	double took = now() - start;

	wait_for(child);
	return took;
}

static double pingpong(long rounds, const char *there_spec, const char *back_spec)
{
	struct channel there = open_channel(there_spec), back = open_channel(back_spec);
	char byte = 'x';
	pid_t child = fork();

	if (child < 0)
		die("fork");
	if (child == 0) {
		for (long i = 0; i < rounds + 100; i++) {
			read_all(there.read_fd, &byte, 1);
			write_all(back.write_fd, &byte, 1);
		}
		_exit(0);
	}
	/* 100 rounds first, so that both processes are running and their pages are in. */
	for (int i = 0; i < 100; i++) {
		write_all(there.write_fd, &byte, 1);
		read_all(back.read_fd, &byte, 1);
	}
	double start = now();

	for (long i = 0; i < rounds; i++) {
		write_all(there.write_fd, &byte, 1);
		read_all(back.read_fd, &byte, 1);
	}
	double took = now() - start;

	wait_for(child);
	return took / rounds;
}

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "throughput") == 0) {
		long block = number(argv[2]);

		if (block > (long)sizeof(buffer)) {
			fprintf(stderr, "pipe-bench: blocks of at most %zu bytes\n", sizeof(buffer));
			return 2;
		}
		printf("%.9f\n", throughput(block, number(argv[3]), argv[4]));
	} else if (argc == 5 && strcmp(argv[1], "pingpong") == 0) {
		printf("%.9f\n", pingpong(number(argv[2]), argv[3], argv[4]));
	} else {
		fprintf(stderr, "usage: pipe-bench throughput BLOCK TOTAL CHANNEL\n"
				"       pipe-bench pingpong ROUNDS CHANNEL CHANNEL\n");
		return 2;
	}
	return 0;
}
