#!/usr/bin/env python3
"""A TCP proxy that adds a fixed one-way delay in each direction, so a loopback server
looks DELAY*2 ms of round trip away. Throughput is not limited: every chunk is held
for the delay, not the connection.

The TCP handshake completes locally, so the client's first bytes are held for a further
2*DELAY: on a real link they could not leave before the SYN/SYN-ACK round trip.

--rewrite-self replaces "http://127.0.0.1:UPSTREAM_PORT" with the proxy's own URL in
what the server sends (the proxy picks a port with the same number of digits, so
Content-Length stays right): encored puts its own address into signed segment URLs,
and those must go through the proxy too.

Usage: delayproxy.py --upstream HOST:PORT --delay-ms N [--rewrite-self]
Prints "listening on 127.0.0.1:PORT" and runs until SIGTERM."""
import argparse
import os
import asyncio
import signal
import socket
import sys


def pick_socket(want_digits):
    for _ in range(200):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        if want_digits is None or len(str(s.getsockname()[1])) == want_digits:
            return s
        s.close()
    raise SystemExit("delayproxy: no port with %d digits" % want_digits)


async def pump(reader, writer, delay, first_not_before, replace):
    q = asyncio.Queue()
    loop = asyncio.get_running_loop()

    async def read_side():
        tail = b""  # a possible start of the pattern, held back for the next read
        while True:
            try:
                if tail:
                    # Hold a split pattern briefly only: a body may simply end that way.
                    data = await asyncio.wait_for(reader.read(65536), 0.001)
                else:
                    data = await reader.read(65536)
            except asyncio.TimeoutError:
                q.put_nowait((max(loop.time(), first_not_before) + delay, tail))
                tail = b""
                continue
            except (ConnectionError, OSError):
                data = b""
            now = loop.time()
            if replace and data:
                data = (tail + data).replace(replace[0], replace[1])
                tail = b""
                for k in range(min(len(replace[0]) - 1, len(data)), 0, -1):
                    if data.endswith(replace[0][:k]):
                        data, tail = data[:-k], data[-k:]
                        break
                if not data:
                    continue
            if not data and tail:
                q.put_nowait((max(now, first_not_before) + delay, tail))
                tail = b""
            q.put_nowait((max(now, first_not_before) + delay, data))
            if not data:
                return

    async def write_side():
        while True:
            due, data = await q.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                try:
                    if writer.can_write_eof():
                        writer.write_eof()
                except (ConnectionError, OSError):
                    pass
                return
            try:
                writer.write(data)
                await writer.drain()
            except (ConnectionError, OSError):
                return

    await asyncio.gather(read_side(), write_side())


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--delay-ms", type=float, required=True)
    ap.add_argument("--rewrite-self", action="store_true")
    a = ap.parse_args()
    host, port = a.upstream.rsplit(":", 1)
    port = int(port)
    delay = a.delay_ms / 1000.0
    sock = pick_socket(len(str(port)) if a.rewrite_self else None)
    my_port = sock.getsockname()[1]
    replace = None
    if a.rewrite_self:
        replace = (("http://%s:%d" % (host, port)).encode(), ("http://127.0.0.1:%d" % my_port).encode())

    async def on_client(cr, cw):
        accepted = asyncio.get_running_loop().time()
        try:
            ur, uw = await asyncio.open_connection(host, port)
        except OSError:
            cw.close()
            return
        for w in (cw, uw):
            s = w.get_extra_info("socket")
            if s is not None:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await asyncio.gather(pump(cr, uw, delay, accepted + 2 * delay, None),
                                 pump(ur, cw, delay, 0.0, replace))
        finally:
            for w in (cw, uw):
                try:
                    w.close()
                except OSError:
                    pass

    server = await asyncio.start_server(on_client, sock=sock, backlog=512)
    print("listening on 127.0.0.1:%d" % my_port, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    async with server:
        await stop.wait()
    # Connections still open are simply dropped with the process.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    asyncio.run(main())
