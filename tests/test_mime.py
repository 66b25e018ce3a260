"""The bytes the delivery path writes, and its rounds over the queue."""

from email import message_from_bytes, policy
from email.policy import compat32

import pytest
from django.core.mail import EmailMultiAlternatives
from post_office.models import STATUS, Email

from weekly_reports import mime
from weekly_reports.delivery import deliver_due


@pytest.fixture
def report_message():
    message = EmailMultiAlternatives(
        subject="Wöchentlicher Bericht für Ünïcødé GmbH (ünïcødé.example), 2026-W48",
        body="Plain text\nwith two lines.\n",
        from_email="OWASP BLT <reports@blt.example>",
        to=["Zoë <admin@acme.example>"],
        headers={
            "List-Unsubscribe": "<https://blt.example/weekly-reports/unsubscribe/"
            "1:QNnkOJqPPzEkCkNVW9lmsNbQe7Kk8dxdd62TroTh3Kw/>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "Auto-Submitted": "auto-generated",
        },
    )
    message.attach_alternative("<p>HTML</p>\n" * 50, "text/html")
    return message


def test_written_bytes_are_those_djangos_generator_writes(report_message):
    mime_message = report_message.message()

    written = mime.as_bytes(mime_message)

    assert written == mime_message.as_bytes(linesep="\r\n")


def test_each_multipart_part_gets_a_boundary_before_it_is_written(report_message):
    report_message.attach("report.txt", "attached", "text/plain")
    mime_message = report_message.message()

    mime.as_bytes(mime_message)

    boundaries = [
        part.get_boundary() for part in mime_message.walk() if part.is_multipart()
    ]
    assert len(boundaries) == 2
    assert len(set(boundaries)) == 2
    assert all(boundary.startswith("=" * 15) for boundary in boundaries)


def test_written_message_parses_back_with_its_parts_and_headers(report_message):
    parsed = message_from_bytes(
        mime.as_bytes(report_message.message()), policy=policy.default
    )

    assert parsed["To"] == "Zoë <admin@acme.example>"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed.get_body(("html",)).get_content() == "<p>HTML</p>\r\n" * 50


@pytest.mark.parametrize(
    "value",
    [
        "",
        " leading and trailing ",
        "tabs\tand  double  spaces",
        "=?utf-8?q?looks_encoded?=",
        "x" * 68,
        "x" * 69,
        "one two three four five six seven eight nine ten eleven twelve thirteen",
    ],
)
def test_short_ascii_headers_are_folded_as_compat32_folds_them(value):
    name = "Subject"

    folded = mime._POLICY.fold_binary(name, value)

    assert folded == compat32.clone(linesep="\r\n").fold_binary(name, value)


@pytest.fixture
def queued_emails(db):
    return Email.objects.bulk_create(
        Email(
            from_email="reports@blt.example",
            to=[f"admin{number}@acme.example"],
            subject=f"Report {number}",
            message="Text",
            html_message="<p>HTML</p>",
            status=STATUS.queued,
        )
        for number in range(5)
    )


@pytest.mark.django_db
def test_deliver_due_takes_rounds_until_the_queue_is_empty(queued_emails, smtp_server):
    totals = deliver_due(round_size=2)

    assert totals == (5, 0, 0)
    assert sorted(smtp_server.recipients()) == [
        f"admin{number}@acme.example" for number in range(5)
    ]
