/*
 * test_model.c - the mapping engine against a model (model.c), with a
 * seeded random sequence per isolation mode, each in a forked child, so a
 * crash inside the library is reported with the last operations (kept in
 * shared memory).  The seed is printed; VMC_MODEL_SEED replays a run,
 * VMC_MODEL_STEPS sets its length (default 3000 per isolation mode).
 * VMC_MODEL_AVOID, a comma list of defer,nozero,batchfresh,recreate, leaves
 * out those operations (to get past a known bug and look for the next).
 */
#include "model.h"
#include "test.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static uint64_t seed_, steps_;

static void mode(int isolation)
{
	oplog->n = 0;
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0)
		_exit(model_run(isolation, seed_ + !isolation, steps_));
	int code = test_wait(pid);
	if (code) {
		if (code > 128) {
			fprintf(stderr, "  the %s run died of signal %d (a crash in the library?)\n",
				isolation ? "strict" : "lazy", code - 128);
			dump_log();
			fprintf(stderr, "  replay: VMC_MODEL_SEED=%llu (the %s run uses seed %llu)\n",
				(unsigned long long)seed_, isolation ? "strict" : "lazy",
				(unsigned long long)(seed_ + !isolation));
		}
		test_cur_failed_ = 1;
	}
}

TEST(model_strict) { mode(1); }
TEST(model_lazy) { mode(0); }

int main(void)
{
	const char *e;
	seed_ = (e = getenv("VMC_MODEL_SEED")) ? strtoull(e, NULL, 0) : 20261124;
	steps_ = (e = getenv("VMC_MODEL_STEPS")) ? strtoull(e, NULL, 0) : 3000;
	if ((e = getenv("VMC_MODEL_AVOID"))) {
		avoid_defer = strstr(e, "defer") != NULL;
		avoid_nozero = strstr(e, "nozero") != NULL;
		avoid_batchfresh = strstr(e, "batchfresh") != NULL;
		avoid_recreate = strstr(e, "recreate") != NULL;
	}
	printf("seed %llu (lazy: seed + 1), %llu steps per mode (VMC_MODEL_SEED, "
	       "VMC_MODEL_STEPS)%s%s\n",
	       (unsigned long long)seed_, (unsigned long long)steps_, e ? ", avoiding " : "",
	       e ? e : "");
	fflush(stdout);
	oplog = mmap(NULL, sizeof *oplog, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		     -1, 0);
	if (oplog == MAP_FAILED)
		return 1;
	RUN(model_strict);
	RUN(model_lazy);
	return test_done();
}
