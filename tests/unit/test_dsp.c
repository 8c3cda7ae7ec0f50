#include "../tap.h"
static void test_nothing(void) { CHECK(1, "x"); }
int main(void) { RUN(test_nothing); return TAP_DONE(); }
