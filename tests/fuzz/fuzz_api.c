/*
 * fuzz_api.c - a libFuzzer target that drives the public API with the
 * model of model.c: the input's bytes are the randomness that picks each
 * operation, its range and flags, batches, attaches, destroys and calls
 * with bad arguments, on a fresh private container (the first byte picks
 * strict or lazy isolation).  After every step the engine must agree with
 * the model and the leak oracle (every tag where the model says) must
 * hold; a disagreement aborts, so libFuzzer keeps the input.  The normal
 * suite runs a few inputs through it (fuzz_api_replay); `make fuzz` runs
 * it for a bounded time.
 */
#include "../model.h"

#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct oplog log;
	int rc;

	if (size < 2)
		return 0;
	oplog = &log;
	log.n = 0;
	model_bytes(data + 1, size - 1);
	rc = model_run(data[0] & 1, 0, 400);
	model_bytes(NULL, 0);
	if (rc == 1)
		abort();   /* model_run printed the disagreement and the last operations */
	return 0;
}
