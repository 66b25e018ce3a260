"""A real SMTP server on loopback for the tests, built on aiosmtpd.

It records every message it accepts, and can be told to refuse chosen
recipients with a permanent (5xx) or temporary (4xx) answer.
"""

import socket
from dataclasses import dataclass
from email import message_from_bytes, policy

from aiosmtpd.controller import Controller


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list
    raw: bytes

    @property
    def message(self):
        return message_from_bytes(self.raw, policy=policy.default)

    @property
    def text(self):
        return self.message.get_body(preferencelist=("plain",)).get_content()

    @property
    def html(self):
        return self.message.get_body(preferencelist=("html",)).get_content()


class RecordingHandler:
    def __init__(self):
        self.received = []
        self.refusals = {}

    def refuse(self, address, answer="550 5.1.1 Mailbox unavailable"):
        self.refusals[address.casefold()] = answer

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        answer = self.refusals.get(address.casefold())
        if answer:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.received.append(
            Received(
                envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content
            )
        )
        return "250 Message accepted for delivery"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SMTPServer:
    """Starts and stops an aiosmtpd server on 127.0.0.1."""

    def __init__(self):
        self.handler = RecordingHandler()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc_info):
        self.controller.stop()

    @property
    def received(self):
        return self.handler.received

    def refuse(self, address, answer="550 5.1.1 Mailbox unavailable"):
        self.handler.refuse(address, answer)

    def to(self, address):
        """Messages whose envelope named this recipient."""
        wanted = address.casefold()
        return [
            m for m in self.received if wanted in (r.casefold() for r in m.rcpt_tos)
        ]
