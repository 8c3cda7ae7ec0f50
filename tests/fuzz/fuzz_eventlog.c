/* Fuzz target: the listening-event batch parser (eventlog_parse_batch) on POST bodies. */
#include "eventlog.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fz_cstr(data, size);
	struct eventlog_event *ev = NULL;
	char err[200];
	int n = eventlog_parse_batch(text, 50, &ev, err, sizeof(err));
	if (n > 50)
		abort();
	for (int i = 0; i < n; i++)
		if (!eventlog_type_name(ev[i].type) || strnlen(ev[i].uri, sizeof(ev[i].uri)) == sizeof(ev[i].uri))
			abort();
	free(ev);
	free(text);
	return 0;
}
