/*
 * counter-plus2: the counter agent stepping by 2. Same state layout and
 * host calls, different module bytes: tests use it to check that a resume
 * whose checkpoint names another module digest is refused.
 */
#define COUNTER_STEP 2
#include "../counter/agent.c"
