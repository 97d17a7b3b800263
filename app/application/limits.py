"""Per-caller limits on the data plane: a request rate, and concurrent streams.

``RateLimiter``: a token bucket per caller (the token's ``sub``), ``rate`` tokens a second,
holding at most ``burst``. A call costs its item count: a unary call or a stream message is 1,
a batch is its number of items, so a batch cannot be used to get around the limit. A batch
larger than the burst is admitted when the bucket is full and leaves it in debt, so the
average rate holds and big batches are never starved. A refusal says when the same call would
be admitted (``retry_after``). Buckets live in a bounded LRU: the least recently seen callers
are forgotten first (an idle bucket refills completely in ``burst / rate`` seconds anyway).

``StreamSlots``: at most ``per_caller`` concurrent streams per caller and ``total`` in all. A
stream holds a ``StreamSlot`` from its first message to its end, whatever the end (completed,
failed, cancelled); ``release()`` is idempotent, so the adapter may call it from more than one
place.

Both refuse with ``ResourceExhausted`` (RATE_LIMITED / TOO_MANY_STREAMS); time comes from the
``Clock`` port.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from app.application.ports import Clock
from app.domain.errors import Reason, ResourceExhausted

DEFAULT_MAX_STREAMS_PER_CALLER = 16
DEFAULT_MAX_STREAMS = 256
_MAX_CALLERS = 100_000
_EPSILON = 1e-9  # float refills: a caller retrying exactly when told must be admitted


class _Bucket:
    __slots__ = ("at", "tokens")

    def __init__(self, tokens: float, at: float) -> None:
        self.tokens = tokens
        self.at = at


class RateLimiter:
    """A token bucket per caller subject, in items per second, bounded in memory."""

    def __init__(
        self, clock: Clock, *, rate: float, burst: int, max_callers: int = _MAX_CALLERS
    ) -> None:
        if rate <= 0 or burst < 1 or max_callers < 1:
            raise ValueError("rate must be positive, burst and max_callers at least 1")
        self._clock = clock
        self.rate = rate
        self.burst = burst
        self.max_callers = max_callers
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def acquire(self, caller: str, cost: int = 1) -> None:
        """Take ``cost`` tokens from ``caller``'s bucket, or raise ``ResourceExhausted``."""
        if cost <= 0:
            return
        now = self._clock.monotonic()
        bucket = self._buckets.get(caller)
        if bucket is None:
            if len(self._buckets) >= self.max_callers:
                self._buckets.popitem(last=False)
            bucket = self._buckets[caller] = _Bucket(float(self.burst), now)
        else:
            self._buckets.move_to_end(caller)
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
        needed = min(cost, self.burst)
        if bucket.tokens + _EPSILON < needed:
            wait = (needed - bucket.tokens) / self.rate
            raise ResourceExhausted(
                f"rate limit of {self.rate:g} items per second exceeded; retry in {wait:.3g} s",
                reason=Reason.RATE_LIMITED,
                retry_after=wait,
            )
        bucket.tokens -= cost


class StreamSlot:
    """One open stream's place; give it back with ``release()`` (idempotent)."""

    __slots__ = ("_caller", "_slots")

    def __init__(self, slots: StreamSlots, caller: str) -> None:
        self._slots: StreamSlots | None = slots
        self._caller = caller

    def release(self) -> None:
        """Give the slot back (idempotent)."""
        slots, self._slots = self._slots, None
        if slots is not None:
            slots._give_back(self._caller)

    def __enter__(self) -> StreamSlot:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class StreamSlots:
    """Caps on concurrent streams per caller and in all."""

    def __init__(
        self,
        *,
        per_caller: int = DEFAULT_MAX_STREAMS_PER_CALLER,
        total: int = DEFAULT_MAX_STREAMS,
    ) -> None:
        if per_caller < 1 or total < 1:
            raise ValueError("stream limits must be at least 1")
        self.per_caller = per_caller
        self.total = total
        self._open: dict[str, int] = {}  # only callers with an open stream: bounded by total
        self.open_streams = 0

    def held_by(self, caller: str) -> int:
        """How many streams ``subject`` holds now."""
        return self._open.get(caller, 0)

    def open(self, caller: str) -> StreamSlot:
        """Take a slot for a new stream, or raise ``ResourceExhausted(TOO_MANY_STREAMS)``."""
        if self.open_streams >= self.total:
            raise ResourceExhausted(
                f"the server already serves its maximum of {self.total} concurrent streams",
                reason=Reason.TOO_MANY_STREAMS,
            )
        held = self._open.get(caller, 0)
        if held >= self.per_caller:
            raise ResourceExhausted(
                f"this caller already holds its maximum of {self.per_caller} concurrent streams",
                reason=Reason.TOO_MANY_STREAMS,
            )
        self._open[caller] = held + 1
        self.open_streams += 1
        return StreamSlot(self, caller)

    def _give_back(self, caller: str) -> None:
        held = self._open.get(caller, 0)
        if held <= 1:
            self._open.pop(caller, None)
        else:
            self._open[caller] = held - 1
        self.open_streams -= 1


@dataclass(frozen=True, slots=True)
class DataPlaneLimits:
    """What the data plane admits: a per-caller rate (``None``: off) and the stream caps."""

    rate: RateLimiter | None = None
    streams: StreamSlots = field(default_factory=StreamSlots)
