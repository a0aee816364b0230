/* test_lex.c: unit tests of the lexical forms and of util's UTF-8 and calendar helpers. */
#include <stdarg.h>
#include <stdlib.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "lex.h"
#include "util.h"

static void
test_durations(void **state)
{
	int64_t s;

	assert_int_equal(lex_duration("30s", &s), 0);
	assert_int_equal(s, 30);
	assert_int_equal(lex_duration("15m", &s), 0);
	assert_int_equal(s, 900);
	assert_int_equal(lex_duration("2h", &s), 0);
	assert_int_equal(s, 7200);
	assert_int_equal(lex_duration("1d12h", &s), 0);
	assert_int_equal(s, 129600);
	assert_int_equal(lex_duration("2w", &s), 0);
	assert_int_equal(s, 1209600);
	assert_int_equal(lex_duration("1w2d3h4m5s", &s), 0);
	assert_int_equal(s, 604800 + 2 * 86400 + 3 * 3600 + 4 * 60 + 5);
}

static void
test_bad_durations(void **state)
{
	static const char *const bad[] = { "", "h", "2x", "1h2d", "-3d", "3", "1d1d", "0s", "3 d",
		"99999d", "1.5h", "d1" };
	size_t i;
	int64_t s;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(lex_duration(bad[i], &s), -1);
}

static void
test_times_and_dates(void **state)
{
	int m, y, mo, d;
	char out[20];

	assert_int_equal(lex_time_of_day("08:30", 0, &m), 0);
	assert_int_equal(m, 510);
	assert_int_equal(lex_time_of_day("24:00", 0, &m), -1);
	assert_int_equal(lex_time_of_day("24:00", 1, &m), 0);
	assert_int_equal(m, 1440);
	assert_int_equal(lex_time_of_day("25:00", 1, &m), -1);
	assert_int_equal(lex_time_of_day("9:00", 0, &m), -1);
	assert_int_equal(lex_date("2024-02-29", &y, &mo, &d), 0);
	assert_int_equal(lex_date("2023-02-29", &y, &mo, &d), -1);
	assert_int_equal(lex_date("2027-02-30", &y, &mo, &d), -1);
	assert_int_equal(lex_date("2027-13-01", &y, &mo, &d), -1);
	assert_int_equal(lex_local_datetime("2027-02-02T10:00", out), 0);
	assert_string_equal(out, "2027-02-02T10:00:00");
	assert_int_equal(lex_local_datetime("2027-02-02 10:00", out), -1);
}

static void
test_zones_names(void **state)
{
	assert_int_equal(lex_zone("Europe/Oslo"), 0);
	assert_int_equal(lex_zone("UTC"), 0);
	assert_int_equal(lex_zone("Australia/Lord_Howe"), 0);
	assert_int_equal(lex_zone("Europe/Olso"), -1);
	assert_int_equal(lex_zone("../../etc/passwd"), -1);
	/* Files of zoneinfo that are no place (the machine's zone, a placeholder, leap-second
	 * copies): libical loads them, so they passed. */
	assert_int_equal(lex_zone("localtime"), -1);
	assert_int_equal(lex_zone("posixrules"), -1);
	assert_int_equal(lex_zone("Factory"), -1);
	assert_int_equal(lex_zone("right/Europe/Oslo"), -1);
	assert_int_equal(lex_zone("posix/Europe/Oslo"), -1);
	assert_int_equal(lex_zone("America/Argentina/Buenos_Aires"), 0);
	assert_int_equal(lex_zone("Etc/GMT+2"), 0);
	assert_int_equal(lex_name("post-purchase-csat"), 0);
	assert_int_equal(lex_name("Bad"), -1);
	assert_int_equal(lex_qid("score"), 0);
	assert_int_equal(lex_qid("1score"), -1);
	assert_int_equal(lex_language("nb"), 0);
	assert_int_equal(lex_language("pt-BR"), 0);
	assert_int_equal(lex_language("english"), -1);
}

static void
test_percent_rate(void **state)
{
	double p;
	int r;

	assert_int_equal(lex_percent("25%", &p), 0);
	assert_true(p == 25.0);
	assert_int_equal(lex_percent("12.5%", &p), 0);
	assert_int_equal(lex_percent("150%", &p), -1);
	assert_int_equal(lex_percent("0%", &p), -1);
	assert_int_equal(lex_percent("25", &p), -1);
	assert_int_equal(lex_rate("10/s", &r), 0);
	assert_int_equal(r, 36000);
	assert_int_equal(lex_rate("10/d", &r), -1);
	assert_int_equal(lex_weekday("tue"), 2);
	assert_int_equal(lex_weekday("tuesday"), -1);
}

static void
test_util_utf8(void **state)
{
	assert_int_equal(util_utf8_seq("a", 1), 1);
	assert_int_equal(util_utf8_seq("\x01", 1), 1); /* controls are the caller's business */
	assert_int_equal(util_utf8_seq("\xc3\xa6", 2), 2); /* U+00E6 */
	assert_int_equal(util_utf8_seq("\xe2\x82\xac", 3), 3); /* U+20AC */
	assert_int_equal(util_utf8_seq("\xf0\x9f\x98\x80", 4), 4); /* U+1F600 */
	assert_int_equal(util_utf8_seq("\xf4\x8f\xbf\xbf", 4), 4); /* U+10FFFF */
	assert_int_equal(util_utf8_seq("", 0), 0);
	assert_int_equal(util_utf8_seq("\x80", 1), 0); /* stray continuation */
	assert_int_equal(util_utf8_seq("\xc0\xaf", 2), 0); /* overlong '/' */
	assert_int_equal(util_utf8_seq("\xe0\x80\xaf", 3), 0); /* overlong */
	assert_int_equal(util_utf8_seq("\xf0\x80\x80\xaf", 4), 0); /* overlong */
	assert_int_equal(util_utf8_seq("\xed\xa0\x80", 3), 0); /* surrogate U+D800 */
	assert_int_equal(util_utf8_seq("\xf4\x90\x80\x80", 4), 0); /* above U+10FFFF */
	assert_int_equal(util_utf8_seq("\xe2\x82\xac", 2), 0); /* cut short by n */
	assert_int_equal(util_utf8_seq("\xe2\x82z", 3), 0);
	assert_int_equal(util_utf8_valid("bl\xc3\xa5" "b\xc3\xa6r", 7), 1);
	assert_int_equal(util_utf8_valid("", 0), 1);
	assert_int_equal(util_utf8_valid("ok\xff", 3), 0);
	assert_int_equal(util_utf8_valid("ok\xc3", 3), 0);
	assert_int_equal(util_utf8_valid("ok\xc3\xa6", 3), 0); /* n ends inside the sequence */
}

static void
test_util_calendar(void **state)
{
	int y, m, d;
	int64_t z;

	assert_int_equal(util_days_from_civil(1970, 1, 1), 0);
	assert_int_equal(util_days_from_civil(1969, 12, 31), -1);
	assert_int_equal(util_days_from_civil(2000, 3, 1), 11017);
	assert_int_equal(util_days_from_civil(2026, 13, 1), util_days_from_civil(2027, 1, 1));
	assert_int_equal(util_days_from_civil(2027, 0, 1), util_days_from_civil(2026, 12, 1));
	assert_int_equal(util_days_from_civil(2027, 2, 29), util_days_from_civil(2027, 3, 1));
	for (z = -800000; z <= 3000000; z += 97) {
		util_civil_from_days(z, &y, &m, &d);
		assert_true(m >= 1 && m <= 12 && d >= 1 && d <= util_days_in_month(y, m));
		assert_int_equal(util_days_from_civil(y, m, d), z);
	}
	util_civil_from_days(-1, &y, &m, &d);
	assert_true(y == 1969 && m == 12 && d == 31);
	assert_int_equal(util_days_in_month(2024, 2), 29);
	assert_int_equal(util_days_in_month(1900, 2), 28);
	assert_int_equal(util_days_in_month(2000, 2), 29);
	assert_int_equal(util_days_in_month(2027, 4), 30);
	assert_int_equal(util_floor_div(-1, 7), -1);
	assert_int_equal(util_floor_div(-7, 7), -1);
	assert_int_equal(util_floor_div(6, 7), 0);
}

/* util_itoa, util_copy and util_join: what snprintf's "%lld" and "%s" gave, cut the same way. */
static void
test_util_itoa_copy(void **state)
{
	char buf[24], small[4];
	const int64_t v[] = { 0, 7, -7, 10, 1234567890123LL, INT64_MAX, INT64_MIN };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		char want[24];

		snprintf(want, sizeof(want), "%lld", (long long)v[i]);
		assert_int_equal(util_itoa(buf, v[i]), strlen(want));
		assert_string_equal(buf, want);
	}
	util_copy(small, sizeof(small), "abcdef");
	assert_string_equal(small, "abc");
	util_copy(small, sizeof(small), "ab");
	assert_string_equal(small, "ab");
	util_copy(small, sizeof(small), NULL);
	assert_string_equal(small, "");
	{
		char *j = util_join("http://h", "/s/", "12-ab", (char *)NULL);

		assert_string_equal(j, "http://h/s/12-ab");
		free(j);
		j = util_join("", (char *)NULL);
		assert_string_equal(j, "");
		free(j);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_bad_durations),
		cmocka_unit_test(test_times_and_dates),
		cmocka_unit_test(test_zones_names),
		cmocka_unit_test(test_percent_rate),
		cmocka_unit_test(test_util_utf8),
		cmocka_unit_test(test_util_calendar),
		cmocka_unit_test(test_util_itoa_copy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
