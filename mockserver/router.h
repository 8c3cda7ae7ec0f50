/* router: matching request paths against patterns like "/v1/tracks/{id}". Pure. */
#ifndef ENCORE_ROUTER_H
#define ENCORE_ROUTER_H
#include <stdbool.h>
#include <stddef.h>

#define ROUTE_MAX_PARAMS 4
#define ROUTE_PARAM_MAX 128

/* True when path matches pattern; each {name} segment's text is copied into params in
 * order (at most ROUTE_MAX_PARAMS, each shorter than ROUTE_PARAM_MAX, else no match).
 * A trailing slash in path is ignored. */
bool route_match(const char *pattern, const char *path, char params[ROUTE_MAX_PARAMS][ROUTE_PARAM_MAX], int *nparams);

#endif
