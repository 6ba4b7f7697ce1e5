"""The one fetcher for every http(s) URL a run touches: refuses internal addresses, pins what it checked.

Rules (docs/fetching-and-search.md):

- Only ``http`` and ``https``; no credentials in the URL; names such as
  ``metadata.google.internal`` are refused by name.
- The host is resolved with ``socket.getaddrinfo`` (so ``2130706433``, ``0177.0.0.1`` and
  ``0x7f.1`` resolve to what the OS would connect to) and **every** resolved address is checked:
  loopback, private, link-local (cloud metadata), multicast, reserved, unspecified, shared
  (100.64/10) and other non-global ranges are refused, IPv4 and IPv6, including IPv4-mapped,
  6to4, NAT64 and Teredo forms of a refused IPv4 address.
- The connection goes to the address that was checked: a network backend under httpx resolves
  once, checks, and connects to that IP (TLS still verifies the certificate for the host name).
- Redirects are followed by hand, at most ``max_redirects``, and every hop is checked again
  (httpx's own redirect machinery is not used: a ``Location`` of ``data:``/``mailto:``/... is
  refused here with a reason, not raised from inside httpx).
- The body is read raw and decoded here under the cap ``max_bytes`` (``deepsci.http_body``: one
  gzip/deflate layer at most, a declared larger Content-Length refused before reading).
- ONE wall-clock deadline ``timeout_s`` covers the whole fetch: connect, TLS, headers, 1xx
  replies, every redirect hop and the body (``deepsci.http_deadline``): a server trickling
  headers or ``102 Processing`` cannot hold the thread past it.
- TLS verification is never turned off; proxies from the environment are not used.

Every failure is an ``ApplicationError`` chosen on purpose, never a raw exception:
non-retryable ``BlockedSource`` (the URL or an address may not be read, an invalid URL or host
name) and ``BadDocument`` (too large, refused encoding, malformed HTTP); HTTP statuses go
through ``deepsci.errors.http_error`` (429/5xx retryable with Retry-After, 4xx fail fast);
``FetchTimeout`` (the deadline) and ``FetchError`` (connection refused/reset, DNS failure) are
retryable.

``allow_hosts`` (setting ``fetch_allow_hosts``) lists exceptions for tests and intranets:
``host``, ``host:port``, an IP, ``ip:port``, ``[v6]:port`` or a CIDR (``10.1.0.0/16``). An IP or
CIDR entry allows exactly those addresses. A NAME entry allows what the name resolves to when
that is loopback or private (an intranet host), but never a cloud metadata, link-local,
unspecified, multicast or reserved address: DNS is not trusted to say where a name points.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx
import idna
from temporalio.exceptions import ApplicationError

from deepsci.errors import ErrorType, http_error, non_retryable
from deepsci.http_body import ACCEPT_ENCODING, BadEncoding, BodyTooLarge, read_capped
from deepsci.http_deadline import DeadlineBackend, deadline, deadline_transport, time_left
from deepsci.parsing import sniff_kind

__all__ = ["SafeFetcher", "Fetched", "Resolver", "address_block_reason", "named_host_block_reason",
           "system_resolver", "AllowList"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]

# Names that reach a cloud provider's instance metadata service whatever DNS says.
METADATA_NAMES = frozenset({
    "metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal",
    "metadata.azure.internal", "metadata.platformequinix.com",
})
# Addresses of metadata services, for a precise reason (most are refused by their range anyway).
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "169.254.169.253", "100.100.100.200", "192.0.0.192", "fd00:ec2::254",
))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_SHARED = ipaddress.ip_network("100.64.0.0/10")
REDIRECT_CODES = (301, 302, 303, 307, 308)


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the OS resolver gives for ``host`` (numeric forms included)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _ip(text: str) -> IPAddress:
    return ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id


def _classify(ip: IPAddress) -> tuple[str, bool] | None:
    """(why ``ip`` is refused, whether even an allow-listed host NAME may not reach it), or None."""
    if ip in METADATA_ADDRESSES:
        return f"{ip} is a cloud metadata address", True
    if isinstance(ip, ipaddress.IPv6Address):
        embedded: IPAddress | None = None
        form = ""
        if ip.ipv4_mapped is not None:
            embedded, form = ip.ipv4_mapped, "IPv4-mapped"
        elif ip.sixtofour is not None:
            embedded, form = ip.sixtofour, "6to4"
        elif ip.teredo is not None:
            embedded, form = ip.teredo[1], "Teredo"
        elif ip in _NAT64 or ip in _NAT64_LOCAL:
            embedded, form = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "NAT64"
        if embedded is not None:
            inner = _classify(embedded)
            if inner:
                return f"{ip} is the {form} form of {inner[0]}", inner[1]
    checks = (  # (attribute, what, hard): loopback and private are an intranet's; the rest never is
        ("is_unspecified", "unspecified", True),
        ("is_loopback", "loopback", False),
        ("is_link_local", "link-local (cloud metadata range)", True),
        ("is_multicast", "multicast", True),
        ("is_reserved", "reserved", True),
        ("is_private", "private", False),
    )
    for attr, what, hard in checks:
        if getattr(ip, attr):
            return f"{ip} is a {what} address", hard
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED:
        return f"{ip} is a shared (carrier-grade NAT) address", False
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return f"{ip} is a site-local address", False
    if not ip.is_global:
        return f"{ip} is not a public address", False
    return None


def address_block_reason(ip: IPAddress) -> str | None:
    """Why a run may not connect to ``ip``, or None when it is a public address."""
    found = _classify(ip)
    return found[0] if found else None


def named_host_block_reason(ip: IPAddress) -> str | None:
    """Why a host allow-listed by NAME still may not reach ``ip`` (metadata, link-local...), or None."""
    found = _classify(ip)
    return found[0] if found and found[1] else None


_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


def _ascii_host(host: str) -> str:
    """The host name as the resolver will see it; raises ``BlockedSource`` for a name that cannot exist.

    Checked before any DNS query, so a name no retry can fix fails once with its reason (an
    invalid name used to come back as a retryable resolver error). Non-ASCII names are encoded
    by IDNA 2008 as httpx does; ASCII ``xn--`` labels must be valid Punycode; underscores stay
    allowed (intranet and container names use them).
    """
    try:
        name = host if host.isascii() else idna.encode(host, uts46=True).decode("ascii")
        labels = name.split(".")
        for label in labels:
            if not label or len(label) > 63 or not set(label) <= _HOST_CHARS:
                raise idna.IDNAError(f"label {label[:70]!r} is empty, too long or has a character DNS refuses")
            if label.startswith("xn--"):
                idna.ulabel(label)
        if len(name) > 253:
            raise idna.IDNAError("name longer than 253 characters")
    except (idna.IDNAError, UnicodeError) as err:
        raise non_retryable(ErrorType.BLOCKED_SOURCE, f"invalid host name {host[:100]!r}: {err}") from err
    return name


class AllowList:
    """Exceptions to the address rules: ``host``, ``host:port``, ``ip[:port]``, ``[v6]:port``, CIDR."""

    def __init__(self, entries: Iterable[str]):
        self.names: list[tuple[str, int | None]] = []
        self.nets: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, int | None]] = []
        for raw in entries:
            entry = raw.strip().lower()
            if not entry:
                continue
            host, port = entry, None
            if entry.startswith("["):
                host, _, rest = entry[1:].partition("]")
                port = int(rest[1:]) if rest.startswith(":") else None
            elif entry.count(":") == 1:
                host, p = entry.split(":")
                port = int(p)
            try:
                self.nets.append((ipaddress.ip_network(host, strict=False), port))
            except ValueError:
                self.names.append((host.rstrip("."), port))

    def __bool__(self) -> bool:
        return bool(self.names or self.nets)

    def allows_name(self, host: str, port: int) -> bool:
        host = host.lower().rstrip(".")
        return any(h == host and (p is None or p == port) for h, p in self.names)

    def allows_ip(self, ip: IPAddress, port: int) -> bool:
        return any(ip in net and (p is None or p == port) for net, p in self.nets)


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


class _Guard:
    """Resolves a host once, checks every address, and says which one to connect to."""

    def __init__(self, allow: AllowList, resolver: Resolver):
        self.allow, self.resolver = allow, resolver

    def check_host(self, host: str, port: int) -> str:
        """The checked address to connect to; raises ``BlockedSource`` with the reason."""
        name = host.lower().rstrip(".")
        if name.startswith("[") and name.endswith("]"):
            name = name[1:-1]
        by_name = self.allow.allows_name(name, port)
        if not by_name and (name in METADATA_NAMES or name.endswith(".internal") and "metadata" in name):
            raise non_retryable(ErrorType.BLOCKED_SOURCE, f"{host} is a cloud metadata host name")
        if not by_name and (name == "localhost" or name.endswith(".localhost")):
            raise non_retryable(ErrorType.BLOCKED_SOURCE, f"{host} is a loopback host name")
        try:
            _ip(name)  # an IP literal (zone id allowed) is checked as written, not resolved
            addresses = [name.split("%", 1)[0]]
        except ValueError:
            addresses = []
        if not addresses:
            name = _ascii_host(name)
            try:
                addresses = list(self.resolver(name, port))
            except UnicodeError as err:
                raise non_retryable(ErrorType.BLOCKED_SOURCE, f"invalid host name {host!r}: {err}") from err
            except OSError as err:
                # A name that does not resolve may resolve later (DNS outage): retryable.
                raise ApplicationError(f"cannot resolve {host}: {err}", type=ErrorType.FETCH_ERROR) from err
        if not addresses:
            raise ApplicationError(f"cannot resolve {host}: no addresses", type=ErrorType.FETCH_ERROR)
        checked: list[str] = []
        for addr in addresses:
            try:
                ip = _ip(addr)
            except ValueError as err:
                raise non_retryable(ErrorType.BLOCKED_SOURCE, f"{host} resolved to a non-IP address {addr!r}") from err
            if self.allow.allows_ip(ip, port):
                checked.append(str(ip))
                continue
            reason = named_host_block_reason(ip) if by_name else address_block_reason(ip)
            if reason:
                shown = "" if str(ip) == name else f"{host} resolves to "
                also = " (even for an allow-listed host name)" if by_name else ""
                raise non_retryable(ErrorType.BLOCKED_SOURCE, f"blocked: {shown}{reason}{also} (port {port})")
            checked.append(str(ip))
        return checked[0]


class _PinnedBackend(DeadlineBackend):
    """Network backend: every TCP connection goes to an address the guard just checked, under the deadline."""

    def __init__(self, guard: _Guard):
        super().__init__()
        self.guard = guard

    def open_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        ip = self.guard.check_host(host, port)
        return super().open_tcp(ip, port, timeout=timeout, local_address=local_address,
                                socket_options=socket_options)


@dataclass(frozen=True)
class Fetched:
    url: str  # the final URL, after redirects
    status: int
    content_type: str
    data: bytes
    kind: str  # by magic bytes first (deepsci.parsing.sniff_kind), then the Content-Type

    @property
    def parse_name(self) -> str:
        """The name to parse under: the URL, with a suffix when only the Content-Type tells the kind."""
        base = self.url.split("#", 1)[0].split("?", 1)[0]
        if sniff_kind(self.data, self.url) == "text":
            if self.kind == "html":
                return base + ".html"
            if self.kind == "pdf":
                return base + ".pdf"
        return self.url


def _kind(data: bytes, url: str, content_type: str) -> str:
    kind = sniff_kind(data, url)
    if kind == "text":
        if content_type in ("text/html", "application/xhtml+xml"):
            return "html"
        if content_type == "application/pdf":
            return "pdf"
        if content_type == "text/markdown":
            return "markdown"
    return kind


class SafeFetcher:
    """Fetch http(s) URLs under the rules in the module docstring. Thread-safe; reuse one per process."""

    def __init__(self, *, max_bytes: int, allow_hosts: Iterable[str] = (), timeout_s: float = 30.0,
                 connect_timeout_s: float = 10.0, max_redirects: int = 5,
                 user_agent: str = "DeepScientist/0.1 (+research pipeline)",
                 resolver: Resolver | None = None):
        self.max_bytes, self.timeout_s, self.max_redirects = max_bytes, timeout_s, max_redirects
        self.guard = _Guard(AllowList(allow_hosts), resolver or system_resolver)
        # The transport, not an httpx.Client: no cookies kept between sources, and no redirect
        # handling of httpx's own (it raises on a Location such as "mailto:x" before we see it).
        self.transport = deadline_transport(_PinnedBackend(self.guard), verify=True, retries=0, trust_env=False)
        self.timeout = httpx.Timeout(timeout_s, connect=min(connect_timeout_s, timeout_s))
        self.headers = {"User-Agent": user_agent, "Accept-Encoding": ACCEPT_ENCODING,
                        "Accept": "text/html,application/pdf,text/*;q=0.9,*/*;q=0.5"}

    @classmethod
    def from_settings(cls, settings, resolver: Resolver | None = None) -> SafeFetcher:
        return cls(max_bytes=settings.max_document_bytes, allow_hosts=settings.fetch_allow_hosts,
                   timeout_s=settings.fetch_timeout_s, connect_timeout_s=settings.fetch_connect_timeout_s,
                   max_redirects=settings.fetch_max_redirects, user_agent=settings.fetch_user_agent,
                   resolver=resolver)

    def close(self) -> None:
        self.transport.close()

    def check_url(self, url: str) -> str:
        """Refuse a URL the run may not read (scheme, credentials, address); returns the checked IP."""
        try:
            parts = urlsplit(url)
            port = parts.port or _default_port(parts.scheme.lower())
        except ValueError as err:
            raise non_retryable(ErrorType.BLOCKED_SOURCE, f"invalid URL {url!r}: {err}") from err
        if parts.scheme.lower() not in ("http", "https"):
            raise non_retryable(ErrorType.BLOCKED_SOURCE, f"unsupported URL scheme {parts.scheme!r}: {url[:200]}")
        if parts.username or parts.password:
            raise non_retryable(ErrorType.BLOCKED_SOURCE, f"credentials in the URL are not allowed: {parts.hostname}")
        if not parts.hostname:
            raise non_retryable(ErrorType.BLOCKED_SOURCE, f"URL has no host: {url[:200]}")
        ip = self.guard.check_host(parts.hostname, port)
        try:
            httpx.URL(url)  # what the transport will parse: refuse here what it would refuse there
        except (httpx.InvalidURL, ValueError, UnicodeError) as err:
            raise non_retryable(ErrorType.BLOCKED_SOURCE, f"invalid URL {url[:200]!r}: {err}") from err
        return ip

    def fetch(self, url: str, progress: Callable[[], object] | None = None) -> Fetched:
        """GET ``url`` following at most ``max_redirects`` checked redirects, all within ``timeout_s``."""
        with deadline(self.timeout_s):
            current = url
            for hop in range(self.max_redirects + 1):
                if hop:
                    self._check_time(current)
                try:
                    self.check_url(current)  # a readable reason first; the backend re-checks what it connects to
                    if progress is not None:
                        progress()
                    got = self._get(current, progress)
                except ApplicationError:
                    raise
                except Exception as err:  # noqa: BLE001 - every failure leaves as a reason chosen here
                    raise self._error(err, current) from err
                if isinstance(got, Fetched):
                    return got
                if hop == self.max_redirects:
                    raise non_retryable(ErrorType.BLOCKED_SOURCE,
                                        f"too many redirects (more than {self.max_redirects}) from {url}")
                try:
                    current = urljoin(current, got)
                except ValueError as err:
                    raise non_retryable(ErrorType.BLOCKED_SOURCE,
                                        f"invalid redirect Location {got[:200]!r} from {current}") from err
        raise AssertionError("unreachable")  # pragma: no cover

    def _get(self, url: str, progress: Callable[[], object] | None) -> Fetched | str:
        """One hop: the document, or the raw Location of a redirect."""
        request = httpx.Request("GET", url, headers=self.headers, extensions={"timeout": self.timeout.as_dict()})
        resp = self.transport.handle_request(request)
        try:
            if resp.status_code in REDIRECT_CODES:
                location = resp.headers.get("location")
                if not location:
                    raise non_retryable(ErrorType.BAD_DOCUMENT, f"redirect {resp.status_code} without Location: {url}")
                return location
            if resp.status_code >= 400:
                raise http_error(f"fetch {urlsplit(url).hostname}", resp.status_code, url,
                                 resp.headers.get("retry-after"))
            data = read_capped(resp, self.max_bytes, self._ticker(url, progress))
        finally:
            resp.close()
        ctype = resp.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        return Fetched(url=url, status=resp.status_code, content_type=ctype, data=data, kind=_kind(data, url, ctype))

    def _ticker(self, url: str, progress: Callable[[], object] | None) -> Callable[[], None]:
        last = [time.monotonic()]

        def tick() -> None:
            self._check_time(url)
            now = time.monotonic()
            if progress is not None and now - last[0] >= 1.0:
                progress()
                last[0] = now
        return tick

    def _check_time(self, url: str) -> None:
        left = time_left()
        if left is not None and left <= 0:
            raise ApplicationError(f"fetch took longer than {self.timeout_s:g} s: {url}", type=ErrorType.FETCH_TIMEOUT)

    def _error(self, err: Exception, url: str) -> ApplicationError:
        """The one place a fetch failure gets its type: retryable only where a retry can help."""
        name = type(err).__name__
        if isinstance(err, BodyTooLarge):
            return non_retryable(ErrorType.BAD_DOCUMENT, f"document {str(err).replace('body ', '', 1)}: {url}")
        if isinstance(err, BadEncoding):
            return non_retryable(ErrorType.BAD_DOCUMENT, f"{err}: {url}")
        if isinstance(err, httpx.TimeoutException):
            left = time_left()
            if left is not None and left <= 0.05:
                return ApplicationError(f"fetch took longer than {self.timeout_s:g} s ({name}): {url}",
                                        type=ErrorType.FETCH_TIMEOUT)
            return ApplicationError(f"fetch timed out ({name}): {url}", type=ErrorType.FETCH_TIMEOUT)
        if isinstance(err, httpx.UnsupportedProtocol | httpx.InvalidURL):
            return non_retryable(ErrorType.BLOCKED_SOURCE, f"invalid URL ({name}: {err}): {url}")
        if isinstance(err, httpx.ProtocolError):
            text = str(err).lower()
            if any(w in text for w in ("disconnected", "peer closed", "incomplete", "connection reset")):
                # The server hung up mid-exchange: a later attempt may get the whole answer.
                return ApplicationError(f"fetch failed ({name}: {err}): {url}", type=ErrorType.FETCH_ERROR)
            return non_retryable(ErrorType.BAD_DOCUMENT, f"malformed HTTP response ({err}): {url}")
        if isinstance(err, httpx.HTTPError):  # connect/read/write errors: the network's trouble, retried
            return ApplicationError(f"fetch failed ({name}: {err}): {url}", type=ErrorType.FETCH_ERROR)
        if isinstance(err, UnicodeError | ValueError):
            return non_retryable(ErrorType.BAD_DOCUMENT, f"malformed HTTP response ({name}: {err}): {url}")
        if isinstance(err, MemoryError):
            return non_retryable(ErrorType.BAD_DOCUMENT, f"document too large to hold in memory: {url}")
        # Anything else is a bug or an input no retry will change: fail with its name, once.
        return non_retryable(ErrorType.BAD_DOCUMENT, f"fetch failed unexpectedly ({name}: {err}): {url}")
