/*
 * fuzz_meta.c - libFuzzer target for the metadata validator: any byte
 * string given to meta_validate() must yield 0 or an error code, never a
 * crash, a hang or an out-of-bounds read (run it under ASan).
 */
#include "meta.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[256];
	/* an exact-size heap copy, so ASan sees any read past the end */
	void *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	int err = meta_validate(buf, size, META_DEEP, why, sizeof why);
	if (err != 0 && err != VMC_ECORRUPT && err != VMC_EVERSION && err != ENOMEM)
		abort();
	free(buf);
	return 0;
}
