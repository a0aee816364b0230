/* test_lex.c: unit tests of the lexical forms (durations, times, dates, zones, names). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "lex.h"

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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_bad_durations),
		cmocka_unit_test(test_times_and_dates),
		cmocka_unit_test(test_zones_names),
		cmocka_unit_test(test_percent_rate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
