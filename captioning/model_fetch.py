"""Install the Vosk speech model when it is missing: `scripts/fetch-model`.

The small US-English model is published on Maven Central inside the Android package
com.alphacephei:vosk-model-en (an .aar, which is a zip); its folder assets/model-en-us/ is
the model. We fetch it with Maven, unpack it next to the destination and move it into
place in one rename, so a half-unpacked model is never at the path the server loads.

Destination: $VOSK_MODEL_PATH, or var/models/model-en-us in the project.
Exit codes: 0 installed or already there, 1 failed (the message says why).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import TextIO

from captioning.engine import REQUIRED_MODEL_PARTS

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_PATH = PROJECT_ROOT / "var" / "models" / "model-en-us"
# TODO/compatibility: 0.3.45 is the only version reachable from our build machines; move on
# when a newer artifact is mirrored.
ARTIFACT = "com.alphacephei:vosk-model-en:0.3.45:aar"
MODEL_IN_ARCHIVE = PurePosixPath("assets/model-en-us")
MVN_TIMEOUT_SECONDS = 20 * 60


class FetchError(Exception):
    """Why the model could not be installed, for the person at the terminal."""


def model_destination(environ: dict[str, str] | None = None) -> Path:
    environ = dict(os.environ) if environ is None else environ
    configured = environ.get("VOSK_MODEL_PATH", "").strip()
    return Path(configured).expanduser() if configured else DEFAULT_MODEL_PATH


def model_present(path: Path) -> bool:
    return path.is_dir() and all((path / part).is_file() for part in REQUIRED_MODEL_PARTS)


def find_maven() -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise FetchError(
            "Maven (mvn) is needed to download the speech model; install it "
            "(Debian/Ubuntu: apt-get install maven) and run scripts/fetch-model again."
        )
    return mvn


def download_aar(workdir: Path, mvn: str) -> Path:
    command = [
        mvn,
        "-q",
        "-B",
        "dependency:copy",
        f"-Dartifact={ARTIFACT}",
        f"-DoutputDirectory={workdir}",
    ]
    try:
        done = subprocess.run(  # noqa: S603 - fixed arguments, no shell
            command, capture_output=True, text=True, timeout=MVN_TIMEOUT_SECONDS, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise FetchError("Maven took more than 20 minutes to download the model.") from exc
    archives = sorted(workdir.glob("*.aar"))
    if done.returncode != 0 or not archives:
        output = (done.stdout + done.stderr).strip().splitlines()[-15:]
        raise FetchError(
            f"Maven could not download {ARTIFACT} (exit code {done.returncode}):\n"
            + "\n".join(output)
        )
    return archives[0]


def unpack_model(archive: Path, into: Path) -> Path:
    """Extract only assets/model-en-us/ from the archive; returns the model folder."""
    try:
        with zipfile.ZipFile(archive) as aar:
            members = [
                m
                for m in aar.infolist()
                if MODEL_IN_ARCHIVE in PurePosixPath(m.filename).parents and not m.is_dir()
            ]
            for member in members:
                relative = PurePosixPath(member.filename).relative_to(MODEL_IN_ARCHIVE)
                if relative.is_absolute() or ".." in relative.parts:
                    raise FetchError(f"the archive has an unsafe path: {member.filename}")
                target = into.joinpath(*relative.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with aar.open(member) as source, target.open("wb") as out:
                    shutil.copyfileobj(source, out)
    except zipfile.BadZipFile as exc:
        raise FetchError(f"the downloaded file is not a valid archive: {archive.name}") from exc
    if not model_present(into):
        raise FetchError(f"{archive.name} does not contain a Vosk model in {MODEL_IN_ARCHIVE}/")
    return into


def fetch_model(destination: Path, *, out: TextIO) -> bool:
    """Install the model at `destination`; False if it was already there."""
    if model_present(destination):
        return False
    if destination.exists() and any(destination.iterdir()):
        raise FetchError(
            f"{destination} exists but is not a complete Vosk model; move it away and run "
            "scripts/fetch-model again."
        )
    mvn = find_maven()
    destination.parent.mkdir(parents=True, exist_ok=True)
    # Work next to the destination, on the same file system, so the final move is a rename.
    with tempfile.TemporaryDirectory(dir=destination.parent, prefix=".fetch-model-") as tmp:
        workdir = Path(tmp)
        print(f"Downloading the speech model ({ARTIFACT}) with Maven ...", file=out)
        archive = download_aar(workdir / "download", mvn)
        model = unpack_model(archive, workdir / "model")
        if destination.exists():
            destination.rmdir()  # empty (checked above)
        os.replace(model, destination)
    return True


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    arguments = list(argv or [])
    quiet = arguments == ["--quiet"]  # say nothing when the model is already there
    if arguments and not quiet:
        print("usage: scripts/fetch-model [--quiet]   (destination: $VOSK_MODEL_PATH)", file=out)
        return 2
    destination = model_destination()
    try:
        installed = fetch_model(destination, out=out)
    except FetchError as exc:
        print(f"fetch-model: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"fetch-model: could not install the model at {destination}: {exc}", file=sys.stderr)
        return 1
    if installed:
        print(f"The speech model is installed at {destination}.", file=out)
    elif not quiet:
        print(f"The speech model is already installed at {destination}.", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
