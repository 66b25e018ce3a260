"""The admin's list of domains with their report state."""

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse

from tests.factories import DomainFactory, OrganizationFactory
from weekly_reports.models import Delivery, Subscription
from weekly_reports.weeks import IsoWeek

pytestmark = pytest.mark.django_db

WEEK = IsoWeek(2026, 48)
CHANGELIST = reverse("admin:weekly_reports_reportdomain_changelist")


def toggle_url(domain):
    return reverse("admin:weekly_reports_reportdomain_toggle", args=[domain.pk])


def change_url(domain):
    return reverse("admin:weekly_reports_reportdomain_change", args=[domain.pk])


def listed(client, query=""):
    """Names of the domains the list shows for this query string."""
    response = client.get(f"{CHANGELIST}?{query}")
    assert response.status_code == 200
    return [domain.name for domain in response.context["cl"].result_list]


def messages_of(response):
    return [str(message) for message in get_messages(response.wsgi_request)]


def is_subscribed(domain):
    subscription = Subscription.objects.filter(domain=domain).first()
    return None if subscription is None else subscription.is_subscribed


def unsubscribe(domain, source=Subscription.Source.ADMIN):
    subscription = Subscription.objects.create(domain=domain)
    subscription.set_subscribed(False, source)
    return subscription


@pytest.fixture
def acme():
    return DomainFactory(name="acme.example", email="team@acme.example")


@pytest.fixture
def globex():
    return DomainFactory(name="globex.example", email="ops@globex.example")


def inline_data(domain, is_subscribed=True, extra_recipients=""):
    """A POST of the domain's change form with its one inline form."""
    subscription = Subscription.objects.filter(domain=domain).first()
    prefix = "weekly_report_subscription"
    data = {
        f"{prefix}-TOTAL_FORMS": "1",
        f"{prefix}-INITIAL_FORMS": "1" if subscription else "0",
        f"{prefix}-MIN_NUM_FORMS": "1",
        f"{prefix}-MAX_NUM_FORMS": "1",
        f"{prefix}-0-extra_recipients": extra_recipients,
        f"{prefix}-0-domain": str(domain.pk),
        "_save": "Save",
    }
    if subscription:
        data[f"{prefix}-0-id"] = str(subscription.pk)
    if is_subscribed:
        data[f"{prefix}-0-is_subscribed"] = "on"
    return data


# The list


def test_list_shows_every_domain_including_those_nobody_turned_on_or_off(
    admin_client, acme, globex
):
    unsubscribe(globex)

    assert listed(admin_client) == ["acme.example", "globex.example"]


def test_domain_nobody_turned_off_shows_on_when_reports_are_on_by_default(
    admin_client, acme
):
    response = admin_client.get(CHANGELIST)

    assert 'class="weekly-report-toggle is-on"' in response.content.decode()


def test_domain_nobody_turned_on_shows_off_when_reports_are_off_by_default(
    settings, admin_client, acme
):
    settings.WEEKLY_REPORTS = {"SUBSCRIBED_BY_DEFAULT": False}

    response = admin_client.get(CHANGELIST)

    assert 'class="weekly-report-toggle is-off"' in response.content.decode()


def test_list_shows_how_and_when_a_domain_unsubscribed(admin_client, acme):
    subscription = unsubscribe(acme, Subscription.Source.UNSUBSCRIBE_LINK)
    subscription.changed_at = subscription.changed_at.replace(
        year=2026, month=12, day=1, hour=7, minute=30
    )
    subscription.save()

    response = admin_client.get(CHANGELIST)

    assert "unsubscribe link, 2026-12-01 07:30" in response.content.decode()


def test_list_links_the_last_report_to_the_domains_ledger_rows(admin_client, acme):
    Delivery.objects.create(
        domain=acme, domain_name=acme.name, week="2026-W48", status="sent"
    )

    response = admin_client.get(CHANGELIST)

    ledger = reverse("admin:weekly_reports_delivery_changelist")
    link = f'<a href="{ledger}?domain__id__exact={acme.pk}">2026-W48: sent</a>'
    assert link in response.content.decode()


def test_list_counts_the_extra_recipients_beside_the_email(admin_client, acme):
    Subscription.objects.create(domain=acme, extra_recipients="a@x.org\nb@x.org")

    response = admin_client.get(CHANGELIST)

    assert (
        'team@acme.example <span class="weekly-report-extras">+2 more</span>'
        in response.content.decode()
    )


def test_list_marks_a_missing_email(admin_client):
    DomainFactory(name="acme.example", email=None)

    response = admin_client.get(CHANGELIST)

    assert '<span class="weekly-report-problem">missing</span>' in (
        response.content.decode()
    )


def test_list_costs_the_same_queries_for_twenty_domains_as_for_two(
    admin_client, django_assert_max_num_queries
):
    DomainFactory.create_batch(2)
    with django_assert_max_num_queries(12) as few:
        admin_client.get(CHANGELIST)

    DomainFactory.create_batch(18)
    with django_assert_max_num_queries(len(few)):
        admin_client.get(CHANGELIST)


def test_list_offers_no_way_to_add_or_delete_a_host_domain(admin_client, acme):
    response = admin_client.get(CHANGELIST)

    assert response.context["has_add_permission"] is False
    assert "delete_selected" not in response.content.decode()


# Search and filters


def test_search_finds_a_domain_by_name(admin_client, acme, globex):
    assert listed(admin_client, "q=globex") == ["globex.example"]


def test_search_finds_a_domain_by_its_organizations_name(admin_client, acme):
    DomainFactory(name="initech.example", organization=OrganizationFactory(name="Ini"))

    assert listed(admin_client, "q=Ini") == ["initech.example"]


def test_report_filter_off_lists_the_domains_that_get_nothing(
    admin_client, acme, globex
):
    unsubscribe(globex)

    assert listed(admin_client, "report=off") == ["globex.example"]


def test_report_filter_on_counts_domains_nobody_turned_on_or_off(
    admin_client, acme, globex
):
    unsubscribe(globex)

    assert listed(admin_client, "report=on") == ["acme.example"]


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("valid", ["good.example"]),
        ("invalid", ["bad.example"]),
        ("missing", ["blank.example", "none.example"]),
    ],
)
def test_email_filter_judges_addresses_as_a_run_does(admin_client, state, expected):
    DomainFactory(name="good.example", email=" Team@Good.example ")
    DomainFactory(name="bad.example", email="j\u00f6rg@bad.example")
    DomainFactory(name="blank.example", email="  ")
    DomainFactory(name="none.example", email=None)

    assert listed(admin_client, f"email={state}") == expected


def test_last_report_filter_lists_domains_whose_last_report_failed(
    admin_client, acme, globex
):
    Delivery.objects.create(
        domain=acme, domain_name=acme.name, week="2026-W47", status="failed"
    )
    Delivery.objects.create(
        domain=acme, domain_name=acme.name, week="2026-W48", status="sent"
    )
    Delivery.objects.create(
        domain=globex, domain_name=globex.name, week="2026-W48", status="failed"
    )

    assert listed(admin_client, "last_report=failed") == ["globex.example"]


def test_last_report_filter_never_lists_domains_without_a_report(
    admin_client, acme, globex
):
    Delivery.objects.create(
        domain=acme, domain_name=acme.name, week="2026-W48", status="sent"
    )

    assert listed(admin_client, "last_report=never") == ["globex.example"]


def test_changed_through_filter_lists_domains_unsubscribed_by_link(
    admin_client, acme, globex
):
    unsubscribe(acme, Subscription.Source.ADMIN)
    unsubscribe(globex, Subscription.Source.UNSUBSCRIBE_LINK)

    assert listed(admin_client, "changed_through=unsubscribe_link") == [
        "globex.example"
    ]


def test_changed_through_default_includes_domains_without_a_row(admin_client, acme):
    assert listed(admin_client, "changed_through=default") == ["acme.example"]


def test_filters_with_facet_counts_render(admin_client, acme):
    response = admin_client.get(f"{CHANGELIST}?_facets=True&email=valid")

    assert response.status_code == 200


# The toggle


def test_toggle_turns_the_report_off(admin_client, acme):
    admin_client.post(toggle_url(acme), {"report": "off"})

    assert is_subscribed(acme) is False


def test_toggle_records_the_admin_as_the_source(admin_client, acme):
    admin_client.post(toggle_url(acme), {"report": "off"})

    assert Subscription.objects.get(domain=acme).changed_by == "admin"


def test_toggle_turns_the_report_back_on(admin_client, acme):
    unsubscribe(acme)

    admin_client.post(toggle_url(acme), {"report": "on"})

    assert is_subscribed(acme) is True


def test_toggle_says_what_it_did(admin_client, acme):
    response = admin_client.post(toggle_url(acme), {"report": "off"})

    assert messages_of(response) == ["The weekly report for acme.example is now off."]


def test_toggle_to_the_current_state_says_so_and_changes_nothing(admin_client, acme):
    response = admin_client.post(toggle_url(acme), {"report": "on"})

    assert messages_of(response) == [
        "The weekly report for acme.example was already on."
    ]
    assert not Subscription.objects.exists()


def test_toggle_returns_to_the_filtered_list_it_was_pressed_in(admin_client, acme):
    filtered = f"http://testserver{CHANGELIST}?report=on&q=acme"

    response = admin_client.post(
        toggle_url(acme), {"report": "off"}, headers={"referer": filtered}
    )

    assert response.url == filtered


def test_toggle_ignores_a_referer_on_another_site(admin_client, acme):
    response = admin_client.post(
        toggle_url(acme),
        {"report": "off"},
        headers={"referer": f"https://evil.example{CHANGELIST}"},
    )

    assert response.url == CHANGELIST


def test_toggle_answers_get_with_405_and_changes_nothing(admin_client, acme):
    response = admin_client.get(toggle_url(acme), {"report": "off"})

    assert response.status_code == 405
    assert not Subscription.objects.exists()


def test_toggle_with_an_unknown_state_changes_nothing(admin_client, acme):
    admin_client.post(toggle_url(acme), {"report": "sideways"})

    assert not Subscription.objects.exists()


def test_toggle_of_a_domain_that_does_not_exist_is_404(admin_client, acme):
    url = reverse("admin:weekly_reports_reportdomain_toggle", args=[acme.pk + 99])

    response = admin_client.post(url, {"report": "off"})

    assert response.status_code == 404


def test_toggle_is_written_to_the_domains_history(admin_client, acme):
    admin_client.post(toggle_url(acme), {"report": "off"})

    response = admin_client.get(
        reverse("admin:weekly_reports_reportdomain_history", args=[acme.pk])
    )
    assert "Turned the weekly report off." in response.content.decode()


def test_toggle_is_refused_to_staff_who_may_only_view(client, django_user_model, acme):
    viewer = django_user_model.objects.create_user("viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_reportdomain"))
    client.force_login(viewer)

    response = client.post(toggle_url(acme), {"report": "off"})

    assert response.status_code == 403
    assert not Subscription.objects.exists()


# Bulk actions


def run_action(client, action, *domains):
    return client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [str(d.pk) for d in domains]},
    )


def test_turn_off_action_turns_every_selected_domain_off(admin_client, acme, globex):
    run_action(admin_client, "turn_report_off", acme, globex)

    assert (is_subscribed(acme), is_subscribed(globex)) == (False, False)


def test_turn_off_action_reports_how_many_changed(admin_client, acme, globex):
    third = DomainFactory(name="initech.example")
    unsubscribe(third)

    response = run_action(admin_client, "turn_report_off", acme, globex, third)

    assert messages_of(response) == [
        "Turned the report off for 2 domains; 1 domain had it off already."
    ]


def test_turn_on_action_reports_one_domain_in_the_singular(admin_client, acme):
    unsubscribe(acme)

    response = run_action(admin_client, "turn_report_on", acme)

    assert messages_of(response) == ["Turned the report on for 1 domain."]


def test_turn_on_action_leaves_a_domain_already_on_without_a_new_record(
    admin_client, acme
):
    run_action(admin_client, "turn_report_on", acme)

    assert not Subscription.objects.exists()


def test_turn_off_action_keeps_the_record_of_a_domain_already_off(admin_client, acme):
    unsubscribe(acme, Subscription.Source.UNSUBSCRIBE_LINK)

    run_action(admin_client, "turn_report_off", acme)

    assert Subscription.objects.get(domain=acme).changed_by == "unsubscribe_link"


# The change page: state and further recipients


def test_change_page_turning_the_report_off_records_the_admin(admin_client, acme):
    admin_client.post(change_url(acme), inline_data(acme, is_subscribed=False))

    subscription = Subscription.objects.get(domain=acme)
    assert (subscription.is_subscribed, subscription.changed_by) == (False, "admin")


def test_change_page_saved_unchanged_creates_no_subscription(admin_client, acme):
    admin_client.post(change_url(acme), inline_data(acme))

    assert not Subscription.objects.exists()


def test_change_page_never_writes_the_hosts_domain(admin_client, acme):
    modified = acme.modified

    admin_client.post(change_url(acme), {**inline_data(acme), "name": "renamed"})

    acme.refresh_from_db()
    assert (acme.name, acme.modified) == ("acme.example", modified)


def test_extra_recipients_are_kept_one_per_line_without_repeats(admin_client, acme):
    typed = "Ann@Example.org, ann@example.org; bob@example.org\n\nBOB@example.org"

    admin_client.post(change_url(acme), inline_data(acme, extra_recipients=typed))

    subscription = Subscription.objects.get(domain=acme)
    assert subscription.extra_recipients == "Ann@Example.org\nbob@example.org"


def test_extra_recipient_equal_to_the_domains_own_address_is_dropped(
    admin_client, acme
):
    typed = "TEAM@acme.example\nann@example.org"

    admin_client.post(change_url(acme), inline_data(acme, extra_recipients=typed))

    assert Subscription.objects.get(domain=acme).extra_recipients == ("ann@example.org")


def test_invalid_extra_recipient_is_refused_naming_it(admin_client, acme):
    typed = "ann@example.org\nnot an address\nj\u00f6rg@example.org"

    response = admin_client.post(
        change_url(acme), inline_data(acme, extra_recipients=typed)
    )

    assert response.status_code == 200
    assert (
        "Not a valid email address: not an address, j\u00f6rg@example.org."
        in response.content.decode()
    )
    assert not Subscription.objects.exists()


def test_change_page_lists_the_recipients_of_the_next_report(admin_client, acme):
    Subscription.objects.create(domain=acme, extra_recipients="ann@example.org")

    response = admin_client.get(change_url(acme))

    assert (
        "<div>team@acme.example</div><div>ann@example.org</div>"
        in response.content.decode()
    )


def test_extra_recipients_saved_in_the_admin_each_get_the_report(
    site, admin_client, acme, smtp_server, run_weekly
):
    typed = "ann@example.org\nAnn@Example.org\nbob@example.org"
    admin_client.post(change_url(acme), inline_data(acme, extra_recipients=typed))

    run_weekly("--week", str(WEEK))

    assert sorted(r for m in smtp_server.received for r in m.rcpt_tos) == [
        "ann@example.org",
        "bob@example.org",
        "team@acme.example",
    ]


def test_domain_turned_off_in_the_list_gets_nothing_from_the_next_run(
    site, admin_client, acme, globex, smtp_server, run_weekly
):
    admin_client.post(toggle_url(acme), {"report": "off"})

    run_weekly("--week", str(WEEK))

    assert [m.rcpt_tos for m in smtp_server.received] == [["ops@globex.example"]]


def test_action_whose_selection_names_no_domain_says_so(admin_client, acme):
    response = admin_client.post(
        CHANGELIST, {"action": "turn_report_off", "_selected_action": ["abc"]}
    )

    assert response.status_code == 302
    assert messages_of(response) == ["The selection names no known item."]
    assert not Subscription.objects.exists()


def test_staff_who_may_change_domains_may_set_extra_recipients(
    client, django_user_model, acme
):
    editor = django_user_model.objects.create_user("editor", is_staff=True)
    editor.user_permissions.add(Permission.objects.get(codename="change_reportdomain"))
    client.force_login(editor)

    client.post(change_url(acme), inline_data(acme, extra_recipients="a@x.org"))

    assert Subscription.objects.get(domain=acme).extra_recipients == "a@x.org"
