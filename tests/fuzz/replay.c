/*
 * replay.c - runs the fuzz target without libFuzzer, in the normal suite:
 * it takes the metadata image of a real container (with funded, cached and
 * free granules), checks that it validates, then feeds thousands of
 * mutations of it (bit flips, random bytes in the header and tables,
 * truncations, interesting 32-bit values) to LLVMFuzzerTestOneInput.
 * A run with a seed argument repeats one sequence: fuzz_meta_replay SEED.
 */
#include "pool.h"
#include "../test.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t rng;
static uint32_t next(void)
{
	rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
	return (uint32_t)rng;
}

static void mutate(uint8_t *img, size_t len, size_t *out_len)
{
	static const uint32_t interesting[] = { 0, 1, 0x7fffffff, 0x80000000,
						0xffffffff, 0xfffffffe, 4096 };
	size_t hot = sizeof(struct vmc_meta) + 4096;   /* the header and first tables */
	int edits = 1 + next() % 8;

	*out_len = len;
	for (int i = 0; i < edits; i++) {
		size_t at = (next() % 2 ? next() % hot : next()) % len;
		switch (next() % 4) {
		case 0: img[at] ^= (uint8_t)(1u << (next() % 8)); break;
		case 1: img[at] = (uint8_t)next(); break;
		case 2:
			if (at + 4 <= len) {
				uint32_t v = interesting[next() % 7];
				memcpy(img + (at & ~3u), &v, 4);
			}
			break;
		case 3: *out_len = next() % len; break;
		}
	}
}

TEST(valid_image_validates)
{
	vmc_config_t cfg;
	vmc_t *c;
	vmc_config_init(&cfg);
	cfg.pool_size = 64ull << 20;
	cfg.fund_size = 32ull << 20;
	cfg.page_kind = VMC_PAGE_4K;
	cfg.verbose = 0;
	REQUIRE(vmc_create(NULL, &cfg, &c) == 0);
	CHECK(meta_validate(c->m, c->meta_len, META_DEEP, NULL, 0) == 0);
	vmc_close(c);
}

TEST(mutations_never_crash)
{
	vmc_config_t cfg;
	vmc_t *c;
	uint32_t g;
	vmc_config_init(&cfg);
	cfg.pool_size = 64ull << 20;
	cfg.fund_size = 32ull << 20;
	cfg.page_kind = VMC_PAGE_4K;
	cfg.verbose = 0;
	cfg.max_workers = 4;
	cfg.max_vms = 4;
	REQUIRE(vmc_create(NULL, &cfg, &c) == 0);
	REQUIRE(pool_take(c, 0, &g) == 0);   /* some of every state */
	size_t len = c->meta_len;
	uint8_t *orig = malloc(len), *img = malloc(len);
	memcpy(orig, c->m, len);
	vmc_close(c);
	int runs = getenv("VMC_FUZZ_RUNS") ? atoi(getenv("VMC_FUZZ_RUNS")) : 20000;
	for (int i = 0; i < runs; i++) {
		size_t n;
		memcpy(img, orig, len);
		mutate(img, len, &n);
		LLVMFuzzerTestOneInput(img, n);
	}
	CHECK(1);  /* reaching here without a crash or sanitizer report is the test */
	free(orig);
	free(img);
}

/* Write a valid metadata image to `path`: the libFuzzer seed (make fuzz). */
static int write_seed(const char *path)
{
	vmc_config_t cfg;
	vmc_t *c;
	FILE *f;
	vmc_config_init(&cfg);
	cfg.pool_size = 32ull << 20;
	cfg.fund_size = 16ull << 20;
	cfg.window_size = 8ull << 20;
	cfg.page_kind = VMC_PAGE_4K;
	cfg.verbose = 0;
	cfg.max_workers = 2;
	cfg.max_vms = 2;
	if (vmc_create(NULL, &cfg, &c))
		return 1;
	if (!(f = fopen(path, "wb")) || fwrite(c->m, 1, c->meta_len, f) != c->meta_len)
		return 1;
	fclose(f);
	vmc_close(c);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 2 && !strcmp(argv[1], "--seed"))
		return write_seed(argv[2]);
	rng = argc > 1 ? strtoull(argv[1], NULL, 0) : 0x9e3779b97f4a7c15ull;
	RUN(valid_image_validates);
	RUN(mutations_never_crash);
	return test_done();
}
