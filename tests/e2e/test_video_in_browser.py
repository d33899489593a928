"""The stage's video in real Chromium: the pinned interpreter's fake camera (Chromium's
`--use-fake-device-for-media-stream`) is encoded in their page and decoded on the plenary
viewers' canvases; a viewer in a breakout room and one with "Video off" receive no video
at all; with WebSockets blocked, the camera is posted and the viewer's frames come over the
fallback."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from playwright.async_api import expect

from app.live import channels
from app.models import Role
from tests.conftest import LiveServer
from tests.e2e import axe
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, signed_in_page
from tests.factories import World, add_member, make_user, make_world

# Counts the video bytes each page's WebSockets receive, whatever the page's scripts do.
COUNT_VIDEO_BYTES = """(() => {
  const Native = window.WebSocket;
  window.__videoBytes = 0;
  function Counting(url, protocols) {
    const ws = protocols ? new Native(url, protocols) : new Native(url);
    ws.addEventListener("message", (e) => {
      if (typeof e.data === "string" || !e.data.byteLength) return;
      const v = new DataView(e.data);
      for (let at = 0; at + 13 <= e.data.byteLength; at += 13 + v.getUint16(at + 11)) {
        if (v.getUint8(at) === 2) window.__videoBytes += 13 + v.getUint16(at + 11);
      }
    });
    return ws;
  }
  Counting.prototype = Native.prototype;
  Object.assign(Counting, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
  window.WebSocket = Counting;
})();"""

# A small fingerprint of what a canvas shows now.
CANVAS_PRINT = """(canvas) => {
  const d = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let h = 0;
  for (let i = 0; i < d.length; i += 97) h = (h * 31 + d[i]) | 0;
  return [canvas.width, canvas.height, h];
}"""


@asynccontextmanager
async def camera_browser(chromium: Any) -> AsyncIterator[Any]:
    """A Chromium of its own whose camera is Chromium's fake one (a moving test picture),
    allowed without asking the browser's own question (the page asks first)."""
    browser = await chromium.browser_type.launch(
        executable_path=CHROMIUM,
        args=[
            *CHROMIUM_ARGS,
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
        ],
    )
    try:
        yield browser
    finally:
        await browser.close()


def live_path(w: World) -> str:
    return f"/programmes/{w.programme.id}/sessions/{w.session.id}/live"


async def act(server: LiveServer, user: Any, path: str, data: dict[str, Any]) -> None:
    async with server.client(user) as http:
        response = await http.post(path, data=data, headers={"HX-Request": "true"})
    assert response.status_code == 200, response.text


async def pin_interpreter(server: LiveServer, w: World) -> None:
    who = {"user_id": w.observer.id}
    await act(server, w.host, live_path(w) + "/stage/roles", {**who, "role": "interpreter"})
    await act(server, w.host, live_path(w) + "/stage/tiles/pin", {**who, "kind": "interpreter"})


async def block_websockets(page: Any) -> None:
    async def refuse(ws: Any) -> None:
        await ws.close(code=1006, reason="blocked")

    await page.route_web_socket(re.compile(r".*"), refuse)


async def turn_camera_on(page: Any, path: str) -> None:
    await page.goto(path)
    consent = page.get_by_role("group", name="Turn your camera on?")
    await expect(consent).to_be_visible()
    await expect(consent).to_contain_text("It is not recorded")
    await consent.get_by_role("button", name="Turn my camera on").click()
    await expect(page.locator("#camera-on")).to_contain_text("Your camera is on")
    await expect(page.locator("#camera-status")).to_have_text("Your camera is on.")


async def sees_frames(page: Any, name: str) -> None:
    """The tile's canvas is named for the person and keeps changing, at 320x240."""
    canvas = page.get_by_role("img", name=name)
    await expect(canvas).to_be_visible()
    tile = page.locator(".tile-interpreter")
    await expect(tile).to_have_attribute(
        "data-frames", re.compile(r"^([5-9]|\d\d+)$"), timeout=15_000
    )
    first = await canvas.evaluate(CANVAS_PRINT)
    await page.wait_for_timeout(400)
    second = await canvas.evaluate(CANVAS_PRINT)
    assert first[:2] == [320, 240] and second[:2] == [320, 240]
    assert first[2] != second[2], "the picture did not change"
    sizes = await page.evaluate("() => Object.values(window.RoundtableVideo.stats.sizes)")
    assert sizes == ["320x240"]


async def test_the_interpreter_is_seen_in_the_plenary_only(
    live_server: LiveServer, plain_db: Any, chromium: Any, report_figure: Any
) -> None:
    w = await make_world(plain_db)
    path = live_path(w)
    await act(live_server, w.host, path + "/breakouts/open", {"minutes": "20"})
    await pin_interpreter(live_server, w)
    async with camera_browser(chromium) as cameras:
        interpreter = await signed_in_page(cameras, live_server, w.observer)
        await turn_camera_on(interpreter, path)
        host = await signed_in_page(chromium, live_server, w.host)
        await host.add_init_script(COUNT_VIDEO_BYTES)
        await host.goto(path)
        await sees_frames(host, "Sign-language interpreter: Olu Observer")
        await expect(host.locator("#video-count")).to_have_text("Showing 1 of 1 camera.")
        enlarge = host.get_by_role("button", name="Enlarge interpreter")
        await enlarge.click()
        await expect(enlarge).to_have_attribute("aria-pressed", "true")
        assert (await host.locator(".tile-interpreter canvas").bounding_box())["width"] > 500
        # The stage's video and the host's controls pass axe, open and enlarged.
        await host.locator("#tile-controls summary").click()
        await axe.assert_no_serious_violations(host, "the host's live page with a tile")
        await axe.assert_no_serious_violations(interpreter, "the interpreter's live page")
        # "Video off" (kept from an earlier visit), and a participant in group A's room.
        off = await signed_in_page(chromium, live_server, w.it_support)
        await off.add_init_script(COUNT_VIDEO_BYTES)
        await off.add_init_script("localStorage.setItem('rtVideoChoice', 'off')")
        await off.goto(path)
        await expect(off.get_by_role("radio", name="Video off")).to_be_checked()
        await expect(off.locator("#video-count")).to_have_text("Video is off.")
        in_room = await signed_in_page(chromium, live_server, w.participant_a)
        await in_room.add_init_script(COUNT_VIDEO_BYTES)
        await in_room.goto(path)
        await expect(in_room.locator("#room")).to_have_attribute(
            "data-room", channels.room(w.session.id, w.group_a.id)
        )
        before = await host.evaluate("[window.__videoBytes, performance.now()]")
        await host.wait_for_timeout(2000)
        after = await host.evaluate("[window.__videoBytes, performance.now()]")
        kbps = (after[0] - before[0]) * 8 / (after[1] - before[1])
        frames = await host.evaluate("Object.values(window.RoundtableVideo.stats.frames)[0]")
        report_figure(
            f"video tile in Chromium: {kbps:.0f} kbit/s to a viewer, {frames} frames decoded"
        )
        # Received and within the stated bitrate (200 kbit/s, with room for keyframes).
        assert 20 < kbps < 400
        assert await off.evaluate("window.__videoBytes") == 0
        assert await in_room.evaluate("window.__videoBytes") == 0
        assert await in_room.locator("canvas").count() == 0
        # The host stops the tile: the interpreter's camera goes off, and says so.
        host_stop = host.get_by_role("button", name="Stop Olu Observer's video")
        await host_stop.click()
        await expect(interpreter.locator("#camera-on")).to_be_hidden()
        await expect(interpreter.locator("#camera-status")).to_have_text("Your camera is off.")
        for page in (interpreter, host, off, in_room):
            assert page.js_errors == []


async def test_video_both_ways_with_websockets_blocked(
    live_server: LiveServer, plain_db: Any, chromium: Any
) -> None:
    w = await make_world(plain_db)
    rosa = await make_user(plain_db, name="Rosa Viewer")
    await add_member(plain_db, w.programme, rosa, Role.PARTICIPANT)
    await plain_db.commit()
    path = live_path(w)
    await pin_interpreter(live_server, w)
    async with camera_browser(chromium) as cameras:
        interpreter = await signed_in_page(cameras, live_server, w.observer)
        await block_websockets(interpreter)
        await turn_camera_on(interpreter, path)
        viewer = await signed_in_page(chromium, live_server, rosa)
        await block_websockets(viewer)
        await viewer.goto(path)
        await expect(viewer.locator("#live-status")).to_have_text("Live (compatibility mode)")
        await sees_frames(viewer, "Sign-language interpreter: Olu Observer")
        assert await interpreter.evaluate("window.RoundtableVideo.stats.posted") > 5
        assert await interpreter.evaluate("window.RoundtableVideo.stats.sent") == 0
        assert interpreter.js_errors == [] and viewer.js_errors == []
