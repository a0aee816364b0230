/* admin.h: the admin socket: where it lives, and the daemon side of `campaignctl reload|status`. */
#ifndef CAMPAIGND_ADMIN_H
#define CAMPAIGND_ADMIN_H

#include "adminpath.h"
#include "daemon.h"

/* admin_listen: bind (mode 0600) and serve one-line requests "reload" and "status". */
int admin_listen(struct daemon *d, uv_pipe_t *server);

#endif
