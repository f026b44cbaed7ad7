"""A TCP proxy that adds network round-trip time, so loopback behaves like a link to a vendor API.

Loopback has no latency, which hides exactly what connection reuse saves: every new connection
pays a TCP handshake (one round trip before the first byte may go) and TLS pays its own on top.
Each byte is delivered one-way delay (RTT/2) after it arrived, in order; a new connection's first
bytes wait one extra RTT for the TCP handshake the proxy's own instant loopback accept skipped.
TLS stays end to end (the proxy only moves bytes), so certificates are checked against the real
server.

    python benchmarks/wan_proxy.py UPSTREAM_HOST UPSTREAM_PORT RTT_MS   # prints the port it listens on
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from typing import Any


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, one_way: float, first_wait: float) -> None:
    """Forward bytes, each chunk delayed by ``one_way`` after it arrived (pipelined, order kept)."""
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, chunk = await queue.get()
            if not chunk:
                break
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            writer.write(chunk)
            await writer.drain()
        with contextlib.suppress(OSError):
            writer.write_eof()

    delivery = asyncio.create_task(deliver())
    extra = first_wait
    try:
        while chunk := await reader.read(65536):
            queue.put_nowait((time.monotonic() + one_way + extra, chunk))
            extra = 0.0
    except OSError:
        pass
    queue.put_nowait((0.0, b""))
    try:
        await delivery
    except OSError:
        pass
    finally:
        delivery.cancel()


async def serve(upstream_host: str, upstream_port: int, rtt: float) -> None:
    # The event loop keeps only weak references to tasks; hold the connection handlers here.
    handlers: set[asyncio.Task[Any]] = set()

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            server_reader, server_writer = await asyncio.open_connection(upstream_host, upstream_port)
        except OSError:
            client_writer.close()
            handlers.discard(task)
            return
        try:
            await asyncio.gather(
                pump(client_reader, server_writer, rtt / 2, first_wait=rtt),
                pump(server_reader, client_writer, rtt / 2, first_wait=0.0),
            )
        finally:
            for writer in (client_writer, server_writer):
                writer.close()
            handlers.discard(task)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    host, port, rtt_ms = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(host, port, rtt_ms / 1000))


if __name__ == "__main__":
    main()
