"""A TCP proxy on loopback for fault tests: every connection accepted is piped to the
upstream server; the test can cut every open connection, stall them (bytes are held, the
sockets stay open) and slow them (a delay before each chunk is passed on)."""

from __future__ import annotations

from functools import partial

import trio

CHUNK = 65536


class FaultProxy:
    """`async with FaultProxy(port) as proxy:` listens on `proxy.port` until the block
    ends; `url(db)` is a Valkey URL through it."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.delay = 0.0
        self.accepted = 0
        self._flowing = trio.Event()
        self._flowing.set()
        self._links: set[trio.CancelScope] = set()
        self._nursery: trio.Nursery | None = None

    def url(self, db: int | str = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    async def __aenter__(self) -> FaultProxy:
        self._manager = trio.open_nursery()
        self._nursery = await self._manager.__aenter__()
        listeners = await self._nursery.start(
            partial(trio.serve_tcp, self._link, 0, host="127.0.0.1"))
        self.port = listeners[0].socket.getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> bool | None:
        assert self._nursery is not None
        self._nursery.cancel_scope.cancel()
        return await self._manager.__aexit__(*exc)  # type: ignore[arg-type]

    def cut(self) -> int:
        """Close every open connection (both sides); returns how many there were."""
        links = list(self._links)
        for scope in links:
            scope.cancel()
        return len(links)

    def stall(self) -> None:
        """Hold every byte in both directions until `resume`."""
        self._flowing = trio.Event()

    def resume(self) -> None:
        self._flowing.set()

    async def _link(self, client: trio.SocketStream) -> None:
        self.accepted += 1
        with trio.CancelScope() as scope:
            self._links.add(scope)
            try:
                server = await trio.open_tcp_stream("127.0.0.1", self.upstream_port)
                async with client, server, trio.open_nursery() as nursery:
                    nursery.start_soon(self._pipe, client, server, nursery.cancel_scope)
                    nursery.start_soon(self._pipe, server, client, nursery.cancel_scope)
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            finally:
                self._links.discard(scope)
        await trio.aclose_forcefully(client)

    async def _pipe(self, source: trio.SocketStream, sink: trio.SocketStream,
                    link: trio.CancelScope) -> None:
        """Passes bytes one way; the end of either direction ends the connection."""
        try:
            while data := await source.receive_some(CHUNK):
                if self.delay:
                    await trio.sleep(self.delay)
                await self._flowing.wait()
                await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        link.cancel()
