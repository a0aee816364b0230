/* ytree.c: libyaml event stream to ytree, rejecting duplicate keys and bounding aliases. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "util.h"
#include "ytree.h"

struct anchor {
	char *name;
	struct ynode *node;
};

struct builder {
	struct ydoc *doc;
	const char *file;
	const char *buf;
	size_t len;
	struct diag_list *d;
	struct ynode *stack[YTREE_MAX_DEPTH + 1];
	char *stack_anchor[YTREE_MAX_DEPTH + 1];
	int depth;
	struct anchor *anchors;
	size_t n_anchors, cap_anchors;
	int failed;
	size_t at_index; /* src_at's cursor: the character index of at_byte */
	const char *at_byte;
};

/*
 * The document's arena.  One malloc per chunk instead of several per node: a campaign file
 * is a few hundred nodes, and allocating and freeing each of them was a good part of a
 * reload.  The input is capped (1 MiB), so the arena is too.
 */
#define YCHUNK_SIZE 16384

struct ychunk {
	struct ychunk *next;
	size_t used, size;
	max_align_t data[]; /* size bytes */
};

/* doc_alloc: n bytes (zeroed, aligned for any type) that live until ytree_free. */
static void *
doc_alloc(struct ydoc *doc, size_t n)
{
	struct ychunk *c = doc->chunks;
	void *p;

	n = (n + _Alignof(max_align_t) - 1) & ~(_Alignof(max_align_t) - 1);
	if (c == NULL || c->size - c->used < n) {
		int big = n > YCHUNK_SIZE / 4;
		size_t size = big ? n : YCHUNK_SIZE;

		c = xmalloc(offsetof(struct ychunk, data) + size);
		c->size = size;
		c->used = 0;
		if (big && doc->chunks != NULL) {
			/* A large piece gets a chunk of its own behind the current one, which
			 * keeps serving the small ones. */
			c->next = doc->chunks->next;
			doc->chunks->next = c;
		} else {
			c->next = doc->chunks;
			doc->chunks = c;
		}
	}
	p = (char *)c->data + c->used;
	c->used += n;
	memset(p, 0, n);
	return p;
}

/* doc_strndup: a NUL-terminated copy of n bytes of s in the arena. */
static char *
doc_strndup(struct ydoc *doc, const char *s, size_t n)
{
	char *p = doc_alloc(doc, n + 1);

	memcpy(p, s, n);
	return p;
}

/*
 * src_at: the byte of the buffer at character index `index` (libyaml's marks count
 * characters).  Scalars come in document order, so a cursor walks the buffer once.
 */
static const char *
src_at(struct builder *b, size_t index)
{
	const char *end = b->buf + b->len;

	if (b->at_byte == NULL || index < b->at_index) {
		b->at_byte = b->buf;
		b->at_index = 0;
	}
	while (b->at_index < index && b->at_byte < end) {
		b->at_byte++;
		while (b->at_byte < end && ((unsigned char)*b->at_byte & 0xC0) == 0x80)
			b->at_byte++;
		b->at_index++;
	}
	return b->at_byte;
}

static struct ynode *
node_new(struct builder *b, enum ynode_type type, const yaml_mark_t *m)
{
	struct ynode *n = doc_alloc(b->doc, sizeof(*n));

	n->type = type;
	n->line = (int)m->line + 1;
	n->col = (int)m->column + 1;
	n->weight = 1;
	return n;
}

static void
anchor_add(struct builder *b, char *name, struct ynode *node)
{
	/* A later anchor of the same name shadows the earlier one, as YAML says. */
	if (b->n_anchors == b->cap_anchors) {
		b->cap_anchors = b->cap_anchors ? b->cap_anchors * 2 : 8;
		b->anchors = xreallocarray(b->anchors, b->cap_anchors, sizeof(*b->anchors));
	}
	b->anchors[b->n_anchors].name = name;
	b->anchors[b->n_anchors].node = node;
	b->n_anchors++;
}

static struct ynode *
anchor_find(struct builder *b, const char *name)
{
	size_t i;

	for (i = b->n_anchors; i > 0; i--)
		if (strcmp(b->anchors[i - 1].name, name) == 0)
			return b->anchors[i - 1].node;
	return NULL;
}

/* grow: room for one more child; the arrays move to a piece twice as large (arena). */
static void
grow(struct builder *b, struct ynode *parent)
{
	struct ynode **items, **keys;

	if (parent->n < parent->cap)
		return;
	parent->cap = parent->cap ? parent->cap * 2 : 4;
	items = doc_alloc(b->doc, parent->cap * sizeof(*items));
	if (parent->n > 0)
		memcpy(items, parent->items, parent->n * sizeof(*items));
	parent->items = items;
	if (parent->type == YNODE_MAP) {
		keys = doc_alloc(b->doc, parent->cap * sizeof(*keys));
		if (parent->n > 0)
			memcpy(keys, parent->keys, parent->n * sizeof(*keys));
		parent->keys = keys;
	}
}

/* expecting_key: whether the collection on top of the stack takes a key next. */
static int
expecting_key(const struct builder *b)
{
	const struct ynode *top;

	if (b->depth == 0)
		return 0;
	top = b->stack[b->depth - 1];
	return top->type == YNODE_MAP && top->pending == NULL;
}

/* attach: hang `child` under the collection on top of the stack (a MAP alternates key, value). */
static int
attach(struct builder *b, struct ynode *child)
{
	struct ynode *top;
	size_t i;

	if (b->depth == 0) {
		b->doc->root = child;
		return 0;
	}
	top = b->stack[b->depth - 1];
	if (top->type == YNODE_SEQ) {
		grow(b, top);
		top->items[top->n++] = child;
	} else if (top->pending != NULL) {
		grow(b, top);
		top->keys[top->n] = top->pending;
		top->items[top->n++] = child;
		top->pending = NULL;
	} else {
		if (child->type != YNODE_SCALAR) {
			diag_add(b->d, DIAG_ERROR, b->file, child->line, child->col, "type",
			    "write keys as plain words", "mapping keys must be scalars");
			return -1;
		}
		for (i = 0; i < top->n; i++) {
			if (strcmp(top->keys[i]->value, child->value) == 0) {
				char *hint = xasprintf("first given at line %d", top->keys[i]->line);

				diag_add(b->d, DIAG_ERROR, b->file, child->line, child->col,
				    "duplicate-key", hint, "duplicate key '%s'", child->value);
				free(hint);
				b->failed = 1; /* go on: report every duplicate in the file */
				break;
			}
		}
		top->pending = child;
	}
	top->weight += child->weight;
	if (top->weight > YTREE_MAX_EXPANDED) {
		diag_add(b->d, DIAG_ERROR, b->file, child->line, child->col, "alias-bomb",
		    "aliases are expanded, up to 100,000 nodes per file",
		    "document expands to more than %d nodes", YTREE_MAX_EXPANDED);
		return -1;
	}
	return 0;
}

static void
syntax_error(struct builder *b, const yaml_parser_t *p)
{
	int line, col;
	const char *hint = NULL;

	if (p->error == YAML_READER_ERROR) {
		/* Reader errors carry a byte offset, not a mark. */
		size_t off = p->problem_offset < b->len ? p->problem_offset : b->len, i;

		line = 1;
		col = 1;
		for (i = 0; i < off; i++) {
			if (b->buf[i] == '\n') {
				line++;
				col = 1;
			} else {
				col++;
			}
		}
		hint = "campaign files are UTF-8 text";
	} else {
		const yaml_mark_t *m = &p->problem_mark;
		size_t i, start;

		line = (int)m->line + 1;
		col = (int)m->column + 1;
		/* Point tab trouble out: libyaml's message does not name the tab. */
		start = m->index <= b->len ? m->index : b->len;
		while (start > 0 && b->buf[start - 1] != '\n')
			start--;
		for (i = start; i < b->len && b->buf[i] != '\n'; i++) {
			if (b->buf[i] == '\t') {
				hint = "tabs cannot indent YAML; use spaces";
				break;
			}
		}
	}
	if (p->context != NULL)
		diag_add(b->d, DIAG_ERROR, b->file, line, col, "syntax", hint, "%s %s",
		    p->problem ? p->problem : "syntax error", p->context);
	else
		diag_add(b->d, DIAG_ERROR, b->file, line, col, "syntax", hint, "%s",
		    p->problem ? p->problem : "syntax error");
}

static int
handle(struct builder *b, yaml_event_t *ev, int *done)
{
	struct ynode *n, *target;
	char *anchor = NULL;

	switch (ev->type) {
	case YAML_STREAM_START_EVENT:
	case YAML_DOCUMENT_END_EVENT:
		return 0;
	case YAML_STREAM_END_EVENT:
		*done = 1;
		return 0;
	case YAML_DOCUMENT_START_EVENT:
		if (b->doc->root != NULL) {
			diag_add(b->d, DIAG_ERROR, b->file, (int)ev->start_mark.line + 1,
			    (int)ev->start_mark.column + 1, "syntax",
			    "put each campaign in a file of its own",
			    "a file holds one YAML document; found a second one");
			return -1;
		}
		return 0;
	case YAML_ALIAS_EVENT:
		target = anchor_find(b, (char *)ev->data.alias.anchor);
		if (target == NULL) {
			diag_add(b->d, DIAG_ERROR, b->file, (int)ev->start_mark.line + 1,
			    (int)ev->start_mark.column + 1, "syntax",
			    "an alias must follow its complete anchor", "unknown anchor '*%s'",
			    (char *)ev->data.alias.anchor);
			return -1;
		}
		if (expecting_key(b)) {
			if (target->type != YNODE_SCALAR) {
				diag_add(b->d, DIAG_ERROR, b->file, (int)ev->start_mark.line + 1,
				    (int)ev->start_mark.column + 1, "type", NULL,
				    "mapping keys must be scalars");
				return -1;
			}
			/* An aliased key: copy it so its mark is the alias's. */
			n = node_new(b, YNODE_SCALAR, &ev->start_mark);
			n->value = doc_strndup(b->doc, target->value, target->len);
			n->len = target->len;
			n->plain = target->plain;
			n->src = target->src;
			n->src_len = target->src_len;
			return attach(b, n);
		}
		return attach(b, target);
	case YAML_SCALAR_EVENT:
		n = node_new(b, YNODE_SCALAR, &ev->start_mark);
		n->value = doc_strndup(b->doc, (char *)ev->data.scalar.value, ev->data.scalar.length);
		n->len = ev->data.scalar.length;
		n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
		n->block = ev->data.scalar.style == YAML_LITERAL_SCALAR_STYLE ||
		    ev->data.scalar.style == YAML_FOLDED_SCALAR_STYLE;
		n->src = src_at(b, ev->start_mark.index);
		n->src_len = (size_t)(src_at(b, ev->end_mark.index) - n->src);
		if (ev->data.scalar.anchor != NULL)
			anchor_add(b, xstrdup((char *)ev->data.scalar.anchor), n);
		return attach(b, n);
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		if (b->depth >= YTREE_MAX_DEPTH) {
			diag_add(b->d, DIAG_ERROR, b->file, (int)ev->start_mark.line + 1,
			    (int)ev->start_mark.column + 1, "too-deep", NULL,
			    "nesting deeper than %d levels", YTREE_MAX_DEPTH);
			return -1;
		}
		n = node_new(b, ev->type == YAML_SEQUENCE_START_EVENT ? YNODE_SEQ : YNODE_MAP,
		    &ev->start_mark);
		if (ev->type == YAML_SEQUENCE_START_EVENT && ev->data.sequence_start.anchor)
			anchor = xstrdup((char *)ev->data.sequence_start.anchor);
		if (ev->type == YAML_MAPPING_START_EVENT && ev->data.mapping_start.anchor)
			anchor = xstrdup((char *)ev->data.mapping_start.anchor);
		b->stack_anchor[b->depth] = anchor;
		b->stack[b->depth++] = n;
		return 0;
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		n = b->stack[--b->depth];
		/* Anchors become usable once their node is complete: no cycles. */
		if (b->stack_anchor[b->depth] != NULL)
			anchor_add(b, b->stack_anchor[b->depth], n);
		b->stack_anchor[b->depth] = NULL;
		return attach(b, n);
	default:
		return 0;
	}
}

int
ytree_parse(struct ydoc *doc, const char *file, const char *buf, size_t len,
    struct diag_list *d)
{
	struct builder b;
	yaml_parser_t p;
	yaml_event_t ev;
	int done = 0, rc = 0;
	size_t i;

	memset(doc, 0, sizeof(*doc));
	memset(&b, 0, sizeof(b));
	/*
	 * YAML allows a leading byte order mark, and Windows editors write one.  With the encoding
	 * set, libyaml's scanner skips it as a character that takes a column, which moves the
	 * first line's keys one column right of the next line's: a syntax error.  Skip it here,
	 * so that marks and reader offsets count from the character after it.
	 */
	if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0) {
		buf += 3;
		len -= 3;
	}
	b.doc = doc;
	b.file = file;
	b.buf = buf;
	b.len = len;
	b.d = d;
	if (!yaml_parser_initialize(&p)) {
		diag_add(d, DIAG_ERROR, file, 1, 1, "io", NULL, "cannot initialise the YAML parser");
		return -1;
	}
	yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
	yaml_parser_set_encoding(&p, YAML_UTF8_ENCODING);
	while (!done) {
		if (!yaml_parser_parse(&p, &ev)) {
			syntax_error(&b, &p);
			rc = -1;
			break;
		}
		rc = handle(&b, &ev, &done);
		yaml_event_delete(&ev);
		if (rc < 0)
			break;
	}
	yaml_parser_delete(&p);
	for (i = 0; i < b.n_anchors; i++)
		free(b.anchors[i].name);
	free(b.anchors);
	for (i = 0; i < (size_t)b.depth; i++)
		free(b.stack_anchor[i]);
	if (rc == 0 && !b.failed && doc->root == NULL) {
		diag_add(d, DIAG_ERROR, file, 1, 1, "empty", "a campaign file starts with 'campaign: NAME'",
		    "the file is empty");
		return -1;
	}
	if (rc == 0 && !b.failed && doc->root->type == YNODE_SCALAR && doc->root->plain &&
	    doc->root->len == 0) {
		diag_add(d, DIAG_ERROR, file, 1, 1, "empty", "a campaign file starts with 'campaign: NAME'",
		    "the file holds no data (only comments or blank lines)");
		return -1;
	}
	return rc < 0 || b.failed ? -1 : 0;
}

void
ytree_free(struct ydoc *doc)
{
	struct ychunk *c, *next;

	for (c = doc->chunks; c != NULL; c = next) {
		next = c->next;
		free(c);
	}
	memset(doc, 0, sizeof(*doc));
}

struct ynode *
ytree_key(const struct ynode *map, const char *key)
{
	size_t i;

	if (map == NULL || map->type != YNODE_MAP)
		return NULL;
	for (i = 0; i < map->n; i++)
		if (strcmp(map->keys[i]->value, key) == 0)
			return map->keys[i];
	return NULL;
}

struct ynode *
ytree_get(const struct ynode *map, const char *key)
{
	size_t i;

	if (map == NULL || map->type != YNODE_MAP)
		return NULL;
	for (i = 0; i < map->n; i++)
		if (strcmp(map->keys[i]->value, key) == 0)
			return map->items[i];
	return NULL;
}
