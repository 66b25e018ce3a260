"""factory-boy factories for the host's Organization, Domain and Issue."""

import factory
from factory.django import DjangoModelFactory

from blt.website.models import Domain, Issue, Organization


class OrganizationFactory(DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Organization {n}")
    url = factory.Sequence(lambda n: f"https://organization{n}.example.org")


class DomainFactory(DjangoModelFactory):
    class Meta:
        model = Domain

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"app{n}.example.com")
    url = factory.LazyAttribute(lambda domain: f"https://{domain.name}/")
    email = factory.LazyAttribute(lambda domain: f"security@{domain.name}")
    is_active = True


class IssueFactory(DjangoModelFactory):
    """An open, visible, general issue with no views.

    ``created`` may be passed and is kept: ``IssueFactory(created=moment)``.
    """

    class Meta:
        model = Issue
        # The hook below stores what it needs itself; a second save() would
        # only bump ``modified``.
        skip_postgeneration_save = True

    domain = factory.SubFactory(DomainFactory)
    url = factory.Sequence(lambda n: f"https://app.example.com/page/{n}")
    description = factory.Sequence(lambda n: f"Issue number {n}")
    status = "open"
    views = 0
    label = Issue.Label.GENERAL
    is_hidden = False
    closed_date = None

    @factory.post_generation
    def created(issue, create, extracted, **kwargs):
        # auto_now_add makes save() replace any given value with the current
        # time, so a chosen one is written afterwards with an UPDATE, which
        # does not call pre_save.
        if extracted is None:
            return

        issue.created = extracted
        if create:
            Issue.objects.filter(pk=issue.pk).update(created=extracted)
