class ReportError(Exception):
    """Base of the errors that stop a weekly run before it queues anything.

    The message is one sentence naming what is wrong and how to fix it; the
    command prints it as its only error line.
    """


class TemplateProblem(ReportError):
    """The email template is missing or does not compile."""
