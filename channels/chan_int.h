/* chan_int.h: what the files of the channel layer share among themselves (the drivers). */
#ifndef CAMPAIGND_CHAN_INT_H
#define CAMPAIGND_CHAN_INT_H

#include "chan.h"

/* The built-in drivers; chan_driver_for picks one by a channel's driver setting. */
extern const struct chan_driver chan_outbox_driver;
extern const struct chan_driver chan_webhook_driver;

#endif
