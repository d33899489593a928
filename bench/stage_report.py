"""bench/stage.py's tables and its RESULT line."""

from __future__ import annotations

import math
import statistics
from typing import Any

from bench.realtime import ms, percentile
from bench.stage_deck import COMMON_WIDTH, WIDTHS, RawRender

# Targets from the issue.
TARGET_WS_MS, TARGET_FALLBACK_MS, TARGET_SLIDE_KB = 300.0, 1000.0, 60.0


def row(label: str, a: str, b: str = "") -> None:
    print(f"  {label:<44} {a:<28} {b}")


def num(value: float, digits: int = 1) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return "inf" if math.isinf(value) else f"{value:.{digits}f}"


def deck_rows(raw: RawRender, upload: dict[str, Any] | None) -> float:
    """The deck's rendering, ours against the libraries alone; returns ours ms/page."""
    print("\nDeck rendering (per page)")
    render = statistics.mean(raw.render_ms)
    webp = statistics.mean(raw.webp_ms)
    text = statistics.mean(raw.text_ms)
    widths = "/".join(str(w) for w in WIDTHS)
    row(
        f"pypdfium2 render to bitmap, {widths} px (ms)",
        num(render),
        "best of rounds, mean of pages",
    )
    row(
        f"pypdfium2 render at {COMMON_WIDTH} px only (ms)",
        num(statistics.mean(raw.render_common_ms)),
    )
    row(f"Pillow WebP encode, {widths} px (ms)", num(webp))
    row("pypdfium2 text extraction (ms)", num(text, 2))
    row("libraries alone, all of it (ms)", num(render + webp + text))
    row(f"Pillow WebP at {COMMON_WIDTH} px (KB)", num(statistics.mean(raw.common_bytes) / 1000))
    ours = math.nan
    if upload is not None:
        deck = upload.get("deck")
        if deck is None:
            row("ours: upload", "failed", upload.get("error", ""))
        else:
            ours = upload["stored_s"] * 1000 / deck[1]
            row("ours: upload to stored (ms/page)", num(ours), f"answered {upload['status']}")
            row(
                "ours: server CPU, renderer included (ms/page)",
                num(upload["server_cpu_s"] * 1000 / deck[1]),
            )
            row("ours / libraries alone", num(ours / (render + webp + text), 2))
    return ours


def slide_rows(slides: dict[str, Any]) -> None:
    f = slides["figures"]
    print(f"\nSlides: {f.changes} changes, viewers by transport")
    answer = percentile(slides["answer_ms"], 0.5)
    row("presenter's post answered", str(f.answers), f"p50 {ms(answer)} ms")
    for kind in ("ws", "sse", "poll"):
        if kind not in f.ms:
            continue
        target = TARGET_WS_MS if kind == "ws" else TARGET_FALLBACK_MS
        row(f"{kind} ({f.viewers[kind]}): event p50 / p95 (ms)", pair(f, kind, "event"))
        row(
            f"{kind}: shown, new slide p50 / p95 (ms)",
            pair(f, kind, "new"),
            f"target p95 <= {target:.0f} ms",
        )
        row(f"{kind}: shown, cached slide p50 / p95 (ms)", pair(f, kind, "cached"))
        row(f"{kind}: shown, every change p50 / p95 (ms)", pair(f, kind, "shown"))
        row(f"{kind}: image fetch after the event p50 / p95", pair(f, kind, "fetch"))
    row("shown p95 per change, every viewer (ms)", " ".join(f"{v:.0f}" for v in f.per_change_p95))
    for label, kb in (
        ("change shown by a request", f.kb_per_new_slide),
        ("change, images fetched ahead included", f.kb_per_slide),
        ("different slide (all it read / slides)", f.kb_per_distinct_slide),
    ):
        row(
            f"KB per viewer per {label} p50 / p95 / max",
            " / ".join(num(v) for v in (percentile(kb, 0.5), percentile(kb, 0.95), max(kb))),
            f"target <= {TARGET_SLIDE_KB:.0f} KB" if label.startswith("different") else "",
        )
    row("image response (KB, status + headers + body)", num(percentile(f.image_kb, 0.5)))
    row("server CPU during the changes (% of a core)", num(slides["server_cpu"]))
    cost = slides["image_cost"]
    row(
        "one image request alone: server CPU (ms)",
        f"{num(cost['full_cpu_ms'])} (200), {num(cost['revalidated_cpu_ms'])} (304)",
        f"answered in {num(cost['full_ms'])} / {num(cost['revalidated_ms'])} ms",
    )
    if "signed_full_cpu_ms" in cost:
        full, again = cost["signed_full_cpu_ms"], cost["signed_revalidated_cpu_ms"]
        row(
            "the same by the stage's signed link (ms)",
            f"{num(full)} (200), {num(again)} (304)",
            f"answered in {num(cost['signed_full_ms'])} / {num(cost['signed_revalidated_ms'])} ms",
        )
    others = f"{num(slides['client_cpu'])} / {num(slides['other_cpu'])}"
    row("viewers' CPU / other processes' (% of a core)", others)
    if f.errors:
        row("problems", str(f.errors))


def pair(f: Any, kind: str, name: str) -> str:
    return f"{ms(f.p(kind, name, 0.5))} / {ms(f.p(kind, name, 0.95))}"


def video_rows(ours: dict[str, Any] | None, bare: dict[str, Any] | None) -> None:
    print("\nVideo: one interpreter tile")
    row("", "roundtable", "bare relay")

    def both(label: str, key: str, fmt: Any = num) -> None:
        a = fmt(ours[key]) if ours and key in ours else "n/a"
        b = fmt(bare[key]) if bare and key in bare else "n/a"
        row(label, a, b)

    both("viewers open at the end", "open", str)
    both("viewers that received frames", "receiving", str)
    both("frames sent in the window", "frames_sent", str)
    both("sent (kbit/s)", "sent_kbps")
    both("frame delivery p50 (ms)", "p50_ms")
    both("frame delivery p95 (ms)", "p95_ms")
    both("frame delivery max (ms)", "max_ms")
    both("relay -> viewer p95 (ms)", "relay_p95_ms")
    both("per-viewer download p50 (kbit/s)", "kbps_p50")
    both("per-viewer download p95 (kbit/s)", "kbps_p95")
    both("frames delivered, mean share", "delivered_mean", lambda v: num(v * 100) + " %")
    both("frames delivered, least", "delivered_min", lambda v: num(v * 100) + " %")
    both("server CPU (% of one core)", "server_cpu")
    both("server event loop CPU (%)", "loop_cpu")
    both("clients' CPU (%)", "client_cpu")
    both("other processes' CPU (%)", "other_cpu")
    both("server peak RSS (MB)", "rss_peak", lambda v: num(v / 2**20, 0))
    both(
        "late viewer: first keyframe, median / max (ms)",
        "late_ms",
        lambda v: f"{ms(percentile(v, 0.5))} / {ms(max(v, default=math.nan))} ({len(v)})",
    )
    both("keyframes sent", "keyframes", str)
    both("keyframe requests", "keyframe_requests", str)
    both(
        "keyframe sent after a request, median / max (ms)",
        "keyframe_after_request_ms",
        lambda v: f"{ms(percentile(sorted(v), 0.5))} / {ms(max(v, default=math.nan))}",
    )
    both("tile: latest send after its time (ms)", "send_late_max_ms")
    both("tile: frames skipped (this process was late)", "skipped", str)
    both("other packets / malformed frames", "strangers", str)
    both("the tile heard", "tile_messages", str)
    for name, figures in (("roundtable", ours), ("bare", bare)):
        if figures and (figures.get("errors") or figures.get("tile_error")):
            row(f"{name}: problems", str(figures.get("errors")), figures.get("tile_error", ""))


def report(out: dict[str, Any]) -> None:
    app = out.get("app") or {}
    ours_ms = deck_rows(out["raw"], app.get("upload"))
    raw = out["raw"]
    raw_ms = statistics.mean(raw.render_ms) + statistics.mean(raw.webp_ms)
    slides = app.get("slides")
    if slides:
        slide_rows(slides)
    ours, bare = app.get("video"), out.get("bare")
    if ours or bare:
        video_rows(ours, bare)
    if app.get("log", "").strip():
        print("  roundtable server log (last lines):\n    " + app["log"].replace("\n", "\n    "))
    f = slides["figures"] if slides else None
    # What viewers see: every change, the next slide usually fetched ahead (stage.js).
    ws = f.p("ws", "shown", 0.95) if f else math.nan
    fallback = {k: f.p(k, "shown", 0.95) if f else math.nan for k in ("sse", "poll")}
    kb = percentile(f.kb_per_distinct_slide, 0.95) if f else math.nan
    cpu = ours["server_cpu"] if ours else math.nan
    ratio = cpu / bare["server_cpu"] if ours and bare and bare["server_cpu"] else math.nan
    print(
        f"\nslide fallback p95: sse {ms(fallback['sse'])} ms, poll {ms(fallback['poll'])} ms; "
        f"render {num(ours_ms)} ms/page, libraries alone {num(raw_ms)} ms/page; "
        f"video p95 {ms(ours['p95_ms'] if ours else math.nan)} ms "
        f"(bare {ms(bare['p95_ms'] if bare else math.nan)} ms)"
    )
    print(
        f"RESULT slide_p95_ms={ms(ws)} slide_kb={num(kb)} "
        f"video_viewers={ours['receiving'] if ours else 0} "
        f"video_kbps={num(ours['kbps_p95'] if ours else math.nan)} "
        f"video_cpu_pct={num(cpu)} bare_cpu_ratio={num(ratio, 2)}"
    )
