/* adminpath.h: the admin socket's path, as the daemon and campaignctl agree on it. */
#ifndef CAMPAIGND_ADMINPATH_H
#define CAMPAIGND_ADMINPATH_H

/*
 * admin_socket_path: $CAMPAIGND_SOCKET, else $RUNTIME_DIRECTORY/campaignd.sock (systemd's
 * RuntimeDirectory=; a client, campaignctl, also looks at /run/campaignd), else
 * campaignd.sock beside the database.  Malloc'd.
 */
char *admin_socket_path(const char *database, int client);

#endif
