"""What every area of the Server API shares: the client, the library, the scheduler,
the configuration and the lane registry."""

from __future__ import annotations

import trio

from ff.config import ServerConfig
from ff.core.errors import ValidationError
from ff.core.keys import LANES
from ff.resp import Client
from ff.scheduler import Scheduler
from ff.script.library import FunctionLibrary


def payload_bytes(value: object, field: str) -> bytes:
    """A byte field as the API takes it (the reference's array of byte values, a string
    stored as its UTF-8, or bytes in-process) as bytes."""
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, list) and all(isinstance(b, int) and 0 <= b <= 255 for b in value):
        return bytes(value)
    raise ValidationError("invalid_input", f"{field} must be bytes 0-255 or a string")


class ServerParts:
    """Built once by `Server.__init__`; the area classes only read these."""

    def __init__(self, config: ServerConfig, client: Client) -> None:
        self._config = config
        self._client = client
        self.library = FunctionLibrary(client)
        self.scheduler = Scheduler(client, self.library, config.partitions)
        self._known_lanes: set[str] = set()
        self._rotation_gate = trio.Lock()  # one secret rotation at a time

    async def _register_lane(self, lane: str) -> None:
        """Adds a lane to the registry the scanners walk (once per lane and process)."""
        if lane not in self._known_lanes:
            await self._client.execute("SADD", LANES, lane)
            self._known_lanes.add(lane)
