/* demo.h: `campaignd --demo`: a private state directory, the shipped campaigns, synthetic data. */
#ifndef CAMPAIGND_DEMO_H
#define CAMPAIGND_DEMO_H

#include <stdint.h>

#include "store.h"

/*
 * demo_setup: make a private directory with a campaignd.yaml that runs the shipped campaigns.d
 * with outbox channels, and choose a clock 240 times faster than real time, so that the
 * campaigns' delays of hours pass in seconds.  *config and *outbox are malloc'd paths.
 */
int demo_setup(const char *argv0, char **config, char **outbox, double *speed);

/* demo_seed: customers in several zones (where it is daytime) and purchase and support events. */
void demo_seed(struct store *st, int64_t now);

#endif
