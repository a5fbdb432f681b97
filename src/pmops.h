/*
 * pmops.h - the five operations on a page map (pmops.c), run twice by the
 * mapping engine: dry on a scratch copy, then for real (remap.c).
 */
#ifndef VMC_PMOPS_H
#define VMC_PMOPS_H

#include "remap.h"

/* Growable array of uint32_t with a small inline buffer: no malloc for the
 * single-granule operations of the hot path. */
struct u32v {
	uint32_t *v, n, cap;
	uint32_t small[16];
};
VMC_HIDDEN void u32v_init(struct u32v *a);
VMC_HIDDEN int u32v_push(struct u32v *a, uint32_t x);
VMC_HIDDEN int u32v_reserve(struct u32v *a, uint32_t n);   /* room for n more */
VMC_HIDDEN void u32v_free(struct u32v *a);

/* How a new commit's granule is zeroed (when it must be), decided from the
 * dry run's result: through the window after the sync (its one view is
 * read-write where the window shows it), or before anything maps it. */
enum { Z_NONE = 0, Z_WINDOW, Z_BEFORE };

/* One run of the engine over VM vm. */
struct run {
	struct vmc *c;
	uint32_t vm;
	int here;            /* vm is attached here: the window shows the result  */
	uint32_t *e;         /* entries: e[i - lo] is index i                     */
	uint32_t lo, hi;     /* the span the operations touch                     */
	int real;            /* 0: dry run on a scratch copy; 1: the page map      */
	uint32_t need;       /* dry: granules the commits take                    */
	struct u32v tag;     /* dry: tag[i - lo] = k + 1 where new commit k is     */
	struct u32v at;      /* dry: the window index of commit k                  */
	struct u32v atf;     /* dry: the flags of commit k                         */
	struct u32v zmode;   /* Z_* of commit k, from the dry run's result         */
	struct u32v got;     /* granule of commit k                                */
	uint32_t used;       /* real: commits handed out so far                    */
	struct u32v freed;   /* real: (granule, index << 1 | defer) pairs whose last
			      * view went                                        */
};

/* Apply ops[0..n) to r (dry or real).  Dry runs validate; the real run
 * repeats a dry run that passed and cannot fail (but for ENOMEM of the
 * freed list).  Returns 0 or the first error. */
VMC_HIDDEN int pmops_run(struct run *r, const struct vmc_op *ops, uint32_t n);

/* After a dry run: the zeroing of each new commit (r->zmode). */
VMC_HIDDEN int pmops_zero_modes(struct run *r);

/* How many indices ops release at most (room for the real run's list). */
VMC_HIDDEN uint32_t pmops_released(const struct vmc_op *ops, uint32_t n);

/* The span [lo, hi) of window indices that ops touch. */
VMC_HIDDEN void pmops_span(const struct vmc_op *ops, uint32_t n, uint32_t *lo, uint32_t *hi);

#endif
