"""Limits shared by every process and instance: sliding-window counters in Redis.

All the limits of one request are checked and taken by one Lua script, atomically and all or
nothing, in one round trip (the `limits` package would need a round trip per limit and another
for the headers' numbers). The window arithmetic is the same weighted sliding-window counter as
`limits`' SlidingWindowCounter strategy; time comes from the Redis server, so instances agree.
Short connect/socket timeouts keep a hung Redis from hanging requests.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from .limiter import RateLimiter
from .rules import Limit, Usage

# KEYS[i]: the limit's key; ARGV: (amount allowed, window seconds, cost) per limit.
# Returns {allowed, used_1, reset_after_ms_1, used_2, ...}.
TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local n = #KEYS
local state = {}
local allowed = 1
for i = 1, n do
  local limit, w, cost = tonumber(ARGV[3*i-2]), tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i])
  local idx = math.floor(now / w)
  local cur = KEYS[i] .. ':' .. idx
  local c = tonumber(redis.call('GET', cur) or '0')
  local p = tonumber(redis.call('GET', KEYS[i] .. ':' .. (idx - 1)) or '0')
  local into = now - idx * w
  local used = math.floor(p * (w - into) / w) + c
  if used + cost > limit then allowed = 0 end
  state[i] = {cur, used, cost, w, (w - into) * 1000}
end
local out = {allowed}
for i = 1, n do
  local s = state[i]
  local used = s[2]
  if allowed == 1 then
    redis.call('INCRBY', s[1], s[3])
    redis.call('PEXPIRE', s[1], s[4] * 2000)
    used = used + s[3]
  end
  out[#out + 1] = used
  out[#out + 1] = math.floor(s[5])
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

    async def _take(self, limits: list[Limit], tokens: int, take: bool = True) -> tuple[bool, list[Usage]]:
        keys = [self.prefix + lim.key for lim in limits]
        args: list[int] = []
        for lim in limits:
            args += (lim.amount, lim.window, (tokens if lim.tokens else 1) if take else 0)
        out = await self._take_script(keys=keys, args=args)
        usages = [Usage(lim, int(out[1 + 2 * i]), int(out[2 + 2 * i]) / 1000) for i, lim in enumerate(limits)]
        return bool(out[0]), usages

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
