/*
 * model.h - the mapping engine against a model (model.c): shared by
 * test_model (seeded runs) and the API fuzz target (fuzz/fuzz_api.c).
 */
#ifndef VMC_TEST_MODEL_H
#define VMC_TEST_MODEL_H

#include <stddef.h>
#include <stdint.h>

/* Leave out kinds of operations (VMC_MODEL_AVOID). */
extern int avoid_defer, avoid_nozero, avoid_batchfresh, avoid_recreate;

/* The last operations, for reports: in shared memory if the caller maps
 * it so (a forked run's log survives its crash). */
#define LOGN 40
#define LOGW 200
struct oplog {
	uint64_t n;
	char line[LOGN][LOGW];
};
extern struct oplog *oplog;
void dump_log(void);

/* Take the randomness from data[0..n) (fuzzing; the run ends when it is
 * used up) instead of the seed.  NULL: back to the seed. */
void model_bytes(const uint8_t *data, size_t n);

/* Run up to `steps` steps on a fresh private container with isolation on
 * or off.  Returns 0 if the engine always agreed with the model, 1 if not
 * (the first disagreement and the last operations are printed), 2 if the
 * container could not be made. */
int model_run(int isolation, uint64_t seed, uint64_t steps);

#endif
