"""Even pacing per API token shared by every process and worker, through one Redis hash per token.

Celery or Kubernetes workers running tasks of the same account on the same token must draw from
one schedule, or together they exceed the supplier's limit. Each ``acquire`` runs a small Lua
script that atomically reserves the token's next free slot (``1/rate`` apart) on the Redis
server's clock, so the workers' own clocks never matter; the caller then sleeps until its slot.
A Retry-After seen by any process sets a shared ``hold``: no process sends before it ends, and a
caller whose slot fell inside a hold that arrived while it slept reserves a new slot after it.
Right before sending, a second script checks the token's recent send times (on Redis's clock
too): a worker that woke late from its sleep, as a busy machine makes them, waits a little more
instead of bunching its request with the next ones.

Why not pyrate-limiter's RedisBucket (4.5, evaluated; README "Running it in production"): it
stamps requests with each worker's own clock (not Redis TIME), so clock skew between machines
shifts the windows; it has no shared "hold until" for a Retry-After; a blocked caller sleeps and
races the others to re-check instead of owning a reserved slot. Three short scripts do exactly
what is needed, with no new dependency beyond the Redis client.

The key is a salted SHA-256 of the token: the token itself never reaches Redis.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import threading
import time
import uuid
from typing import Any

from usdirect.hooks.errors import ConnectionConfigError, RateLimitBackendError, describe
from usdirect.hooks.secrets import register_secret

log = logging.getLogger(__name__)

# KEYS[1]: the token's hash {next: next free slot, hold: no request before} in seconds of Redis
# TIME. ARGV[1]: seconds between two requests. Returns how long the caller waits for its slot.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local cur = redis.call('HMGET', KEYS[1], 'next', 'hold')
local slot = math.max(now, tonumber(cur[1]) or 0, tonumber(cur[2]) or 0)
local after = slot + tonumber(ARGV[1])
redis.call('HSET', KEYS[1], 'next', string.format('%.6f', after))
redis.call('PEXPIRE', KEYS[1], math.ceil((after - now) * 1000) + 60000)
return string.format('%.6f', slot - now)
"""

# ARGV[1]: seconds to hold every user of the token back (Retry-After). Returns the hold left.
_HOLD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local hold = math.max(now + tonumber(ARGV[1]), tonumber(redis.call('HGET', KEYS[1], 'hold')) or 0)
redis.call('HSET', KEYS[1], 'hold', string.format('%.6f', hold))
local ttl = redis.call('PTTL', KEYS[1])
redis.call('PEXPIRE', KEYS[1], math.max(ttl, math.ceil((hold - now) * 1000) + 60000))
return string.format('%.6f', hold - now)
"""

# Right before sending: KEYS[2] holds the token's recent send times (sorted set, Redis TIME).
# ARGV[1] sends at most within ARGV[2] seconds; ARGV[3] names this send. Returns {'hold', s}: a
# Retry-After hold is on (reserve again); {'wait', s}: the last sends are too close, because some
# caller woke late from its sleep (wait, then confirm again); {'go', 0}: recorded as sent now.
_CONFIRM = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local hold = tonumber(redis.call('HGET', KEYS[1], 'hold')) or 0
if hold > now then
  return {'hold', string.format('%.6f', hold - now)}
end
local span = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - span)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[1]) then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  return {'wait', string.format('%.6f', tonumber(oldest[2]) + span - now)}
end
redis.call('ZADD', KEYS[2], now, ARGV[3])
redis.call('PEXPIRE', KEYS[2], math.ceil(span * 1000) + 60000)
return {'go', '0'}
"""

# How long a call keeps trying to reach Redis before it fails (the task's retries then follow).
UNREACHABLE_BUDGET = 15.0
_SOCKET_TIMEOUT = 5.0


class SharedRateLimiter:
    """The :class:`~usdirect.hooks.ratelimit.RateLimiter` interface, scheduled in Redis."""

    def __init__(self, client: Any, key: str, rate: float, *, conn_id: str, safety: float) -> None:
        self._client = client
        self._keys = [key, f"{key}:sent"]  # ``key`` carries a {hash tag}: one slot on Redis Cluster
        self._conn_id = conn_id
        self._safety = safety
        self._reserve = client.register_script(_RESERVE)
        self._hold = client.register_script(_HOLD)
        self._confirm = client.register_script(_CONFIRM)
        self._interval = 0.0
        self._burst = 1
        self._span = 0.0
        self.rate = 0.0
        self.set_rate(rate)

    def set_rate(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate limit must be a positive number of requests per second")
        self.rate = rate
        self._interval = 1.0 / (rate * self._safety)
        # The guard at send time: at most `burst` sends within `span`, halfway between the exact
        # rate and the paced one, so even pacing never trips it and a late waker cannot bunch.
        self._burst = max(1, math.floor(rate))
        self._span = self._burst / rate * (1.0 + 1.0 / self._safety) / 2.0

    def acquire(self) -> float:
        """Block until this caller may send (its slot came and no hold is on); returns seconds waited."""
        started = time.monotonic()
        while True:
            wait = float(self._run(self._reserve, f"{self._interval:.6f}"))
            if wait > 0:
                time.sleep(wait)
            while True:
                verdict, seconds = self._run(
                    self._confirm, str(self._burst), f"{self._span:.6f}", uuid.uuid4().hex
                )
                if _text(verdict) == "go":
                    return time.monotonic() - started
                if _text(verdict) == "hold":
                    break  # a Retry-After arrived while we slept: queue again after the hold
                time.sleep(float(seconds))

    def defer(self, seconds: float) -> None:
        """Hold every process using this token back for ``seconds`` (the server said Retry-After)."""
        self._run(self._hold, f"{max(0.0, seconds):.6f}")

    def _run(self, script: Any, *args: str) -> Any:
        """One script call; Redis unreachable is retried briefly, then a clear transient error."""
        import redis

        started = time.monotonic()
        attempt = 0
        while True:
            try:
                return script(keys=self._keys, args=list(args))
            except redis.AuthenticationError:
                raise ConnectionConfigError(
                    f"Redis refused the credentials of connection '{self._conn_id}' (the shared rate "
                    f"limit, settings rate_limit.redis_conn_id): correct its login/password"
                ) from None
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                attempt += 1
                delay = min(2.0, 0.1 * 2**attempt) * random.uniform(0.5, 1.0)
                elapsed = time.monotonic() - started
                if elapsed + delay > UNREACHABLE_BUDGET:
                    raise RateLimitBackendError(
                        f"the shared rate limit's Redis (connection '{self._conn_id}') did not answer "
                        f"for {elapsed:.0f} s ({describe(exc)}): start Redis or correct host, port and "
                        f"db on connection '{self._conn_id}'; the task's retries follow. To pace per "
                        f"worker process instead, set rate_limit.backend: process in "
                        f"{_settings_file()} (workers sharing a token may then exceed its limit)"
                    ) from None
                if attempt == 1:
                    log.warning(
                        "shared rate limit: Redis connection '%s' did not answer (%s); retrying for up "
                        "to %.0f s",
                        self._conn_id,
                        describe(exc),
                        UNREACHABLE_BUDGET,
                    )
                time.sleep(delay)
            except redis.ResponseError as exc:
                raise ConnectionConfigError(
                    f"Redis (connection '{self._conn_id}') refused the rate-limit script "
                    f"({describe(exc)}): point the connection at a writable primary and allow its "
                    f"user EVAL/EVALSHA, HMGET, HGET, HSET, PTTL, PEXPIRE on keys usdirect:ratelimit:*"
                ) from None


def _settings_file() -> str:
    """The settings file in use, for messages that say which line to change."""
    from usdirect.settings.config import default_config_path

    return str(default_config_path())


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def redis_client(conn_id: str) -> Any:
    """The process's Redis client for Airflow connection ``conn_id`` (through RedisHook)."""
    with _clients_lock:
        client = _clients.get(conn_id)
        if client is not None:
            return client
        try:
            from airflow.providers.redis.hooks.redis import RedisHook
        except ImportError:
            raise ConnectionConfigError(
                "settings rate_limit.backend is redis but apache-airflow-providers-redis is not "
                "installed: pip install -c constraints.txt apache-airflow-providers-redis (pinned in "
                "requirements.txt), or set rate_limit.backend: process"
            ) from None
        from airflow.sdk.exceptions import AirflowNotFoundException

        hook = RedisHook(redis_conn_id=conn_id)
        try:
            register_secret(hook.get_connection(conn_id).password)
            client = hook.get_conn()
        except AirflowNotFoundException:
            raise ConnectionConfigError(
                f"the Redis connection '{conn_id}' named by settings rate_limit.redis_conn_id does not "
                f'exist: create it (type redis, host, port, extra {{"db": N}}), or set '
                f"rate_limit.backend: process in {_settings_file()}"
            ) from None
        except ValueError as exc:  # RedisHook's own checks (cluster with a db, bad startup_nodes)
            raise ConnectionConfigError(f"Redis connection '{conn_id}': {describe(exc)}") from None
        # RedisHook sets no socket timeouts: a silent network would hang every API call forever.
        pool = getattr(client, "connection_pool", None)
        if pool is not None:
            for name in ("socket_timeout", "socket_connect_timeout"):
                if pool.connection_kwargs.get(name) is None:
                    pool.connection_kwargs[name] = _SOCKET_TIMEOUT
        _clients[conn_id] = client
        return client


def reset_clients() -> None:
    """Forget the cached clients (after a fork, or when a test changes the connection)."""
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        with contextlib.suppress(Exception):  # closing a client that is already gone
            client.close()


def shared_limiter(conn_id: str, key: str, rate: float, safety: float) -> SharedRateLimiter:
    """A limiter whose schedule lives in Redis under ``key`` (a hash of the token, never the token)."""
    return SharedRateLimiter(redis_client(conn_id), key, rate, conn_id=conn_id, safety=safety)
