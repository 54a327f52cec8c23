"""``manage.py issue_token USERNAME --team TEAM --role ROLE [--expires-days N]``."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from registry.choices import Role, TokenScope
from registry.errors import DomainError
from registry.services.tokens import user_with_token


class Command(BaseCommand):
    help = "Create the user, team and membership if missing and print a new API token (last line)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--team", required=True)
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--expires-days", type=int, default=None)
        parser.add_argument(
            "--scopes",
            default=f"{TokenScope.READ},{TokenScope.WRITE}",
            help=f"comma-separated, of {', '.join(TokenScope.values)}",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["expires_days"] is not None and options["expires_days"] < 1:
            raise CommandError("--expires-days must be at least 1")
        scopes = [s.strip() for s in options["scopes"].split(",") if s.strip()]
        try:
            user, token = user_with_token(
                username=options["username"],
                team_name=options["team"],
                role=options["role"],
                expires_days=options["expires_days"],
                scopes=scopes,
            )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stderr.write(f"token for {user} in team {options['team']} as {options['role']} (shown once):")
        self.stdout.write(token)
