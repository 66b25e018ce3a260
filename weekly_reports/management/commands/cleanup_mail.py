from post_office.management.commands import cleanup_mail


class Command(cleanup_mail.Command):
    # post_office's own help describes another command ("Place deferred
    # messages back in the queue."); the behaviour is post_office's.
    help = (
        "Delete post_office's mail and logs older than --days (90 by default), "
        "with --delete-attachments their attachment files too. The weekly "
        "reports' ledger keeps every domain's state for each week."
    )
