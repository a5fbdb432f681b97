/*
 * hello.c - the example of README.md, built and run by the test suite so
 * that the README never shows code that does not work.
 */
#include <vmc.h>
#include <stdio.h>
#include <string.h>

int main(void) {
    vmc_config_t cfg;  vmc_t *c;  uint32_t vm;  void *base;
    vmc_config_init(&cfg);                       /* defaults, $VMC_PROFILE, VMC_* env */
    cfg.pool_size = 256 << 20;  cfg.fund_size = 64 << 20;
    if (vmc_create("readme-demo", &cfg, &c)) { fprintf(stderr, "%s\n", vmc_errmsg()); return 1; }
    vmc_vm_create(c, "tenant-1", 32 << 20, &vm); /* an isolated heap of up to 32 MiB */
    vmc_attach(c, vm, &base);                    /* its memory appears at base */
    vmc_commit(c, base, 4 << 20, 0);             /* two granules, zeroed */
    strcpy(base, "state that survives detach, and is seen by any worker");
    vmc_detach(c, vm);                           /* strict mode: now it faults */
    vmc_close(c);                                /* another process: vmc_open("readme-demo", &c) */
    return vmc_destroy("readme-demo");
}
