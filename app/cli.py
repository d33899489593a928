"""Administration from the command line: `python -m app <command>` (or `roundtable <command>`).

    create-admin --email E --name N   make an administrator (asks for the password)
    seed-demo                         add the demo programme if there is no programme yet
    invite --programme ID --email E   print a fresh invitation link for a member
    asr-token --label L [--days N]    print a new token for the speech recognition endpoint

Settings come from the environment, as for the web app (DATABASE_URL, SECRET_KEY, BASE_URL).
Exit codes: 0 done, 1 refused (the message says why), 2 wrong usage.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from email_validator import EmailNotValidError, validate_email
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.captions import asr_tokens
from app.config import PROJECT_ROOT, Settings
from app.db import make_engine, make_sessionmaker
from app.demo import (
    DEMO_PASSWORD,
    HOST_EMAIL,
    DemoRefused,
    demo_host_exists,
    seed_demo,
    write_links_csv,
)
from app.models import Membership, Programme, User
from app.people.invitations import InvitationRefused, issue_invitation
from app.security import MIN_PASSWORD_LENGTH, Signer, hash_password

MAX_PASSWORD_LENGTH = 200  # the sign-in form accepts no more
MAX_NAME_LENGTH = 100
DEFAULT_LINKS_FILE = PROJECT_ROOT / "var" / "demo-links.csv"


class CommandError(Exception):
    """A refusal to explain to the person at the terminal (exit code 1)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description="Roundtable administration.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    admin = commands.add_parser("create-admin", help="create an administrator account")
    admin.add_argument("--email", required=True, help="their e-mail address (used to sign in)")
    admin.add_argument("--name", required=True, help="their name as others will see it")
    admin.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input instead of asking",
    )

    seed = commands.add_parser(
        "seed-demo", help="add the demo programme (only when there is no programme yet)"
    )
    seed.add_argument(
        "--links-file",
        type=Path,
        default=DEFAULT_LINKS_FILE,
        help="where to write everyone's sign-in link (default: var/demo-links.csv)",
    )

    invite = commands.add_parser("invite", help="print a fresh invitation link for a member")
    invite.add_argument("--programme", type=int, required=True, metavar="ID")
    invite.add_argument("--email", required=True)
    add_asr_token_parser(commands)
    return parser


# --- asr-token: tokens for the vosk-server-compatible endpoint (captioning) -----------------


def add_asr_token_parser(commands: Any) -> None:
    asr = commands.add_parser(
        "asr-token", help="print a new token for the speech recognition endpoint (/asr/vosk)"
    )
    asr.add_argument("--label", required=True, help="which tool will use it")
    asr.add_argument("--days", type=int, default=asr_tokens.DEFAULT_DAYS, help="default: 30")


async def issue_asr_token(
    db: AsyncSession, *, label: str, days: int, out: TextIO, err: TextIO
) -> None:
    """The token alone goes to standard output, so scripts can capture it."""
    try:
        issued = await asr_tokens.issue_token(
            db, label=label, days=days, created_by=None, via="cli"
        )
    except asr_tokens.AsrTokenError as exc:
        raise CommandError(str(exc)) from exc
    print(issued.secret, file=out)
    print(
        f"(shown only once; valid until {issued.token.expires_at:%Y-%m-%d %H:%M} UTC)",
        file=err,
    )


# ---------------------------------------------------------------------------------------------


def normalise_email(raw: str) -> str:
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise CommandError(f"{raw!r} is not a valid e-mail address: {exc}") from exc


def read_password(*, from_stdin: bool, stdin: TextIO) -> str:
    if from_stdin:
        return stdin.readline().rstrip("\r\n")
    if not stdin.isatty():
        raise CommandError("There is no terminal to ask for the password: use --password-stdin.")
    password = getpass.getpass("Password: ")
    if password != getpass.getpass("Same password again: "):
        raise CommandError("The two passwords are different.")
    return password


async def refuse_existing_email(db: AsyncSession, *, email: str) -> None:
    if await db.scalar(select(User.id).where(func.lower(User.email) == email)) is not None:
        raise CommandError(f"An account with the e-mail address {email} already exists.")


async def create_admin(db: AsyncSession, *, email: str, name: str, password: str) -> User:
    name = name.strip()
    if not name:
        raise CommandError("Give a name (--name).")
    if len(name) > MAX_NAME_LENGTH:
        raise CommandError(f"The name is longer than {MAX_NAME_LENGTH} characters.")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise CommandError(f"The password must have at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise CommandError(f"The password must have at most {MAX_PASSWORD_LENGTH} characters.")
    await refuse_existing_email(db, email=email)
    user = User(
        email=email, display_name=name, password_hash=hash_password(password), is_admin=True
    )
    db.add(user)
    await db.flush()
    audit.record(db, actor=None, action="admin.created", target=f"user:{user.id}", via="cli")
    await db.commit()
    return user


async def invite_member(
    db: AsyncSession, *, settings: Settings, programme_id: int, email: str
) -> str:
    programme = await db.get(Programme, programme_id)
    if programme is None:
        raise CommandError(f"There is no programme with id {programme_id}.")
    user = await db.scalar(select(User).where(func.lower(User.email) == email))
    membership = (
        await db.scalar(
            select(Membership).where(
                Membership.user_id == user.id, Membership.programme_id == programme_id
            )
        )
        if user is not None
        else None
    )
    if user is None or membership is None:
        raise CommandError(f"{email} is not a member of “{programme.title}” (id {programme_id}).")
    try:
        invite = await issue_invitation(
            db,
            signer=Signer(settings.secret_key),
            base_url=settings.base_url,
            user=user,
            programme_id=programme_id,
            created_by=None,
            valid_days=settings.invite_max_age_days,
        )
    except InvitationRefused as refused:
        raise CommandError(refused.message) from refused
    audit.record(
        db,
        actor=None,
        action="invitation.issued",
        programme_id=programme_id,
        target=f"user:{user.id}",
        via="cli",
    )
    await db.commit()
    return invite.link


async def _seed(db: AsyncSession, *, settings: Settings, links_file: Path, out: TextIO) -> None:
    try:
        seeded = await seed_demo(db, settings=settings, signer=Signer(settings.secret_key))
    except DemoRefused as exc:
        raise CommandError(str(exc)) from exc
    if seeded is None:
        print("There is already a programme, so no demo data was added.", file=out)
        if links_file.exists() and await demo_host_exists(db):
            base = settings.base_url.rstrip("/")
            print(f"The demo sign-in links are in {links_file}.", file=out)
            print(
                f"The demo host signs in at {base}/signin as {HOST_EMAIL} with {DEMO_PASSWORD}",
                file=out,
            )
        return
    write_links_csv(links_file, seeded.links)
    base = settings.base_url.rstrip("/")
    print("The demo programme is ready.\n", file=out)
    print(f"Sign in as the host at {base}/signin", file=out)
    print(f"  e-mail:   {seeded.host_email}", file=out)
    print(f"  password: {seeded.password}", file=out)
    print(
        "  (the facilitators, facilitator1@… to facilitator10@…, and IT support, support@…,"
        " use the same password)\n",
        file=out,
    )
    print("Or join as a participant with their personal link:", file=out)
    for link in seeded.participant_links[:3]:
        print(f"  {link.name} ({link.group}): {link.link}", file=out)
    print(f"\nEveryone's link ({len(seeded.links)} people) is in {links_file}", file=out)


async def run(
    argv: Sequence[str] | None = None,
    *,
    settings: Settings | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Carry out one command; returns the exit code. Tests call this with their own settings."""
    stdin, out, err = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    args = build_parser().parse_args(argv)
    try:
        settings = settings or Settings()
    except ValidationError as exc:
        problems = "; ".join(
            str(error["msg"]).removeprefix("Value error, ") for error in exc.errors()
        )
        print(f"Error: the settings are not valid: {problems}", file=err)
        return 1
    engine = make_engine(settings.async_database_url)
    try:
        async with make_sessionmaker(engine)() as db:
            if args.command == "create-admin":
                email = normalise_email(args.email)
                await refuse_existing_email(db, email=email)  # before asking for a password
                password = read_password(from_stdin=args.password_stdin, stdin=stdin)
                user = await create_admin(db, email=email, name=args.name, password=password)
                print(f"Created the administrator {user.display_name} <{user.email}>.", file=out)
                print(f"They can sign in at {settings.base_url.rstrip('/')}/signin", file=out)
            elif args.command == "seed-demo":
                await _seed(db, settings=settings, links_file=args.links_file, out=out)
            elif args.command == "invite":
                email = normalise_email(args.email)
                link = await invite_member(
                    db, settings=settings, programme_id=args.programme, email=email
                )
                print(link, file=out)
            elif args.command == "asr-token":
                await issue_asr_token(db, label=args.label, days=args.days, out=out, err=err)
    except CommandError as exc:
        print(f"Error: {exc}", file=err)
        return 1
    except SQLAlchemyError as exc:
        original = getattr(exc, "orig", None)  # the driver's own message, when there is one
        reason = str(original if original is not None else exc)
        print(
            f"Error: the database could not be used ({reason.splitlines()[0] if reason else ''}).\n"
            "Is DATABASE_URL right, and has `alembic upgrade head` been run?",
            file=err,
        )
        return 1
    finally:
        await engine.dispose()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return asyncio.run(run(argv))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
