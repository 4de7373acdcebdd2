"""``lookalike admin ...``: admin users and API tokens, in the service's database.

Passwords are read from a hidden prompt (typed twice), or from the first line of standard
input with ``--password-stdin`` (for scripts). A new token is printed once, alone on standard
output (``TOKEN=$(lookalike admin create-token ci)``); everything else goes to standard error.
Bad input raises a ``LookalikeError``, which ``lookalike.cli.main`` prints as one line (exit 2).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from lookalike.config import Settings, get_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

app = typer.Typer(
    help="Admin users (sign-in to /admin) and API tokens (automation).",
    no_args_is_help=True,
    rich_markup_mode=None,
)

err = Console(stderr=True, soft_wrap=True)

HomeOpt = Annotated[
    Path | None, typer.Option("--home", help="Data directory (default: $LOOKALIKE_HOME).")
]
PasswordStdinOpt = Annotated[
    bool,
    typer.Option(
        "--password-stdin", help="Read the password from the first line of standard input."
    ),
]


def _settings(home: Path | None) -> Settings:
    s = get_settings()
    return s.model_copy(update={"home": home}) if home else s


@contextmanager
def database(settings: Settings) -> Iterator[Session]:
    """A session on the service's database, its schema created or upgraded first."""
    from lookalike.db import init_db, make_engine, session_factory

    url = settings.effective_database_url
    init_db(url)
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password: str = typer.prompt(
        "Password", hide_input=True, confirmation_prompt="Repeat the password"
    )
    return password


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else "never"


@app.command("create-user")
def create_user(
    name: Annotated[str, typer.Argument(help="Sign-in name (letters, digits, . _ -).")],
    password_stdin: PasswordStdinOpt = False,
    home: HomeOpt = None,
) -> None:
    """Add an admin user who can sign in at /admin/login."""
    from lookalike import accounts

    settings = _settings(home)
    name = accounts.check_name(name)  # before asking for a password
    password = _read_password(password_stdin)
    with database(settings) as session:
        user = accounts.create_user(
            session, name, password, min_length=settings.admin_min_password_length
        )
    err.print(escape(f"Created admin user {user.name!r}; sign in at /admin/login."))


@app.command("set-password")
def set_password(
    name: Annotated[str, typer.Argument(help="An existing admin user.")],
    password_stdin: PasswordStdinOpt = False,
    home: HomeOpt = None,
) -> None:
    """Give an admin user a new password (their open sessions end)."""
    from lookalike import accounts

    settings = _settings(home)
    with database(settings) as session:
        user = accounts.get_user_by_name(session, name)  # NotFound before the prompt
        password = _read_password(password_stdin)
        accounts.set_password(
            session, user.name, password, min_length=settings.admin_min_password_length
        )
    err.print(escape(f"New password set for {user.name!r}; their sessions have ended."))


@app.command("list-users")
def list_users(home: HomeOpt = None) -> None:
    """List admin users.

    Name, created, last sign-in: one tab-separated line each, under a header."""
    from lookalike import accounts

    with database(_settings(home)) as session:
        users = accounts.list_users(session)
    if not users:
        err.print("No admin users yet: `lookalike admin create-user NAME` adds one.")
        return
    print("name\tcreated\tlast sign-in")
    for user in users:
        print(f"{user.name}\t{_when(user.created_at)}\t{_when(user.last_login_at)}")


@app.command("delete-user")
def delete_user(
    name: Annotated[str, typer.Argument(help="The admin user to remove.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    home: HomeOpt = None,
) -> None:
    """Remove an admin user (their sessions stop working at once)."""
    from lookalike import accounts

    with database(_settings(home)) as session:
        user = accounts.get_user_by_name(session, name)
        if not yes:
            typer.confirm(f"Delete admin user {user.name!r}?", abort=True, err=True)
        accounts.delete_user(session, user.name)
    err.print(escape(f"Deleted admin user {user.name!r}."))


@app.command("create-token")
def create_token(
    name: Annotated[str, typer.Argument(help="What the token is for, e.g. 'ci' or 'cron'.")],
    home: HomeOpt = None,
) -> None:
    """Make an admin API token.

    It is printed once, alone on standard output."""
    from lookalike import accounts

    with database(_settings(home)) as session:
        token_id, token = accounts.create_token(session, name)
    print(token)
    err.print(
        escape(
            f"Token {token_id} ({name}) created. It is shown only this once: store it now."
            f" Send it as `Authorization: Bearer <token>`; `lookalike admin revoke-token"
            f" {token_id}` disables it."
        )
    )


@app.command("list-tokens")
def list_tokens(home: HomeOpt = None) -> None:
    """List API tokens.

    Id, name, status, created, last used: one tab-separated line each, under a header."""
    from lookalike import accounts

    with database(_settings(home)) as session:
        tokens = accounts.list_tokens(session)
    if not tokens:
        err.print("No admin tokens yet: `lookalike admin create-token NAME` makes one.")
        return
    print("id\tname\tstatus\tcreated\tlast used")
    for t in tokens:
        status = "active" if t.active else f"revoked {_when(t.revoked_at)}"
        print(f"{t.id}\t{t.name}\t{status}\t{_when(t.created_at)}\t{_when(t.last_used_at)}")


@app.command("revoke-token")
def revoke_token(
    token_id: Annotated[int, typer.Argument(metavar="ID", help="The token's id (list-tokens).")],
    home: HomeOpt = None,
) -> None:
    """Revoke an API token for good."""
    from lookalike import accounts

    with database(_settings(home)) as session:
        token = accounts.revoke_token(session, token_id)
    err.print(escape(f"Token {token.id} ({token.name}) is revoked."))
