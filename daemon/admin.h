/* admin.h: the admin socket: where it lives, and the daemon side of `campaignctl reload|status`. */
#ifndef CAMPAIGND_ADMIN_H
#define CAMPAIGND_ADMIN_H

#include "adminpath.h"
#include "daemon.h"

/*
 * admin_listen: bind (mode 0600) and serve one-line requests "reload" and "status".  Exits
 * (fatalx) when another campaignd answers on the path: it is not taken from a running daemon.
 * A negative errno-style code, logged, when it cannot bind (the daemon runs on without).
 */
int admin_listen(struct daemon *d, uv_pipe_t *server);
/*
 * admin_close: close the connections (at the end: a status being read then answers nobody);
 * before the daemon's last walk of its handles, which closes them without a callback.
 */
void admin_close(struct daemon *d);

#endif
