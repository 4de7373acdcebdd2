"""Admin users and API tokens (``lookalike.accounts``) and the ``lookalike admin`` commands,
on SQLite and PostgreSQL. Argon2 hashing is real (default cost), so the number of passwords
hashed here is kept small."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from lookalike import accounts, cli
from lookalike.config import get_settings
from lookalike.db import AdminToken, AdminUser, init_db, make_engine, session_factory
from lookalike.errors import InvalidInput, NotFound

PASSWORD = "correct horse battery staple"
OTHER_PASSWORD = "another long passphrase"


@pytest.fixture
def db(database_url: str) -> Iterator[Session]:
    init_db(database_url)
    engine = make_engine(database_url)
    with session_factory(engine)() as session:
        yield session
    engine.dispose()


def stored_user(session: Session, name: str) -> AdminUser:
    session.expire_all()
    row = session.scalars(select(AdminUser).where(AdminUser.name == name)).one()
    return row


def test_users_passwords_are_argon2_and_never_stored_in_clear(db: Session) -> None:
    user = accounts.create_user(db, "Alice", PASSWORD)
    assert user.name == "alice" and user.last_login_at is None  # names are case-insensitive
    row = stored_user(db, "alice")
    assert row.password_hash.startswith("$argon2id$")
    assert PASSWORD not in row.password_hash

    assert accounts.authenticate(db, "alice", "wrong password, long enough") is None
    assert accounts.authenticate(db, "nobody", PASSWORD) is None  # same answer: no hint
    signed_in = accounts.authenticate(db, "ALICE", PASSWORD)
    assert signed_in is not None and signed_in.id == user.id
    assert signed_in.last_login_at is not None
    assert stored_user(db, "alice").last_login_at is not None
    assert signed_in.stamp == user.stamp  # same hash, same stamp

    with pytest.raises(InvalidInput) as exc:
        accounts.create_user(db, "alice", OTHER_PASSWORD)
    assert (exc.value.code, exc.value.status) == ("admin.user_exists", 409)


def test_rehash_when_the_hash_parameters_changed(db: Session) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    db.add(AdminUser(name="old", password_hash=weak))
    db.commit()
    assert accounts.authenticate(db, "old", PASSWORD) is not None
    rehashed = stored_user(db, "old").password_hash
    assert rehashed != weak and not PasswordHasher().check_needs_rehash(rehashed)


@pytest.mark.parametrize(
    ("name", "password", "code"),
    [
        ("", PASSWORD, "admin.invalid_user_name"),
        ("has space", PASSWORD, "admin.invalid_user_name"),
        ("-dash-first", PASSWORD, "admin.invalid_user_name"),
        ("x" * 65, PASSWORD, "admin.invalid_user_name"),
        ("émile", PASSWORD, "admin.invalid_user_name"),
        ("bob", "short", "admin.password_too_short"),
        ("bob", " " * 20, "admin.password_blank"),
        ("bob", "x" * 2000, "admin.password_too_long"),
        ("bob.the-builder_2", "Bob.The-Builder_2", "admin.password_is_name"),
    ],
)
def test_bad_names_and_passwords_are_refused(name: str, password: str, code: str) -> None:
    # Validation happens before any database access or hashing.
    with pytest.raises(InvalidInput) as exc:
        accounts.create_user(None, name, password)  # type: ignore[arg-type]
    assert exc.value.code == code and exc.value.status == 400
    assert exc.value.message


def test_min_password_length_is_a_setting(db: Session) -> None:
    with pytest.raises(InvalidInput) as exc:
        accounts.create_user(db, "carol", PASSWORD, min_length=40)
    assert exc.value.details == {"length": len(PASSWORD), "min_length": 40}


def test_set_password_list_and_delete(db: Session) -> None:
    before = accounts.create_user(db, "dave", PASSWORD)
    after = accounts.set_password(db, "Dave", OTHER_PASSWORD)
    assert after.stamp != before.stamp  # sessions carrying the old stamp end
    assert accounts.authenticate(db, "dave", PASSWORD) is None
    assert [u.name for u in accounts.list_users(db)] == ["dave"]
    with pytest.raises(NotFound) as exc:
        accounts.set_password(db, "nobody", OTHER_PASSWORD)
    assert exc.value.code == "admin.user_not_found"
    accounts.delete_user(db, "dave")
    assert accounts.list_users(db) == [] and accounts.get_user(db, before.id) is None
    with pytest.raises(NotFound):
        accounts.delete_user(db, "dave")


def test_tokens_stored_hashed_verified_and_revocable(db: Session) -> None:
    token_id, token = accounts.create_token(db, "ci")
    assert token.startswith(accounts.TOKEN_PREFIX) and len(token) > 40
    row = db.get(AdminToken, token_id)
    assert row is not None and row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(
        [(r.name, r.token_hash) for r in db.scalars(select(AdminToken))]
    )  # only the hash is stored

    assert db.get(AdminToken, token_id).last_used_at is None  # type: ignore[union-attr]
    info = accounts.verify_token(db, token)
    assert info is not None and (info.id, info.name, info.active) == (token_id, "ci", True)
    db.expire_all()
    first_use = db.get(AdminToken, token_id).last_used_at  # type: ignore[union-attr]
    assert first_use is not None

    # last_used_at moves at most once a minute (no write per request).
    assert accounts.verify_token(db, token) is not None
    db.expire_all()
    assert db.get(AdminToken, token_id).last_used_at == first_use  # type: ignore[union-attr]
    row = db.get(AdminToken, token_id)
    assert row is not None
    row.last_used_at = first_use - timedelta(minutes=5)
    db.commit()
    accounts.verify_token(db, token)
    db.expire_all()
    assert db.get(AdminToken, token_id).last_used_at > first_use  # type: ignore[union-attr,operator]

    for wrong in ["", token[:-1], token + "x", token.upper(), "lka_" + "A" * 43, "x" * 5000]:
        assert accounts.verify_token(db, wrong) is None

    other_id, other = accounts.create_token(db, "cron")
    revoked = accounts.revoke_token(db, token_id)
    assert revoked.revoked_at is not None and not revoked.active
    assert accounts.verify_token(db, token) is None
    assert accounts.verify_token(db, other) is not None
    assert accounts.revoke_token(db, token_id).revoked_at == revoked.revoked_at  # idempotent
    assert [(t.id, t.active) for t in accounts.list_tokens(db)] == [
        (token_id, False),
        (other_id, True),
    ]
    with pytest.raises(NotFound):
        accounts.revoke_token(db, 9999)
    with pytest.raises(InvalidInput) as exc:
        accounts.create_token(db, "no spaces please")
    assert exc.value.code == "admin.invalid_token_name"


def test_ended_sessions_are_remembered(db: Session) -> None:
    from lookalike.db import utcnow

    assert not accounts.session_ended(db, "a" * 32)
    accounts.end_session(db, "a" * 32, utcnow() + timedelta(hours=1))
    accounts.end_session(db, "a" * 32, utcnow() + timedelta(hours=1))  # twice is fine
    accounts.end_session(db, "b" * 32, utcnow() - timedelta(seconds=1))  # already expired
    assert accounts.session_ended(db, "a" * 32)
    accounts.end_session(db, "c" * 32, utcnow() + timedelta(hours=1))  # sweeps expired ones
    assert not accounts.session_ended(db, "b" * 32)


# --- the `lookalike admin` commands -------------------------------------------------------------


@pytest.fixture
def cli_env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The process settings point at this test's database (read afresh)."""
    monkeypatch.setenv("LOOKALIKE_DATABASE_URL", database_url)
    monkeypatch.setenv("LOOKALIKE_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setattr(cli.console, "width", 200)
    get_settings.cache_clear()
    yield database_url
    get_settings.cache_clear()


def admin(*args: str, input: str | None = None, code: int = 0) -> tuple[str, str]:
    result = CliRunner().invoke(cli.app, ["admin", *args], input=input)
    assert result.exit_code == code, (result.output, result.exception)
    return result.stdout, result.stderr


def test_admin_commands(cli_env: str) -> None:
    _, err = admin("create-user", "erin", "--password-stdin", input=PASSWORD + "\n")
    assert "Created admin user 'erin'" in err
    # Interactive: a hidden prompt, typed twice (a mismatch asks again).
    _, err = admin(
        "create-user",
        "frank",
        input=f"{PASSWORD}\nnot the same thing\n{OTHER_PASSWORD}\n{OTHER_PASSWORD}\n",
    )
    assert "Created admin user 'frank'" in err
    out, _ = admin("list-users")
    header, *lines = [line.split("\t") for line in out.splitlines()]
    assert header == ["name", "created", "last sign-in"]
    assert [(row[0], row[2]) for row in lines] == [("erin", "never"), ("frank", "never")]
    assert PASSWORD not in out

    engine = make_engine(cli_env)
    with session_factory(engine)() as session:
        assert accounts.authenticate(session, "frank", OTHER_PASSWORD) is not None
    admin("set-password", "frank", "--password-stdin", input=PASSWORD + "\n")
    with session_factory(engine)() as session:
        assert accounts.authenticate(session, "frank", PASSWORD) is not None
    engine.dispose()

    out, err = admin("create-token", "ci")
    token = out.strip()
    assert token.startswith("lka_") and len(out.splitlines()) == 1  # alone on stdout
    assert "shown only this once" in err
    out, _ = admin("list-tokens")
    header, line = out.splitlines()
    assert header.split("\t") == ["id", "name", "status", "created", "last used"]
    token_id, name, status, _created, last_used = line.split("\t")
    assert (name, status, last_used) == ("ci", "active", "never") and token not in out
    _, err = admin("revoke-token", token_id)
    assert "revoked" in err
    assert "\trevoked " in admin("list-tokens")[0]

    admin("delete-user", "erin", input="n\n", code=1)  # asks first; "no" aborts
    admin("delete-user", "erin", "--yes")
    names = [line.split("\t")[0] for line in admin("list-users")[0].splitlines()]
    assert names == ["name", "frank"]


@pytest.mark.parametrize(
    ("args", "stdin", "code"),
    [
        (["create-user", "bad name!", "--password-stdin"], PASSWORD, "admin.invalid_user_name"),
        (["create-user", "gina", "--password-stdin"], "short", "admin.password_too_short"),
        (["set-password", "nobody", "--password-stdin"], PASSWORD, "admin.user_not_found"),
        (["delete-user", "nobody", "--yes"], "", "admin.user_not_found"),
        (["revoke-token", "42"], "", "admin.token_not_found"),
        (["create-token", "a b"], "", "admin.invalid_token_name"),
    ],
)
def test_admin_command_errors_are_one_line(
    cli_env: str,
    args: list[str],
    stdin: str,
    code: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Through ``lookalike.cli.main`` as the console script runs it: exit 2, one line."""
    import io

    monkeypatch.setattr(sys, "argv", ["lookalike", "admin", *args])
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin + "\n"))
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert f"[{code}]" in captured.err and len(captured.err.strip().splitlines()) == 1
    assert "Traceback" not in captured.err + captured.out
