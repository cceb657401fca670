"""The HTTP API, Neutron-shaped, as a pure function from a request to a response.

No sockets here: server.py parses HTTP and calls `Api.handle`; tests can call it directly.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from .config import Config
from .db import FILTERS, Database, now, parse_bool

DEFAULT_PROJECT = "netapi"
MAX_SNAPSHOT_SECONDS = 86400.0
PAGINATION = {"limit", "marker", "sort_key", "sort_dir", "page_reverse", "fields"}

EXTENSIONS = [
    ("network", "Network", "The network resource."),
    ("external-net", "Neutron external network", "Adds external network attribute to network resource."),
    ("availability_zone", "Availability Zone", "The availability zone extension."),
    ("network_availability_zone", "Network Availability Zone", "Availability zone support for network."),
    ("port-security", "Port Security", "Provides port security."),
    ("standard-attr-description", "standard-attr-description", "Extension to add descriptions to standard attributes."),
    ("standard-attr-timestamp", "Resource timestamps", "Adds created_at and updated_at fields to all Neutron resources."),
]
# 2.0 adds MTUs and revision numbers to networks, and says so like Neutron does.
EXTENSIONS_2 = [
    ("net-mtu", "Network MTU", "Provides MTU attribute for a network resource."),
    ("standard-attr-revisions", "Resource revision numbers",
     "This extension will display the revision number of neutron resources."),
]


class Headers(Protocol):
    """What the API reads of a request's headers. Lookups must be case-insensitive, as
    http.client.HTTPMessage's are (tests pass a dict with the names as sent)."""

    def get(self, name: str, /) -> str | None: ...


@dataclasses.dataclass
class Request:
    method: str
    target: str  # path and query string, as on the request line
    headers: Headers
    body: bytes = b""

    @property
    def path(self) -> str:
        path = urlsplit(self.target).path
        return path.rstrip("/") or "/"

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query, keep_blank_values=True)


@dataclasses.dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


class HTTPError(Exception):
    """An error answered in Neutron's {"NeutronError": {...}} shape."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


def json_response(status: int, document: object) -> Response:
    return Response(status, json.dumps(document).encode())


def error_response(status: int, kind: str, message: str) -> Response:
    return json_response(status, {"NeutronError": {"type": kind, "message": message, "detail": ""}})


class Api:
    """Routes requests to handlers; every handler returns a Response or raises HTTPError."""

    def __init__(self, config: Config, db: Database, draining: Callable[[], bool] = lambda: False,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self.db = db
        self.draining = draining
        self.sleep = sleep
        self.routes: list[tuple[str, re.Pattern[str], Callable[..., Response]]] = [
            ("GET", re.compile(r"/"), self.versions),
            ("GET", re.compile(r"/healthcheck"), self.healthcheck),
            ("GET", re.compile(r"/v2\.0"), self.resources),
            ("GET", re.compile(r"/v2\.0/extensions"), self.list_extensions),
            ("GET", re.compile(r"/v2\.0/extensions/([^/]+)"), self.show_extension),
            ("GET", re.compile(r"/v2\.0/networks"), self.list_networks),
            ("POST", re.compile(r"/v2\.0/networks"), self.create_network),
            ("GET", re.compile(r"/v2\.0/networks/([^/]+)"), self.show_network),
            ("PUT", re.compile(r"/v2\.0/networks/([^/]+)"), self.update_network),
            ("DELETE", re.compile(r"/v2\.0/networks/([^/]+)"), self.delete_network),
            ("POST", re.compile(r"/v2\.0/snapshots"), self.snapshot),
        ]

    def handle(self, request: Request) -> Response:
        path = request.path
        if path.endswith(".json"):  # old Neutron clients ask for /v2.0/networks.json
            path = path[: -len(".json")]
        allowed = []
        for method, pattern, handler in self.routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            allowed.append(method)
            if method == request.method or (method == "GET" and request.method == "HEAD"):
                try:
                    return handler(request, *match.groups())
                except HTTPError as exc:
                    return error_response(exc.status, exc.kind, exc.message)
        if allowed:
            response = error_response(405, "HTTPMethodNotAllowed",
                                      f"The method {request.method} is not allowed for this resource.")
            response.headers["Allow"] = ", ".join(sorted(set(allowed)))
            return response
        return error_response(404, "HTTPNotFound", "The resource could not be found.")

    # documents

    def _base_url(self, request: Request) -> str:
        host = request.headers.get("Host") or f"{self.config.bind}:{self.config.port}"
        return f"http://{host}"

    def versions(self, request: Request) -> Response:
        return json_response(200, {"versions": [{
            "id": "v2.0", "status": "CURRENT",
            "links": [{"href": f"{self._base_url(request)}/v2.0/", "rel": "self"}],
        }]})

    def resources(self, request: Request) -> Response:
        base = self._base_url(request)
        return json_response(200, {"resources": [
            {"name": name, "collection": collection, "links": [{"href": f"{base}/v2.0/{collection}", "rel": "self"}]}
            for name, collection in (("network", "networks"), ("snapshot", "snapshots"))
        ]})

    def healthcheck(self, request: Request) -> Response:
        if self.draining():
            return Response(503, b"DRAINING", "text/plain")
        if self.config.broken_health:
            return Response(500, b"BROKEN", "text/plain")
        return Response(200, b"OK", "text/plain")

    def _extensions(self) -> list[dict]:
        known = EXTENSIONS + (EXTENSIONS_2 if self.config.major >= 2 else [])
        return [{"alias": alias, "name": name, "description": description, "links": [],
                 "updated": "2024-01-01T10:00:00-00:00"} for alias, name, description in known]

    def list_extensions(self, request: Request) -> Response:
        return json_response(200, {"extensions": self._extensions()})

    def show_extension(self, request: Request, alias: str) -> Response:
        for extension in self._extensions():
            if extension["alias"] == alias:
                return json_response(200, {"extension": extension})
        raise HTTPError(404, "ExtensionNotFound", f"Extension with alias {alias} does not exist.")

    # networks

    def _project(self, request: Request) -> str:
        return request.headers.get("X-Project-Id") or request.headers.get("X-Tenant-Id") or DEFAULT_PROJECT

    def _network_view(self, record: dict, fields: list[str] | None = None) -> dict:
        view = {
            "id": record["id"], "name": record["name"], "tenant_id": record["project_id"],
            "project_id": record["project_id"], "admin_state_up": record["admin_state_up"],
            "status": record["status"], "subnets": [], "shared": record["shared"],
            "availability_zone_hints": [], "availability_zones": ["nova"],
            "ipv4_address_scope": None, "ipv6_address_scope": None, "router:external": False,
            "description": record["description"], "port_security_enabled": True, "qos_policy_id": None,
            "tags": [], "created_at": record["created_at"], "updated_at": record["updated_at"],
        }
        if self.config.major >= 2:
            view["mtu"] = record["mtu"]
            view["revision_number"] = record["revision_number"]
        if fields:
            view = {k: v for k, v in view.items() if k in fields}
        return view

    def _body(self, request: Request, key: str) -> dict:
        try:
            document = json.loads(request.body or b"{}")
        except ValueError:
            raise HTTPError(400, "HTTPBadRequest", "Malformed request body: the body is not JSON.") from None
        if not isinstance(document, dict) or not isinstance(document.get(key, {}), dict):
            raise HTTPError(400, "HTTPBadRequest", f"Malformed request body: expected an object under {key!r}.")
        return document.get(key, {})

    def _network_attributes(self, body: dict) -> dict:
        checks: dict[str, type] = {"name": str, "description": str, "admin_state_up": bool, "shared": bool}
        if self.config.major >= 2:
            checks["mtu"] = int  # 1.0 knows no MTU and ignores it, like other unknown attributes
        attrs: dict[str, Any] = {}
        for key, kind in checks.items():
            if key not in body:
                continue
            value = body[key]
            if kind is bool and isinstance(value, str):
                try:
                    value = parse_bool(value)
                except ValueError:
                    pass
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise HTTPError(400, "HTTPBadRequest",
                                f"Invalid input for {key}. Reason: '{value}' is not a valid {kind.__name__}.")
            attrs[key] = value
        if "mtu" in attrs and not 68 <= attrs["mtu"] <= 9216:
            raise HTTPError(400, "HTTPBadRequest", f"Invalid input for mtu. Reason: {attrs['mtu']} is out of range.")
        return attrs

    def _find(self, network_id: str) -> dict:
        record = self.db.get_network(network_id)
        if record is None:
            raise HTTPError(404, "NetworkNotFound", f"Network {network_id} could not be found.")
        return record

    def list_networks(self, request: Request) -> Response:
        query = request.query
        filters = {k: v for k, v in query.items() if k in FILTERS}
        try:
            records = self.db.list_networks(filters)
        except ValueError as exc:
            raise HTTPError(400, "HTTPBadRequest", f"Invalid filter: {exc}") from None
        if "marker" in query:
            ids = [r["id"] for r in records]
            marker = query["marker"][-1]
            records = records[ids.index(marker) + 1:] if marker in ids else []
        if "limit" in query:
            try:
                records = records[: max(int(query["limit"][-1]), 0) or None]
            except ValueError:
                raise HTTPError(400, "HTTPBadRequest", "Invalid limit: not an integer.") from None
        fields = query.get("fields")
        return json_response(200, {"networks": [self._network_view(r, fields) for r in records]})

    def create_network(self, request: Request) -> Response:
        attrs = self._network_attributes(self._body(request, "network"))
        record = self.db.create_network(self._project(request), **attrs)
        return json_response(201, {"network": self._network_view(record)})

    def show_network(self, request: Request, network_id: str) -> Response:
        return json_response(200, {"network": self._network_view(self._find(network_id), request.query.get("fields"))})

    def update_network(self, request: Request, network_id: str) -> Response:
        attrs = self._network_attributes(self._body(request, "network"))
        record = self.db.update_network(network_id, attrs)
        if record is None:
            raise HTTPError(404, "NetworkNotFound", f"Network {network_id} could not be found.")
        return json_response(200, {"network": self._network_view(record)})

    def delete_network(self, request: Request, network_id: str) -> Response:
        if not self.db.delete_network(network_id):
            raise HTTPError(404, "NetworkNotFound", f"Network {network_id} could not be found.")
        return Response(204, b"", "")

    # the slow operation

    def snapshot(self, request: Request) -> Response:
        """Take N seconds, then answer: a stand-in for a VM snapshot, to prove draining."""
        body = self._body(request, "snapshot")
        raw = body.get("seconds", request.query.get("seconds", ["0"])[-1])
        try:
            seconds = float(raw)
            if not 0 <= seconds <= MAX_SNAPSHOT_SECONDS:
                raise ValueError
        except (TypeError, ValueError):
            raise HTTPError(400, "HTTPBadRequest", f"Invalid input for seconds. "
                            f"Reason: {raw!r} is not between 0 and {MAX_SNAPSHOT_SECONDS:.0f}.") from None
        started = now()
        self.sleep(seconds)
        return json_response(201, {"snapshot": {
            "id": str(uuid.uuid4()), "seconds": seconds, "status": "COMPLETED",
            "created_at": started, "completed_at": now(), "netapi_version": self.config.version,
        }})
