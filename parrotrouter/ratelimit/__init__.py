"""Rate limits and quotas: requests per minute and day, tokens per minute, per key and per end user.

One process: sliding-window counters in memory (`limits`' SlidingWindowCounter arithmetic). Several
processes or instances: Redis, with every limit of a request checked and taken in one script (one
round trip), all or nothing.
"""
