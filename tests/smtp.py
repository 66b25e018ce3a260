"""A real SMTP server on loopback for the tests, built on aiosmtpd.

It records every message it accepts, and can be told to misbehave the way
real servers do: refuse chosen recipients with a permanent (5xx) or a
temporary (4xx) answer, answer 4xx a number of times and then accept, hang
up in the middle of a message, hold back its answer to a command until the
test releases it, or not be running at all.

The handlers run on the server's event loop, so waiting is done with
``asyncio.sleep`` and never blocks the other connections. A client that
hangs up while its command is held back cancels that handler, so the server
never records a message whose sender gave up on it.
"""

import asyncio
import socket
import threading
import time
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


class Stall:
    """Holds back the server's answer to one SMTP command until released.

    The first ``after`` commands are answered at once; every later one waits.
    """

    def __init__(self, after=0):
        self.after = after
        self.seen = 0
        self.holding = threading.Event()
        self.released = threading.Event()

    async def hold(self):
        self.seen += 1
        if self.seen <= self.after:
            return

        self.holding.set()
        while not self.released.is_set():
            await asyncio.sleep(0.01)

    def wait_until_holding(self, timeout=10):
        """Block the test until a command is being held; fail after timeout."""
        if not self.holding.wait(timeout):
            raise TimeoutError(f"No command was held within {timeout} s.")

    def release(self):
        self.released.set()


class RecordingHandler:
    def __init__(self):
        self.received = []
        self.refusals = {}
        self.deferrals = {}
        self.stalls = {}
        self.hang_ups = set()
        self.data_commands = 0

    def refuse(self, address, answer="550 5.1.1 Mailbox unavailable"):
        self.refusals[address.casefold()] = answer

    def defer(self, address, times, answer="451 4.3.0 Try again later"):
        self.deferrals[address.casefold()] = [answer, times]

    def stall(self, command, after=0):
        self.stalls[command] = Stall(after)
        return self.stalls[command]

    def hang_up_at(self, data_command):
        self.hang_ups.add(data_command)

    def recover(self):
        """Answer every command at once and accept every recipient."""
        self.refusals.clear()
        self.deferrals.clear()
        self.hang_ups.clear()
        for stall in self.stalls.values():
            stall.release()

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        await self._hold("MAIL")
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        await self._hold("RCPT")
        answer = self.refusals.get(address.casefold())
        if answer:
            return answer

        deferral = self.deferrals.get(address.casefold())
        if deferral and deferral[1] > 0:
            deferral[1] -= 1
            return deferral[0]

        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.data_commands += 1
        if self.data_commands in self.hang_ups:
            # Gone without an answer, as a crashed or restarted server is;
            # losing the connection cancels this handler.
            server.transport.abort()
            await asyncio.sleep(3600)

        await self._hold("DATA")
        self.received.append(
            Received(
                envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content
            )
        )
        return "250 Message accepted for delivery"

    async def _hold(self, command):
        stall = self.stalls.get(command)
        if stall is not None:
            await stall.hold()


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SMTPServer:
    """Starts and stops an aiosmtpd server on 127.0.0.1.

    The port is chosen when the object is made, so a test can point the mail
    settings at a server that is not running yet and ``start()`` it later.
    """

    def __init__(self):
        self.handler = RecordingHandler()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.running = False

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def start(self):
        self.controller.start()
        self.running = True

    def stop(self):
        if self.running:
            self.controller.stop()
            self.running = False

    @property
    def received(self):
        return self.handler.received

    def refuse(self, address, answer="550 5.1.1 Mailbox unavailable"):
        self.handler.refuse(address, answer)

    def defer(self, address, times, answer="451 4.3.0 Try again later"):
        """Answer ``answer`` to this recipient ``times`` times, then accept."""
        self.handler.defer(address, times, answer)

    def stall(self, command, after=0):
        """Hold back the answer to ``command`` ("MAIL", "RCPT" or "DATA")
        after the first ``after`` of them; return the Stall to release."""
        return self.handler.stall(command, after)

    def hang_up_at(self, data_command):
        """Drop the connection, unanswered, at the n-th DATA command (from 1)."""
        self.handler.hang_up_at(data_command)

    def recover(self):
        self.handler.recover()

    def wait_for_messages(self, count, timeout=10):
        """Block until ``count`` messages were accepted; fail after timeout."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{len(self.received)} of {count} messages arrived in {timeout} s."
                )
            time.sleep(0.01)

    def recipients(self):
        """Every envelope recipient of every accepted message, in order."""
        return [address for message in self.received for address in message.rcpt_tos]

    def to(self, address):
        """Messages whose envelope named this recipient."""
        wanted = address.casefold()
        return [
            m for m in self.received if wanted in (r.casefold() for r in m.rcpt_tos)
        ]
