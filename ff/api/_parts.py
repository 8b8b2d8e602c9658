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


LANE_REGISTRATION_REFRESH_S = 60.0


class ServerParts:
    """Built once by `Server.__init__`; the area classes only read these."""

    def __init__(self, config: ServerConfig, client: Client) -> None:
        self._config = config
        self._client = client
        self.library = FunctionLibrary(client)
        self.scheduler = Scheduler(client, self.library, config.partitions)
        self._lanes_registered_at: dict[str, float] = {}
        self._rotation_gate = trio.Lock()  # one secret rotation at a time

    async def _register_lane(self, lane: str) -> None:
        """Adds a lane to the registry the scanners walk: once per lane and process, and
        again after LANE_REGISTRATION_REFRESH_S, so a registration a failover lost (an
        asynchronous replica) is made again while the lane is in use."""
        now = trio.current_time()
        if now - self._lanes_registered_at.get(lane, -LANE_REGISTRATION_REFRESH_S) >= \
                LANE_REGISTRATION_REFRESH_S:
            await self._client.execute("SADD", LANES, lane)
            self._lanes_registered_at[lane] = now
