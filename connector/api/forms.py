"""The catalog UI's form posts as a dict of fields: ``application/x-www-form-urlencoded``, and
``multipart/form-data`` for a form with a file (an uploaded file is read as UTF-8 text under
its field's name).

The body is bounded by the catalog surface's limit (``connector.api.limits``) before it is
read here. Multipart is parsed with the standard library's MIME parser: the form is ours and
small, and it spares the server a multipart dependency.
"""

from __future__ import annotations

from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from urllib.parse import parse_qsl

from fastapi import Request

from connector.errors import BadRequestError

URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"


async def form_fields(request: Request) -> dict[str, str]:
    media = request.headers.get("content-type", "")
    essence = media.split(";")[0].strip().lower()
    if essence == URLENCODED:
        return dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
    if essence == MULTIPART:
        return _multipart(media, await request.body())
    raise BadRequestError(f"expected a form ({URLENCODED} or {MULTIPART})")


def _multipart(media: str, body: bytes) -> dict[str, str]:
    head = f"Content-Type: {media}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1", "replace")
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise BadRequestError("the form's multipart body could not be read")
    fields: dict[str, str] = {}
    parts = message.get_payload()
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, Message):
            continue
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        fields[name] = data.decode("utf-8", "replace")
    return fields
