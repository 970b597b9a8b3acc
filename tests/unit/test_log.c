/* test_log.c - the error log's gate for lines a client can set off. */
#include "base/log.h"
#include "unit.h"

TEST(gate_lets_one_line_a_second_and_counts_the_rest)
{
	struct log_gate g = {0};
	unsigned held = 99;

	CHECK(log_gate_pass(&g, 5000, &held));
	CHECK_INT(held, 0);
	CHECK(!log_gate_pass(&g, 5000, &held));
	CHECK(!log_gate_pass(&g, 5999, &held));
	CHECK(log_gate_pass(&g, 6000, &held));
	CHECK_INT(held, 2); /* the two held back since the first */
	CHECK(!log_gate_pass(&g, 6500, &held));
	CHECK(log_gate_pass(&g, 60000, &held));
	CHECK_INT(held, 1);
	CHECK(log_gate_pass(&g, 61000, &held));
	CHECK_INT(held, 0);
}

int main(void)
{
	RUN(gate_lets_one_line_a_second_and_counts_the_rest);
	return unit_done();
}
