"""A loopback stand-in for the Confluent Schema Registry REST API: subjects, versions, ids.

Neither Karapace (not on PyPI) nor Apicurio Registry (its Maven build needs Confluent's own
repository) can be run here, so the tests talk to this: the same endpoints, status codes and
content type as the Confluent API, kept in memory, with basic-auth checked when it is given.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class RegistryStandIn:
    def __init__(self, username: str | None = None, password: str | None = None) -> None:
        self.schemas: list[str] = []                 # id - 1 → schema text
        self.subjects: dict[str, list[int]] = {}     # subject → schema ids, one per version
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Authorization)
        self._auth = (None if username is None else
                      "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode())
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest's output clean
                pass

            def _answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _allowed(self) -> bool:
                header = self.headers.get("Authorization")
                registry.requests.append((self.command, self.path, header))
                if registry._auth is not None and header != registry._auth:
                    self._answer(401, {"error_code": 401, "message": "Unauthorized"})
                    return False
                return True

            def do_POST(self):  # noqa: N802 - http.server's naming
                if not self._allowed():
                    return
                parts = self.path.strip("/").split("/")
                if len(parts) != 3 or parts[0] != "subjects" or parts[2] != "versions":
                    return self._answer(404, {"error_code": 404, "message": "HTTP 404 Not Found"})
                length = int(self.headers.get("Content-Length", 0))
                try:
                    schema = json.loads(self.rfile.read(length))["schema"]
                    json.loads(schema)
                except (ValueError, KeyError, TypeError):
                    return self._answer(422, {"error_code": 42201, "message": "Invalid schema"})
                canonical = json.dumps(json.loads(schema), sort_keys=True)
                known = [json.dumps(json.loads(s), sort_keys=True) for s in registry.schemas]
                if canonical in known:
                    schema_id = known.index(canonical) + 1
                else:
                    registry.schemas.append(schema)
                    schema_id = len(registry.schemas)
                versions = registry.subjects.setdefault(parts[1], [])
                if schema_id not in versions:
                    versions.append(schema_id)
                self._answer(200, {"id": schema_id})

            def do_GET(self):  # noqa: N802
                if not self._allowed():
                    return
                parts = self.path.strip("/").split("/")
                if len(parts) == 3 and parts[:2] == ["schemas", "ids"] and parts[2].isdigit():
                    index = int(parts[2]) - 1
                    if 0 <= index < len(registry.schemas):
                        return self._answer(200, {"schema": registry.schemas[index]})
                    return self._answer(404, {"error_code": 40403, "message": "Schema not found"})
                if parts == ["subjects"]:
                    return self._answer(200, sorted(registry.subjects))  # type: ignore[arg-type]
                self._answer(404, {"error_code": 404, "message": "HTTP 404 Not Found"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> RegistryStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
