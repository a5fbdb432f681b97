/*
 * benchprobe.c - what page-table work costs on this machine, measured at
 * the start of every benchmark and printed beside its figures: machines
 * of one kind differ 10-20x in these, so a figure is only read against
 * them.  A system call (getppid), the first touch of an allocated 4 KiB
 * shmem page (a minor fault), MADV_POPULATE_WRITE and munmap per populated
 * page, an mmap of a memfd range, and an mprotect pair on a small
 * populated range.  Medians of a few rounds.
 */
#include "benchlib.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define PAGES 256
#define ROUNDS 7

static double per(uint64_t ns, unsigned n)
{
	return (double)ns / (double)n;
}

/* One round of each figure into v[k][round]. */
static void round_once(int fd, double v[6][ROUNDS], int r)
{
	size_t len = (size_t)PAGES * 4096;
	uint64_t t0;
	char *p;

	t0 = bench_now_ns();
	for (int i = 0; i < 1000; i++)
		syscall(SYS_getppid);
	v[0][r] = per(bench_now_ns() - t0, 1000);

	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return;
	t0 = bench_now_ns();
	for (size_t off = 0; off < len; off += 4096)
		((volatile char *)p)[off] = 1;
	v[1][r] = per(bench_now_ns() - t0, PAGES);
	munmap(p, len);

	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	t0 = bench_now_ns();
	madvise(p, len, MADV_POPULATE_WRITE);
	v[2][r] = per(bench_now_ns() - t0, PAGES);
	t0 = bench_now_ns();
	munmap(p, len);
	v[3][r] = per(bench_now_ns() - t0, PAGES);

	t0 = bench_now_ns();
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	v[4][r] = (double)(bench_now_ns() - t0);
	((volatile char *)p)[0] = 1;
	t0 = bench_now_ns();
	for (int i = 0; i < 100; i++) {
		mprotect(p, 4096, PROT_NONE);
		mprotect(p, 4096, PROT_READ | PROT_WRITE);
	}
	v[5][r] = per(bench_now_ns() - t0, 100);
	munmap(p, len);
}

void bench_probe(struct bench_probe *out)
{
	double v[6][ROUNDS];
	int fd = memfd_create("bench-probe", MFD_CLOEXEC);

	memset(out, 0, sizeof *out);
	memset(v, 0, sizeof v);
	if (fd < 0 || ftruncate(fd, (off_t)PAGES * 4096)) {
		if (fd >= 0)
			close(fd);
		return;
	}
	for (int r = 0; r < ROUNDS; r++) {
		/* fresh pages each round: punch them out again */
		fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)PAGES * 4096);
		round_once(fd, v, r);
	}
	close(fd);
	out->syscall_ns = bench_median(v[0], ROUNDS);
	out->fault_ns = bench_median(v[1], ROUNDS);
	out->populate_ns = bench_median(v[2], ROUNDS);
	out->munmap_ns = bench_median(v[3], ROUNDS);
	out->mmap_ns = bench_median(v[4], ROUNDS);
	out->mprotect_pair_ns = bench_median(v[5], ROUNDS);
}
