"""Bad input, all the way to the message a real SMTP server receives.

Domain emails that are invalid, internationalized, padded, upper-case or
shared; issue descriptions that are huge, right-to-left, full of control
characters, markup or template syntax, or emoji across the cut; NULL views,
statuses and dates; a template broken in the database; bad ``--week`` and
``--domain`` values. Two property-based tests run many generated
descriptions and addresses through the whole run.
"""

import datetime
import itertools
from html.parser import HTMLParser

import pytest
import regex
from django.core.management import CommandError
from django.core.validators import validate_email
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from post_office.models import Email, EmailTemplate

from tests.factories import DomainFactory, IssueFactory
from tests.subprocesses import WEEK as WEEK_NAME
from tests.subprocesses import environment, manage
from weekly_reports.models import Delivery, Subscription
from weekly_reports.weeks import IsoWeek

pytestmark = pytest.mark.django_db

WEEK = IsoWeek(2026, 48)
IN_WEEK = WEEK.start + datetime.timedelta(days=2)
ELLIPSIS = "…"

FAMILY = "\U0001f469\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"
FLAG = "\U0001f1f3\U0001f1f1"
THUMBS_UP_MEDIUM = "\U0001f44d\U0001f3fd"
KEYCAP_ONE = "1\ufe0f\u20e3"
E_ACUTE = "e\u0301"
ARABIC = "ثغرة في صفحة تسجيل الدخول تكشف رمز الجلسة"
HEBREW = "שגיאה בטופס ההרשמה"


@pytest.fixture
def run(site, smtp_server, run_weekly):
    """Run WEEK; return the result."""

    def run_week(*args):
        return run_weekly("--week", str(WEEK), *args)

    return run_week


@pytest.fixture
def domain(site):
    return DomainFactory(name="acme.example", email="team@acme.example")


@pytest.fixture
def shown_description(domain, run, smtp_server):
    """Report one issue with this description; return how the received
    message shows it, as ``(text part, HTML part's text)``."""

    def report(description):
        IssueFactory(domain=domain, description=description, created=IN_WEEK)
        run()
        (received,) = smtp_server.received
        return description_in_text(received.text), description_in_html(received.html)

    return report


def description_in_text(text):
    """The description of the first recent issue in the text part."""
    (line,) = [line for line in text.splitlines() if line.startswith(" 1. ")]
    return line.removeprefix(" 1. ")


class IssueTextParser(HTMLParser):
    """Collects the text of each ``<p class="issue-text">``."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.texts = []
        self._inside = False

    def handle_starttag(self, tag, attrs):
        if tag == "p" and "issue-text" in (dict(attrs).get("class") or ""):
            self._inside = True
            self.texts.append("")

    def handle_endtag(self, tag):
        if tag == "p":
            self._inside = False

    def handle_data(self, data):
        if self._inside:
            self.texts[-1] += data


def description_in_html(html):
    parser = IssueTextParser()
    parser.feed(html)
    (text,) = parser.texts
    return text


def nothing_written():
    return not Delivery.objects.exists() and not Email.objects.exists()


def ledger_row(name="acme.example"):
    row = Delivery.objects.get(domain_name=name)
    return row.status, row.reason


# Domain emails


@pytest.mark.parametrize(
    "email",
    [
        "not-an-email",
        "two@@at.example",
        "trailing-dot@example.",
        "josé@example.com",
        "a space@example.com",
        "Team <team@acme.example>",
        "team@acme.example, boss@acme.example",
        "team@acme.example\r\nBcc: victim@example.org",
    ],
)
def test_domain_with_an_invalid_email_is_skipped_and_sent_nothing(
    site, run, smtp_server, email
):
    DomainFactory(name="acme.example", email=email)

    result = run()

    assert result.last_line == (
        "Weekly reports for 2026-W48: 0 sent, 1 skipped, 0 failed, 0 already sent"
    )
    assert ledger_row() == ("skipped", "invalid_email")
    assert smtp_server.received == []


def test_idn_email_domain_is_delivered_to_its_punycode_form(site, run, smtp_server):
    DomainFactory(name="acme.example", email="security@bücher.example")

    result = run()

    assert result.exit_status == 0
    assert smtp_server.recipients() == ["security@xn--bcher-kva.example"]
    assert ledger_row() == ("sent", "")


def test_email_padded_with_white_space_is_sent_to_the_stripped_address(
    site, run, smtp_server
):
    DomainFactory(name="acme.example", email=" \t Team@Acme.example \r\n")

    run()

    assert smtp_server.recipients() == ["Team@Acme.example"]
    assert smtp_server.received[0].message["To"] == "Team@Acme.example"


def test_upper_case_email_is_sent_to_as_written(site, run, smtp_server):
    DomainFactory(name="acme.example", email="SECURITY@ACME.EXAMPLE")

    run()

    assert smtp_server.recipients() == ["SECURITY@ACME.EXAMPLE"]


def test_email_shared_by_two_domains_gets_one_report_for_each(site, run, smtp_server):
    for name in ("shop.acme.example", "www.acme.example"):
        DomainFactory(name=name, email="security@acme.example")

    run()

    assert smtp_server.recipients() == ["security@acme.example"] * 2
    subjects = [received.message["Subject"] for received in smtp_server.received]
    assert [("shop.acme.example" in s, "www.acme.example" in s) for s in subjects] == [
        (True, False),
        (False, True),
    ]


def test_email_shared_by_two_domains_gets_nothing_more_on_a_rerun(
    site, run, smtp_server
):
    for name in ("shop.acme.example", "www.acme.example"):
        DomainFactory(name=name, email="security@acme.example")
    run()

    rerun = run()

    assert len(smtp_server.received) == 2
    assert rerun.last_line == (
        "Weekly reports for 2026-W48: 0 sent, 0 skipped, 0 failed, 2 already sent"
    )


def test_extra_recipient_differing_only_in_case_gets_no_second_message(
    domain, run, smtp_server
):
    Subscription.objects.create(domain=domain, extra_recipients="TEAM@ACME.EXAMPLE")

    run()

    assert smtp_server.recipients() == ["team@acme.example"]


# Issue descriptions


def test_megabyte_description_arrives_cut_to_100_characters(
    shown_description, smtp_server
):
    text, html = shown_description("z" * 1_000_000)

    assert (text, html) == ("z" * 100 + ELLIPSIS, "z" * 100 + ELLIPSIS)
    assert len(smtp_server.received[0].raw) < 100_000


@pytest.mark.parametrize("description", [ARABIC, HEBREW, f"{ARABIC} (login.php)"])
def test_right_to_left_description_arrives_intact(shown_description, description):
    assert shown_description(description) == (description, description)


def test_right_to_left_description_is_cut_by_what_a_reader_sees(shown_description):
    # 25 letters with a vowel mark each: 50 code points, 25 characters.
    voweled = "بَ" * 25

    text, _ = shown_description(voweled * 5)

    assert text == voweled * 4 + ELLIPSIS


def test_control_characters_never_reach_the_message(shown_description):
    text, html = shown_description("\x07Bell\x1b[31m red\x7f\x9b text\x08")

    assert (text, html) == ("Bell[31m red text", "Bell[31m red text")


def test_markup_in_a_description_is_text_in_the_html_part(
    shown_description, smtp_server
):
    markup = '"><img src=x onerror=alert(1)><script>alert(2)</script>'

    text, html = shown_description(markup)

    assert (text, html) == (markup, markup)
    assert "<img" not in smtp_server.received[0].html
    assert "<script" not in smtp_server.received[0].html


def test_template_syntax_in_a_description_is_shown_and_never_run(
    shown_description, smtp_server, settings
):
    syntax = "{{ settings.SECRET_KEY }} {% debug %} {% load static %}{# hi #}"

    text, html = shown_description(syntax)

    assert (text, html) == (syntax, syntax)
    assert settings.SECRET_KEY not in smtp_server.received[0].raw.decode()


@pytest.mark.parametrize(
    "cluster", [FAMILY, FLAG, THUMBS_UP_MEDIUM, KEYCAP_ONE, E_ACUTE]
)
def test_cluster_straddling_the_cut_is_kept_whole(shown_description, cluster):
    text, html = shown_description("a" * 99 + cluster + "tail")

    assert (text, html) == ("a" * 99 + cluster + ELLIPSIS,) * 2


@pytest.mark.parametrize("cluster", [FAMILY, FLAG, THUMBS_UP_MEDIUM, KEYCAP_ONE])
def test_cluster_just_past_the_cut_is_left_out_whole(shown_description, cluster):
    text, _ = shown_description("a" * 100 + cluster)

    assert text == "a" * 100 + ELLIPSIS


# NULL views, statuses and dates


def test_issues_with_null_views_status_and_closed_date_are_reported(
    domain, run, smtp_server
):
    IssueFactory(domain=domain, views=None, status=None, created=IN_WEEK)
    IssueFactory(domain=domain, status="closed", closed_date=None, created=IN_WEEK)

    result = run()

    assert result.exit_status == 0
    text = smtp_server.received[0].text
    assert "  Open issues                 1" in text
    assert "  Closed issues               1" in text
    assert "  Closed this week            0" in text
    assert "General · 0 views" in text


# A template broken in the database


@pytest.mark.parametrize(
    ("field", "source", "message"),
    [
        (
            "subject",
            "Weekly {{ week|no_such_filter }}",
            "Email template 'weekly_report' has an error in its subject on line 1: "
            "Invalid filter: 'no_such_filter'",
        ),
        (
            "content",
            "Hello\n\n{% for issue in %}\n{% endfor %}",
            "Email template 'weekly_report' has an error in its text content on "
            "line 3: 'for' statements should have at least four words: for issue in",
        ),
        (
            "html_content",
            "<p>\n<b>{% if open %}</b>\n</p>",
            "Email template 'weekly_report' has an error in its HTML content on "
            "line 2: Unclosed tag on line 2: 'if'. Looking for one of: elif, else, "
            "endif.",
        ),
    ],
)
def test_template_broken_in_the_database_stops_the_run_naming_it_and_the_line(
    domain, run, smtp_server, field, source, message
):
    EmailTemplate.objects.filter(name="weekly_report").update(**{field: source})

    with pytest.raises(CommandError) as error:
        run()

    assert (error.value.returncode, str(error.value)) == (2, message)
    assert nothing_written()
    assert smtp_server.received == []


def test_unknown_tag_library_in_the_template_is_reported_on_one_line(domain, run):
    EmailTemplate.objects.filter(name="weekly_report").update(
        html_content="<p>\n{% load no_such_library %}</p>"
    )

    with pytest.raises(CommandError) as error:
        run()

    assert str(error.value).startswith(
        "Email template 'weekly_report' has an error in its HTML content on line 2: "
        "'no_such_library' is not a registered tag library. Must be one of: admin_list"
    )
    assert "\n" not in str(error.value)


def test_template_that_fails_only_when_rendered_stops_the_run_before_queueing(
    domain, run, smtp_server
):
    EmailTemplate.objects.filter(name="weekly_report").update(
        content='{% include "no_such_file.txt" %}'
    )

    with pytest.raises(CommandError) as error:
        run()

    assert (error.value.returncode, str(error.value)) == (
        2,
        "Email template 'weekly_report' fails to render: no_such_file.txt",
    )
    assert nothing_written()


# Bad --week and --domain values, as a shell sees them


@pytest.fixture
def command_line(side_database, tmp_path):
    """Run ``manage.py run_weekly`` with these arguments in a subprocess."""

    def run(*args):
        env = environment(side_database, 1, tmp_path / "tmp")
        return manage(env, "run_weekly", *args)

    return run


@pytest.mark.parametrize(
    ("week", "message"),
    [
        ("bogus", "--week must look like 2026-W48, not 'bogus'."),
        ("", "--week must look like 2026-W48, not ''."),
        ("2026-48", "--week must look like 2026-W48, not '2026-48'."),
        ("2026-W00", "--week '2026-W00' is not a week of 2026."),
        ("2026-W54", "--week '2026-W54' is not a week of 2026."),
        ("2021-W53", "--week '2021-W53' is not a week of 2021."),
        ("9999-W52", "--week '9999-W52' ends past the last date."),
    ],
)
def test_bad_week_exits_2_with_one_line(command_line, side_database, week, message):
    result = command_line("--week", week)

    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [f"CommandError: {message}"]
    assert side_database.value("SELECT COUNT(*) FROM weekly_reports_delivery") == 0


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["nope.example"], "--domain names no known domain: 'nope.example'."),
        ([""], "--domain names no known domain: ''."),
        (["app01.example\n"], "--domain names no known domain: 'app01.example\\n'."),
        (
            ["app01.example", "b.example", "a.example"],
            "--domain names no known domain: 'a.example', 'b.example'.",
        ),
    ],
)
def test_unknown_domain_exits_2_with_one_line(
    command_line, side_database, names, message
):
    arguments = itertools.chain.from_iterable(("--domain", name) for name in names)

    result = command_line("--week", WEEK_NAME, *arguments)

    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [f"CommandError: {message}"]
    assert side_database.value("SELECT COUNT(*) FROM weekly_reports_delivery") == 0


def test_template_broken_in_the_database_exits_2_with_one_line(
    command_line, side_database
):
    side_database.execute(
        "UPDATE post_office_emailtemplate SET html_content = "
        "'<p>{% load no_such_library %}</p>' WHERE name = 'weekly_report'"
    )

    result = command_line("--week", WEEK_NAME)

    assert (result.returncode, result.stdout) == (2, "")
    (line,) = result.stderr.splitlines()
    assert line.startswith(
        "CommandError: Email template 'weekly_report' has an error in its HTML "
        "content on line 1: 'no_such_library' is not a registered tag library."
    )
    assert side_database.value("SELECT COUNT(*) FROM post_office_email") == 0


# Properties over generated descriptions and addresses

# Everything a database column can hold: any code point but NUL (which
# PostgreSQL refuses) and lone surrogates (which UTF-8 cannot carry).
ANY_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=300
)
# Text that leans on the awkward cases: combining marks, joiners, emoji,
# right-to-left letters, controls and white space, near the cut.
AWKWARD_TEXT = st.lists(
    st.sampled_from(
        ["a", " ", "\n", "\t", "\x07", "\x85", "\u200d", "\u0301", "\ufe0f", "\u202e"]
        + [FAMILY, FLAG, THUMBS_UP_MEDIUM, KEYCAP_ONE, "ب", "َ", "<", "&", "{{"]
    ),
    min_size=90,
    max_size=130,
).map("".join)
GRAPHEME = regex.compile(r"\X")
CONTROL = regex.compile(r"\p{Cc}")
INVISIBLE_CONTROL = regex.compile(r"[\p{Cc}--\p{White_Space}]", flags=regex.V1)
WHITE_SPACE = regex.compile(r"\p{White_Space}+")
PROPERTY_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

_names = itertools.count()


def visible_words(text):
    """The text as DESIGN.md has a reader see it: control characters gone,
    white space runs made one space, the ends stripped."""
    return WHITE_SPACE.sub(" ", INVISIBLE_CONTROL.sub("", text)).strip()


@PROPERTY_SETTINGS
@given(description=st.one_of(ANY_TEXT, AWKWARD_TEXT))
def test_any_description_is_shown_cleaned_and_cut_between_graphemes(
    site, smtp_server, run_weekly, description
):
    name = f"prop{next(_names)}.example"
    domain = DomainFactory(name=name, email=f"team@{name}")
    IssueFactory(domain=domain, description=description, created=IN_WEEK)
    smtp_server.received.clear()

    run_weekly("--week", str(WEEK), "--domain", name)

    (received,) = smtp_server.received
    text = description_in_text(received.text)
    assert description_in_html(received.html) == text
    assert not CONTROL.search(text)

    words = visible_words(description)
    shown = text.removesuffix(ELLIPSIS) if text != words else text
    clusters = GRAPHEME.findall(shown)
    assert len(clusters) <= 100
    assert GRAPHEME.findall(words)[: len(clusters)] == clusters


ADDRESS_PARTS = st.sampled_from(
    ["team", "Team", "a.b", "x+y", "josé", "bücher", "example", "xn--bcher-kva"]
    + ["@", "@", ".", " ", "\t", "\r\n", ",", "<", ">", '"', "[127.0.0.1]", "-"]
)
ADDRESSES = st.one_of(
    st.emails(),
    st.tuples(
        st.sampled_from(["", " ", "\t"]), st.emails(), st.sampled_from(["", " "])
    ).map("".join),
    st.lists(ADDRESS_PARTS, max_size=8).map("".join),
    st.text(
        alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40
    ),
)


def is_valid(address):
    try:
        validate_email(address)
    except Exception:
        return False
    return True


def envelope_forms(address):
    """The spellings an SMTP envelope may carry: as stored, or with the
    domain in its ASCII (IDNA) form."""
    local, _, domain = address.rpartition("@")
    forms = {address.casefold()}
    try:
        forms.add(f"{local}@{domain.encode('idna').decode()}".casefold())
    except UnicodeError:
        pass
    return forms


@PROPERTY_SETTINGS
@given(email=ADDRESSES.filter(lambda address: len(address) <= 200))
def test_any_domain_email_is_skipped_or_mailed_once_or_failed_with_a_reason(
    site, smtp_server, run_weekly, email
):
    name = f"prop{next(_names)}.example"
    DomainFactory(name=name, email=email)
    smtp_server.received.clear()

    run_weekly("--week", str(WEEK), "--domain", name)

    row = Delivery.objects.get(domain_name=name)
    stripped = email.strip()
    if not stripped:
        assert (row.status, row.reason) == ("skipped", "no_email")
    elif not is_valid(stripped):
        assert (row.status, row.reason) == ("skipped", "invalid_email")
    elif row.status == "failed":
        assert row.error
        assert smtp_server.received == []
    else:
        assert (row.status, row.recipients) == ("sent", stripped)
        (received,) = smtp_server.received
        (recipient,) = received.rcpt_tos
        assert recipient.casefold() in envelope_forms(stripped)
        assert "\n" not in received.message["To"]
