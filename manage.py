#!/usr/bin/env python
"""Django's command-line utility for the BLT host project."""

import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "blt.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line
    from django.core.management.base import CommandParser, handle_default_options

    # Read the settings before Django does, so that a bad value in the
    # environment or in .env ends the command with one line instead of a
    # traceback (Django itself rejects an unknown TIME_ZONE with a
    # ValueError). --settings and --pythonpath are applied first, as Django
    # would apply them.
    parser = CommandParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--settings")
    parser.add_argument("--pythonpath")
    options, _ = parser.parse_known_args(sys.argv[2:])
    handle_default_options(options)
    try:
        settings.INSTALLED_APPS  # noqa: B018
    except (ImproperlyConfigured, ImportError, ValueError, OverflowError) as error:
        message = " ".join(str(error).split())
        print(f"Configuration error: {message}", file=sys.stderr)
        sys.exit(2)

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
