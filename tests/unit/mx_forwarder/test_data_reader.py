"""The DATA reader: only <CRLF>.<CRLF> ends a message; smuggling material is refused."""

from __future__ import annotations

import asyncio

import pytest

from mx_forwarder.smtp import DataProblem, read_data


async def read(raw: bytes, max_bytes: int = 10_000) -> tuple[bytes, DataProblem, bytes]:
    reader = asyncio.StreamReader(limit=1001)
    reader.feed_data(raw)
    reader.feed_eof()
    result = await read_data(reader, max_bytes)
    rest = await reader.read()
    return result.content, result.problem, rest


async def test_plain_message_and_dot_unstuffing() -> None:
    content, problem, rest = await read(b"A: b\r\n\r\n..dot\r\nline\r\n.\r\nQUIT\r\n")
    assert problem is DataProblem.NONE
    assert content == b"A: b\r\n\r\n.dot\r\nline\r\n"
    assert rest == b"QUIT\r\n"


@pytest.mark.parametrize("smuggled", [
    b"x\r\n\n.\nMAIL FROM:<evil@x>\r\n",  # <LF>.<LF>
    b"x\r\n\n.\r\nMAIL FROM:<evil@x>\r\n",  # <LF>.<CR><LF>
    b"x\r.\r\nMAIL FROM:<evil@x>\r\n",  # <CR>.<CR><LF>
    b"x\r\n.\nMAIL FROM:<evil@x>\r\n",  # <CR><LF>.<LF>
    b"x\r\n.\rMAIL FROM:<evil@x>\r\n",  # <CR><LF>.<CR>
    b"x\n.\r\nMAIL FROM:<evil@x>\r\n",  # <LF>.<CR><LF> after text
])
async def test_smuggling_sequences_do_not_end_data(smuggled: bytes) -> None:
    content, problem, rest = await read(b"Subject: s\r\n\r\n" + smuggled + b"tail\r\n.\r\nNOOP\r\n")
    assert problem is DataProblem.BARE_NEWLINE
    assert content == b""
    assert rest == b"NOOP\r\n"  # the real end of data was found, nothing more swallowed


async def test_nul_and_long_lines() -> None:
    _, problem, _ = await read(b"a\x00b\r\n.\r\n")
    assert problem is DataProblem.NUL
    _, problem, rest = await read(b"x" * 999 + b"\r\n.\r\nNEXT\r\n")
    assert problem is DataProblem.LINE_TOO_LONG and rest == b"NEXT\r\n"
    _, problem, rest = await read(b"y" * 5000 + b"\r\n.\r\nNEXT\r\n")
    assert problem is DataProblem.LINE_TOO_LONG and rest == b"NEXT\r\n"
    content, problem, _ = await read(b"z" * 998 + b"\r\n.\r\n")
    assert problem is DataProblem.NONE and len(content) == 1000


async def test_size_limit() -> None:
    _, problem, rest = await read(b"0123456789\r\n" * 20 + b".\r\nNEXT\r\n", max_bytes=100)
    assert problem is DataProblem.TOO_BIG and rest == b"NEXT\r\n"


async def test_eof_mid_data_raises() -> None:
    with pytest.raises(asyncio.IncompleteReadError):
        await read(b"Subject: s\r\n\r\npartial\r\n")
