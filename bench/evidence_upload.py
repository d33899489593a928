"""Uploading a large evidence file over loopback: throughput and the server's memory.

The server (uvicorn, the embedded defaults) runs in its own process; a client streams a
200 MB PDF in 1 MB pieces to the group board's upload route, as a browser would. We time
it from the first byte sent to the answer, and watch the server's resident memory: its
peak during the upload (the kernel's high-water mark, reset just before) less its size
just before. The ceiling is `cp` of the same file on the same disk, followed by an fsync
as our storage does, measured in the same run.

Run: .venv/bin/python bench/evidence_upload.py [--mb 200]  (bench/evidence.py runs it too)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
SECRET = "bench-secret-key-" + "x" * 40
MB = 1024 * 1024


def proc_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class World:
    programme_id: int
    group_id: int
    user_id: int


def make_database(tmp: Path) -> tuple[str, World]:
    url = f"sqlite:///{tmp / 'bench.db'}"
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": SECRET}
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from app.models import Group, Membership, Programme, Role, User

    engine = create_engine(url)
    with Session(engine) as db:
        programme = Programme(title="Benchmark programme")
        db.add(programme)
        db.flush()
        group = Group(programme_id=programme.id, name="Group 1")
        user = User(display_name="Bench Uploader")
        db.add_all([group, user])
        db.flush()
        db.add(
            Membership(
                user_id=user.id,
                programme_id=programme.id,
                role=Role.PARTICIPANT.value,
                group_id=group.id,
            )
        )
        db.commit()
        world = World(programme.id, group.id, user.id)
    engine.dispose()
    return url, world


def make_pdf(path: Path, size_mb: int) -> None:
    """A PDF-shaped file of random bytes: content sniffing and the end check pass."""
    with path.open("wb") as f:
        f.write(b"%PDF-1.7\n")
        block = secrets.token_bytes(MB)
        for i in range(size_mb):
            f.write(block[i:] + block[:i])  # every megabyte different
        f.write(b"\n%%EOF\n")


def start_server(tmp: Path, url: str, port: int, max_mb: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ENVIRONMENT": "production",
        "SECRET_KEY": SECRET,
        "DATABASE_URL": url,
        "VOSK_MODEL_PATH": "/nonexistent",
        "UPLOAD_DIR": str(tmp / "uploads"),
        "MAX_UPLOAD_MB": str(max_mb),
        "BASE_URL": f"http://127.0.0.1:{port}",
    }
    env.pop("REDIS_URL", None)
    command = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=(tmp / "app.log").open("wb"), stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((tmp / "app.log").read_text(errors="replace")[-3000:])
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return proc
        time.sleep(0.1)
    raise RuntimeError("the server did not start")


class PeakRss:
    """The process's resident memory at its highest from now on (kernel high-water mark,
    reset here, plus sampling in case the reset is not allowed)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        self.before = proc_kb(pid, "VmRSS")
        self.peak = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, proc_kb(self.pid, "VmRSS"))

    def growth_mb(self) -> float:
        self._stop.set()
        self._thread.join(2)
        self.peak = max(self.peak, proc_kb(self.pid, "VmHWM"), proc_kb(self.pid, "VmRSS"))
        return (self.peak - self.before) / 1024


def upload_once(port: int, world: World, path: Path, name: str) -> tuple[float, int]:
    """Stream the file in 1 MB pieces over one HTTP/1.1 connection; returns seconds and
    the status code."""
    from app.security import CSRF_COOKIE, SESSION_COOKIE, SessionClaims, Signer

    signer = Signer(SECRET)
    cookie = signer.session_cookie(SessionClaims(user_id=world.user_id, epoch=0))
    boundary = "benchboundary" + secrets.token_hex(8)
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
        f'filename="{name}"\r\nContent-Type: application/pdf\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    length = len(head) + path.stat().st_size + len(tail)
    request = (
        f"POST /programmes/{world.programme_id}/groups/{world.group_id}/evidence/upload "
        f"HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Cookie: {SESSION_COOKIE}={cookie}; {CSRF_COOKIE}=bench\r\n"
        f"X-CSRF-Token: {signer.csrf_token('bench')}\r\nAccept: application/json\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {length}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port)) as sock, path.open("rb") as f:
        started = time.perf_counter()
        sock.sendall(request + head)
        while block := f.read(MB):
            sock.sendall(block)
        sock.sendall(tail)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        elapsed = time.perf_counter() - started
    status = int(answer.split(b" ", 2)[1])
    return elapsed, status


def copy_once(source: Path, target: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["cp", str(source), str(target)], check=True)
    with target.open("rb") as f:
        os.fsync(f.fileno())
    return time.perf_counter() - started


def measure_upload(size_mb: int = 200, runs: int = 3) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="rt-bench-upload-", dir=ROOT / "var") as name:
        tmp = Path(name)
        url, world = make_database(tmp)
        source = tmp / "poster.pdf"
        make_pdf(source, size_mb)
        port = free_port()
        proc = start_server(tmp, url, port, max_mb=size_mb + 10)
        try:
            small = tmp / "warm.pdf"
            make_pdf(small, 1)
            upload_once(port, world, small, "warm-up.pdf")  # first request imports, etc.
            ours: list[float] = []
            growth: list[float] = []
            copies: list[float] = []
            for run in range(runs):
                peak = PeakRss(proc.pid)
                seconds, status = upload_once(port, world, source, f"poster-{run}.pdf")
                growth.append(peak.growth_mb())
                if status != 201:
                    raise RuntimeError(f"upload answered {status}")
                ours.append(seconds)
                # A different file each run, or the duplicate check would refuse it.
                with source.open("r+b") as f:
                    f.seek(20)
                    f.write(secrets.token_bytes(16))
                copies.append(copy_once(source, tmp / f"copy-{run}.pdf"))
        finally:
            proc.terminate()
            proc.wait(10)
    best, best_cp = min(ours), min(copies)
    return {
        "size_mb": size_mb,
        "upload_s": best,
        "upload_mb_s": size_mb / best,
        "cp_s": best_cp,
        "cp_mb_s": size_mb / best_cp,
        "cp_ratio": best_cp / best,
        "rss_growth_mb": max(growth),
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    r = measure_upload(args.mb, args.runs)
    print(
        f"  upload {r['size_mb']} MB: {r['upload_s']:.2f} s = {r['upload_mb_s']:.0f} MB/s "
        f"(best of {r['runs']}); cp + fsync: {r['cp_s']:.2f} s = {r['cp_mb_s']:.0f} MB/s; "
        f"ours/cp {r['cp_ratio']:.2f}; server RSS growth {r['rss_growth_mb']:.1f} MB"
    )
    print(
        f"RESULT upload_mb_s={r['upload_mb_s']:.0f} upload_rss_growth_mb="
        f"{r['rss_growth_mb']:.1f} cp_ratio={r['cp_ratio']:.2f}"
    )


if __name__ == "__main__":
    main()
