"""Reading the small urlencoded forms Folyam accepts, within bounds: bytes, fields and time. Nothing is
parsed before the size is known to be small, so a huge body costs its reading, not a parse."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qsl

from litestar import Request
from litestar.datastructures import State
from litestar.exceptions import HTTPException

from folyam.errors import UserFacingError

__all__ = ["read_form"]

_FORM_TYPE = "application/x-www-form-urlencoded"


async def read_form(
    request: Request[Any, Any, State], *, max_bytes: int, max_fields: int, timeout: float
) -> dict[str, str]:
    """The form's fields (the first value of each name). Clear 4xx errors for another content type, a
    body over `max_bytes` (announced or sent), more than `max_fields` fields, or a body that takes longer
    than `timeout` seconds to arrive."""
    if request.headers.get("content-type", "").partition(";")[0].strip().lower() != _FORM_TYPE:
        raise UserFacingError(415, "Unexpected form", f"Send the form as {_FORM_TYPE}.")
    announced = request.headers.get("content-length", "")
    if announced.isascii() and announced.isdigit() and int(announced) > max_bytes:
        raise _too_large(max_bytes)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_bytes:
                    raise _too_large(max_bytes)
                chunks.append(chunk)
    except TimeoutError:
        raise UserFacingError(408, "Too slow", "The form took too long to arrive; send it again.") from None
    except UserFacingError:
        raise
    except HTTPException as exc:  # Litestar's own body limit, or a client that went away mid-body
        raise UserFacingError(400, "Form incomplete", "The form did not arrive whole; send it again.") from exc
    body = b"".join(chunks)
    if body.count(b"&") >= max_fields:
        raise UserFacingError(400, "Unexpected form", f"A form here has at most {max_fields} fields.")
    try:
        pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, max_num_fields=max_fields, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise UserFacingError(400, "Unexpected form", "The form could not be read; reload the page.") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    return fields


def _too_large(max_bytes: int) -> UserFacingError:
    return UserFacingError(413, "Too long", f"A form here may have at most {max_bytes:,} bytes.")
