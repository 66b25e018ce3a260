"""A slim copy of the OWASP BLT models that weekly reports read.

Field names, types and nullability follow BLT, so BLT's fixtures load here
unchanged and the reports app behaves the same in both places.
"""

from django.db import models


class Organization(models.Model):
    name = models.CharField(max_length=255)
    url = models.URLField(unique=True)
    email = models.EmailField(null=True, blank=True)  # noqa: DJ001 (as in BLT)
    created = models.DateTimeField(auto_now_add=True)
    modified = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Domain(models.Model):
    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.SET_NULL
    )
    name = models.CharField(max_length=255, unique=True)
    url = models.URLField()
    email = models.EmailField(null=True, blank=True)  # noqa: DJ001 (as in BLT)
    is_active = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)
    modified = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Issue(models.Model):
    class Label(models.IntegerChoices):
        GENERAL = 0, "General"
        NUMBER_ERROR = 1, "Number Error"
        FUNCTIONAL = 2, "Functional"
        PERFORMANCE = 3, "Performance"
        SECURITY = 4, "Security"
        TYPO = 5, "Typo"
        DESIGN = 6, "Design"
        SERVER_DOWN = 7, "Server Down"
        TRADEMARK_SQUATTING = 8, "Trademark Squatting"

    domain = models.ForeignKey(Domain, null=True, blank=True, on_delete=models.CASCADE)
    url = models.URLField()
    description = models.TextField()
    status = models.CharField(  # noqa: DJ001 (as in BLT)
        max_length=10, null=True, blank=True, default="open"
    )
    views = models.IntegerField(null=True, blank=True)
    label = models.PositiveSmallIntegerField(choices=Label.choices, default=0)
    created = models.DateTimeField(auto_now_add=True)
    modified = models.DateTimeField(auto_now=True)
    closed_date = models.DateTimeField(null=True, blank=True)
    is_hidden = models.BooleanField(default=False)

    class Meta:
        indexes = [
            # The weekly figures group by domain and read the newest first.
            models.Index(
                fields=["domain", "-created", "-id"], name="issue_domain_recent"
            ),
        ]

    def __str__(self):
        return f"Issue #{self.pk} on {self.domain}"
