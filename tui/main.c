/* encore: placeholder until the client branch lands. */
#include <stdio.h>
int main(void) { fputs("encore: not built yet\n", stderr); return 1; }
