/* Fuzz target: the user's config file (config_parse). */
#include "config.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fz_cstr(data, size);
	struct config *c = config_new();
	int bad = config_parse(c, "/home/u/.config/encore/config", text);
	if (bad < 0 || bad != c->nerrors)
		abort();
	if (c->volume < -1 || c->volume > 100)
		abort();
	(void)config_parse_color(text);
	config_free(c);
	free(text);
	return 0;
}
