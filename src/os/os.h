/*
 * os.h - the system-call table.  Every system call the library makes goes
 * through vmc_os_call(), which counts it and can fail the N-th call of an
 * entry (SQLite's aSyscall idea).  Tests replace entries or inject failures
 * with vmc_os_inject(); benchmarks and stats read the per-entry counters.
 */
#ifndef VMC_OS_H
#define VMC_OS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <signal.h>
#include "../internal.h"

enum vmc_os_entry {
	VMC_OS_MMAP, VMC_OS_MUNMAP, VMC_OS_MPROTECT, VMC_OS_MADVISE,
	VMC_OS_FALLOCATE, VMC_OS_FTRUNCATE, VMC_OS_MEMFD_CREATE, VMC_OS_OPEN,
	VMC_OS_CLOSE, VMC_OS_READ, VMC_OS_PREAD, VMC_OS_FSTAT, VMC_OS_FSTATFS,
	VMC_OS_FCNTL, VMC_OS_UNLINK, VMC_OS_GETPID, VMC_OS_SIGACTION,
	VMC_OS_WRITE, VMC_OS_MOUNT, VMC_OS_MKDIR, VMC_OS_ACCESS, VMC_OS_MSEAL,
	VMC_OS_SCHED_YIELD, VMC_OS_PWRITE, VMC_OS_FSYNC, VMC_OS_RENAME,
	VMC_OS_NENTRIES
};

/* The replaceable table: one function pointer per entry, with the real
 * system call's signature.  Tests may overwrite a pointer (and restore it). */
struct vmc_os_table {
	void *(*mmap)(void *, size_t, int, int, int, off_t);
	int (*munmap)(void *, size_t);
	int (*mprotect)(void *, size_t, int);
	int (*madvise)(void *, size_t, int);
	int (*fallocate)(int, int, off_t, off_t);
	int (*ftruncate)(int, off_t);
	int (*memfd_create)(const char *, unsigned);
	int (*open)(const char *, int, mode_t);
	int (*close)(int);
	ssize_t (*read)(int, void *, size_t);
	ssize_t (*pread)(int, void *, size_t, off_t);
	int (*fstat)(int, struct stat *);
	int (*fstatfs)(int, struct statfs *);
	int (*fcntl)(int, int, long);
	int (*unlink)(const char *);
	pid_t (*getpid)(void);
	int (*sigaction)(int, const struct sigaction *, struct sigaction *);
	ssize_t (*write)(int, const void *, size_t);
	int (*mount)(const char *, const char *, const char *, unsigned long, const void *);
	int (*mkdir)(const char *, mode_t);
	int (*access)(const char *, int);
	int (*mseal)(void *, size_t, unsigned long);
	int (*sched_yield)(void);
	ssize_t (*pwrite)(int, const void *, size_t, off_t);
	int (*fsync)(int);
	int (*rename)(const char *, const char *);
};
extern struct vmc_os_table vmc_os;

/* Counters (process-local, since process start or the last reset). */
VMC_HIDDEN uint64_t vmc_os_calls(enum vmc_os_entry e);
VMC_HIDDEN uint64_t vmc_os_calls_total(void);
VMC_HIDDEN const char *vmc_os_entry_name(enum vmc_os_entry e);

/* Fault injection: the nth (1-based, counted from now) call of entry e
 * fails with errno err and returns the entry's error value, without
 * calling the system.  With err == VMC_OS_KILL_SELF the process SIGKILLs
 * itself at that call instead (crash tests).  nth == 0 clears it. */
#define VMC_OS_KILL_SELF (-1)
VMC_HIDDEN void vmc_os_inject(enum vmc_os_entry e, uint64_t nth, int err);
VMC_HIDDEN void vmc_os_inject_clear(void);

/* Wrappers: count, maybe fail, then call through the table.  On failure
 * they return the system call's error value (-1 or MAP_FAILED) with errno
 * set, exactly like the call they stand for. */
VMC_HIDDEN void *os_mmap(void *a, size_t n, int prot, int flags, int fd, off_t off);
VMC_HIDDEN int os_munmap(void *a, size_t n);
VMC_HIDDEN int os_mprotect(void *a, size_t n, int prot);
VMC_HIDDEN int os_madvise(void *a, size_t n, int advice);
VMC_HIDDEN int os_fallocate(int fd, int mode, off_t off, off_t len);
VMC_HIDDEN int os_ftruncate(int fd, off_t len);
VMC_HIDDEN int os_memfd_create(const char *name, unsigned flags);
VMC_HIDDEN int os_open(const char *path, int flags, mode_t mode);
VMC_HIDDEN int os_close(int fd);
VMC_HIDDEN ssize_t os_read(int fd, void *buf, size_t n);
VMC_HIDDEN ssize_t os_pread(int fd, void *buf, size_t n, off_t off);
VMC_HIDDEN int os_fstat(int fd, struct stat *st);
VMC_HIDDEN int os_fstatfs(int fd, struct statfs *st);
VMC_HIDDEN int os_fcntl(int fd, int cmd, long arg);
VMC_HIDDEN int os_unlink(const char *path);
VMC_HIDDEN pid_t os_getpid(void);
VMC_HIDDEN int os_sigaction(int sig, const struct sigaction *sa, struct sigaction *old);
VMC_HIDDEN ssize_t os_write(int fd, const void *buf, size_t n);
VMC_HIDDEN int os_mount(const char *src, const char *dst, const char *type,
			unsigned long flags, const void *data);
VMC_HIDDEN int os_mkdir(const char *path, mode_t mode);
VMC_HIDDEN int os_access(const char *path, int mode);
VMC_HIDDEN int os_mseal(void *a, size_t n, unsigned long flags);
VMC_HIDDEN int os_sched_yield(void);
VMC_HIDDEN ssize_t os_pwrite(int fd, const void *buf, size_t n, off_t off);
VMC_HIDDEN int os_fsync(int fd);
VMC_HIDDEN int os_rename(const char *from, const char *to);

/* Remove the image files (*.img, *.img.tmp) in directory dir, then dir
 * itself if nothing else is left in it.  Returns 0 or an errno (ENOENT:
 * no such directory; ENOTEMPTY: other files stay). */
VMC_HIDDEN int vmc_os_remove_images(const char *dir);

/* Read a whole (small) file such as /proc/meminfo into buf, NUL-terminated.
 * Returns bytes read, or -errno. */
VMC_HIDDEN ssize_t vmc_os_read_file(const char *path, char *buf, size_t cap);

/* Write a small string to a file such as /proc/sys/vm/nr_hugepages.
 * Returns 0 or an errno. */
VMC_HIDDEN int vmc_os_write_file(const char *path, const char *s);

/* Free (less reserved) and total hugetlb pages, and MemAvailable in bytes,
 * from /proc/meminfo; zeros if it cannot be read. */
VMC_HIDDEN void vmc_os_meminfo(long *huge_free, long *huge_total, uint64_t *mem_available);

/* The first 2 MiB hugetlbfs mount point into path; 0 if there is none. */
VMC_HIDDEN int vmc_os_hugetlbfs_mount(char *path, size_t cap);

/* Start time of process pid in clock ticks since boot (/proc/PID/stat field
 * 22), which with the pid identifies a process across pid reuse.  Returns
 * 0, ESRCH if the process is gone (or a zombie), or another errno if it
 * could not be read (then nothing is known). */
VMC_HIDDEN int vmc_os_proc_start(pid_t pid, uint64_t *start);

#endif
