"""`deepsci ingest` on real-world documents nobody here wrote (pinned PyPI sdists, see the Makefile's
``realworld`` step), on a folder, and on a loopback URL: the real CLI in a subprocess."""

from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.helpers import CORPUS

ROOT = Path(__file__).resolve().parents[2]
REALWORLD = ROOT / ".venv" / "realworld"
needs_realworld = pytest.mark.skipif(not (REALWORLD / ".done").exists(),
                                     reason="real-world documents missing: run `make install` (realworld step)")


def _ingest(*args: str, env: dict | None = None) -> tuple[list[dict], dict, subprocess.CompletedProcess]:
    proc = subprocess.run([str(Path(sys.executable).parent / "deepsci"), "ingest", "--json", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})})
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return lines[:-1], lines[-1], proc


@needs_realworld
def test_real_world_pdfs_and_pages_end_with_honest_reasons():
    pdf, html = REALWORLD / "pdf", REALWORLD / "html"
    picks = [pdf / "crazyones.pdf", pdf / "GeoBase_NHNC1_Data_Model_UML_EN.pdf",
             pdf / "encryption/r6-user-password.pdf",
             pdf / "imagemagick-images.pdf", pdf / "two-different-pages.pdf", pdf / "encryption/r6-empty-password.pdf",
             html / "apache.html", html / "scam.html"]
    results, summary, _ = _ingest(*map(str, picks))
    by_name = {Path(r["path"]).name: r for r in results}
    assert [Path(r["path"]).name for r in results] == [p.name for p in picks]
    assert by_name["crazyones.pdf"]["status"] == "ok" and by_name["crazyones.pdf"]["chunks"] >= 1
    geo = by_name["GeoBase_NHNC1_Data_Model_UML_EN.pdf"]
    assert (geo["status"], geo["kind"], geo["pages"]) == ("ok", "pdf", 19) and geo["chars"] > 10_000
    assert by_name["r6-user-password.pdf"]["reason"] == "encrypted PDF (password required)"
    assert by_name["r6-empty-password.pdf"]["status"] == "ok"  # encrypted, but readable without a password
    assert by_name["imagemagick-images.pdf"]["reason"].startswith("PDF is image-only: 6 of 6 pages")
    assert "vector drawings only" in by_name["two-different-pages.pdf"]["reason"]
    assert all(by_name[h]["status"] == "ok" and by_name[h]["kind"] == "html" for h in ("apache.html", "scam.html"))
    assert summary["files"] == len(picks) and summary["ok"] + summary["refused"] == len(picks)
    assert summary["pages"] == sum(r["pages"] for r in results if r["status"] == "ok")


@needs_realworld
def test_real_world_text_is_clean():
    from deepsci.parsing import parse_document

    for path in sorted((REALWORLD / "pdf").glob("*.pdf")) + sorted((REALWORLD / "html").glob("*.html")):
        try:
            doc = parse_document(path.read_bytes(), path.name, 20 * 1024 * 1024)
        except Exception as exc:  # noqa: BLE001 - refusals are checked above; here: what is stored
            assert getattr(exc, "type", None) == "BadDocument", (path.name, exc)
            continue
        assert "\x00" not in doc.text and "\ufb01" not in doc.text, path.name
        assert "**" not in doc.text, path.name


def test_ingest_a_folder_and_a_missing_file():
    results, summary, proc = _ingest(str(CORPUS), "no/such/file.pdf")
    assert len(results) == len(list(CORPUS.iterdir())) + 1
    assert all(r["status"] == "ok" and r["chunks"] > 0 for r in results[:-1])
    assert results[-1] == {**results[-1], "status": "refused", "reason": "no such file: no/such/file.pdf"}
    assert set(results[0]) == {"path", "status", "reason", "kind", "pages", "chars", "chunks", "seconds"}
    assert summary["files"] == len(results) and summary["refused"] == 1 and summary["elapsed_s"] > 0


def test_ingest_a_loopback_url_through_the_safe_fetcher():
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(CORPUS))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    page = next(p.name for p in sorted(CORPUS.iterdir()) if p.suffix == ".html")
    try:
        allowed, _, _ = _ingest(f"http://127.0.0.1:{port}/{page}",
                                env={"DEEPSCI_FETCH_ALLOW_HOSTS": f"127.0.0.1:{port}"})
        blocked, _, _ = _ingest(f"http://127.0.0.1:{port}/{page}", env={"DEEPSCI_FETCH_ALLOW_HOSTS": ""})
    finally:
        server.shutdown()
    assert allowed[0]["status"] == "ok" and allowed[0]["kind"] == "html" and allowed[0]["chunks"] > 0
    assert blocked[0]["status"] == "refused" and blocked[0]["reason"]  # an internal address, refused by the fetcher
