/* fake_notifyd: a minimal org.freedesktop.Notifications server for test_mpris. It owns
 * the name on $DBUS_SESSION_BUS_ADDRESS, prints "ready" once it does, then one line per
 * Notify call, "notify ID REPLACES_ID SUMMARY<TAB>BODY", and answers with ID (a new one,
 * or REPLACES_ID when that names an earlier notification, as real servers do). */
#include <dbus/dbus.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static dbus_uint32_t last_id;

static DBusHandlerResult on_message(DBusConnection *conn, DBusMessage *msg, void *data)
{
	(void)data;
	DBusMessage *reply = NULL;
	if (dbus_message_is_method_call(msg, "org.freedesktop.Notifications", "Notify")) {
		const char *app, *icon, *summary, *body;
		dbus_uint32_t replaces;
		DBusMessageIter it;
		dbus_message_iter_init(msg, &it);
		dbus_message_iter_get_basic(&it, &app);
		dbus_message_iter_next(&it);
		dbus_message_iter_get_basic(&it, &replaces);
		dbus_message_iter_next(&it);
		dbus_message_iter_get_basic(&it, &icon);
		dbus_message_iter_next(&it);
		dbus_message_iter_get_basic(&it, &summary);
		dbus_message_iter_next(&it);
		dbus_message_iter_get_basic(&it, &body);
		dbus_uint32_t id = replaces && replaces <= last_id ? replaces : ++last_id;
		printf("notify %u %u %s\t%s\n", id, replaces, summary, body);
		fflush(stdout);
		reply = dbus_message_new_method_return(msg);
		dbus_message_append_args(reply, DBUS_TYPE_UINT32, &id, DBUS_TYPE_INVALID);
	} else if (dbus_message_is_method_call(msg, "org.freedesktop.Notifications", "GetCapabilities")) {
		reply = dbus_message_new_method_return(msg);
		DBusMessageIter it, arr;
		const char *cap = "body";
		dbus_message_iter_init_append(reply, &it);
		dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "s", &arr);
		dbus_message_iter_append_basic(&arr, DBUS_TYPE_STRING, &cap);
		dbus_message_iter_close_container(&it, &arr);
	}
	if (!reply)
		return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
	dbus_connection_send(conn, reply, NULL);
	dbus_message_unref(reply);
	return DBUS_HANDLER_RESULT_HANDLED;
}

int main(void)
{
	DBusError err;
	dbus_error_init(&err);
	DBusConnection *conn = dbus_bus_get(DBUS_BUS_SESSION, &err);
	if (!conn) {
		fprintf(stderr, "fake_notifyd: %s\n", err.message);
		return 1;
	}
	if (dbus_bus_request_name(conn, "org.freedesktop.Notifications", DBUS_NAME_FLAG_DO_NOT_QUEUE, &err) !=
	    DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER) {
		fprintf(stderr, "fake_notifyd: cannot own the name\n");
		return 1;
	}
	static const DBusObjectPathVTable vt = {.message_function = on_message};
	dbus_connection_register_object_path(conn, "/org/freedesktop/Notifications", &vt, NULL);
	printf("ready\n");
	fflush(stdout);
	while (dbus_connection_read_write_dispatch(conn, -1))
		;
	return 0;
}
