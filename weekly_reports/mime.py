"""Sending a prepared message over Django's SMTP backend at less cost.

Django's backend turns each message into bytes with the standard library's
generator, and two of its steps took about a sixth of the CPU that delivering a
report cost. The generator picks a multipart boundary and then compiles a
regular expression, a new one for every message, to prove that no line of the
message repeats it. And it folds every header through an
``email.header.Header`` object, even the short ASCII ones that need no folding
at all. Here the boundary is a 128-bit random token chosen before the message
is written, and a header that fits on its line is written directly, byte for
byte as compat32 would write it. The message itself, its parts, encodings and
headers, is still built by Django.
"""

import functools
import secrets
from email import generator
from email.policy import Compat32
from io import BytesIO

from django.conf import settings
from django.core.mail.backends.smtp import EmailBackend
from django.core.mail.message import sanitize_address


class _Compat32(Compat32):
    """compat32, with a shortcut for a header that needs no folding."""

    def fold_binary(self, name, value):
        limit = self.max_line_length
        fits = (
            limit
            and isinstance(value, str)
            and value.isascii()
            and "\r" not in value
            and "\n" not in value
            and len(name) + 2 + len(value) <= limit
        )
        if fits:
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


@functools.lru_cache(maxsize=16)
def _envelope_sender(address, encoding):
    # Every message has the same sender, and parsing it costs as much as
    # writing the message's headers.
    return sanitize_address(address, encoding)


# RFC 5321, section 2.3.8: lines on the wire end in CRLF.
_POLICY = _Compat32(linesep="\r\n")


def _set_boundaries(mime_message):
    """Give each multipart part a boundary, so the generator need not search
    the message for one.

    The content was written before the 128 random bits were drawn, so it
    cannot hold the boundary but by a chance of one in 2**128. The token is
    framed with "=" as the generator frames its own.
    """
    for part in mime_message.walk():
        if part.is_multipart() and part.get_boundary() is None:
            part.set_boundary(f"{'=' * 15}{secrets.token_hex(16)}==")


def as_bytes(mime_message):
    """The bytes of a message built by Django, as they go on the wire."""
    _set_boundaries(mime_message)
    buffer = BytesIO()
    writer = generator.BytesGenerator(buffer, mangle_from_=False, policy=_POLICY)
    writer.flatten(mime_message)
    return buffer.getvalue()


def send(connection, email_message):
    """Send one message over an open mail connection.

    Over Django's own SMTP backend this does what its ``send_messages()``
    does with one message, but writes the bytes with ``as_bytes()`` above.
    Any other backend, including a subclass of the SMTP one that may sign or
    rewrite messages, sends the message itself.
    """
    if type(connection) is not EmailBackend:
        connection.send_messages([email_message])
        return

    recipients = email_message.recipients()
    if not recipients:
        return

    encoding = email_message.encoding or settings.DEFAULT_CHARSET
    connection.connection.sendmail(
        _envelope_sender(email_message.from_email, encoding),
        [sanitize_address(address, encoding) for address in recipients],
        as_bytes(email_message.message()),
    )
