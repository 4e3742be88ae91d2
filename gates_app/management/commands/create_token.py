"""manage.py create_token NAME --gate SLUG [--scope ...] [--expires DAYS] | --user USERNAME"""

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from gates_app.choices import Scope
from gates_app.models import Gate
from gates_app.tokens import create_token


class Command(BaseCommand):
    help = (
        "Create a deploy token for one or more gates, or a personal token for a user. "
        "The secret is printed once, alone on the last line."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument(
            "--gate",
            action="append",
            dest="gates",
            metavar="SLUG",
            help="gate the deploy token may use (repeatable)",
        )
        who.add_argument("--user", metavar="USERNAME", help="create a personal token for this user")
        parser.add_argument(
            "--scope",
            action="append",
            dest="scopes",
            choices=Scope.values,
            help="scope (repeatable; default checks:write and checks:read)",
        )
        parser.add_argument("--expires", type=int, metavar="DAYS", help="expire after DAYS days")

    def handle(self, *args: Any, **options: Any) -> None:
        user = None
        gates: list[Gate] = []
        if options["user"]:
            try:
                user = get_user_model().objects.get(username=options["user"])
            except get_user_model().DoesNotExist:
                raise CommandError(f"No user named {options['user']!r}.") from None
        for slug in options["gates"] or []:
            try:
                gates.append(Gate.objects.get(slug=slug))
            except Gate.DoesNotExist:
                raise CommandError(f"No gate with slug {slug!r}.") from None
        try:
            token, secret = create_token(
                name=options["name"],
                gates=gates,
                scopes=options["scopes"],
                user=user,
                expires_in_days=options["expires"],
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        kind = (
            f"personal token for {user.username}"
            if user
            else "deploy token for " + ", ".join(g.slug for g in gates)
        )
        self.stdout.write(
            f"Created {kind}: {token.name} (prefix {token.prefix}, scopes "
            f"{', '.join(token.scopes) or 'user permissions'})."
        )
        self.stdout.write("Store this secret now; it is not shown again:")
        self.stdout.write(secret)
