"""A small client for the Confluent Schema Registry REST API (also served by Karapace, Apicurio).

Two calls are enough for the findings topic: register the finding schema under the topic's
subject (TopicNameStrategy, ``<topic>-value``) to learn its id, and fetch a writer's schema by id.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from streams.errors import UserError

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
TIMEOUT_SECONDS = 10.0


class UnknownSchema(LookupError):
    """The registry has no schema of that id: the message cannot be read, the registry is fine."""


class SchemaRegistry:
    """One registry, by base URL; the credentials (Confluent Cloud API key) go in a header."""

    def __init__(self, url: str, username: str | None = None, password: str | None = None,
                 timeout: float = TIMEOUT_SECONDS) -> None:
        self.url = url.rstrip("/")
        self.shown = without_credentials(self.url)
        self._auth = None
        if username:
            token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            self._auth = f"Basic {token}"
        self._timeout = timeout
        self._by_id: dict[int, str] = {}

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        """The id of ``schema`` under ``subject``, registering it if it is new there."""
        body = {"schema": json.dumps(schema, separators=(",", ":"))}
        answer = self._call("POST", f"/subjects/{urllib.parse.quote(subject, safe='')}/versions",
                            body)
        schema_id = int(answer["id"])
        self._by_id[schema_id] = body["schema"]
        return schema_id

    def schema(self, schema_id: int) -> dict[str, Any]:
        """The schema a writer registered under ``schema_id``."""
        if schema_id not in self._by_id:
            try:
                answer = self._call("GET", f"/schemas/ids/{schema_id}", missing_ok=True)
            except LookupError:
                raise UnknownSchema(f"the registry has no schema id {schema_id}") from None
            self._by_id[schema_id] = answer["schema"]
        return json.loads(self._by_id[schema_id])

    def _call(self, method: str, path: str, body: Any = None, missing_ok: bool = False) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": CONTENT_TYPE,
                                                  "Accept": CONTENT_TYPE})
        if self._auth:
            request.add_header("Authorization", self._auth)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if missing_ok and exc.code == 404:
                raise LookupError(path) from None
            detail = _message(exc)
            raise UserError(f"schema registry {self.shown}: {method} {path} answered {exc.code}"
                            f"{': ' + detail if detail else ''}; check "
                            "kafka.schema_registry_url and its credentials") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise UserError(f"schema registry {self.shown}: cannot reach it ({reason}); check "
                            "kafka.schema_registry_url") from None


def without_credentials(url: str) -> str:
    """The URL as errors may show it: a ``user:password@`` written into it is left out."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts._replace(netloc=host + (f":{port}" if port else "")).geturl()


def _message(error: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(error.read()).get("message", ""))[:200]
    except Exception:  # an HTML error page or nothing at all: the status says enough
        return ""
