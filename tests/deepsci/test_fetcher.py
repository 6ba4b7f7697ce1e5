"""The safe fetcher: internal addresses refused with a reason, pinned connections, caps, HTTP errors."""

from __future__ import annotations

import ipaddress
from datetime import timedelta

import pytest
from temporalio.exceptions import ApplicationError

from deepsci.errors import ErrorType
from deepsci.fetcher import SafeFetcher, system_resolver
from tests.fakes.web import DocServer

# Names that only the test resolver knows: how DNS would point a public-looking name inward.
FAKE_DNS = {
    "metadata.attacker.test": ["169.254.169.254"],
    "intranet.attacker.test": ["10.1.2.3"],
    "rebind.attacker.test": ["93.184.216.34", "127.0.0.1"],  # one good, one bad: every address counts
    "v6.attacker.test": ["fd12:3456::1"],
    "docs.test": ["127.0.0.1"],
}


def resolver(host: str, port: int):
    return FAKE_DNS.get(host) or system_resolver(host, port)


# (URL, words the refusal must contain)
ATTACKS = [
    ("http://10.0.0.1/", "10.0.0.1 is a private address"),
    ("http://172.16.5.4/", "172.16.5.4 is a private address"),
    ("http://172.31.255.254:8080/x", "private"),
    ("http://192.168.1.1/admin", "192.168.1.1 is a private address"),
    ("http://localhost/", "loopback host name"),
    ("http://LOCALHOST.:8080/", "loopback host name"),
    ("http://127.0.0.1/", "127.0.0.1 is a loopback address"),
    ("http://127.1.2.3:5432/", "loopback"),
    ("http://0.0.0.0/", "0.0.0.0 is a unspecified address"),
    ("http://[::1]/", "::1 is a loopback address"),
    ("http://[::]/", "unspecified"),
    ("http://[::ffff:127.0.0.1]/", "IPv4-mapped form of 127.0.0.1 is a loopback address"),
    ("http://[::ffff:169.254.169.254]/", "IPv4-mapped form of 169.254.169.254 is a cloud metadata address"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a cloud metadata address"),
    ("http://169.254.10.10/", "link-local"),
    ("http://metadata.google.internal/computeMetadata/v1/", "cloud metadata host name"),
    ("http://metadata/", "cloud metadata host name"),
    ("http://metadata.attacker.test/", "metadata.attacker.test resolves to 169.254.169.254 is a cloud metadata"),
    ("http://intranet.attacker.test/", "resolves to 10.1.2.3 is a private address"),
    ("http://rebind.attacker.test/", "resolves to 127.0.0.1 is a loopback address"),
    ("http://v6.attacker.test/", "fd12:3456::1 is a private address"),
    ("http://2130706433/", "127.0.0.1 is a loopback address"),  # decimal
    ("http://0177.0.0.1/", "127.0.0.1 is a loopback address"),  # octal
    ("http://0x7f.1/", "127.0.0.1 is a loopback address"),  # hex, short form
    ("http://0xa9fea9fe/", "169.254.169.254 is a cloud metadata address"),  # hex metadata
    ("http://[fe80::1]/", "fe80::1 is a link-local"),
    ("http://[fe80::1%25eth0]/", "fe80::1 is a link-local"),  # with a zone id
    ("http://[fc00::1]/", "fc00::1 is a private address"),
    ("http://[fd00:ec2::254]/", "cloud metadata address"),
    ("http://224.0.0.1/", "224.0.0.1 is a multicast address"),
    ("http://[ff02::1]/", "multicast"),
    ("http://[2002:7f00:1::]/", "6to4 form of 127.0.0.1"),
    ("http://[64:ff9b::a9fe:a9fe]/", "NAT64 form of 169.254.169.254"),
    ("http://100.100.100.200/", "cloud metadata address"),
    ("http://100.64.0.1/", "shared (carrier-grade NAT)"),
    ("http://240.0.0.1/", "reserved"),
    ("http://255.255.255.255/", "255.255.255.255"),
    ("file:///etc/passwd", "unsupported URL scheme 'file'"),
    ("gopher://127.0.0.1:70/", "unsupported URL scheme 'gopher'"),
    ("http://user:secret@example.com/", "credentials in the URL"),
]


@pytest.fixture(scope="module")
def doc():
    with DocServer() as server:
        yield server


@pytest.fixture(scope="module")
def other():
    with DocServer() as server:  # a loopback service that is NOT allowlisted
        yield server


def make(doc: DocServer | None = None, **kw) -> SafeFetcher:
    allow = [f"127.0.0.1:{doc.port}"] if doc else []
    kw.setdefault("max_bytes", 5 * 1024 * 1024)
    kw.setdefault("timeout_s", 10)
    return SafeFetcher(allow_hosts=kw.pop("allow", allow), resolver=resolver, **kw)


def refused(fetcher: SafeFetcher, url: str) -> ApplicationError:
    with pytest.raises(ApplicationError) as info:
        fetcher.fetch(url)
    return info.value


def test_there_are_enough_attacks():
    assert len(ATTACKS) >= 20


@pytest.mark.parametrize(("url", "reason"), ATTACKS, ids=[u for u, _ in ATTACKS])
def test_attack_url_is_refused_with_its_reason(url, reason):
    f = make()  # empty allowlist
    try:
        err = refused(f, url)
    finally:
        f.close()
    assert err.type == ErrorType.BLOCKED_SOURCE, f"{url}: {err.type}: {err.message}"
    assert err.non_retryable
    assert reason in err.message, err.message


def test_redirect_to_metadata_is_refused(doc):
    f = make(doc)
    err = refused(f, f"{doc.url}/redirect/metadata")
    assert err.type == ErrorType.BLOCKED_SOURCE and "169.254.169.254 is a cloud metadata address" in err.message
    f.close()


def test_redirect_to_loopback_on_another_port_is_refused(doc, other):
    f = make(doc)
    n = len(other.requests)
    err = refused(f, f"{doc.url}/redirect/loopback?port={other.port}")
    assert err.type == ErrorType.BLOCKED_SOURCE and "127.0.0.1 is a loopback address" in err.message
    assert f"port {other.port}" in err.message
    assert len(other.requests) == n, "the refused hop was connected to"
    f.close()


def test_allowlisted_loopback_fetch_works(doc):
    f = make(doc)
    got = f.fetch(doc.page_url("breakers"))
    assert got.status == 200 and got.kind == "html"
    assert b"Circuit breakers for model providers" in got.data
    f.close()


def test_connection_goes_to_the_checked_address(doc):
    """A name only the injected resolver knows: the socket must go to the address it returned."""
    f = make(allow=["127.0.0.0/8"])
    got = f.fetch(f"http://docs.test:{doc.port}/page/retries")
    assert b"Full jitter" in got.data
    f.close()


def test_cidr_allowlist_is_port_blind_and_ip_based(doc):
    f = make(allow=["127.0.0.0/8"])
    assert f.fetch(f"http://127.0.0.1:{doc.port}/page/breakers").status == 200
    # an allowlisted range does not open the metadata address
    assert refused(f, "http://169.254.169.254/").type == ErrorType.BLOCKED_SOURCE
    f.close()


def test_pdf_is_sniffed_without_pdf_in_the_url(doc):
    f = make(doc)
    got = f.fetch(f"{doc.url}/paper/2401")
    assert got.data.startswith(b"%PDF-") and got.kind == "pdf"
    assert got.content_type == "application/octet-stream"
    f.close()


def test_html_known_only_by_content_type(doc):
    f = make(doc)
    got = f.fetch(f"{doc.url}/bare")
    assert got.kind == "html" and got.parse_name.endswith("/bare.html")
    f.close()


def test_body_is_capped_while_streaming(doc):
    import time

    f = make(doc, max_bytes=1024 * 1024)
    t = time.monotonic()
    err = refused(f, f"{doc.url}/huge")
    assert err.type == ErrorType.BAD_DOCUMENT and err.non_retryable and "exceeds 1048576 bytes" in err.message
    assert time.monotonic() - t < 5  # stopped reading, did not drain 128 MB
    err = refused(f, f"{doc.url}/declared-huge")
    assert err.type == ErrorType.BAD_DOCUMENT and "10000000000 bytes" in err.message
    f.close()


def test_redirects_are_capped(doc):
    f = make(doc, max_redirects=5)
    assert f.fetch(f"{doc.url}/redirect/chain/4").status == 200  # 5 redirects
    err = refused(f, f"{doc.url}/redirect/chain/5")  # 6 redirects
    assert err.type == ErrorType.BLOCKED_SOURCE and "too many redirects" in err.message
    f.close()


def test_404_fails_fast(doc):
    f = make(doc)
    err = refused(f, f"{doc.url}/status/404")
    assert err.type == "HTTP404" and err.non_retryable
    f.close()


def test_503_with_retry_after_sets_next_retry_delay(doc):
    f = make(doc)
    err = refused(f, f"{doc.url}/status/503?retry_after=7")
    assert err.type == "HTTP503" and not err.non_retryable
    assert err.next_retry_delay == timedelta(seconds=7)
    err = refused(f, f"{doc.url}/status/429?retry_after=3")
    assert err.type == "HTTP429" and err.next_retry_delay == timedelta(seconds=3)
    f.close()


def test_slow_server_times_out_retryably(doc):
    f = make(doc, timeout_s=1)
    err = refused(f, f"{doc.url}/slow?s=3")
    assert err.type == "FetchTimeout" and not err.non_retryable
    f.close()


def test_down_server_is_retryable(doc):
    f = make(allow=["127.0.0.0/8"])
    from tests.helpers import free_port

    err = refused(f, f"http://127.0.0.1:{free_port()}/")
    assert err.type == "FetchError" and not err.non_retryable
    f.close()


def test_tls_verification_is_never_disabled():
    import ssl

    f = make()
    ctx = f.transport._pool._ssl_context  # noqa: SLF001
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    f.close()


def test_dns_rebinding_is_caught_at_connect_time(doc):
    """The name is public when first checked and loopback when connecting: the pinned connect refuses."""
    calls = []

    def rebinding(host: str, port: int):
        calls.append(host)
        return ["93.184.216.34"] if len(calls) == 1 else ["127.0.0.1"]

    f = SafeFetcher(max_bytes=1024 * 1024, resolver=rebinding, timeout_s=5)
    n = len(doc.requests)
    with pytest.raises(ApplicationError) as info:
        f.fetch(f"http://rebind.test:{doc.port}/page/breakers")
    assert info.value.type == ErrorType.BLOCKED_SOURCE and "127.0.0.1 is a loopback address" in info.value.message
    assert len(calls) == 2 and len(doc.requests) == n
    f.close()


def test_ipv6_loopback_allowlisted_by_entry():
    import socket
    from http.server import ThreadingHTTPServer

    from tests.fakes.web import _Handler

    class V6(ThreadingHTTPServer):
        address_family = socket.AF_INET6

    try:
        httpd = V6(("::1", 0), _Handler)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    fake = DocServer()  # borrow its routes
    httpd.fake = fake
    port = httpd.server_address[1]
    import threading

    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        f = SafeFetcher(max_bytes=1024 * 1024, allow_hosts=[f"[::1]:{port}"], timeout_s=5)
        assert f.fetch(f"http://[::1]:{port}/page/breakers").kind == "html"
        with pytest.raises(ApplicationError) as info:  # another port on ::1 is not allowlisted
            f.fetch(f"http://[::1]:{port + 1 if port < 65535 else port - 1}/")
        assert info.value.type == ErrorType.BLOCKED_SOURCE and "::1 is a loopback address" in info.value.message
        f.close()
    finally:
        httpd.shutdown()
        httpd.server_close()
        fake.httpd.server_close()


def test_fetch_settings_from_env_and_under_the_activity_timeouts(monkeypatch):
    from deepsci.policies import POLICIES
    from deepsci.settings import Settings

    monkeypatch.setenv("DEEPSCI_FETCH_ALLOW_HOSTS", '["127.0.0.1:8000", "10.20.0.0/16"]')
    s = Settings(_env_file=None)
    assert s.fetch_allow_hosts == ["127.0.0.1:8000", "10.20.0.0/16"]
    fetch = POLICIES.fetch
    # heartbeats come every few seconds from the worker's interceptor (workers/heartbeats.py), so
    # only the whole fetch has to fit the attempt
    assert s.fetch_timeout_s < fetch.start_to_close.total_seconds()
    assert s.search_timeout_s < POLICIES.search.start_to_close.total_seconds()
    f = SafeFetcher.from_settings(s)
    assert f.guard.allow.allows_ip(ipaddress.ip_address("10.20.3.4"), 443)
    assert not f.guard.allow.allows_ip(ipaddress.ip_address("10.21.0.1"), 443)
    f.close()
