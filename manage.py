#!/usr/bin/env python
"""Django's command-line utility for Evalgate."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalproject.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
    if sys.argv[1:2] == ["run_eval"]:  # it succeeded (a failure raises SystemExit above)
        from evalproject.fastexit import exit_without_teardown

        exit_without_teardown(0)


if __name__ == "__main__":
    main()
