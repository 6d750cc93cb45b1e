"""What both hooks share: reading the Airflow connection, registering its secrets, one client."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Self

from airflow.sdk import BaseHook

from usdirect.hooks.edited_connection import shown_conn_id
from usdirect.hooks.errors import (
    AuthenticationError,
    ConnectionConfigError,
    RetryExhaustedError,
    UsDirectError,
    describe,
)
from usdirect.hooks.http import ApiClient, build_http_client
from usdirect.hooks.http_settings import HttpSettings, extra_value
from usdirect.hooks.ratelimit import limiter_for
from usdirect.hooks.secrets import register_secret, scrub_http_logs


class ApiHook(BaseHook):
    """Base of the two HTTP hooks; subclasses set the connection attributes and auth header."""

    conn_name_attr: str
    conn_type: str
    service: str
    default_rate: float
    token_label: str = "API Token"  # noqa: S105 (a label, not a secret)
    feed_label: str | None = None

    def __init__(self, conn_id: str) -> None:
        super().__init__()
        scrub_http_logs()  # httpx logs request URLs, and a feed URL is a credential
        setattr(self, self.conn_name_attr, conn_id)
        self._lock = threading.Lock()
        self._settings: HttpSettings | None = None
        self._extras: dict[str, Any] = {}
        self._host = ""
        self._token = ""
        self._client: ApiClient | None = None

    @property
    def conn_id(self) -> str:
        return getattr(self, self.conn_name_attr)

    @property
    def where(self) -> str:
        """How messages name the connection to fix."""
        return f"the {self.conn_type} connection '{shown_conn_id(self.conn_id)}'"

    def _load(self) -> None:
        """Read the connection once, register its secrets, validate what every call needs."""
        if self._settings is not None:
            return
        conn = self.get_connection(self.conn_id)
        register_secret(conn.password)
        extras = dict(conn.extra_dejson or {})
        self._register_extra_secrets(extras)
        self._extras = extras
        if not conn.host:
            raise ConnectionConfigError(
                f"API Base URL (host) is empty on {self.where}: enter the {self.service} API base URL"
            )
        host = conn.host.rstrip("/")
        if "://" not in host:
            host = f"https://{host}" + (f":{conn.port}" if conn.port else "")
        self._host = host
        self._token = conn.password or ""
        self._settings = HttpSettings.from_extras(
            self._extras, conn_type=self.conn_type, default_rate=self.default_rate, where=self.where
        )

    def _register_extra_secrets(self, extras: dict[str, Any]) -> None:
        """Subclasses register the secrets they keep in extras."""

    @property
    def base_url(self) -> str:
        """The API base URL the calls go to (a host without scheme is read as ``https://``)."""
        self._load()
        return self._host

    def conn_field(self, name: str) -> Any:
        self._load()
        return extra_value(self._extras, self.conn_type, name)

    @property
    def settings(self) -> HttpSettings:
        self._load()
        assert self._settings is not None
        return self._settings

    def _auth_headers(self, token: str) -> dict[str, str]:
        raise NotImplementedError

    def require_token(self) -> str:
        self._load()
        if not self._token:
            raise ConnectionConfigError(
                f"{self.token_label} is empty on {self.where}: enter the {self.token_label} in the "
                f"password field"
            )
        return self._token

    @property
    def client(self) -> ApiClient:
        """The paced, retrying client (created once per hook, shared by its threads).

        It carries the API token when there is one; calls that need it go through :meth:`api`,
        which says so when it is missing. Calls authorised otherwise (the Reseller Token) do not.
        """
        with self._lock:
            if self._client is None:
                settings = self.settings
                token = self._token
                http = build_http_client(
                    settings,
                    base_url=self._host,
                    headers=self._auth_headers(token) if token else None,
                    where=self.where,
                )
                self._client = ApiClient(
                    http,
                    settings,
                    service=self.service,
                    where=self.where,
                    limiter=limiter_for(self.conn_type, token, settings.rate_limit) if token else None,
                )
            return self._client

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON body of a call authorised by the connection's API token (see ``ApiClient.call``)."""
        self.require_token()
        return self.client.call(method, path, credential=self.token_label, **kwargs).body

    def get_conn(self) -> Any:
        """The underlying ``httpx.Client`` (base URL and auth set; no retries or pacing)."""
        return self.client.http

    def close(self) -> None:
        """Close pooled connections; the hook opens new ones if used again."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check(self, label: str, needed_by: str, run: Callable[[], str]) -> tuple[bool, str]:
        """One Test Connection line: ``label OK (...)``, or what failed and what to do about it."""
        try:
            detail = run()
        except AuthenticationError as exc:
            if exc.status == 403:
                problem = f"{label} has no access (403): ask {self.service} to enable it for your account"
            else:
                problem = f"{label} rejected ({exc.status}): re-enter the {label} on {self.where}"
            return False, f"{problem}; {needed_by}"
        except ConnectionConfigError as exc:
            return False, f"{exc}; {needed_by}"
        except RetryExhaustedError as exc:
            place = f"the {label}" if label == self.feed_label else f"the API Base URL ({self._host})"
            return False, (
                f"{label} could not be checked: no good answer ({exc.last}); check {place} on "
                f"{self.where} and the network, then test again"
            )
        except UsDirectError as exc:
            return False, f"{label} could not be checked: {exc}"
        except Exception as exc:  # Test Connection must answer whatever happened
            return False, f"{label} could not be checked ({describe(exc)}); {needed_by}"
        return True, f"{label} OK ({detail})"

    @staticmethod
    def _summary(results: list[tuple[bool, str]]) -> tuple[bool, str]:
        ok = all(passed for passed, _ in results)
        return ok, "\n".join(line for _, line in results)
