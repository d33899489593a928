// Roundtable stage video (docs/stage-tiles.md), loaded by live.js once the room's stage shows a
// tile or the person asks for their camera; never in text-only mode.
// Viewing: the person's choice ("Video on", "Interpreter only", "Video off", kept in
// localStorage) is asked for in the live connection's hello; each tile's VP8 frames arrive
// as media packets (kind 2: flags:u8 width:u16 height:u16 then the frame) and one
// VideoDecoder per tile draws them on the tile's canvas. The room shows as many tiles as the
// viewer's connection takes, and says so.
// Sending: after the person agrees, the camera is encoded (VP8 320x240, 15 fps, 200 kbit/s,
// a keyframe every 2 s and when the server asks) and sent on the page's WebSocket, or by
// POST to {live base}/video when WebSockets are blocked.
(function () {
  "use strict";
  var live = window.RoundtableLive;
  if (!live || window.RoundtableVideo) return;
  var KIND_VIDEO = 2, HEADER = 13, WIDTH = 320, HEIGHT = 240, FPS = 15, BITRATE = 200000;
  var KEY_EVERY = 2 * FPS, TILE_KBPS = 250, POST_EVERY = 200;
  var csrf = JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRF-Token"];
  var stats = { bytes: 0, packets: 0, frames: {}, sizes: {}, sent: 0, posted: 0, kbps: 0 };
  var decoders = {}, capture = null, declined = false, recent = [];
  window.RoundtableVideo = { stats: stats };

  function $(id) { return document.getElementById(id); }
  function section() { return $("stage-video"); }
  function say(id, text) { var el = $(id); if (el) el.textContent = text; }
  function me() { var s = section(); return s ? s.getAttribute("data-me") : ""; }
  function tiles() { var s = section(); return s ? Array.prototype.slice.call(s.querySelectorAll(".tile[data-source]")) : []; }
  function tileOf(source) { var s = section(); return s && s.querySelector('.tile[data-source="' + source + '"]'); }
  function post(url, body, type) {
    var headers = { "X-CSRF-Token": csrf, "HX-Request": "true" };
    if (type) headers["Content-Type"] = type;
    return fetch(url, { method: "POST", headers: headers, body: body, credentials: "same-origin" });
  }

  // -- choosing what to see --
  function choice() {
    var kept = localStorage.getItem("rtVideoChoice");
    if (kept === "on" || kept === "interpreter" || kept === "off") return kept;
    var s = section();
    return s ? s.getAttribute("data-default") || "off" : "off";
  }
  function watch() {
    var c = choice(), kinds = c === "on" ? ["video"] : c === "interpreter" ? ["interpreter"] : [];
    var allowed = capacity();
    // Only the interpreter fits: ask the server for the interpreter's tile alone.
    if (c === "on" && allowed < tiles().length && allowed <= 1 && hasInterpreter()) kinds = ["interpreter"];
    live.watch(kinds, onMedia, onControl);
    if (!kinds.length) closeDecoders();
  }
  function hasInterpreter() { return tiles().some(function (t) { return t.getAttribute("data-kind") === "interpreter"; }); }

  // -- how many tiles the connection takes --
  var limit = Infinity, slowSince = 0, lastCut = 0;
  function capacity() {
    var c = navigator.connection, byLink = c && c.downlink ? Math.floor(c.downlink * 1000 * 0.6 / TILE_KBPS) : Infinity;
    return Math.max(1, Math.min(limit, byLink));
  }
  function measure() {
    var now = Date.now();
    recent.push([now, stats.bytes]);
    while (recent.length > 1 && now - recent[0][0] > 5000) recent.shift();
    var first = recent[0], seconds = (now - first[0]) / 1000;
    stats.kbps = seconds > 0 ? Math.round((stats.bytes - first[1]) * 8 / 1000 / seconds) : 0;
    // Tiles shown but each getting fewer than a third of its frames for 5 s: one fewer.
    var shown = shownTiles(), wanted = shown.length * FPS / 3, got = 0;
    shown.forEach(function (t) { got += (decoders[t.getAttribute("data-source")] || {}).recentFrames || 0; });
    Object.keys(decoders).forEach(function (s) { decoders[s].recentFrames = 0; });
    if (shown.length > 1 && got < wanted && stats.kbps > 0) {
      if (!slowSince) slowSince = now;
      if (now - slowSince > 5000) { limit = shown.length - 1; slowSince = 0; lastCut = now; refresh(); }
    } else {
      slowSince = 0;
      if (limit !== Infinity && now - lastCut > 30000) { limit = Infinity; refresh(); }
    }
  }
  function shownTiles() { return tiles().filter(function (t) { return !t.hasAttribute("data-off"); }); }

  // Interpreter first, then presenters, then cameras; the viewer's own tile is never drawn.
  function arrange() {
    var c = choice(), list = tiles(), allowed = capacity(), shown = 0, total = 0;
    list.sort(function (a, b) { return rank(a) - rank(b); });
    list.forEach(function (t) {
      var kind = t.getAttribute("data-kind"), wanted = c === "on" || (c === "interpreter" && kind === "interpreter");
      if (t.getAttribute("data-source") === me()) wanted = false;
      else total++;
      var on = wanted && shown < allowed, mine = t.getAttribute("data-source") === me();
      if (on) shown++;
      if (on) t.removeAttribute("data-off"); else t.setAttribute("data-off", mine ? "self" : c === "off" ? "choice" : "cut");
      var state = t.querySelector(".tile-state"), text = mine ? "(you)" : on ? "" : "(not shown)";
      if (state && state.textContent !== text) state.textContent = text;
    });
    var line = c === "off" ? "Video is off." : total === 0 ? "" :
      "Showing " + shown + " of " + total + (total === 1 ? " camera" : " cameras") +
      (shown < total && c === "on" ? ": your connection takes at most " + allowed + "." : ".");
    var count = $("video-count");
    if (count && count.textContent !== line) count.textContent = line;
  }
  var RANK = { interpreter: 0, presenter: 1, camera: 2 };
  function rank(t) { return RANK[t.getAttribute("data-kind")]; }

  // -- receiving --
  function onMedia(buf) {
    var view = new DataView(buf), at = 0;
    while (at + HEADER <= buf.byteLength) {
      var kind = view.getUint8(at), source = view.getUint32(at + 1), length = view.getUint16(at + 11);
      if (at + HEADER + length > buf.byteLength) break;
      if (kind === KIND_VIDEO && length > 5) {
        stats.bytes += length + HEADER;
        stats.packets++;
        frame(source, new Uint8Array(buf, at + HEADER, length));
      }
      at += HEADER + length;
    }
  }
  function frame(source, data) {
    var tile = tileOf(source);
    if (!tile || tile.hasAttribute("data-off") || typeof VideoDecoder === "undefined") return;
    var key = (data[0] & 1) === 1, d = decoders[source];
    if (!d) d = decoders[source] = decoder(source);
    if (d.waitKey && !key) return;
    d.waitKey = false;
    try {
      d.decoder.decode(new EncodedVideoChunk({ type: key ? "key" : "delta", timestamp: performance.now() * 1000, data: data.subarray(5) }));
    } catch (e) { d.waitKey = true; }
  }
  function decoder(source) {
    var d = { waitKey: true, recentFrames: 0 };
    d.decoder = new VideoDecoder({
      output: function (f) {
        var tile = tileOf(source), canvas = tile && tile.querySelector("canvas");
        if (canvas) {
          if (canvas.width !== f.displayWidth) canvas.width = f.displayWidth;
          if (canvas.height !== f.displayHeight) canvas.height = f.displayHeight;
          canvas.getContext("2d").drawImage(f, 0, 0);
          stats.frames[source] = (stats.frames[source] || 0) + 1;
          stats.sizes[source] = f.displayWidth + "x" + f.displayHeight;
          tile.setAttribute("data-frames", stats.frames[source]);
          d.recentFrames++;
        }
        f.close();
      },
      error: function () { d.waitKey = true; delete decoders[source]; }
    });
    d.decoder.configure({ codec: "vp8", optimizeForLatency: true });
    return d;
  }
  function closeDecoders() {
    Object.keys(decoders).forEach(function (s) { try { decoders[s].decoder.close(); } catch (e) { /* closed */ } });
    decoders = {};
  }

  // -- sending --
  function pinned() { return !!tileOf(me()); }
  function onControl(ev) {
    if (!capture) return;
    if (ev.t === "keyframe") capture.key = true;
    // The server may not know of the tile for a moment after it was made: only a refusal
    // that lasts says so.
    else if (ev.code === "not_pinned" && Date.now() - capture.started > 5000) {
      stopCapture("Your video is not on the stage any more.");
    }
  }
  function offerCamera() {
    if (capture || declined) return;
    var consent = $("camera-consent");
    if (consent && consent.hidden) { consent.hidden = false; consent.querySelector(".camera-start").focus(); }
  }
  function startCapture() {
    var consent = $("camera-consent");
    if (consent) consent.hidden = true;
    if (typeof VideoEncoder === "undefined" || !navigator.mediaDevices) {
      say("camera-message", "This browser cannot send video: try a recent Chrome, Edge or Firefox.");
      return;
    }
    var ready = pinned() ? Promise.resolve() : post(section().getAttribute("data-base") + "/stage/camera/on").then(function (r) {
      return r.text().then(function (t) { if (!r.ok) throw new Error(t); });
    });
    ready.then(function () {
      return navigator.mediaDevices.getUserMedia({ video: { width: WIDTH, height: HEIGHT, frameRate: FPS }, audio: false });
    }).then(begin).catch(function (e) {
      say("camera-message", e && e.name === "NotAllowedError" ? "The browser did not let us use your camera: allow it in the address bar and try again." : (e && e.message) || "The camera could not start.");
    });
  }
  function begin(stream) {
    var video = document.createElement("video"), canvas = document.createElement("canvas");
    video.muted = true; video.playsInline = true; video.srcObject = stream; video.play();
    canvas.width = WIDTH; canvas.height = HEIGHT;
    var c = capture = { stream: stream, video: video, key: true, count: 0, seq: 0, queue: [], started: Date.now() };
    c.encoder = new VideoEncoder({
      output: function (chunk) { send(c, chunk); },
      error: function () { stopCapture("The camera's video could not be encoded."); }
    });
    c.encoder.configure({ codec: "vp8", width: WIDTH, height: HEIGHT, bitrate: BITRATE, framerate: FPS, latencyMode: "realtime" });
    c.timer = setInterval(function () {
      if (video.readyState < 2 || c.encoder.encodeQueueSize > 2) return;
      canvas.getContext("2d").drawImage(video, 0, 0, WIDTH, HEIGHT);
      var f = new VideoFrame(canvas, { timestamp: Math.round(performance.now() * 1000) });
      var key = c.key || c.count % KEY_EVERY === 0;
      c.key = false; c.count++;
      c.encoder.encode(f, { keyFrame: key });
      f.close();
    }, 1000 / FPS);
    c.poster = setInterval(function () { flush(c); }, POST_EVERY);
    $("camera-on").hidden = false;
    say("camera-status", "Your camera is on.");
    say("camera-message", "");
    stream.getVideoTracks().forEach(function (t) { t.onended = function () { stopCapture("Your camera stopped."); }; });
  }
  function send(c, chunk) {
    var bytes = new Uint8Array(chunk.byteLength);
    chunk.copyTo(bytes);
    var packet = new Uint8Array(HEADER + 5 + bytes.length), view = new DataView(packet.buffer);
    view.setUint8(0, KIND_VIDEO);
    view.setUint16(5, c.seq++ & 0xffff);
    view.setUint16(11, 5 + bytes.length);
    view.setUint8(13, chunk.type === "key" ? 1 : 0);
    view.setUint16(14, WIDTH);
    view.setUint16(16, HEIGHT);
    packet.set(bytes, HEADER + 5);
    if (live.transport() === "websocket" && live.sendMedia(packet.buffer)) { stats.sent++; return; }
    c.queue.push(packet);
    // Only the newest few wait: old video is worth nothing.
    while (c.queue.length > 6) c.queue.shift();
  }
  function flush(c) {
    if (!c.queue.length || c.posting) return;
    var parts = c.queue, size = 0;
    c.queue = [];
    parts.forEach(function (p) { size += p.length; });
    var body = new Uint8Array(size), at = 0;
    parts.forEach(function (p) { body.set(p, at); at += p.length; });
    c.posting = true;
    post(section().getAttribute("data-post"), body, "application/octet-stream").then(function (r) {
      c.posting = false;
      if (r.ok) return r.json().then(function (a) { stats.posted += parts.length; if (a.keyframe) c.key = true; });
      return r.text().then(function (t) {
        if (r.status === 403 && Date.now() - c.started > 5000) stopCapture(t);
      });
    }).catch(function () { c.posting = false; });
  }
  function stopCapture(message) {
    var c = capture;
    if (!c) return;
    capture = null;
    clearInterval(c.timer); clearInterval(c.poster);
    c.stream.getTracks().forEach(function (t) { t.stop(); });
    try { c.encoder.close(); } catch (e) { /* closed */ }
    $("camera-on") && ($("camera-on").hidden = true);
    say("camera-status", "Your camera is off.");
    if (message) say("camera-message", message);
  }

  // -- the page --
  function refresh() {
    var s = section();
    if (!s) { stopCapture(); closeDecoders(); return; }
    var c = choice();
    s.querySelectorAll('input[name="video-choice"]').forEach(function (r) { r.checked = r.value === c; });
    s.querySelectorAll(".tile-interpreter").forEach(function (t) {
      var large = sessionStorage.getItem("rtInterpreterLarge") === "1", b = t.querySelector(".tile-enlarge");
      t.classList.toggle("tile-large", large);
      if (b) b.setAttribute("aria-pressed", large ? "true" : "false");
    });
    Object.keys(decoders).forEach(function (src) { if (!tileOf(src)) { try { decoders[src].decoder.close(); } catch (e) { /* closed */ } delete decoders[src]; } });
    if (pinned()) { offerCamera(); if (capture) capture.seen = true; }
    // The tile this camera was sent as is gone (stopped by a host or facilitator, or the
    // person moved): stop the camera.
    else if (capture && capture.seen) stopCapture("Your video was taken off: your camera is off.");
    if (s.getAttribute("data-asked") === "1") { s.removeAttribute("data-asked"); declined = false; offerCamera(); }
    arrange();
    watch();
  }
  document.addEventListener("change", function (e) {
    if (e.target.name !== "video-choice") return;
    localStorage.setItem("rtVideoChoice", e.target.value);
    refresh();
  });
  document.addEventListener("click", function (e) {
    var t = e.target.closest ? e.target : e.target.parentElement;
    if (t.closest(".camera-ask")) { declined = false; offerCamera(); }
    else if (t.closest(".camera-start")) startCapture();
    else if (t.closest(".camera-decline")) { declined = true; $("camera-consent").hidden = true; say("camera-status", "Your camera stays off."); }
    else if (t.closest(".camera-stop")) {
      declined = true;
      stopCapture("");
      if (!pinned() || tileOf(me()).getAttribute("data-kind") === "camera") post(section().getAttribute("data-base") + "/stage/camera/off");
    } else if (t.closest(".tile-enlarge")) {
      var large = sessionStorage.getItem("rtInterpreterLarge") !== "1";
      sessionStorage.setItem("rtInterpreterLarge", large ? "1" : "0");
      refresh();
    } else if (t.closest("[data-tile-stop]")) {
      var id = t.closest("[data-tile-stop]").getAttribute("data-tile-stop");
      post(section().getAttribute("data-base") + "/stage/tiles/" + id + "/stop").then(function (r) {
        return r.text().then(function (text) { say("action-status", text); });
      });
    }
  });
  // The tiles' list is replaced by each stage.tiles event (a child of the section), the
  // whole room (with the section) on a move.
  var pending = false, watched = null;
  function soon() {
    if (pending) return;
    pending = true;
    setTimeout(function () { pending = false; observeSection(); refresh(); }, 0);
  }
  var tilesObserver = new MutationObserver(soon);
  function observeSection() {
    var s = section();
    if (s === watched) return;
    tilesObserver.disconnect();
    watched = s;
    if (s) tilesObserver.observe(s, { childList: true });
  }
  new MutationObserver(soon).observe($("live"), { childList: true });
  observeSection();
  setInterval(function () { measure(); }, 1000);
  refresh();
})();
