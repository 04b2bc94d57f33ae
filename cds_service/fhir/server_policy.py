"""Which ``fhirServer`` URLs the service may contact (server-side request forgery defence).

Two checks, both before the bearer token leaves the process:

1. The URL. It must fall under a base URL allowed for the caller: the ``fhirServers`` of the
   trusted client (per tenant if given) or, in development mode, ``CDS_FHIR_SERVERS`` (default:
   loopback only). Scheme, host and port must match exactly (``*`` as port: any port) and the
   path must lie under the entry's path after normalisation. An ``http`` URL can only match an
   entry that names ``http``. Non-canonical IP forms (``2130706433``, ``0x7f.1``), user info,
   ``..`` segments and fragments are refused outright.
2. The addresses, after DNS resolution, on every new connection (``address_check``): link-local,
   cloud metadata, unspecified, multicast and reserved addresses are always refused; private and
   loopback addresses only when the allowed entry names that address literally (or
   ``localhost``), or when they lie in ``CDS_FHIR_PRIVATE_NETWORKS``. The connection goes to
   the address that was checked, so DNS cannot answer differently at connect time.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Development default for ``CDS_FHIR_SERVERS``: the loopback interface, any port.
LOOPBACK_SERVERS = (
    "http://localhost:*",
    "http://127.0.0.1:*",
    "http://[::1]:*",
    "https://localhost:*",
    "https://127.0.0.1:*",
    "https://[::1]:*",
)
_METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)
_DEFAULT_PORTS = {"http": 80, "https": 443}
ANY_PORT = -1


class PolicyRefused(ValueError):
    """The URL or address is not allowed; the message names the policy, never a body."""


@dataclass(frozen=True)
class AllowedServer:
    scheme: str
    host: str
    port: int  # ANY_PORT for "*"
    path: str  # without trailing slash

    @property
    def literal_address(self) -> IpAddress | None:
        if self.host == "localhost":
            return ipaddress.ip_address("127.0.0.1")
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None

    def covers(self, other: AllowedServer) -> bool:
        return (
            self.scheme == other.scheme
            and self.host == other.host
            and self.port in (ANY_PORT, other.port)
            and (other.path == self.path or other.path.startswith(self.path + "/"))
        )


def parse_server(url: str, *, entry: bool = False) -> AllowedServer:
    """Split and normalise a base URL; raise PolicyRefused for anything unusual."""
    if not isinstance(url, str) or not url or any(ord(c) < 0x21 for c in url):
        raise PolicyRefused("not a URL")
    wildcard = entry and urlsplit(url).netloc.endswith(":*")
    parts = urlsplit(url.replace(":*", "", 1) if wildcard else url)
    if parts.scheme not in _DEFAULT_PORTS:
        raise PolicyRefused("only http and https URLs are allowed")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise PolicyRefused("user info in the URL is not allowed")
    if parts.fragment or (parts.query and not entry):
        raise PolicyRefused("a base URL has no query or fragment")
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise PolicyRefused("the URL has no host")
    _refuse_odd_ip_forms(host)
    try:
        port = ANY_PORT if wildcard else (parts.port or _DEFAULT_PORTS[parts.scheme])
    except ValueError as exc:
        raise PolicyRefused("the URL has an invalid port") from exc
    if unsafe_path(parts.path):
        raise PolicyRefused("dot segments or encoded slashes in the path are not allowed")
    return AllowedServer(parts.scheme, host, port, parts.path.rstrip("/"))


def unsafe_path(path: str) -> bool:
    """Dot segments, encoded dots or slashes, backslashes: a path that a server may resolve
    to somewhere else than its text says."""
    lowered = path.lower()
    return (
        "%2e" in lowered
        or "%2f" in lowered
        or "%5c" in lowered
        or "\\" in path
        or any(s in {".", ".."} for s in path.split("/"))
    )


def _refuse_odd_ip_forms(host: str) -> None:
    """``2130706433``, ``0x7f.1``, ``0177.0.0.1``: IPv4 written so that a string match misses
    it. Only the canonical dotted quad is accepted as an IPv4 literal."""
    if host.startswith("[") or ":" in host:
        return
    if not all(c in "0123456789abcdefx." for c in host):
        return
    try:
        socket.inet_aton(host)
    except OSError:
        return
    try:
        canonical = str(ipaddress.IPv4Address(host)) == host
    except ValueError:
        canonical = False
    if not canonical:
        raise PolicyRefused("IP addresses must be written as four decimal numbers")


def parse_entries(urls: Iterable[str]) -> tuple[AllowedServer, ...]:
    return tuple(parse_server(url, entry=True) for url in urls)


def always_refused(address: IpAddress) -> str | None:
    """Why ``address`` may never be contacted, or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return always_refused(address.ipv4_mapped)
    if address in _METADATA:
        return "a cloud metadata address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_unspecified or address.is_multicast or address.is_reserved:
        return "an unspecified, multicast or reserved address"
    if isinstance(address, ipaddress.IPv4Address) and address == ipaddress.IPv4Address(
        "255.255.255.255"
    ):
        return "the broadcast address"
    return None


def is_internal(address: IpAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return is_internal(address.ipv4_mapped)
    shared = ipaddress.ip_network("100.64.0.0/10")
    return (
        address.is_private
        or address.is_loopback
        or (isinstance(address, ipaddress.IPv4Address) and address in shared)
    )


@dataclass(frozen=True)
class FhirServerPolicy:
    """``development``: CDS_AUTH off, where ``dev_servers`` apply to every caller."""

    dev_servers: tuple[AllowedServer, ...]
    private_networks: tuple[IpNetwork, ...] = ()
    development: bool = False

    def allowed_entry(
        self, url: str, client_servers: Sequence[AllowedServer] | None
    ) -> AllowedServer:
        """The allowlist entry that covers ``url``, or PolicyRefused naming the policy."""
        target = parse_server(url)
        entries = self.dev_servers if self.development else (client_servers or ())
        for candidate in entries:
            if candidate.covers(target):
                return candidate
        source = "CDS_FHIR_SERVERS" if self.development else "the client's fhirServers"
        raise PolicyRefused(f"fhirServer is not in {source} (fhirServer policy)")

    def address_check(self, entry: AllowedServer) -> Any:
        """For the transport: resolve, drop nothing silently, refuse what is not allowed."""
        literal = entry.literal_address
        private_networks = self.private_networks

        def check(host: str, port: int) -> list[tuple[Any, ...]]:
            try:
                found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except socket.gaierror as exc:
                raise PolicyRefused("the fhirServer host name does not resolve") from exc
            for *_, sockaddr in found:
                address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
                reason = always_refused(address)
                if reason is None and is_internal(address):
                    listed = literal is not None and (
                        address == literal or (address.is_loopback and literal.is_loopback)
                    )
                    if not listed and not any(address in net for net in private_networks):
                        reason = "a private address that is not listed"
                if reason is not None:
                    raise PolicyRefused(f"fhirServer resolves to {reason} (fhirServer policy)")
            return list(found)

        return check


def parse_networks(texts: Iterable[str]) -> tuple[IpNetwork, ...]:
    return tuple(ipaddress.ip_network(text, strict=False) for text in texts)
