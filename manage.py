#!/usr/bin/env python
"""Django's command-line entry point for Singularity."""
import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "singularity.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    from singularity.database import DatabaseUrlError, EmbeddedServerError

    try:
        execute_from_command_line(sys.argv)
    except (DatabaseUrlError, EmbeddedServerError, ImproperlyConfigured) as exc:
        # Configuration errors, raised while settings or apps load: one readable line instead of a
        # traceback through Django. Each message names the setting and the fix.
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
