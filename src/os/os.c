/*
 * os.c - the system-call table.  Every system call of the library is made
 * here, through a table of function pointers (vmc_os) that starts out
 * pointing at the real calls.  Each wrapper counts its calls and consults
 * a per-entry injection slot, so a test can fail exactly the N-th mmap or
 * fallocate with a chosen errno, or kill the process at that point, and
 * then check that nothing broke or leaked.  Counters are relaxed atomics:
 * cheap, and exact per process.
 */
#include "os.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

static int sys_open(const char *p, int f, mode_t m) { return open(p, f, m); }
static int sys_fcntl(int fd, int cmd, long arg) { return fcntl(fd, cmd, arg); }
static int sys_memfd_create(const char *n, unsigned f) { return (int)syscall(SYS_memfd_create, n, f); }
#ifndef SYS_mseal
#define SYS_mseal 462
#endif
static int sys_mseal(void *a, size_t n, unsigned long f) { return (int)syscall(SYS_mseal, a, n, f); }

struct vmc_os_table vmc_os = {
	.mmap = mmap, .munmap = munmap, .mprotect = mprotect, .madvise = madvise,
	.fallocate = fallocate, .ftruncate = ftruncate,
	.memfd_create = sys_memfd_create, .open = sys_open, .close = close,
	.read = read, .pread = pread, .fstat = fstat, .fstatfs = fstatfs,
	.fcntl = sys_fcntl, .unlink = unlink, .getpid = getpid,
	.sigaction = sigaction, .write = write, .mount = mount, .mkdir = mkdir,
	.access = access, .mseal = sys_mseal, .sched_yield = sched_yield,
	.pwrite = pwrite, .fsync = fsync, .rename = rename,
};

static const char *const entry_names[VMC_OS_NENTRIES] = {
	"mmap", "munmap", "mprotect", "madvise", "fallocate", "ftruncate",
	"memfd_create", "open", "close", "read", "pread", "fstat", "fstatfs",
	"fcntl", "unlink", "getpid", "sigaction", "write", "mount",
	"mkdir", "access", "mseal", "sched_yield", "pwrite", "fsync", "rename",
};

struct inject { uint64_t at; int err; };
static uint64_t counts[VMC_OS_NENTRIES];
static struct inject injects[VMC_OS_NENTRIES];
static int any_inject;

const char *vmc_os_entry_name(enum vmc_os_entry e)
{
	return (unsigned)e < VMC_OS_NENTRIES ? entry_names[e] : "?";
}

uint64_t vmc_os_calls(enum vmc_os_entry e)
{
	return __atomic_load_n(&counts[e], __ATOMIC_RELAXED);
}

uint64_t vmc_os_calls_total(void)
{
	uint64_t t = 0;
	for (int e = 0; e < VMC_OS_NENTRIES; e++)
		t += vmc_os_calls(e);
	return t;
}

void vmc_os_inject(enum vmc_os_entry e, uint64_t nth, int err)
{
	injects[e].at = nth ? vmc_os_calls(e) + nth : 0;
	injects[e].err = err;
	any_inject = 0;
	for (int i = 0; i < VMC_OS_NENTRIES; i++)
		any_inject |= injects[i].at != 0;
}

void vmc_os_inject_clear(void)
{
	memset(injects, 0, sizeof injects);
	any_inject = 0;
}

/* Count the call; return nonzero (with errno set) if it must fail now. */
static inline int enter(enum vmc_os_entry e)
{
	uint64_t n = __atomic_add_fetch(&counts[e], 1, __ATOMIC_RELAXED);
	if (__builtin_expect(!any_inject, 1) || injects[e].at != n)
		return 0;
	injects[e].at = 0;
	if (injects[e].err == VMC_OS_KILL_SELF)
		kill(getpid(), SIGKILL);
	errno = injects[e].err;
	return 1;
}

#define WRAP(ret, fail, name, E, params, args) \
	ret os_##name params { return enter(E) ? (fail) : vmc_os.name args; }

WRAP(void *, MAP_FAILED, mmap, VMC_OS_MMAP,
     (void *a, size_t n, int p, int f, int fd, off_t o), (a, n, p, f, fd, o))
WRAP(int, -1, munmap, VMC_OS_MUNMAP, (void *a, size_t n), (a, n))
WRAP(int, -1, mprotect, VMC_OS_MPROTECT, (void *a, size_t n, int p), (a, n, p))
WRAP(int, -1, madvise, VMC_OS_MADVISE, (void *a, size_t n, int v), (a, n, v))
WRAP(int, -1, fallocate, VMC_OS_FALLOCATE,
     (int fd, int m, off_t o, off_t l), (fd, m, o, l))
WRAP(int, -1, ftruncate, VMC_OS_FTRUNCATE, (int fd, off_t l), (fd, l))
WRAP(int, -1, memfd_create, VMC_OS_MEMFD_CREATE,
     (const char *n, unsigned f), (n, f))
WRAP(int, -1, open, VMC_OS_OPEN, (const char *p, int f, mode_t m), (p, f, m))
WRAP(int, -1, close, VMC_OS_CLOSE, (int fd), (fd))
WRAP(ssize_t, -1, read, VMC_OS_READ, (int fd, void *b, size_t n), (fd, b, n))
WRAP(ssize_t, -1, pread, VMC_OS_PREAD,
     (int fd, void *b, size_t n, off_t o), (fd, b, n, o))
WRAP(int, -1, fstat, VMC_OS_FSTAT, (int fd, struct stat *s), (fd, s))
WRAP(int, -1, fstatfs, VMC_OS_FSTATFS, (int fd, struct statfs *s), (fd, s))
WRAP(int, -1, fcntl, VMC_OS_FCNTL, (int fd, int c, long a), (fd, c, a))
WRAP(int, -1, unlink, VMC_OS_UNLINK, (const char *p), (p))
WRAP(pid_t, -1, getpid, VMC_OS_GETPID, (void), ())
WRAP(int, -1, sigaction, VMC_OS_SIGACTION,
     (int s, const struct sigaction *a, struct sigaction *o), (s, a, o))
WRAP(ssize_t, -1, write, VMC_OS_WRITE, (int fd, const void *b, size_t n), (fd, b, n))
WRAP(int, -1, mount, VMC_OS_MOUNT,
     (const char *s, const char *d, const char *t, unsigned long f, const void *x),
     (s, d, t, f, x))
WRAP(int, -1, mkdir, VMC_OS_MKDIR, (const char *p, mode_t m), (p, m))
WRAP(int, -1, access, VMC_OS_ACCESS, (const char *p, int m), (p, m))
WRAP(int, -1, mseal, VMC_OS_MSEAL, (void *a, size_t n, unsigned long f), (a, n, f))
WRAP(int, -1, sched_yield, VMC_OS_SCHED_YIELD, (void), ())
WRAP(ssize_t, -1, pwrite, VMC_OS_PWRITE,
     (int fd, const void *b, size_t n, off_t o), (fd, b, n, o))
WRAP(int, -1, fsync, VMC_OS_FSYNC, (int fd), (fd))
WRAP(int, -1, rename, VMC_OS_RENAME, (const char *f, const char *t), (f, t))

int vmc_os_remove_images(const char *dir)
{
	char path[4096];
	struct dirent *e;
	DIR *d = opendir(dir);
	int err = 0;

	if (!d)
		return errno;
	while ((e = readdir(d))) {
		size_t n = strlen(e->d_name);
		int img = (n > 4 && !strcmp(e->d_name + n - 4, ".img")) ||
			  (n > 8 && !strcmp(e->d_name + n - 8, ".img.tmp"));
		if (img && snprintf(path, sizeof path, "%s/%s", dir, e->d_name) < (int)sizeof path &&
		    os_unlink(path) && errno != ENOENT)
			err = errno;
	}
	closedir(d);
	if (rmdir(dir) && errno != ENOENT && !err)
		err = errno;
	return err;
}

ssize_t vmc_os_read_file(const char *path, char *buf, size_t cap)
{
	size_t len = 0;
	ssize_t r;
	int fd = os_open(path, O_RDONLY | O_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	while (len + 1 < cap && (r = os_read(fd, buf + len, cap - 1 - len)) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			os_close(fd);
			return r;
		}
		len += (size_t)r;
	}
	buf[len] = 0;
	os_close(fd);
	return (ssize_t)len;
}

int vmc_os_write_file(const char *path, const char *s)
{
	int fd = os_open(path, O_WRONLY | O_CLOEXEC, 0), err = 0;
	size_t n = strlen(s);

	if (fd < 0)
		return errno;
	if (os_write(fd, s, n) != (ssize_t)n)
		err = errno ? errno : EIO;
	os_close(fd);
	return err;
}

int vmc_os_proc_start(pid_t pid, uint64_t *start)
{
	char path[64], buf[1024], *p;
	unsigned long long v = 0;
	ssize_t n;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	n = vmc_os_read_file(path, buf, sizeof buf);
	if (n == -ENOENT || n == -ESRCH)
		return ESRCH;
	if (n <= 0)
		return n ? (int)-n : EIO;
	/* field 2 (comm) may hold spaces and parentheses: skip to the last ')' */
	p = strrchr(buf, ')');
	if (!p)
		return EIO;
	/* a zombie is as good as dead: it will never touch the container again */
	if (p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'))
		return ESRCH;
	/* after ") " come fields 3..; starttime is field 22 */
	for (int field = 2; field < 22 && p; field++)
		p = strchr(p + 1, ' ');
	if (!p || sscanf(p + 1, "%llu", &v) != 1)
		return EIO;
	*start = v;
	return 0;
}
