/* adminpath.c: where the admin socket lives; shared by campaignd and campaignctl. */
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adminpath.h"
#include "util.h"

char *
admin_socket_path(const char *database, int client)
{
	const char *rt = getenv("RUNTIME_DIRECTORY");
	char *copy, *path;

	if (getenv("CAMPAIGND_SOCKET") != NULL && getenv("CAMPAIGND_SOCKET")[0] != '\0')
		return xstrdup(getenv("CAMPAIGND_SOCKET"));
	/* campaignctl beside a daemon under systemd; never a daemon (a --demo would take it). */
	if (client && (rt == NULL || rt[0] == '\0') &&
	    access("/run/campaignd/campaignd.sock", F_OK) == 0)
		rt = "/run/campaignd";
	if (rt != NULL && rt[0] != '\0') {
		/* systemd may list several directories: the first is ours. */
		size_t n = strcspn(rt, ":");

		return xasprintf("%.*s/campaignd.sock", (int)n, rt);
	}
	copy = xstrdup(database);
	path = xasprintf("%s/campaignd.sock", dirname(copy));
	free(copy);
	return path;
}
