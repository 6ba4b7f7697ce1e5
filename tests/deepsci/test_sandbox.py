"""The parser sandbox: limits hold against a child that misbehaves on purpose, and the parent lives on.

The misbehaving parsers below are module-level functions with ``parse_document``'s signature;
``parse_isolated(..., parser="tests.deepsci.test_sandbox:NAME")`` runs one in the child instead of the
real parser, under the same limits. They take the path of a file to write their pid into as
the ``uri`` argument.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from deepsci.errors import ErrorType, non_retryable
from deepsci.parser_child import DEFAULT_PRELOAD
from deepsci.parser_pool import ParserPool
from deepsci.parsing import ParsedDocument, Segment, parse_document
from deepsci.sandbox import ParseLimits, needs_isolation, parse_isolated
from deepsci.settings import Settings
from tests.helpers import CORPUS

PDF = b"%PDF-1.7\n% a PDF header, so the bytes go to the sandbox\n"
LIMIT = 20 * 1024 * 1024
HERE = "tests.deepsci.test_sandbox"


# ---------------------------------------------------------------- parsers that misbehave (run in the child)


def _note_pid(uri: str, *more: int) -> None:
    Path(uri).write_text(" ".join(str(p) for p in (os.getpid(), *more)))


def sleep_forever(data: bytes, uri: str, max_bytes: int) -> ParsedDocument:
    grandchild = subprocess.Popen(["sleep", "600"])  # must die with the child's process group
    _note_pid(uri, grandchild.pid)
    while True:
        time.sleep(3600)


def allocate_4gb(data: bytes, uri: str, max_bytes: int) -> ParsedDocument:
    _note_pid(uri)
    hog = bytearray(4 << 30)
    return ParsedDocument("never", "pdf", str(len(hog)))


def allocate_gradually(data: bytes, uri: str, max_bytes: int) -> ParsedDocument:
    hog = []
    while True:
        hog.append(b"x" * (8 << 20))


def abort(data: bytes, uri: str, max_bytes: int) -> ParsedDocument:
    _note_pid(uri)
    os.abort()


def segfault(data: bytes, uri: str, max_bytes: int) -> ParsedDocument:
    import ctypes

    ctypes.string_at(0)  # reads address 0: SIGSEGV
    raise AssertionError("unreachable")


def spin(data: bytes, uri: str, max_bytes: int) -> ParsedDocument:
    n = 0
    while True:
        n += 1


def exit_quietly(data: bytes, uri: str, max_bytes: int) -> ParsedDocument:
    os._exit(3)


def raise_value_error(data: bytes, uri: str, max_bytes: int) -> ParsedDocument:
    raise ValueError("unexpected token at offset 17")


def raise_bad_document(data: bytes, uri: str, max_bytes: int) -> ParsedDocument:
    raise non_retryable(ErrorType.BAD_DOCUMENT, "the custom reason, kept word for word")


def chatty_then_ok(data: bytes, uri: str, max_bytes: int) -> ParsedDocument:
    import sys

    print("noise on stdout " * 1000)  # must not corrupt the result channel
    os.write(1, b"raw noise on fd 1\n")
    sys.stderr.write("noise on stderr\n" * 1000)
    return ParsedDocument("Chatty", "pdf", "Chatty but fine. \u00e9\u4e2d", [Segment("p. 1", 0, 7)])


def slow_ok(data: bytes, uri: str, max_bytes: int) -> ParsedDocument:
    time.sleep(2.5)
    return ParsedDocument("Slow", "pdf", "Slow but fine.", [])


# ---------------------------------------------------------------- helpers


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a zombie waiting for a reaper is dead


@pytest.fixture(scope="module")
def pool():
    """Children that have imported this module already: a misbehaving parser starts at once."""
    p = ParserPool(2, preload=(*DEFAULT_PRELOAD, HERE))
    yield p
    p.close()


def _fails(pool: ParserPool, parser: str, limits: ParseLimits, uri: str = "x.pdf", **kw
           ) -> tuple[ApplicationError, float]:
    t0 = time.monotonic()
    with pytest.raises(ApplicationError) as err:
        parse_isolated(PDF, uri, LIMIT, limits, parser=f"{HERE}:{parser}", pool=pool, **kw)
    return err.value, time.monotonic() - t0


def _assert_bad_document(err: ApplicationError, reason: str) -> None:
    assert err.type == "BadDocument" and err.non_retryable, (err.type, err.message)
    assert reason in err.message, err.message


# ---------------------------------------------------------------- limits


def test_wall_clock_limit_kills_the_child_and_its_process_group(pool, tmp_path):
    pids = tmp_path / "pids"
    beats = []
    err, took = _fails(pool, "sleep_forever", ParseLimits(timeout_s=2, memory_mb=1024, cpu_s=60), str(pids),
                       on_wait=lambda: beats.append(time.monotonic()))
    _assert_bad_document(err, "parser exceeded 2 s wall-clock limit")
    assert took >= 2, took
    assert len(beats) >= 1  # the caller heartbeats while it waits
    child, grandchild = map(int, pids.read_text().split())
    deadline = time.monotonic() + 5
    while (_alive(child) or _alive(grandchild)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child) and not _alive(grandchild)


def test_memory_limit_reports_out_of_memory(pool, tmp_path):
    err, took = _fails(pool, "allocate_4gb", ParseLimits(timeout_s=30, memory_mb=512, cpu_s=30), str(tmp_path / "pid"))
    _assert_bad_document(err, "parser ran out of memory (limit 512 MB)")
    err, took = _fails(pool, "allocate_gradually", ParseLimits(timeout_s=30, memory_mb=384, cpu_s=30))
    _assert_bad_document(err, "parser ran out of memory (limit 384 MB)")


def test_crash_reports_the_signal(pool, tmp_path):
    err, _ = _fails(pool, "abort", ParseLimits(timeout_s=30), str(tmp_path / "pid"))
    _assert_bad_document(err, "parser crashed (signal 6: SIGABRT)")
    err, _ = _fails(pool, "segfault", ParseLimits(timeout_s=30))
    _assert_bad_document(err, "parser crashed (signal 11: SIGSEGV)")
    err, _ = _fails(pool, "exit_quietly", ParseLimits(timeout_s=30))
    _assert_bad_document(err, "parser crashed (exit code 3, no result)")


def test_cpu_limit_stops_a_busy_loop(pool):
    err, took = _fails(pool, "spin", ParseLimits(timeout_s=30, memory_mb=1024, cpu_s=1))
    _assert_bad_document(err, "parser exceeded 1 s CPU limit")


def test_cancelled_wait_kills_the_child(pool, tmp_path):
    """When the activity is cancelled, the heartbeat raises: the child must not outlive the call."""
    pids = tmp_path / "pids"

    def cancelled():
        if pids.exists():
            raise RuntimeError("activity cancelled")

    with pytest.raises(RuntimeError, match="activity cancelled"):
        parse_isolated(PDF, str(pids), LIMIT, ParseLimits(timeout_s=60), on_wait=cancelled,
                       parser=f"{HERE}:sleep_forever", pool=pool)
    child, grandchild = map(int, pids.read_text().split())
    deadline = time.monotonic() + 5
    while (_alive(child) or _alive(grandchild)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child) and not _alive(grandchild)


def test_child_dies_with_a_killed_worker(tmp_path):
    """A SIGKILLed worker cannot clean up: the child asked the kernel to kill it too (Linux)."""
    import sys

    pids = tmp_path / "pids"
    script = ("from deepsci.sandbox import parse_isolated\n"
              f"parse_isolated({PDF!r}, {str(pids)!r}, {LIMIT}, parser='{HERE}:sleep_forever')\n")
    worker = subprocess.Popen([sys.executable, "-c", script], cwd=str(CORPUS.parent.parent))
    grandchild = 0
    try:
        deadline = time.monotonic() + 30
        while not (pids.exists() and len(pids.read_text().split()) == 2) and time.monotonic() < deadline:
            time.sleep(0.05)
        child, grandchild = map(int, pids.read_text().split())
        assert _alive(child)
        worker.kill()
        worker.wait()
        deadline = time.monotonic() + 5
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child)
    finally:
        worker.kill()
        if grandchild:  # the test's own helper process: not covered by the death signal, end it here
            with contextlib.suppress(ProcessLookupError):
                os.kill(grandchild, 9)


# ---------------------------------------------------------------- errors and results cross the boundary intact


def test_bad_document_from_the_child_keeps_type_and_message(pool):
    err, _ = _fails(pool, "raise_bad_document", ParseLimits(timeout_s=30))
    assert (err.type, err.message, err.non_retryable) == ("BadDocument", "the custom reason, kept word for word", True)
    truncated = b"%PDF-1.7\n1 0 obj <<"
    with pytest.raises(ApplicationError) as direct:
        parse_document(truncated, "a.pdf", LIMIT)
    with pytest.raises(ApplicationError) as isolated:
        parse_isolated(truncated, "a.pdf", LIMIT)
    assert (isolated.value.type, isolated.value.message, isolated.value.non_retryable) == (
        direct.value.type, direct.value.message, direct.value.non_retryable)


def test_unexpected_parser_exception_is_a_bad_document(pool):
    err, _ = _fails(pool, "raise_value_error", ParseLimits(timeout_s=30))
    _assert_bad_document(err, "parser failed: ValueError: unexpected token at offset 17")


def test_noise_on_stdout_does_not_corrupt_the_result(pool):
    doc = parse_isolated(PDF, "x.pdf", LIMIT, parser=f"{HERE}:chatty_then_ok", pool=pool)
    assert (doc.title, doc.text, doc.segments) == ("Chatty", "Chatty but fine. \u00e9\u4e2d", [Segment("p. 1", 0, 7)])


def test_waiting_calls_on_wait_about_once_a_second(pool):
    beats = []
    doc = parse_isolated(PDF, "x.pdf", LIMIT, ParseLimits(timeout_s=30), on_wait=lambda: beats.append(1),
                         parser=f"{HERE}:slow_ok", pool=pool)
    assert doc.title == "Slow" and len(beats) >= 2


def test_isolated_parse_equals_in_process_parse_on_the_sample_corpus():
    paths = sorted(CORPUS.iterdir())
    assert any(needs_isolation(p.read_bytes(), p.name, LIMIT) for p in paths)
    results: dict[Path, ParsedDocument] = {}

    def run(p: Path) -> None:
        results[p] = parse_isolated(p.read_bytes(), p.name, LIMIT)

    threads = [threading.Thread(target=run, args=(p,)) for p in paths]  # concurrent children, as in the worker
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in paths:
        direct = parse_document(p.read_bytes(), p.name, LIMIT)
        got = results[p]
        assert (got.title, got.kind, got.text, got.segments) == (direct.title, direct.kind, direct.text,
                                                                 direct.segments), p.name


def test_cheap_kinds_stay_in_process(monkeypatch):
    def no_child(*a, **kw):
        raise AssertionError("no child process for Markdown, text, empty or oversized input")

    monkeypatch.setattr(subprocess, "Popen", no_child)
    assert parse_isolated(b"# Title\n\nSome words here.", "a.md", LIMIT).kind == "markdown"
    assert parse_isolated(b"plain words", "a.txt", LIMIT).kind == "text"
    for data, reason in ((b"", "empty document"), (b"%PDF-" + b"x" * 100, "limit 50")):
        with pytest.raises(ApplicationError, match=reason):
            parse_isolated(data, "a.pdf", 50)


def test_limits_come_from_settings():
    s = Settings(parse_timeout_s=5, parse_memory_mb=512, parse_cpu_s=7, _env_file=None)
    assert ParseLimits.from_settings(s) == ParseLimits(timeout_s=5.0, memory_mb=512, cpu_s=7)
    d = Settings(_env_file=None)
    assert ParseLimits.from_settings(d) == ParseLimits(timeout_s=60.0, memory_mb=1024, cpu_s=60)


# ---------------------------------------------------------------- the warm pool

PROBES = "tests.deepsci.child_probes"


def _probe(doc: ParsedDocument) -> dict:
    import json

    return json.loads(doc.text)


def test_big_document_reaches_a_slow_starting_child_whole():
    """A child still importing when the document arrives, a document far over a pipe's 64 KiB buffer:
    the bytes arrive whole and the wall clock (shorter than the child's start-up) is not spent on it."""
    small = ParserPool(1, preload=(*DEFAULT_PRELOAD, "tests.deepsci.slow_child", PROBES))
    try:
        for size in (300 * 1024, 5 * 1024 * 1024 + 7):
            data = PDF + os.urandom(size)
            doc = parse_isolated(data, "big.pdf", LIMIT, ParseLimits(timeout_s=2.5), parser=f"{PROBES}:echo",
                                 pool=small)
            import hashlib

            assert _probe(doc)["bytes"] == len(data)
            assert _probe(doc)["sha256"] == hashlib.sha256(data).hexdigest()
    finally:
        small.close()


def test_child_environment_holds_no_secrets_and_no_temporal(monkeypatch):
    secrets = {"OPENAI_API_KEY": "sk-test-not-a-real-key", "SLACK_BOT_TOKEN": "xoxb-test-token",
               "DATABASE_URL": "postgresql://user:pw@db/app", "AWS_SECRET_ACCESS_KEY": "test-aws-secret"}
    for k, v in secrets.items():
        monkeypatch.setenv(k, v)
    fresh = ParserPool(1)
    try:
        seen = _probe(parse_isolated(PDF, "x.pdf", LIMIT, parser=f"{PROBES}:environment", pool=fresh))
    finally:
        fresh.close()
    leaked = [k for k, v in seen["env"].items() if k in secrets or v in secrets.values()]
    assert leaked == []
    assert "PATH" in seen["env"]
    assert seen["temporalio"] == []  # 0.4 s of import a parser does not need
    assert seen["preloaded"] == ["pymupdf", "trafilatura"]  # warm: the parsers are loaded before any document


def test_child_has_no_network_where_the_os_allows_it():
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    fresh = ParserPool(1, preload=(*DEFAULT_PRELOAD, PROBES))
    try:
        port = listener.getsockname()[1]
        seen = _probe(parse_isolated(PDF, f"127.0.0.1:{port}", LIMIT, parser=f"{PROBES}:connect", pool=fresh))
        if fresh.network == "none":
            pytest.skip("this OS lets neither root nor user namespaces drop the network (best effort)")
        assert seen["outcome"].startswith("refused"), seen
    finally:
        fresh.close()
        listener.close()


def test_child_killed_for_memory_is_replaced_while_other_documents_go_on(pool, tmp_path):
    pdfs = [p for p in sorted(CORPUS.iterdir()) if p.suffix == ".pdf"]
    results: dict[str, object] = {}

    def parse(name: str, data: bytes, parser: str | None) -> None:
        kw = {"parser": parser} if parser else {}
        try:
            results[name] = parse_isolated(data, name, LIMIT, ParseLimits(timeout_s=60, memory_mb=512), pool=pool,
                                           **kw)
        except ApplicationError as exc:
            results[name] = exc

    hog_pid = tmp_path / "hog"
    jobs = [(str(hog_pid), PDF, f"{HERE}:allocate_4gb")] + [(p.name, p.read_bytes(), None) for p in pdfs * 2]
    threads = [threading.Thread(target=parse, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    hog = results.pop(str(hog_pid))
    assert isinstance(hog, ApplicationError) and "ran out of memory (limit 512 MB)" in hog.message
    assert all(isinstance(r, ParsedDocument) and r.kind == "pdf" for r in results.values()), results
    assert int(hog_pid.read_text()) not in pool.pids()  # replaced, not reused
    assert parse_isolated(pdfs[0].read_bytes(), pdfs[0].name, LIMIT, pool=pool).kind == "pdf"


def test_children_are_recycled_after_n_documents():
    small = ParserPool(1, recycle_after=2, preload=(*DEFAULT_PRELOAD, PROBES))
    try:
        pids = [_probe(parse_isolated(PDF, "x.pdf", LIMIT, parser=f"{PROBES}:echo", pool=small))["pid"]
                for _ in range(5)]
    finally:
        small.close()
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4]
