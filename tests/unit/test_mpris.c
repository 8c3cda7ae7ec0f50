/* Tests for tui/mpris's pure parts: engine state -> PlaybackStatus, URIs -> track ids,
 * which properties a snapshot change announces, and the two settings. The bus itself is
 * exercised by tests/integration/test_mpris.py against a private dbus-daemon. */
#include "config.h"
#include "engine.h"
#include "mpris.h"
#include "tap.h"
#include <string.h>

static void test_buffering_and_loading_count_as_playing_so_desktops_do_not_flicker(void)
{
	CHECK_STR(mpris_playback_status(ENGINE_PLAYING), "Playing");
	CHECK_STR(mpris_playback_status(ENGINE_BUFFERING), "Playing");
	CHECK_STR(mpris_playback_status(ENGINE_LOADING), "Playing");
	CHECK_STR(mpris_playback_status(ENGINE_PAUSED), "Paused");
	CHECK_STR(mpris_playback_status(ENGINE_IDLE), "Stopped");
	CHECK_STR(mpris_playback_status(ENGINE_ENDED), "Stopped");
	CHECK_STR(mpris_playback_status(ENGINE_ERROR), "Stopped");
}

static void test_track_ids_are_valid_object_paths(void)
{
	char p[160];
	mpris_track_id("encore:track:5jMV32VZWLqhrqpZfdP4j8", p, sizeof(p));
	CHECK_STR(p, "/org/encore/track/5jMV32VZWLqhrqpZfdP4j8");
	mpris_track_id("encore:episode:0vln", p, sizeof(p));
	CHECK_STR(p, "/org/encore/episode/0vln");
	mpris_track_id("", p, sizeof(p));
	CHECK_STR(p, "/org/mpris/MediaPlayer2/TrackList/NoTrack");
	mpris_track_id(NULL, p, sizeof(p));
	CHECK_STR(p, "/org/mpris/MediaPlayer2/TrackList/NoTrack");
	/* Characters an object path forbids, empty and trailing elements. */
	mpris_track_id("encore:track::a-b.c:", p, sizeof(p));
	CHECK_STR(p, "/org/encore/track/a_b_c");
	/* Truncation still ends in a valid element. */
	char small[20];
	mpris_track_id("encore:track:5jMV32VZWLqhrqpZfdP4j8", small, sizeof(small));
	CHECK_STR(small, "/org/encore/track/5");
}

static void test_position_ticks_announce_nothing_but_a_new_track_announces_metadata(void)
{
	struct engine_snapshot a, b;
	memset(&a, 0, sizeof(a));
	a.state = ENGINE_PLAYING;
	strcpy(a.uri, "encore:track:A");
	strcpy(a.title, "One");
	a.duration_ms = 5000;
	a.volume = 100;
	a.queue_length = 2;
	a.queue_position = 0;
	b = a;
	b.position_ms = 1234;
	b.buffer_seconds = 3;
	b.version = 9;
	CHECK_INT(mpris_changed(&a, &b), 0);
	b.state = ENGINE_BUFFERING;
	CHECK_INT(mpris_changed(&a, &b), 0);
	b.state = ENGINE_PAUSED;
	CHECK_INT(mpris_changed(&a, &b), MPRIS_PROP_STATUS);
	b = a;
	strcpy(b.uri, "encore:track:B");
	strcpy(b.title, "Two");
	b.queue_position = 1;
	CHECK_INT(mpris_changed(&a, &b), MPRIS_PROP_METADATA | MPRIS_PROP_CAN_NEXT);
	b = a;
	b.volume = 40;
	b.shuffle = true;
	b.repeat = ENGINE_REPEAT_ONE;
	CHECK_INT(mpris_changed(&a, &b), MPRIS_PROP_VOLUME | MPRIS_PROP_SHUFFLE | MPRIS_PROP_LOOP);
	/* The queue ran out: no item, nothing to pause, seek or go to. */
	b = a;
	b.state = ENGINE_ENDED;
	b.uri[0] = b.title[0] = 0;
	b.duration_ms = 0;
	b.queue_position = -1;
	CHECK_INT(mpris_changed(&a, &b), MPRIS_PROP_STATUS | MPRIS_PROP_METADATA | MPRIS_PROP_CAN_NEXT |
					 MPRIS_PROP_CAN_PREV | MPRIS_PROP_CAN_PAUSE | MPRIS_PROP_CAN_SEEK);
}

static void test_mpris_defaults_on_and_notify_defaults_off(void)
{
	struct config *c = config_new();
	CHECK_INT(c->mpris, 1);
	CHECK_INT(c->notify, 0);
	CHECK_INT(config_parse(c, "config", "mpris = false\nnotify on\n"), 0);
	CHECK_INT(c->mpris, 0);
	CHECK_INT(c->notify, 1);
	CHECK_INT(config_parse(c, "config", "notify maybe\n"), 1);
	CHECK_STR(c->errors[0], "config:1: notify wants on or off, not 'maybe'");
	/* Off in the settings: no thread, no bus connection. */
	CHECK(mpris_new_from_config(NULL, c) == NULL, "mpris = false still started");
	config_free(c);
}

int main(void)
{
	RUN(test_buffering_and_loading_count_as_playing_so_desktops_do_not_flicker);
	RUN(test_track_ids_are_valid_object_paths);
	RUN(test_position_ticks_announce_nothing_but_a_new_track_announces_metadata);
	RUN(test_mpris_defaults_on_and_notify_defaults_off);
	return TAP_DONE();
}
