/*
 * api_replay.c - runs the API fuzz target without libFuzzer, in the normal
 * suite: a few dozen pseudo-random inputs, each a whole model run.  A
 * seed argument repeats one sequence: fuzz_api_replay SEED.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
	uint64_t rng = argc > 1 ? strtoull(argv[1], NULL, 0) : 20261202;
	uint8_t in[1024];

	for (int k = 0; k < 24; k++) {
		size_t n = 64 + (size_t)(rng % (sizeof in - 64));
		for (size_t i = 0; i < n; i++) {
			rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
			in[i] = (uint8_t)rng;
		}
		LLVMFuzzerTestOneInput(in, n);
	}
	printf("24 inputs (64..1023 bytes) agreed with the model\n");
	return 0;
}
