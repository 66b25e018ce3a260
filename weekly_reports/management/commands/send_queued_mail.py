from post_office.management.commands import send_queued_mail

from weekly_reports.delivery import deliver_due, sender_lock
from weekly_reports.models import Delivery
from weekly_reports.runner import settle


class Command(send_queued_mail.Command):
    help = (
        "Deliver the queued mail of post_office whose time has come. It takes "
        "the place of post_office's command of the same name: each message is "
        "claimed under a row lock and marked sent as soon as the server "
        "accepted it, so a crash or a second sender never sends one twice."
    )

    def handle(self, *args, **options):
        with sender_lock(0, options["lockfile"]) as taken:
            if not taken:
                # Another sender on this host is at work; it will pick up
                # what is due, as post_office's own command would assume.
                self.stdout.write("Another sender holds the lock; nothing to do.")
                return

            sent, failed, requeued = deliver_due(processes=options["processes"])
            # The reports whose retries just went out or failed for good
            # would otherwise stay "queued" in the ledger: run_weekly settles
            # only the week it runs.
            settle(Delivery.objects.filter(status=Delivery.Status.QUEUED))

        self.stdout.write(
            f"Queued mail: {sent} sent, {failed} failed, {requeued} requeued."
        )
