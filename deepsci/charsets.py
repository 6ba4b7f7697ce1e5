"""Bytes to text for HTML and plain text: the declared charset first, then detection, never a blind guess.

Order: a byte-order mark; the charset a server declared (HTTP ``Content-Type``); the one the page
declares (``<meta charset>`` or ``http-equiv``); strict UTF-8; charset-normalizer's detection;
finally cp1252 with replacement characters. A declaration that does not decode the bytes
strictly is skipped (servers and pages lie). Labels map as browsers map them (WHATWG):
"iso-8859-1" means windows-1252 and "gb2312" means GB18030.
"""

from __future__ import annotations

import codecs
import re

__all__ = ["decode", "charset_from_content_type"]

_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_META = re.compile(rb"""<meta[^>]{0,400}?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]{2,40})""", re.I)
_CT_CHARSET = re.compile(r"""charset\s*=\s*["']?([A-Za-z0-9_.:-]{2,40})""", re.I)
# WHATWG Encoding Standard: what a browser decodes when a page says these labels.
_WHATWG = {"iso-8859-1": "cp1252", "iso8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252",
           "us-ascii": "cp1252", "ascii": "cp1252", "iso-8859-9": "cp1254", "gb2312": "gb18030",
           "gbk": "gb18030", "x-gbk": "gb18030", "shift_jis": "cp932", "x-sjis": "cp932", "euc-kr": "cp949",
           "ks_c_5601-1987": "cp949", "tis-620": "cp874", "iso-8859-11": "cp874", "x-mac-roman": "mac_roman"}


def charset_from_content_type(content_type: str | None) -> str | None:
    m = _CT_CHARSET.search(content_type or "")
    return m.group(1) if m else None


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    label = label.strip().lower()
    label = _WHATWG.get(label, label)
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def _strict(data: bytes, label: str | None) -> str | None:
    codec = _codec(label)
    if codec is None or codec.startswith("utf-16") or codec.startswith("utf-32"):
        return None  # a declared UTF-16 without a BOM is almost always a lie about ASCII-compatible bytes
    try:
        return data.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def decode(data: bytes, declared: str | None = None, *, html: bool = False) -> str:
    """``data`` as text (see the module doc for the order)."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return data.decode(codec, errors="replace")
    text = _strict(data, declared)
    if text is None and html:
        m = _META.search(data[:8192])
        text = _strict(data, m.group(1).decode("ascii", "replace")) if m else None
    if text is None:
        text = _strict(data, "utf-8")
    if text is None:
        from charset_normalizer import from_bytes

        best = from_bytes(data[:200_000]).best()  # a sample is enough and bounds the detector's time
        text = _strict(data, best.encoding) if best is not None else None
    if text is None:
        text = data.decode("cp1252", errors="replace")
    return text
