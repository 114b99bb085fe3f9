#!/usr/bin/env python
"""Django's command-line entry point for Singularity."""
import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "singularity.settings")
    from django.core.management import execute_from_command_line

    from singularity.database import DatabaseUrlError, EmbeddedServerError

    try:
        execute_from_command_line(sys.argv)
    except (DatabaseUrlError, EmbeddedServerError) as exc:
        # Raised while settings load: one readable line instead of a traceback through Django.
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
