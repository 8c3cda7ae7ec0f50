/* dbusdl: libdbus-1, opened when a session bus is there to talk to. encore does not link
 * it: a listener without a desktop bus (a server, a container, CI) never maps libdbus and
 * the libraries it pulls in (libsystemd, libgcrypt, liblzma, liblz4, ...), about 0.8 MB
 * of resident memory and a few milliseconds of start-up. mpris.c calls through the table,
 * one field per function, named as the function. */
#ifndef ENCORE_DBUSDL_H
#define ENCORE_DBUSDL_H
#include <stddef.h>
#include <dbus/dbus.h>

#define DBUSDL_FUNCTIONS(X) \
	X(dbus_address_escape_value) \
	X(dbus_bus_set_unique_name) \
	X(dbus_connection_close) \
	X(dbus_connection_dispatch) \
	X(dbus_connection_get_is_connected) \
	X(dbus_connection_open_private) \
	X(dbus_connection_register_object_path) \
	X(dbus_connection_send) \
	X(dbus_connection_send_with_reply) \
	X(dbus_connection_set_exit_on_disconnect) \
	X(dbus_connection_set_watch_functions) \
	X(dbus_connection_unref) \
	X(dbus_error_free) \
	X(dbus_error_init) \
	X(dbus_free) \
	X(dbus_message_append_args) \
	X(dbus_message_get_args) \
	X(dbus_message_get_interface) \
	X(dbus_message_get_member) \
	X(dbus_message_get_type) \
	X(dbus_message_iter_append_basic) \
	X(dbus_message_iter_close_container) \
	X(dbus_message_iter_get_arg_type) \
	X(dbus_message_iter_get_basic) \
	X(dbus_message_iter_init) \
	X(dbus_message_iter_init_append) \
	X(dbus_message_iter_next) \
	X(dbus_message_iter_open_container) \
	X(dbus_message_iter_recurse) \
	X(dbus_message_new_error) \
	X(dbus_message_new_error_printf) \
	X(dbus_message_new_method_call) \
	X(dbus_message_new_method_return) \
	X(dbus_message_new_signal) \
	X(dbus_message_unref) \
	X(dbus_pending_call_set_notify) \
	X(dbus_pending_call_steal_reply) \
	X(dbus_pending_call_unref) \
	X(dbus_watch_get_enabled) \
	X(dbus_watch_get_flags) \
	X(dbus_watch_get_unix_fd) \
	X(dbus_watch_handle)

struct dbusdl {
	void *lib;
#define DBUSDL_FIELD(name) __typeof__(name) *name;
	DBUSDL_FUNCTIONS(DBUSDL_FIELD)
#undef DBUSDL_FIELD
};

/* Opens libdbus-1.so.3 and resolves every function of the table. NULL with err when the
 * library or one of the functions is missing. Free with dbusdl_close. */
struct dbusdl *dbusdl_open(char *err, size_t errlen);
/* Frees the table (every connection made through it must be closed first). NULL is a no-op. */
void dbusdl_close(struct dbusdl *d);

#endif
