/* test_ytree.c: unit tests of the YAML tree: marks, duplicate keys, limits, aliases, errors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "testutil.h"
#include "ytree.h"

static int
parse(const char *text, struct ydoc *doc, struct diag_list *d)
{
	diag_init(d);
	return ytree_parse(doc, "t.yaml", text, strlen(text), d);
}

static void
test_marks(void **state)
{
	struct ydoc doc;
	struct diag_list d;
	const struct ynode *v;

	assert_int_equal(parse("a: 1\nb:\n  c: [x, \"y\"]\n", &doc, &d), 0);
	assert_int_equal(doc.root->type, YNODE_MAP);
	v = ytree_get(ytree_get(doc.root, "b"), "c");
	assert_non_null(v);
	assert_int_equal(v->type, YNODE_SEQ);
	assert_int_equal(v->line, 3);
	assert_int_equal(v->col, 6);
	assert_int_equal(v->n, 2);
	assert_true(v->items[0]->plain);
	assert_false(v->items[1]->plain);
	assert_int_equal(ytree_key(doc.root, "b")->line, 2);
	ytree_free(&doc);
	diag_free(&d);
}

static void
test_duplicate_keys_all_reported(void **state)
{
	struct ydoc doc;
	struct diag_list d;

	assert_int_equal(parse("a: 1\nb: 2\na: 3\nm:\n  x: 1\n  x: 2\n", &doc, &d), -1);
	assert_true(has_diag(&d, "duplicate-key", 3));
	assert_true(has_diag(&d, "duplicate-key", 6));
	assert_int_equal(d.n_errors, 2);
	assert_string_equal(d.v[0].hint, "first given at line 1");
	ytree_free(&doc);
	diag_free(&d);
}

static void
test_syntax_error_line(void **state)
{
	struct ydoc doc;
	struct diag_list d;

	assert_int_equal(parse("a: 1\nb: \"open\nc: 2\n", &doc, &d), -1);
	assert_true(has_diag(&d, "syntax", 0));
	ytree_free(&doc);
	diag_free(&d);
	assert_int_equal(parse("a:\n\tb: 1\n", &doc, &d), -1);
	assert_true(has_diag(&d, "syntax", 2));
	assert_non_null(d.v[0].hint);
	assert_non_null(strstr(d.v[0].hint, "tab"));
	ytree_free(&doc);
	diag_free(&d);
}

static void
test_aliases_expand_and_bound(void **state)
{
	struct ydoc doc;
	struct diag_list d;
	const struct ynode *b;
	char *bomb;
	size_t i, off = 0;

	assert_int_equal(parse("a: &x {k: v}\nb: *x\n", &doc, &d), 0);
	b = ytree_get(doc.root, "b");
	assert_int_equal(b->type, YNODE_MAP);
	assert_string_equal(ytree_get(b, "k")->value, "v");
	ytree_free(&doc);
	diag_free(&d);

	/* Nine levels of nine aliases: 9^9 nodes if expanded. */
	bomb = xmalloc(8192);
	off += (size_t)sprintf(bomb + off, "l0: &l0 [x, x, x, x, x, x, x, x, x]\n");
	for (i = 1; i < 10; i++)
		off += (size_t)sprintf(bomb + off,
		    "l%zu: &l%zu [*l%zu, *l%zu, *l%zu, *l%zu, *l%zu, *l%zu, *l%zu, *l%zu, *l%zu]\n", i, i,
		    i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
	assert_int_equal(parse(bomb, &doc, &d), -1);
	assert_true(has_diag(&d, "alias-bomb", 0));
	ytree_free(&doc);
	diag_free(&d);
	free(bomb);
}

static void
test_depth_limit(void **state)
{
	struct ydoc doc;
	struct diag_list d;
	char buf[300];

	memset(buf, '[', 200);
	buf[200] = '\0';
	assert_int_equal(parse(buf, &doc, &d), -1);
	assert_true(has_diag(&d, "too-deep", 1));
	ytree_free(&doc);
	diag_free(&d);
}

static void
test_empty_and_multi_document(void **state)
{
	struct ydoc doc;
	struct diag_list d;

	assert_int_equal(parse("", &doc, &d), -1);
	assert_true(has_diag(&d, "empty", 1));
	ytree_free(&doc);
	diag_free(&d);
	assert_int_equal(parse("# only a comment\n", &doc, &d), -1);
	assert_true(has_diag(&d, "empty", 1));
	ytree_free(&doc);
	diag_free(&d);
	assert_int_equal(parse("a: 1\n---\nb: 2\n", &doc, &d), -1);
	assert_true(has_diag(&d, "syntax", 2));
	ytree_free(&doc);
	diag_free(&d);
}

static void
test_invalid_utf8(void **state)
{
	struct ydoc doc;
	struct diag_list d;

	assert_int_equal(parse("a: 1\nb: \xff\xfe\n", &doc, &d), -1);
	assert_true(has_diag(&d, "syntax", 2));
	ytree_free(&doc);
	diag_free(&d);
}

/* A UTF-8 byte order mark is skipped: column 1 is the character after it. */
static void
test_bom_skipped(void **state)
{
	struct ydoc doc;
	struct diag_list d;

	assert_int_equal(parse("\xef\xbb\xbf" "a: 1\nb: [x]\n", &doc, &d), 0);
	assert_int_equal(d.n, 0);
	assert_int_equal(ytree_key(doc.root, "a")->line, 1);
	assert_int_equal(ytree_key(doc.root, "a")->col, 1);
	assert_int_equal(ytree_get(doc.root, "a")->col, 4);
	assert_int_equal(ytree_get(doc.root, "b")->line, 2);
	assert_int_equal(ytree_get(doc.root, "b")->col, 4);
	ytree_free(&doc);
	diag_free(&d);
	/* Diagnostics of the tree, of libyaml's scanner and of its reader. */
	assert_int_equal(parse("\xef\xbb\xbf" "a: 1\nb: 2\n  a: 3\n", &doc, &d), -1);
	assert_true(has_diag(&d, "syntax", 3));
	assert_int_equal(d.v[0].col, 4);
	ytree_free(&doc);
	diag_free(&d);
	assert_int_equal(parse("\xef\xbb\xbf" "a: 1\nb: 2\na: 3\n", &doc, &d), -1);
	assert_true(has_diag(&d, "duplicate-key", 3));
	assert_int_equal(d.v[0].col, 1);
	ytree_free(&doc);
	diag_free(&d);
	assert_int_equal(parse("\xef\xbb\xbf" "a: \xff\n", &doc, &d), -1);
	assert_true(has_diag(&d, "syntax", 1));
	assert_int_equal(d.v[0].col, 4);
	ytree_free(&doc);
	diag_free(&d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_marks),
		cmocka_unit_test(test_duplicate_keys_all_reported),
		cmocka_unit_test(test_syntax_error_line),
		cmocka_unit_test(test_aliases_expand_and_bound),
		cmocka_unit_test(test_depth_limit),
		cmocka_unit_test(test_empty_and_multi_document),
		cmocka_unit_test(test_invalid_utf8),
		cmocka_unit_test(test_bom_skipped),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
