"""Limits shared by every process and instance: sliding-window counters in Redis.

All the limits of one request are checked and taken by one Lua script, atomically and all or
nothing (the `limits` package would need a round trip per limit and another for the headers'
numbers). Requests that arrive while a script call is on its way are batched into the next call,
so under load one round trip serves many requests. The window arithmetic is the same weighted sliding-window counter as
`limits`' SlidingWindowCounter strategy; time comes from the Redis server, so instances agree.
Short connect/socket timeouts keep a hung Redis from hanging requests.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from .limiter import RateLimiter
from .rules import Limit, Usage

# A batch of requests, each taken all or nothing, in order (a later request in the batch sees what
# an earlier one took). KEYS: every limit key of every request, in order. ARGV: the number of
# requests, then per request: its number of limits, 1 to take (0 to only look), then per limit:
# amount allowed, window seconds, cost. Returns per request: allowed, then (used, reset ms) per limit.
TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local a, k = 2, 1
local out = {}
for r = 1, tonumber(ARGV[1]) do
  local n, allowed = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  a = a + 2
  local state = {}
  for i = 1, n do
    local limit, w, cost = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
    a = a + 3
    local idx = math.floor(now / w)
    local cur = KEYS[k] .. ':' .. idx
    local c = tonumber(redis.call('GET', cur) or '0')
    local p = tonumber(redis.call('GET', KEYS[k] .. ':' .. (idx - 1)) or '0')
    k = k + 1
    local into = now - idx * w
    local used = math.floor(p * (w - into) / w) + c
    if used + cost > limit then allowed = 0 end
    state[i] = {cur, used, cost, w, (w - into) * 1000}
  end
  out[#out + 1] = allowed
  for i = 1, n do
    local s = state[i]
    local used = s[2]
    if allowed == 1 and s[3] > 0 then
      redis.call('INCRBY', s[1], s[3])
      redis.call('PEXPIRE', s[1], s[4] * 2000)
      used = used + s[3]
    end
    out[#out + 1] = used
    out[#out + 1] = math.floor(s[5])
  end
end
return out
"""

# Reconcile token reservations: add (or take back) DELTA in each limit's current window.
ADJUST = """
local t = redis.call('TIME')
local now = tonumber(t[1])
for i = 1, #KEYS do
  local w = tonumber(ARGV[i + 1])
  local cur = KEYS[i] .. ':' .. math.floor(now / w)
  local v = redis.call('INCRBY', cur, ARGV[1])
  if v < 0 then redis.call('SET', cur, 0, 'KEEPTTL') end
  if redis.call('PTTL', cur) < 0 then redis.call('PEXPIRE', cur, w * 2000) end
end
return 1
"""


class RedisRateLimiter(RateLimiter):
    backend = "redis"

    def __init__(self, url: str, *, fail_open: bool = False, timeout: float = 0.25,
                 prefix: str = "parrotrouter:rl:") -> None:
        super().__init__(fail_open=fail_open)
        self.client = aioredis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout,
                                        retry_on_timeout=False, health_check_interval=0)
        self.prefix = prefix
        self._take_script = self.client.register_script(TAKE)
        self._adjust_script = self.client.register_script(ADJUST)
        self._pending: list[tuple[list[Limit], int, bool, asyncio.Future[tuple[bool, list[Usage]]]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def _take(self, limits: list[Limit], tokens: int, take: bool = True) -> tuple[bool, list[Usage]]:
        future: asyncio.Future[tuple[bool, list[Usage]]] = asyncio.get_running_loop().create_future()
        self._pending.append((limits, tokens, take, future))
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send())
        return await future

    async def _send(self) -> None:
        """Send what is pending in one script call; repeat while more arrived meanwhile."""
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                keys: list[str] = []
                args: list[int] = [len(batch)]
                for limits, tokens, take, _ in batch:
                    args += (len(limits), 1 if take else 0)
                    for lim in limits:
                        keys.append(self.prefix + lim.key)
                        args += (lim.amount, lim.window, (tokens if lim.tokens else 1) if take else 0)
                try:
                    out = await self._take_script(keys=keys, args=args)
                except Exception as exc:
                    for *_, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                pos = 0
                for limits, _, _, future in batch:
                    allowed = bool(out[pos])
                    usages = [Usage(lim, int(out[pos + 1 + 2 * i]), int(out[pos + 2 + 2 * i]) / 1000)
                              for i, lim in enumerate(limits)]
                    pos += 1 + 2 * len(limits)
                    if not future.done():
                        future.set_result((allowed, usages))
        finally:
            self._sender = None

    async def _adjust(self, limits: list[Limit], delta: int) -> None:
        await self._adjust_script(keys=[self.prefix + lim.key for lim in limits],
                                  args=[delta, *(lim.window for lim in limits)])

    async def ping(self) -> bool:
        try:
            await self.client.ping()
        except Exception:
            self.healthy = False
            return False
        self.healthy = True
        return True

    async def aclose(self) -> None:
        await self.client.aclose()
