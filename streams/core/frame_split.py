"""Find a frame's records in its raw bytes without parsing them.

A frame ``{"records": [...]}`` whose whole parse fails (one record nested deeper than the JSON
parser's limit: orjson refuses depth > 1024, Python's ``json`` hits the recursion limit near
1000) would otherwise cost every good record beside the bad one. :func:`split_frame` walks the
frame's brackets and strings iteratively (any depth, no recursion) and returns each record's
bytes, so each is parsed, and if need be dead-lettered, on its own.
"""

from __future__ import annotations

import re

# a JSON string (escapes included) or one structural character; scalars lie between tokens
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},:]', re.DOTALL)
_CLOSES = {ord("]"): ord("["), ord("}"): ord("{")}


def split_frame(raw: bytes) -> list[bytes] | None:
    """The raw bytes of each element of the top-level ``records`` array, or ``None`` when
    ``raw`` is not an object with such an array or its brackets do not balance.

    >>> split_frame(b'{"records": [{"a": [[1]]}, 2, {"b": "]"}]}')
    [b'{"a": [[1]]}', b'2', b'{"b": "]"}']
    >>> split_frame(b'{"records": []}'), split_frame(b'[1, 2]'), split_frame(b'{"records": [1')
    ([], None, None)
    """
    stack: list[int] = []
    key = b""  # the last string seen in the top-level object
    start, elements, found = -1, [], False
    for token in _TOKEN.finditer(raw):
        char = raw[token.start()]
        depth = len(stack)
        if char == ord('"'):
            if depth == 1:
                key = token.group()
        elif char in b"[{":
            if not stack and char != ord("{"):
                return None
            if depth == 1 and char == ord("[") and key == b'"records"' and not found:
                found, start = True, token.end()
            stack.append(char)
        elif char in b"]}":
            if not stack or stack.pop() != _CLOSES[char]:
                return None
            if depth == 2 and start >= 0:
                elements.append(raw[start : token.start()])
                start = -1
        elif char == ord(",") and depth == 2 and start >= 0:
            elements.append(raw[start : token.start()])
            start = token.end()
        elif char == ord(",") and depth == 1:
            key = b""
    if stack or not found:
        return None
    elements = [e.strip() for e in elements]
    return [] if elements == [b""] else elements
