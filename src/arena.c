/*
 * arena.c - the arena: the one address range a container reserves in every
 * process at the same base (the window, the code cache, the regions).  The
 * creator picks a base high in the address space, from a hash of the name,
 * trying candidates with MAP_FIXED_NOREPLACE; every other process reserves
 * exactly that range, or fails with VMC_EARENA naming the mapping in the
 * way.  Forked children inherit the reservation.
 */
#include "container.h"
#include "os/os.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define ARENA_ALIGN    (1ull << 30)
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define VMC_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) || defined(VMC_TSAN)
/* ThreadSanitizer keeps its shadow where the arena normally goes: use the
 * low application range it leaves to programs */
#define ARENA_FIRST    0x001000000000ull
#define ARENA_LIMIT    0x007f00000000ull
#else
#define ARENA_FIRST    0x100000000000ull   /* 16 TiB: clear of heap, libs, stacks */
#define ARENA_LIMIT    0x600000000000ull
#endif

uint64_t arena_size(uint64_t bytes)
{
	return (bytes + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
}

static int reserve_at(uint64_t base, uint64_t size)
{
	void *p = os_mmap((void *)base, size, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
	if (p == MAP_FAILED)
		return errno;
	if ((uint64_t)p != base) {    /* a kernel that treats NOREPLACE as a hint */
		os_munmap(p, size);
		return EEXIST;
	}
	return 0;
}

static void arena_occupant(uint64_t base, uint64_t size, char *out, size_t n);

int arena_create(struct vmc *c, const char *name)
{
	uint64_t size = c->h.arena_size, hash = 1469598103934665603ull;

	if (c->h.arena_base) {   /* vmc/arena_base: exactly there, or not at all */
		uint64_t base = c->h.arena_base;
		int err = base + size > (1ull << 47) ? ERANGE : reserve_at(base, size);
		char who[300];
		if (!err) {
			c->arena = (void *)base;
			return 0;
		}
		if (err == ERANGE)
			return vmc_fail(EINVAL, "vmc/arena_base = %#llx: the arena (%llu GiB) would "
					"end above 2^47", (unsigned long long)base,
					(unsigned long long)(size >> 30));
		if (err != EEXIST)
			return vmc_fail(err, "reserving the arena at vmc/arena_base = %#llx: %s",
					(unsigned long long)base, vmc_strerror(err));
		arena_occupant(base, size, who, sizeof who);
		return vmc_fail(VMC_EARENA, "vmc/arena_base = %#llx: the range (%llu GiB) is taken "
				"in this process by [%s]: choose another base, or 0",
				(unsigned long long)base, (unsigned long long)(size >> 30), who);
	}
	for (const char *p = name ? name : ""; *p; p++)
		hash = (hash ^ (uint8_t)*p) * 1099511628211ull;
	uint64_t span = (ARENA_LIMIT - ARENA_FIRST) / size;
	for (uint64_t i = 0; i < VMC_MIN(span, 64u); i++) {
		uint64_t base = ARENA_FIRST + ((hash + i) % span) * size;
		if (reserve_at(base, size) == 0) {
			c->h.arena_base = base;
			c->arena = (void *)base;
			return 0;
		}
	}
	return vmc_fail(VMC_EARENA, "no free address range of %llu GiB for the arena between "
			"%#llx and %#llx: lower window_size or region_space",
			(unsigned long long)(size >> 30), ARENA_FIRST, ARENA_LIMIT);
}

/* The line of /proc/self/maps that overlaps [base, base+size), for errors. */
static void arena_occupant(uint64_t base, uint64_t size, char *out, size_t n)
{
	static char maps[65536];
	char *line, *save = NULL;

	snprintf(out, n, "unknown");
	if (vmc_os_read_file("/proc/self/maps", maps, sizeof maps) <= 0)
		return;
	for (line = strtok_r(maps, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		unsigned long long lo, hi;
		if (sscanf(line, "%llx-%llx", &lo, &hi) == 2 && lo < base + size && hi > base) {
			snprintf(out, n, "%s", line);
			return;
		}
	}
}

void arena_unmap(struct vmc *c)
{
	if (c->arena)
		os_munmap(c->arena, c->h.arena_size);
	c->arena = NULL;
}

int arena_join(struct vmc *c)
{
	char who[300];

	int err = reserve_at(c->h.arena_base, c->h.arena_size);

	if (!err) {
		c->arena = (void *)c->h.arena_base;
		return 0;
	}
	if (err != EEXIST)
		return vmc_fail(err, "reserving the arena of container %s (%llu GiB at %#llx): %s",
				c->h.name, (unsigned long long)(c->h.arena_size >> 30),
				(unsigned long long)c->h.arena_base, vmc_strerror(err));
	arena_occupant(c->h.arena_base, c->h.arena_size, who, sizeof who);
	return vmc_fail(VMC_EARENA, "the arena of container %s (%#llx, %llu GiB) is taken in "
			"this process by [%s]: open the container before mapping other "
			"things there", c->h.name, (unsigned long long)c->h.arena_base,
			(unsigned long long)(c->h.arena_size >> 30), who);
}
