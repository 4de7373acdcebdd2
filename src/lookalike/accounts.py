"""Admin accounts and admin API tokens (the ``admin_users`` and ``admin_tokens`` tables).

Users sign in to the admin pages with a name and a password; the password is hashed with
argon2id (``argon2-cffi``'s defaults) and rehashed on the next sign-in when those defaults
change. Tokens authenticate automation (``Authorization: Bearer <token>``): the plaintext is
returned once by :func:`create_token` and only its SHA-256 is stored; a revoked token never
works again.

Every function takes an open SQLAlchemy ``Session`` and commits its own change. Bad input
raises :class:`~lookalike.errors.InvalidInput` (codes ``admin.*``), unknown users and tokens
:class:`~lookalike.errors.NotFound`. Nothing here knows about HTTP: the web layer is
``lookalike.api.auth``.

Names (users and tokens): 1 to 64 characters, letters, digits, ``.``, ``_`` and ``-``,
starting with a letter or a digit; user names are case-insensitive (kept in lower case).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lookalike.db import AdminToken, AdminUser, CacheEntry, utcnow
from lookalike.errors import InvalidInput, NotFound

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
DEFAULT_MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024  # argon2 takes anything; a cap keeps requests cheap to refuse
TOKEN_PREFIX = "lka_"  # recognisable in logs and by secret scanners
TOKEN_USE_RESOLUTION = timedelta(minutes=1)  # last_used_at is written at most once a minute
ENDED_SESSION_PREFIX = "admin.session-ended:"  # cache_entries key of a signed-out session

_hasher = PasswordHasher()


@dataclass(frozen=True)
class UserInfo:
    """An admin user, without the password hash.

    ``stamp`` is a short fingerprint of the stored hash: it changes with every new password,
    so a session that carries it ends when the password changes.
    """

    id: int
    name: str
    created_at: datetime
    last_login_at: datetime | None
    stamp: str

    @classmethod
    def of(cls, row: AdminUser) -> UserInfo:
        return cls(row.id, row.name, row.created_at, row.last_login_at, _stamp(row.password_hash))


@dataclass(frozen=True)
class TokenInfo:
    """An admin API token, without its hash (the plaintext is never stored)."""

    id: int
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @classmethod
    def of(cls, row: AdminToken) -> TokenInfo:
        return cls(row.id, row.name, row.created_at, row.last_used_at, row.revoked_at)


def _stamp(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


# --- validation -------------------------------------------------------------------------------


def check_name(name: str, what: str = "user") -> str:
    """``name`` if it is a valid user or token name, else ``InvalidInput`` saying why."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        shown = name if isinstance(name, str) and len(name) <= 80 else f"{str(name)[:80]}..."
        raise InvalidInput(
            f"Invalid {what} name {shown!r}: use 1 to 64 letters, digits, '.', '_' or '-',"
            " starting with a letter or a digit.",
            code=f"admin.invalid_{what}_name",
            details={"name": shown, "pattern": NAME_PATTERN.pattern},
        )
    return name.lower() if what == "user" else name


def check_password(password: str, min_length: int, name: str | None = None) -> str:
    """``password`` if it is long enough (and not too long, and not the user's name)."""
    if len(password) < min_length:
        raise InvalidInput(
            f"The password has {len(password)} characters; at least {min_length} are needed."
            " A few random words make a long password that is easy to type.",
            code="admin.password_too_short",
            details={"length": len(password), "min_length": min_length},
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(
            f"The password has {len(password)} characters; at most {MAX_PASSWORD_LENGTH} are"
            " accepted.",
            code="admin.password_too_long",
            details={"length": len(password), "max_length": MAX_PASSWORD_LENGTH},
        )
    if not password.strip():
        raise InvalidInput(
            "The password is only blanks; choose one with visible characters.",
            code="admin.password_blank",
        )
    if name is not None and password.strip().lower() == name.lower():
        raise InvalidInput(
            "The password is the user's name; choose another one.",
            code="admin.password_is_name",
        )
    return password


def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` (salted; encodes its own parameters)."""
    return _hasher.hash(password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@lru_cache(maxsize=1)
def _decoy_hash() -> str:
    """A hash to verify against when the user does not exist, so that an unknown name takes
    as long to refuse as a wrong password (no hint which of the two was wrong)."""
    return _hasher.hash(secrets.token_urlsafe(16))


# --- users ------------------------------------------------------------------------------------


def _user_row(session: Session, name: str) -> AdminUser:
    row = session.scalars(select(AdminUser).where(AdminUser.name == name.lower())).first()
    if row is None:
        raise NotFound(
            f"No admin user named {name!r}. `lookalike admin list-users` shows them.",
            code="admin.user_not_found",
            details={"name": name},
        )
    return row


def create_user(
    session: Session, name: str, password: str, *, min_length: int = DEFAULT_MIN_PASSWORD_LENGTH
) -> UserInfo:
    """Add an admin user; ``InvalidInput`` (409 ``admin.user_exists``) if the name is taken."""
    name = check_name(name)
    check_password(password, min_length, name)
    exists = InvalidInput(
        f"An admin user named {name!r} already exists; `lookalike admin set-password {name}`"
        " changes its password.",
        code="admin.user_exists",
        status=409,
        details={"name": name},
    )
    if session.scalars(select(AdminUser.id).where(AdminUser.name == name)).first() is not None:
        raise exists
    row = AdminUser(name=name, password_hash=hash_password(password), created_at=utcnow())
    session.add(row)
    try:
        session.commit()
    except IntegrityError:  # created by someone else in the meantime
        session.rollback()
        raise exists from None
    return UserInfo.of(row)


def authenticate(session: Session, name: str, password: str) -> UserInfo | None:
    """The user if ``password`` is theirs, else None (same answer and about the same time
    for an unknown name). Records the sign-in; rehashes when the hash parameters changed."""
    row = None
    if isinstance(name, str) and NAME_PATTERN.fullmatch(name):
        row = session.scalars(select(AdminUser).where(AdminUser.name == name.lower())).first()
    if not isinstance(password, str) or not password or len(password) > MAX_PASSWORD_LENGTH:
        return None
    if row is None:
        _verify(_decoy_hash(), password)
        return None
    if not _verify(row.password_hash, password):
        return None
    if _hasher.check_needs_rehash(row.password_hash):
        row.password_hash = hash_password(password)
    row.last_login_at = utcnow()
    session.commit()
    return UserInfo.of(row)


def set_password(
    session: Session, name: str, password: str, *, min_length: int = DEFAULT_MIN_PASSWORD_LENGTH
) -> UserInfo:
    """Give ``name`` a new password; every session signed in with the old one ends."""
    row = _user_row(session, name)
    check_password(password, min_length, row.name)
    row.password_hash = hash_password(password)
    session.commit()
    return UserInfo.of(row)


def get_user_by_name(session: Session, name: str) -> UserInfo:
    """The user named ``name``; ``NotFound`` (``admin.user_not_found``) if there is none."""
    return UserInfo.of(_user_row(session, name))


def get_user(session: Session, user_id: int) -> UserInfo | None:
    row = session.get(AdminUser, user_id)
    return UserInfo.of(row) if row is not None else None


def list_users(session: Session) -> list[UserInfo]:
    return [UserInfo.of(r) for r in session.scalars(select(AdminUser).order_by(AdminUser.name))]


def delete_user(session: Session, name: str) -> UserInfo:
    """Remove the user; their sessions stop working at their next request."""
    row = _user_row(session, name)
    info = UserInfo.of(row)
    session.delete(row)
    session.commit()
    return info


# --- tokens -----------------------------------------------------------------------------------


def token_hash(token: str) -> str:
    """What is stored for a token: its SHA-256, hex (tokens are random, so no salt needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, name: str) -> tuple[int, str]:
    """A new API token named ``name``: ``(id, plaintext)``. The plaintext is not stored and
    cannot be shown again."""
    name = check_name(name, "token")
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = AdminToken(name=name, token_hash=token_hash(plaintext), created_at=utcnow())
    session.add(row)
    session.commit()
    return row.id, plaintext


def verify_token(session: Session, token: str) -> TokenInfo | None:
    """The token's record if ``token`` is a live (not revoked) admin token, else None.

    The lookup is by SHA-256, so the secret itself is never compared byte by byte against
    stored values; the match is confirmed with a constant-time compare. ``last_used_at`` is
    written at most once per ``TOKEN_USE_RESOLUTION``.
    """
    if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    digest = token_hash(token)
    row = session.scalars(select(AdminToken).where(AdminToken.token_hash == digest)).first()
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    if row.revoked_at is not None:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at >= TOKEN_USE_RESOLUTION:
        row.last_used_at = now
        session.commit()
    return TokenInfo.of(row)


def revoke_token(session: Session, token_id: int) -> TokenInfo:
    """Revoke a token for good (revoking it again changes nothing)."""
    row = session.get(AdminToken, token_id)
    if row is None:
        raise NotFound(
            f"No admin token with id {token_id}. `lookalike admin list-tokens` shows them.",
            code="admin.token_not_found",
            details={"id": token_id},
        )
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.commit()
    return TokenInfo.of(row)


def list_tokens(session: Session) -> list[TokenInfo]:
    return [TokenInfo.of(r) for r in session.scalars(select(AdminToken).order_by(AdminToken.id))]


# --- signed-out sessions ------------------------------------------------------------------------


def end_session(session: Session, session_id: str, until: datetime) -> None:
    """Remember that the signed session ``session_id`` was signed out, until it would have
    expired anyway (a row in the shared ``cache_entries`` table; expired ones are dropped)."""
    now = utcnow()
    session.execute(
        delete(CacheEntry)
        .where(CacheEntry.key.startswith(ENDED_SESSION_PREFIX), CacheEntry.expires_at <= now)
        .execution_options(synchronize_session=False)
    )
    key = ENDED_SESSION_PREFIX + session_id
    if session.get(CacheEntry, key) is None:
        session.add(CacheEntry(key=key, value={}, stored_at=now, expires_at=until))
    try:
        session.commit()
    except IntegrityError:  # the same session signed out twice at once
        session.rollback()


def session_ended(session: Session, session_id: str) -> bool:
    return session.get(CacheEntry, ENDED_SESSION_PREFIX + session_id) is not None
