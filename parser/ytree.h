/* ytree.h: a YAML document as a small tree with line/column marks, built from libyaml events. */
#ifndef CAMPAIGND_YTREE_H
#define CAMPAIGND_YTREE_H

#include <stddef.h>

#include "diag.h"

/* Limits that make hostile input cheap to refuse (documented in campaignd.yaml(5)). */
#define YTREE_MAX_DEPTH 64
#define YTREE_MAX_EXPANDED 100000 /* nodes, counting every alias expansion */

enum ynode_type { YNODE_SCALAR, YNODE_MAP, YNODE_SEQ };

struct ynode {
	enum ynode_type type;
	int line, col; /* 1-based start mark */
	int plain; /* scalar written without quotes (so `true` and `12` may be typed) */
	int block; /* scalar in literal or folded style: columns inside are not exact */
	const char *src; /* scalar: its source text in the parsed buffer (valid while it is) */
	size_t src_len;
	char *value; /* scalar text, NUL-terminated; NULL for collections */
	size_t len;
	size_t n; /* SEQ: items; MAP: pairs */
	struct ynode **items; /* SEQ items, or MAP values */
	struct ynode **keys; /* MAP keys (scalars) */
	size_t weight; /* nodes this one expands to, counting aliases */
	size_t cap; /* allocated slots of items/keys (building only) */
	struct ynode *pending; /* MAP being built: a key waiting for its value */
};

struct ychunk;

/*
 * A parsed document; owns every node, scalar text and child array: they are cut from an
 * arena of chunks and released together (aliases share nodes, so nodes are never freed one
 * by one).
 */
struct ydoc {
	struct ynode *root; /* NULL when the stream is empty or parsing failed */
	struct ychunk *chunks; /* the arena, newest chunk first */
};

/*
 * ytree_parse: parse `len` bytes of `buf` (one YAML document) into `doc`.  Errors (syntax,
 * duplicate keys, non-scalar keys, depth, alias expansion, several documents, empty) go to
 * `d` against `file`.  Returns 0 when a root node was built without error, -1 otherwise;
 * ytree_free(doc) must be called in both cases.
 */
int ytree_parse(struct ydoc *doc, const char *file, const char *buf, size_t len,
    struct diag_list *d);

/* ytree_free: release all nodes; accepts a zeroed doc. */
void ytree_free(struct ydoc *doc);

/* ytree_get: the value for `key` in a MAP node, or NULL (borrowed). */
struct ynode *ytree_get(const struct ynode *map, const char *key);

/* ytree_key: the key node paired with `key` (for positions), or NULL. */
struct ynode *ytree_key(const struct ynode *map, const char *key);

#endif
