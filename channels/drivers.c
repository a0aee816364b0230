/* drivers.c: the table of built-in channel drivers, looked up by a channel's driver setting. */
#include <stddef.h>

#include "chan.h"
#include "chan_int.h"

const struct chan_driver *
chan_driver_for(const struct conf_channel *ch)
{
	if (ch == NULL)
		return NULL;
	switch (ch->driver) {
	case CONF_DRIVER_OUTBOX:
		return &chan_outbox_driver;
	case CONF_DRIVER_WEBHOOK:
		return &chan_webhook_driver;
	case CONF_DRIVER_TWILIO:
	case CONF_DRIVER_SMTP:
	case CONF_DRIVER_WHATSAPP_CLOUD:
		break;
	}
	return NULL;
}
