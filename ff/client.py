"""HttpClient: a small async HTTP/1.1 client for the ff API, on trio + h11 like the server.

What lives here: `HttpClient` (a keep-alive connection pool with one deadline per request),
`HttpResponse`, and the errors: `HttpError` for transport failures (connect refused, reset,
timeout, protocol violations; `HttpTimeout` is the timeout case) and `HttpStatusError`, raised by
`HttpResponse.raise_for_status()` with the server's `{"error", "kind", "retryable"}` fields.
`ApiClient` adds the typed API calls on top of `request()`:

    async with ApiClient("http://127.0.0.1:9090", token=token) as api:
        created = await api.create_execution({"execution_kind": "email"})
        state = await api.get_execution_state(created.execution_id)

Every typed call raises `HttpStatusError` (with `status`, `kind`, `retryable`) for a 4xx/5xx.

Plain `http://` only; a TLS front (if any) terminates in front of ff.
"""

from __future__ import annotations

import select
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote, urlencode, urlsplit

import h11
import msgspec
import trio

from ff.core.budget_records import (
    BudgetStatus,
    CreateBudgetArgs,
    CreateBudgetResult,
    CreateQuotaPolicyArgs,
    CreateQuotaPolicyResult,
    QuotaStatus,
    ReportUsageArgs,
    ReportUsageResult,
    ResetBudgetResult,
)
from ff.core.errors import FFError, error_for_code
from ff.core.flow_records import (
    AddExecutionToFlowArgs,
    AddExecutionToFlowResult,
    ApplyDependencyToChildArgs,
    ApplyDependencyToChildResult,
    CancelFlowArgs,
    CancelFlowResult,
    CreateFlowArgs,
    CreateFlowResult,
    EdgeGroupPolicyArgs,
    EdgeGroupPolicyResult,
    FlowInfo,
    FlowMembers,
    StageDependencyEdgeArgs,
    StageDependencyEdgeResult,
)
from ff.core.records import (
    CancelExecutionArgs,
    ClaimGrant,
    CreateExecutionArgs,
    CreateResult,
    DeliverSignalResult,
    ExecutionInfo,
    ExecutionPage,
    PendingWaitpointInfo,
    ReclaimCapExceeded,
    ReclaimGrantArgs,
    ReclaimGranted,
    ReclaimNotReclaimable,
    RotateSecretResult,
    StreamFrame,
    StreamFrames,
    StreamSummary,
)
from ff.http._message import encode_fallback
from ff.http.wire import (
    BatchCreateResponse,
    CancelledBody,
    CancelResponse,
    ClaimRequest,
    CreateResponse,
    LaneCounts,
    LaneList,
    PriorityRequest,
    ReplayResponse,
    ResumeResponse,
    RevokeResponse,
    RotateRequest,
    SignalResponse,
    TokenBody,
)

__all__ = [
    "ApiClient",
    "HttpClient",
    "HttpError",
    "HttpResponse",
    "HttpStatusError",
    "HttpTimeout",
]

T = TypeVar("T")

_encoder = msgspec.json.Encoder(enc_hook=encode_fallback)
_RECEIVE_SIZE = 64 * 1024
# Retrying is safe only where repeating the request cannot do a second, different thing.
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# Exceptions that mean "the connection failed", mapped to HttpError in one place.
_TRANSPORT_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError)


class HttpError(Exception):
    """The request did not get a complete HTTP response (the network or the peer failed)."""


class HttpTimeout(HttpError):
    """No complete response within the client's timeout."""


class _ErrorFields(msgspec.Struct):
    error: str = ""
    kind: str | None = None
    retryable: bool | None = None


class HttpStatusError(Exception):
    """A 4xx/5xx answer, with the fields of ff's JSON error body when it has one."""

    def __init__(self, response: HttpResponse) -> None:
        try:
            fields = msgspec.json.decode(response.body, type=_ErrorFields)
        except msgspec.DecodeError:
            fields = _ErrorFields(response.body[:200].decode("utf-8", "replace"))
        super().__init__(f"HTTP {response.status}: {fields.error}")
        self.response = response
        self.status = response.status
        self.error = fields.error
        self.kind = fields.kind
        self.retryable = fields.retryable


@dataclass(slots=True)
class HttpResponse:
    """A complete response: status, headers (lowercased names) and the whole body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self, type_: type[T] | Any = Any) -> T:
        """Decode the body as JSON, validated into `type_` when given (msgspec)."""
        decoded: T = msgspec.json.decode(self.body, type=type_)
        return decoded

    def raise_for_status(self) -> HttpResponse:
        """Return self for 1xx-3xx; raise HttpStatusError for 4xx and 5xx."""
        if self.status >= 400:
            raise HttpStatusError(self)
        return self


class _StaleConnection(Exception):
    """A reused keep-alive connection died before any byte of the answer arrived."""


class _Connection:
    """One TCP connection and its h11 state; used by one request at a time."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)

    def looks_alive(self) -> bool:
        """An idle connection must not be readable: if it is, the server closed it (or sent
        something unsolicited), and reusing it would lose our request. poll() has no fd limit.
        """
        poller = select.poll()
        poller.register(self.stream.socket.fileno(), select.POLLIN)
        return not poller.poll(0)

    async def round_trip(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> HttpResponse:
        conn = self.h11
        data = conn.send(h11.Request(method=method, target=target, headers=headers))
        if body:
            data += conn.send(h11.Data(data=body))
        data += conn.send(h11.EndOfMessage())
        received = False
        try:
            await self.stream.send_all(data)
            status = 0
            response_headers: dict[str, str] = {}
            chunks: list[bytes] = []
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    chunk = await self.stream.receive_some(_RECEIVE_SIZE)
                    received = received or bool(chunk)
                    conn.receive_data(chunk)
                elif type(event) is h11.Response:
                    status = event.status_code
                    for name, value in event.headers:
                        key, text = name.decode("latin-1"), value.decode("latin-1")
                        prior = response_headers.get(key)
                        response_headers[key] = text if prior is None else f"{prior}, {text}"
                elif type(event) is h11.Data:
                    chunks.append(event.data)
                elif type(event) is h11.EndOfMessage:
                    return HttpResponse(status, response_headers, b"".join(chunks))
                elif type(event) is h11.ConnectionClosed:
                    raise h11.RemoteProtocolError("connection closed before the response")
        except _TRANSPORT_ERRORS as exc:
            if not received:
                raise _StaleConnection from exc
            raise

    def reusable(self) -> bool:
        """After a full exchange: ready the next cycle if both sides kept the connection."""
        conn = self.h11
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
            return True
        return False


class HttpClient:
    """Async HTTP client with keep-alive reuse, for `http://host:port[/prefix]`.

    `timeout` bounds each request end to end (waiting for a pool slot excluded): connect,
    send, and the whole response. At most `max_connections` requests run at once; further
    callers wait for a slot. An idle connection the server has closed is detected and replaced;
    a reused connection that dies before any answer byte is retried once on a fresh one for
    idempotent methods only.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        max_connections: int = 64,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"HttpClient takes an http://host[:port] URL, got {base_url!r}")
        self._host = parts.hostname
        self._port = parts.port or 80
        self._prefix = parts.path.rstrip("/")
        host_header = f"[{self._host}]" if ":" in self._host else self._host
        if parts.port is not None:
            host_header += f":{parts.port}"
        self._base_headers = [("host", host_header), ("user-agent", "ff-client")]
        if token:
            self._base_headers.append(("authorization", f"Bearer {token}"))
        self._timeout = timeout
        self._slots = trio.CapacityLimiter(max_connections)
        self._idle: list[_Connection] = []
        self._closed = False

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the idle connections; requests in flight close theirs when they finish."""
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.stream.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> HttpResponse:
        """Send one request and read the whole response; any status is returned, not raised.

        `json` (a msgspec Struct, dict, list, ...) is encoded with msgspec and sent as
        `application/json`; `body` sends raw bytes. `timeout` replaces the client's for this
        request (a long poll). Raises HttpError (HttpTimeout) when no complete response
        arrives.
        """
        if json is not None and body is not None:
            raise ValueError("pass json= or body=, not both")
        payload = _encoder.encode(json) if json is not None else (body or b"")
        request_headers = list(self._base_headers)
        if json is not None:
            request_headers.append(("content-type", "application/json"))
        if payload or method in ("POST", "PUT", "PATCH"):
            request_headers.append(("content-length", str(len(payload))))
        if headers:
            given = {name.lower() for name in headers}
            request_headers = [h for h in request_headers if h[0] not in given]
            request_headers.extend(headers.items())
        target = self._prefix + path
        limit = self._timeout if timeout is None else timeout
        async with self._slots:
            try:
                with trio.fail_after(limit):
                    return await self._send(method, target, request_headers, payload)
            except trio.TooSlowError:
                raise HttpTimeout(f"{method} {target}: no response within {limit}s") from None
            except _TRANSPORT_ERRORS as exc:
                raise HttpError(f"{method} {target}: {exc!r}") from exc

    async def _send(
        self, method: str, target: str, headers: list[tuple[str, str]], payload: bytes
    ) -> HttpResponse:
        if self._closed:
            raise HttpError("the client is closed")
        while True:
            connection, reused = await self._checkout()
            try:
                response = await connection.round_trip(method, target, headers, payload)
            except _StaleConnection as exc:
                await connection.stream.aclose()
                if reused and method in _IDEMPOTENT:
                    continue
                raise HttpError(f"{method} {target}: connection lost") from exc.__cause__
            except BaseException:
                await trio.aclose_forcefully(connection.stream)
                raise
            if connection.reusable() and not self._closed:
                self._idle.append(connection)
            else:
                await connection.stream.aclose()
            return response

    async def _checkout(self) -> tuple[_Connection, bool]:
        """The most recently used live idle connection, else a new one."""
        while self._idle:
            connection = self._idle.pop()
            if connection.looks_alive():
                return connection, True
            await connection.stream.aclose()
        return _Connection(await trio.open_tcp_stream(self._host, self._port)), False


# How long past a tail's own block the answer may take before the request is given up.
_TAIL_MARGIN_S = 10.0


def _query(params: Mapping[str, object]) -> str:
    return urlencode({k: v for k, v in params.items() if v is not None})


ReclaimOutcome = ReclaimGranted | ReclaimNotReclaimable | ReclaimCapExceeded


def _execution_path(execution_id: str, suffix: str = "") -> str:
    return f"/v1/executions/{quote(execution_id, safe='')}{suffix}"


def _with_byte_list(args: CreateExecutionArgs | Mapping[str, Any]) -> Any:
    """A bytes `input_payload` goes on the wire as the reference's array of byte values
    (msgspec would otherwise send base64 text, which the server stores as it is)."""
    if isinstance(args, CreateExecutionArgs):
        payload: Any = args.input_payload
        if isinstance(payload, bytes | bytearray):
            return msgspec.structs.replace(args, input_payload=list(payload))
        return args
    payload = args.get("input_payload")
    if isinstance(payload, bytes | bytearray):
        return {**args, "input_payload": list(payload)}
    return args


def _flow_path(flow_id: str, suffix: str = "") -> str:
    return f"/v1/flows/{quote(flow_id, safe='')}{suffix}"


class ApiClient(HttpClient):
    """`HttpClient` with one typed method per route of the ff API.

    Arguments are the Server API's records (or plain dicts of the same fields); answers are
    decoded into records. A 4xx/5xx answer raises `HttpStatusError`.
    """

    async def _call(
        self, method: str, path: str, type_: type[T], *, json: Any = None
    ) -> T:
        response = await self.request(method, path, json=json)
        return response.raise_for_status().json(type_)

    async def health(self) -> None:
        """`GET /healthz`; raises unless the server and its Valkey answer."""
        (await self.request("GET", "/healthz")).raise_for_status()

    async def create_execution(
        self, args: CreateExecutionArgs | Mapping[str, Any]
    ) -> CreateResult:
        """Submit an execution; `duplicate` is True when its idempotency key was known."""
        answer = await self._call(
            "POST", "/v1/executions", CreateResponse, json=_with_byte_list(args)
        )
        if answer.Created is not None:
            return CreateResult(answer.Created.execution_id, answer.Created.public_state)
        if answer.Duplicate is None:
            raise HttpError("create answered with neither Created nor Duplicate")
        body = answer.Duplicate
        return CreateResult(body.execution_id, body.public_state or "", duplicate=True)

    async def create_executions(
        self, items: Iterable[CreateExecutionArgs | Mapping[str, Any]]
    ) -> list[CreateResult | FFError]:
        """Submit up to 1,000 executions in one request (`POST /v1/executions:batch`).
        One answer per item, in order: its `CreateResult`, or the typed error that item
        alone was refused with."""
        answer = await self._call("POST", "/v1/executions:batch", BatchCreateResponse,
                                  json=[_with_byte_list(item) for item in items])
        out: list[CreateResult | FFError] = []
        for item in answer.results:
            if item.Created is not None:
                out.append(CreateResult(item.Created.execution_id, item.Created.public_state))
            elif item.Duplicate is not None:
                out.append(CreateResult(item.Duplicate.execution_id,
                                        item.Duplicate.public_state or "", duplicate=True))
            elif item.Error is not None:
                code = item.Error.kind or "invalid_input"
                out.append(error_for_code(code, item.Error.error.removeprefix(f"{code}: ")))
            else:
                raise HttpError("batch item answered with neither Created, Duplicate nor Error")
        return out

    async def get_execution(self, execution_id: str) -> ExecutionInfo:
        return await self._call("GET", _execution_path(execution_id), ExecutionInfo)

    async def get_execution_state(self, execution_id: str) -> str:
        return await self._call("GET", _execution_path(execution_id, "/state"), str)

    async def get_execution_result(self, execution_id: str) -> bytes | None:
        """The raw result bytes, or None while there is none (not completed, or trimmed)."""
        response = await self.request("GET", _execution_path(execution_id, "/result"))
        if response.status == 404:
            return None
        return response.raise_for_status().body

    async def cancel_execution(
        self,
        execution_id: str,
        args: CancelExecutionArgs | Mapping[str, Any] | None = None,
    ) -> CancelledBody:
        path = _execution_path(execution_id, "/cancel")
        answer = await self._call("POST", path, CancelResponse, json=args or {})
        if answer.Cancelled is None:
            raise HttpError("cancel answered without Cancelled")
        return answer.Cancelled

    async def list_executions(
        self,
        partition: int,
        *,
        cursor: str | None = None,
        limit: int | None = None,
        lane: str | None = None,
        state: str | None = None,
        offset: int | None = None,
    ) -> ExecutionPage:
        """One page: the cursor form by default, the filter form with `lane`."""
        params = {"partition": partition, "cursor": cursor, "limit": limit, "lane": lane,
                  "state": state, "offset": offset}
        query = urlencode({k: v for k, v in params.items() if v is not None})
        return await self._call("GET", f"/v1/executions?{query}", ExecutionPage)

    async def lanes(self) -> list[str]:
        """Every registered lane."""
        return (await self._call("GET", "/v1/lanes", LaneList)).lanes

    async def lane_counts(self, lane: str) -> dict[str, int]:
        """Executions of `lane` per public state."""
        path = f"/v1/lanes/{quote(lane, safe='')}/counts"
        return (await self._call("GET", path, LaneCounts)).counts

    async def change_priority(self, execution_id: str, new_priority: int) -> None:
        path = _execution_path(execution_id, "/priority")
        await self._call("PUT", path, Any, json=PriorityRequest(new_priority))

    async def replay_execution(self, execution_id: str) -> str:
        """Run a terminal execution again; returns its new public state."""
        answer = await self._call("POST", _execution_path(execution_id, "/replay"),
                                  ReplayResponse)
        if answer.Replayed is None:
            raise HttpError("replay answered without Replayed")
        return answer.Replayed.public_state

    async def revoke_lease(self, execution_id: str) -> RevokeResponse:
        """`Revoked` with the lease, or `AlreadySatisfied` when there was no active lease."""
        return await self._call("POST", _execution_path(execution_id, "/revoke-lease"),
                                RevokeResponse)

    async def issue_reclaim_grant(
        self, execution_id: str, args: ReclaimGrantArgs | Mapping[str, Any]
    ) -> ReclaimOutcome:
        outcome: ReclaimOutcome = await self._call(
            "POST", _execution_path(execution_id, "/reclaim"),
            ReclaimOutcome,  # type: ignore[arg-type]  # a union of Structs decodes as one
            json=args)
        return outcome

    async def claim(
        self,
        worker_id: str,
        *,
        lane_id: str,
        worker_instance_id: str,
        grant_ttl_ms: int = 5_000,
        capabilities: Iterable[str] = (),
    ) -> ClaimGrant | None:
        """The next claim grant for this worker on `lane_id`, or None when there is no work."""
        body = ClaimRequest(lane_id=lane_id, worker_instance_id=worker_instance_id,
                            grant_ttl_ms=grant_ttl_ms, capabilities=list(capabilities))
        path = f"/v1/workers/{quote(worker_id, safe='')}/claim"
        response = await self.request("POST", path, json=body)
        if response.status == 204:
            return None
        return response.raise_for_status().json(ClaimGrant)

    # -- waitpoints ---------------------------------------------------------------------

    async def pending_waitpoints(self, execution_id: str) -> list[PendingWaitpointInfo]:
        """The open waitpoints of an execution (ids, keys, names; never the tokens)."""
        return await self._call("GET", _execution_path(execution_id, "/pending-waitpoints"),
                                list[PendingWaitpointInfo])

    async def waitpoint_token(self, execution_id: str, waitpoint_id: str) -> str | None:
        """The raw token of an open waitpoint, or None (consumed, expired or unknown)."""
        path = _execution_path(execution_id,
                               f"/waitpoints/{quote(waitpoint_id, safe='')}/token")
        response = await self.request("GET", path)
        if response.status == 404:
            return None
        return response.raise_for_status().json(TokenBody).token

    async def signal(
        self,
        execution_id: str,
        *,
        waitpoint_id: str,
        name: str,
        token: str,
        payload: Any = None,
        source_type: str = "external",
        source_identity: str = "",
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> DeliverSignalResult:
        """Delivers a signal. `payload`: bytes (sent as byte values), str (stored as its
        UTF-8), or anything else (sent as its JSON text). `fields` are the other optional
        fields of the signal body (signal_category, correlation_id, resume_delay_ms...)."""
        body: dict[str, Any] = {"waitpoint_id": waitpoint_id, "signal_name": name,
                                "waitpoint_token": token, "source_type": source_type,
                                "source_identity": source_identity, **fields}
        if idempotency_key is not None:
            body["idempotency_key"] = idempotency_key
        if isinstance(payload, bytes | bytearray):
            body["payload"] = list(payload)
        elif isinstance(payload, str):
            body["payload"] = payload
        elif payload is not None:
            body["payload"] = msgspec.json.encode(payload).decode()
        answer = await self._call("POST", _execution_path(execution_id, "/signal"),
                                  SignalResponse, json=body)
        if answer.Accepted is not None:
            return DeliverSignalResult(answer.Accepted.signal_id, answer.Accepted.effect)
        if answer.Duplicate is None:
            raise HttpError("signal answered with neither Accepted nor Duplicate")
        return DeliverSignalResult(answer.Duplicate.existing_signal_id, duplicate=True)

    async def resume_execution(self, execution_id: str, resume_delay_ms: int = 0) -> str:
        """Operator resume of a suspended execution; returns its new public state."""
        answer = await self._call("POST", _execution_path(execution_id, "/resume"),
                                  ResumeResponse, json={"resume_delay_ms": resume_delay_ms})
        if answer.Resumed is None:
            raise HttpError("resume answered without Resumed")
        return answer.Resumed.public_state

    async def rotate_waitpoint_secret(self, new_kid: str,
                                      new_secret_hex: str) -> RotateSecretResult:
        return await self._call("POST", "/v1/admin/rotate-waitpoint-secret",
                                RotateSecretResult, json=RotateRequest(new_kid, new_secret_hex))
    # -- attempt streams ------------------------------------------------------------

    async def read_stream(self, execution_id: str, attempt_index: int = 0, *,
                          from_id: str = "start", to_id: str = "end",
                          limit: int = 100) -> StreamFrames:
        """One page of an attempt's frames, `from_id` to `to_id` inclusive (`start`, `end`,
        `<ms>` or `<ms>-<seq>`), with the terminal markers once the stream is closed."""
        query = _query({"from": from_id, "to": to_id, "limit": limit})
        path = _execution_path(execution_id, f"/attempts/{attempt_index}/stream?{query}")
        return await self._call("GET", path, StreamFrames)

    async def tail_stream(self, execution_id: str, attempt_index: int = 0, *,
                          after: str = "0-0", block_ms: int = 0,
                          limit: int = 50) -> StreamFrames:
        """Frames after `after`, waiting up to `block_ms` for the first (one long poll)."""
        query = _query({"after": after, "block_ms": block_ms, "limit": limit})
        path = _execution_path(execution_id, f"/attempts/{attempt_index}/stream/tail?{query}")
        response = await self.request("GET", path,
                                      timeout=block_ms / 1000 + _TAIL_MARGIN_S)
        return response.raise_for_status().json(StreamFrames)

    async def tail(self, execution_id: str, attempt_index: int = 0, *, after: str = "0-0",
                   block_ms: int = 10_000, limit: int = 100) -> AsyncIterator[StreamFrame]:
        """Every frame after `after` as it arrives, ending once the attempt's stream is
        closed and read to its end (the last frame is then its `stream_closed` marker, if
        the attempt wrote any frame)."""
        while True:
            page = await self.tail_stream(execution_id, attempt_index, after=after,
                                          block_ms=block_ms, limit=limit)
            for frame in page.frames:
                yield frame
            if page.frames:
                after = page.frames[-1].id
            if page.closed_at is not None and page.count < limit:
                return

    async def get_summary(self, execution_id: str, attempt_index: int = 0) -> StreamSummary:
        """The attempt's summary document (`document` None until a patch was applied)."""
        path = _execution_path(execution_id, f"/attempts/{attempt_index}/summary")
        return await self._call("GET", path, StreamSummary)
    async def create_flow(self, args: CreateFlowArgs | None = None) -> CreateFlowResult:
        """`Created` (201) or `AlreadySatisfied` (200) with the flow id."""
        return await self._call("POST", "/v1/flows", CreateFlowResult,
                                json=args or CreateFlowArgs())

    async def add_execution_to_flow(self, flow_id: str, args: AddExecutionToFlowArgs
                                    ) -> AddExecutionToFlowResult:
        if args.execution is not None:
            args = msgspec.structs.replace(args, execution=_with_byte_list(args.execution))
        return await self._call("POST", _flow_path(flow_id, "/members"),
                                AddExecutionToFlowResult, json=args)

    async def stage_dependency_edge(self, flow_id: str, args: StageDependencyEdgeArgs
                                    ) -> StageDependencyEdgeResult:
        return await self._call("POST", _flow_path(flow_id, "/edges"),
                                StageDependencyEdgeResult, json=args)

    async def apply_dependency_to_child(self, flow_id: str, args: ApplyDependencyToChildArgs
                                        ) -> ApplyDependencyToChildResult:
        answer = await self._call("POST", _flow_path(flow_id, "/edges/apply"), Any, json=args)
        if answer == "AlreadyApplied":
            return ApplyDependencyToChildResult(applied_again=True)
        return msgspec.convert(answer, ApplyDependencyToChildResult)

    async def set_edge_group_policy(self, flow_id: str, execution_id: str,
                                    args: EdgeGroupPolicyArgs) -> EdgeGroupPolicyResult:
        path = _flow_path(flow_id, f"/members/{quote(execution_id, safe='')}/edge-group")
        answer = await self._call("PUT", path, Any, json=args)
        if answer == "AlreadySet":
            return EdgeGroupPolicyResult(already_set=True)
        return msgspec.convert(answer, EdgeGroupPolicyResult)

    async def cancel_flow(self, flow_id: str, args: CancelFlowArgs | None = None, *,
                          wait: bool = False) -> CancelFlowResult:
        path = _flow_path(flow_id, "/cancel" + ("?wait=true" if wait else ""))
        return await self._call("POST", path, CancelFlowResult, json=args or CancelFlowArgs())

    async def get_flow(self, flow_id: str) -> FlowInfo:
        return await self._call("GET", _flow_path(flow_id), FlowInfo)

    async def list_flow_members(self, flow_id: str) -> FlowMembers:
        return await self._call("GET", _flow_path(flow_id, "/members"), FlowMembers)

    async def create_budget(self, args: CreateBudgetArgs) -> CreateBudgetResult:
        """`Created` (201) or `AlreadySatisfied` (200) with the budget id."""
        return await self._call("POST", "/v1/budgets", CreateBudgetResult, json=args)

    async def get_budget_status(self, budget_id: str) -> BudgetStatus:
        return await self._call("GET", f"/v1/budgets/{quote(budget_id, safe='')}",
                                BudgetStatus)

    async def report_usage(self, budget_id: str, args: ReportUsageArgs) -> ReportUsageResult:
        answer = await self._call("POST", f"/v1/budgets/{quote(budget_id, safe='')}/usage",
                                  Any, json=args)
        return ReportUsageResult.from_wire(answer)

    async def reset_budget(self, budget_id: str) -> ResetBudgetResult:
        return await self._call("POST", f"/v1/budgets/{quote(budget_id, safe='')}/reset",
                                ResetBudgetResult)

    async def create_quota_policy(self, args: CreateQuotaPolicyArgs) -> CreateQuotaPolicyResult:
        return await self._call("POST", "/v1/quotas", CreateQuotaPolicyResult, json=args)

    async def get_quota_policy(self, quota_policy_id: str) -> QuotaStatus:
        return await self._call("GET", f"/v1/quotas/{quote(quota_policy_id, safe='')}",
                                QuotaStatus)
