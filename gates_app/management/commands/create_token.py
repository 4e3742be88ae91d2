"""manage.py create_token NAME --gate SLUG [--scope ...] [--expires DAYS] | --user USERNAME [--as USERNAME]"""

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit_app.context import acting_via
from gates_app.choices import Scope
from gates_app.models import Gate
from gates_app.tokens import create_token


def _user(username: str) -> Any:
    try:
        return get_user_model().objects.get(username=username)
    except get_user_model().DoesNotExist:
        raise CommandError(f"No user named {username!r}.") from None


class Command(BaseCommand):
    help = (
        "Create a deploy token for one or more gates, or a personal token for a user. "
        "The secret is printed once, alone on the last line. With --as, the token is issued as that "
        "user (the same rules as the admin: deploy tokens for gates they own, personal tokens for "
        "themselves); without it, as the server's shell, recorded as such in the audit log."
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
        parser.add_argument(
            "--as",
            dest="actor",
            metavar="USERNAME",
            help="who issues it (a deploy token's cases and checks then belong to them)",
        )
        parser.add_argument("--reason", default="", help="why the token exists (audit log)")

    def handle(self, *args: Any, **options: Any) -> None:
        user = _user(options["user"]) if options["user"] else None
        actor = _user(options["actor"]) if options["actor"] else None
        gates: list[Gate] = []
        for slug in options["gates"] or []:
            try:
                gates.append(Gate.objects.get(slug=slug))
            except Gate.DoesNotExist:
                raise CommandError(f"No gate with slug {slug!r}.") from None
        try:
            with acting_via("manage.py create_token"):
                token, secret = create_token(
                    name=options["name"],
                    gates=gates,
                    scopes=options["scopes"],
                    user=user,
                    expires_in_days=options["expires"],
                    actor=actor,
                    note=options["reason"] or "created with manage.py create_token",
                )
        except (ValidationError, PermissionDenied) as exc:
            raise CommandError("; ".join(getattr(exc, "messages", None) or [str(exc)])) from None
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
