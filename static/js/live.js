// Roundtable live session: follows the page's channels over a WebSocket, falling back to
// Server-Sent Events and then long-polling where WebSockets are blocked. The server sends
// ready-made HTML fragments; this script only places them.
// Sound (docs/voice.md): once voice.js asks (window.RoundtableLive.listen), the hello asks for
// "media": ["audio"] (SSE and long-poll: media=audio) and every media message, binary on the
// WebSocket or {"t":"m","b":base64} on the fallbacks, goes to voice.js as an ArrayBuffer.
// Video (docs/stage-tiles.md): video.js, loaded once the stage shows a tile (or the person asks
// for their camera), asks for "video" or "interpreter" (RoundtableLive.watch), gets the same
// media messages and the keyframe and not_pinned controls, and sends its camera's packets
// on the WebSocket (RoundtableLive.sendMedia; false: post them instead).
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live) return;
  var base = live.getAttribute("data-base");
  // Consoles draw their own view of the room (data-room-url) and redraw it all to resync.
  var roomUrl = live.getAttribute("data-room-url");
  var csrf = JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRF-Token"];
  var cursors = {}, gen = 0, socket = null, stream = null, lastSeen = Date.now(), retry = 1000;
  var OPEN_TIMEOUT = 5000, STALE = 60000;
  // Media: where audio goes (voice.js), and this page's long-poll listener id (for its life).
  var hear = null, listener = null, transport = "";
  var see = null, seeKinds = [], seeControl = null;

  function $(id) { return document.getElementById(id); }
  function say(id, text) { var el = $(id); if (el) el.textContent = text; }
  function status(text) { say("live-status", text); }
  function readCursors() {
    cursors = {};
    document.querySelectorAll("[data-channel]").forEach(function (el) {
      cursors[el.getAttribute("data-channel")] = +el.getAttribute("data-last-id") || 0;
    });
  }
  function cursorText() {
    return Object.keys(cursors).map(function (c) { return c + "=" + cursors[c]; }).join(",");
  }
  function box(channel) {
    return document.querySelector('[data-channel="' + CSS.escape(channel) + '"]');
  }

  function handle(text) {
    lastSeen = Date.now();
    if (typeof text !== "string") { media(text); return; }
    var ev;
    try { ev = JSON.parse(text); } catch (e) { return; }
    apply(ev);
  }

  function apply(ev) {
    switch (ev.t) {
      case "hb": case "pong": return;
      case "m": if (ev.b) media(unbase64(ev.b)); return;
      case "keyframe": if (seeControl) seeControl(ev); return;
      case "hello": retry = 1000; status(ev.transport === "websocket" ? "Live" : "Live (compatibility mode)"); return;
      case "ack": answered(ev); return;
      case "error": if (ev.code === "not_pinned" && seeControl) { seeControl(ev); return; }
        if (!answered(ev)) say("composer-error", ev.message || "Something went wrong."); return;
      case "resync": resync(ev.c); return;
      case "reconnect": connect(); return;
      // Signed out or no longer in the session: the page, reloaded, says so.
      case "reload": stop(); location.reload(); return;
    }
    var el = box(ev.c);
    if (ev.i) {
      if (ev.i <= (cursors[ev.c] || 0)) return;
      cursors[ev.c] = ev.i;
      if (el) el.setAttribute("data-last-id", ev.i);
    }
    if (ev.h && el && ev.s !== "none") place(el, ev);
    if (ev.d && ev.d.deadline) setDeadline(ev.d.deadline, ev.d.closing);
    if (ev.t === "breakout.opened" || ev.t === "breakout.closed" || ev.t === "room.changed") switchRoom(ev);
    // For the page's other scripts (stage.js): an event was placed.
    document.dispatchEvent(new CustomEvent("roundtable:event", { detail: ev }));
    if (ev.t === "stage.tiles") video();
  }
  function media(buf) { if (hear) hear(buf); if (see) see(buf); }

  // d.into: the id of another list to add to (captions); d.drop: an element it replaces.
  function place(el, ev) {
    var d = ev.d || {}, existing = ev.x && $(ev.x);
    if (d.drop && $(d.drop)) $(d.drop).remove();
    if (ev.s === "remove") { if (existing) existing.remove(); return; }
    var t = document.createElement("template");
    t.innerHTML = ev.h;
    var node = t.content.firstElementChild;
    if (!node) return;
    if (node.id && $(node.id)) existing = $(node.id);
    if (existing) existing.replaceWith(node);
    else {
      var log = (d.into && $(d.into)) || el.querySelector(".log") || el;
      log.appendChild(node);
      while (log.children.length > 300) log.removeChild(log.firstElementChild);
    }
    if (window.htmx) window.htmx.process(node);
  }

  function get(url) {
    return fetch(url, { headers: { "HX-Request": "true" }, credentials: "same-origin" });
  }

  function resync(channel) {
    if (roomUrl) return switchRoom();
    document.dispatchEvent(new CustomEvent("roundtable:resync", { detail: channel }));
    get(base + "/panel?channel=" + encodeURIComponent(channel)).then(function (r) {
      return r.ok ? r.text() : null;
    }).then(function (html) {
      var old = box(channel);
      if (!html || !old) return;
      old.outerHTML = html;
      var fresh = box(channel);
      cursors[channel] = +fresh.getAttribute("data-last-id") || 0;
    });
  }

  function switchRoom(ev) {
    get(roomUrl || base + "/room").then(function (r) { return r.ok ? r.text() : null; }).then(function (html) {
      if (!html) return;
      var room = $("room");
      var wasHere = room.getAttribute("data-room");
      room.outerHTML = html;
      room = $("room");
      if (window.htmx) window.htmx.process(room);
      if (room.getAttribute("data-room") !== wasHere) {
        var title = $("room-title");
        say("action-status", "You are now in: " + (title ? title.textContent : "another room"));
        document.title = (title ? title.textContent + " · " : "") + "Roundtable";
      }
      readCursors();
      tick();
      video();
      resubscribe();
      document.dispatchEvent(new CustomEvent("roundtable:room"));
    });
  }

  function unbase64(b) {
    var bin = atob(b), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }

  // Saying hello again replaces what the connection asked for: "media": [] stops the sound.
  function hello() {
    socket.send(JSON.stringify({ type: "hello", cursors: cursors, media: mediaKinds() }));
  }
  function mediaKinds() { return (hear ? ["audio"] : []).concat(see ? seeKinds : []); }
  function mediaQuery() {
    var kinds = mediaKinds();
    if (!kinds.length) return "";
    if (!listener) listener = Date.now().toString(36) + Math.random().toString(36).slice(2) + Math.random().toString(36).slice(2);
    return "&media=" + kinds.join(",") + (transport === "poll" ? "&listener=" + listener : "");
  }
  function mediaChanged() {
    // A WebSocket still opening (or about to open again) says hello when it opens.
    if (socket) { if (socket.readyState === 1) hello(); return; }
    connect();
  }

  function resubscribe() {
    if (socket && socket.readyState === 1) hello();
    else connect();
  }

  // voice.js: listen(onMedia) to hear the room (onMedia gets each media message as an
  // ArrayBuffer of packets), listen(null) to stop. The WebSocket says hello again; the
  // fallbacks connect again with (or without) media=audio.
  window.RoundtableLive = {
    listen: function (onMedia) {
      var was = !!hear;
      hear = onMedia || null;
      if (was === !!hear) return;
      mediaChanged();
    },
    // video.js: watch(["video"] or ["interpreter"] or [], onMedia, onControl).
    watch: function (kinds, onMedia, onControl) {
      var before = see ? seeKinds.join() : "";
      see = kinds.length ? onMedia : null;
      seeKinds = kinds.slice();
      seeControl = onControl || null;
      if ((see ? seeKinds.join() : "") !== before) mediaChanged();
    },
    sendMedia: function (bytes) {
      if (!socket || socket.readyState !== 1) return false;
      socket.send(bytes);
      return true;
    },
    transport: function () { return transport; }
  };

  // video.js is loaded when the room's stage shows a tile or the person asks for their
  // camera (never in text-only mode, which has no #stage-video).
  var videoLoading = false;
  function video(asked) {
    var section = $("stage-video");
    if (!section || videoLoading || window.RoundtableVideo) return;
    if (!asked && !section.querySelector("[data-source]")) return;
    if (asked) section.setAttribute("data-asked", "1");
    videoLoading = true;
    var script = document.createElement("script");
    script.src = section.getAttribute("data-script");
    script.onerror = function () { videoLoading = false; };
    document.head.appendChild(script);
  }
  document.addEventListener("click", function (e) {
    if (e.target.closest && e.target.closest("#stage-video .camera-ask")) video(true);
  });

  function stop() {
    gen++;
    if (socket) { socket.onclose = null; socket.close(); socket = null; }
    if (stream) { stream.close(); stream = null; }
    Object.keys(waiting).forEach(postInstead);
  }

  function connect() {
    stop();
    var mine = gen;
    lastSeen = Date.now();
    if (!("WebSocket" in window) || sessionStorage.getItem("rtNoWebSocket")) return viaSse(mine);
    status("Connecting…");
    var opened = false, ws = new WebSocket(location.origin.replace(/^http/, "ws") + base + "/ws");
    ws.binaryType = "arraybuffer";
    socket = ws;
    transport = "websocket";
    var timer = setTimeout(function () { if (!opened) { ws.onclose = null; ws.close(); fallback(mine); } }, OPEN_TIMEOUT);
    ws.onopen = function () {
      opened = true; clearTimeout(timer);
      hello();
    };
    ws.onmessage = function (e) { handle(e.data); };
    ws.onclose = function () {
      clearTimeout(timer);
      Object.keys(waiting).forEach(postInstead);
      if (mine !== gen) return;
      if (!opened) return fallback(mine);
      later();
    };
  }

  function fallback(mine) {
    // Remember for this tab that WebSockets do not get through, so the next page starts on the fallback.
    sessionStorage.setItem("rtNoWebSocket", "1");
    // The socket that never opened is gone: "Join audio" must connect the fallback again.
    socket = null;
    viaSse(mine);
  }

  function later() {
    status("Reconnecting…");
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, 15000);
  }

  function viaSse(mine) {
    if (!("EventSource" in window)) return viaPoll(mine);
    transport = "sse";
    var opened = false, es = new EventSource(base + "/sse?cursors=" + encodeURIComponent(cursorText()) + mediaQuery());
    stream = es;
    var timer = setTimeout(function () { if (!opened) { es.close(); viaPoll(mine); } }, OPEN_TIMEOUT);
    es.onopen = function () { opened = true; clearTimeout(timer); };
    es.onmessage = function (e) { handle(e.data); };
    es.onerror = function () {
      if (mine !== gen) return;
      if (!opened) { clearTimeout(timer); es.close(); viaPoll(mine); }
      // Otherwise the browser reconnects by itself, resuming from the last event id.
    };
  }

  function viaPoll(mine) {
    status("Live (compatibility mode)");
    transport = "poll";
    (function loop() {
      if (mine !== gen) return;
      get(base + "/poll?cursors=" + encodeURIComponent(cursorText()) + mediaQuery()).then(function (r) {
        if (!r.ok) throw new Error(r.status);
        return r.json();
      }).then(function (body) {
        lastSeen = Date.now();
        if (mine === gen) body.events.forEach(apply);
        loop();
      }).catch(function () { setTimeout(loop, 3000); });
    })();
  }

  // Countdown timers, computed locally from the deadline the server sent.
  var warned = false;
  function setDeadline(iso) {
    document.querySelectorAll("[data-deadline]").forEach(function (el) { el.setAttribute("data-deadline", iso); });
    warned = false;
  }
  function tick() {
    document.querySelectorAll("[data-deadline]").forEach(function (el) {
      var left = Math.max(0, Math.round((Date.parse(el.getAttribute("data-deadline")) - Date.now()) / 1000));
      el.textContent = Math.floor(left / 60) + ":" + ("0" + (left % 60)).slice(-2);
      if (left <= 60 && left > 0 && !warned) { warned = true; say("action-status", "One minute left."); }
    });
  }

  // Sending: the composer is an htmx form; here we keep each send's id and show refusals.
  function newId() { return Date.now().toString(36) + Math.random().toString(36).slice(2, 10); }
  // Other control forms show the server's short answer (or refusal) in their own .result.
  // 429 "slow down" and 503 "busy" come with Retry-After: say so, and send the same form again
  // (spread out, so a room does not retry in step; the composer keeps its client id).
  function retryLater(form, xhr, text) {
    if (xhr.status !== 429 && xhr.status !== 503) return text;
    return retryAfter(form, +xhr.getResponseHeader("Retry-After"), text);
  }
  function retryAfter(form, wait, text) {
    var n = +form.getAttribute("data-tries") || 0;
    var box = form.elements.text, typed = box && box.value;
    if (!(wait > 0) || n >= 5) return text;
    form.setAttribute("data-tries", n + 1);
    wait += Math.random();
    setTimeout(function () { if (form.isConnected && (!box || box.value === typed)) form.requestSubmit(); }, wait * 1000);
    return text + " Trying again in " + Math.round(wait) + " seconds…";
  }
  function sent(form) {
    form.removeAttribute("data-tries");
    form.reset();
    form.elements.client_id.value = newId();
    say("composer-error", "");
  }

  // While the WebSocket is open the composer's message goes on it (a chat.send frame,
  // answered by "ack" or "error" with its client id): no request per message. If no answer
  // comes (the socket closed, or ANSWER_TIMEOUT passed) the form is posted instead with the
  // same client id, so the message is stored once whichever way it arrived.
  var waiting = {}, ANSWER_TIMEOUT = 12000;
  document.addEventListener("htmx:beforeRequest", function (e) {
    var form = e.detail.elt;
    if (!form || form.id !== "composer") return;
    if (form.hasAttribute("data-post")) { form.removeAttribute("data-post"); return; }
    if (!socket || socket.readyState !== 1) return;
    e.preventDefault();
    var f = form.elements, id = f.client_id.value;
    socket.send(JSON.stringify({
      type: "chat.send", channel: f.channel.value, text: f.text.value, client_id: id,
      "private": !!(f["private"] && f["private"].checked)
    }));
    waiting[id] = { form: form, typed: f.text.value, timer: setTimeout(function () { postInstead(id); }, ANSWER_TIMEOUT) };
  });
  function answered(ev) {
    var w = ev.client_id && waiting[ev.client_id];
    if (!w) return false;
    clearTimeout(w.timer);
    delete waiting[ev.client_id];
    var unchanged = w.form.elements.text.value === w.typed;
    if (ev.t === "ack") { if (unchanged) sent(w.form); else w.form.elements.client_id.value = newId(); return true; }
    say("composer-error", unchanged ? retryAfter(w.form, ev.retry_after, ev.message) : ev.message);
    return true;
  }
  function postInstead(id) {
    var w = waiting[id];
    if (!w) return;
    clearTimeout(w.timer);
    delete waiting[id];
    if (!w.form.isConnected) return;
    // Edited meanwhile: the edit is a new message (the first may have been stored).
    if (w.form.elements.text.value !== w.typed) { w.form.elements.client_id.value = newId(); return; }
    w.form.setAttribute("data-post", "1");
    w.form.requestSubmit();
  }
  document.addEventListener("htmx:afterRequest", function (e) {
    var form = e.detail.elt, xhr = e.detail.xhr, ok = e.detail.successful;
    var text = xhr && xhr.status ? xhr.responseText : "Not sent: you seem to be offline. Try again.";
    if (form && form.tagName === "FORM") {
      if (ok) form.removeAttribute("data-tries");
      else if (xhr && xhr.status) text = retryLater(form, xhr, text);
    }
    var out = form && form.querySelector && form.querySelector(".result");
    if (out) {
      out.textContent = text || "Done.";
      if (ok && form.hasAttribute("data-reset")) form.reset();
    }
    if (!form || form.id !== "composer") return;
    if (ok) sent(form);
    else say("composer-error", text);
  });
  document.addEventListener("keydown", function (e) {
    if (e.target.id === "chat-text" && e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      if (e.target.value.trim()) e.target.form.requestSubmit();
    }
  });

  // Report, remove, claim and resolve buttons inside fragments.
  document.addEventListener("click", function (e) {
    var btn = e.target.closest && e.target.closest("button[data-act]");
    if (!btn) return;
    var act = btn.getAttribute("data-act"), url;
    if (btn.hasAttribute("data-help")) url = base + "/help/" + btn.getAttribute("data-help") + "/" + act;
    else url = base + "/messages/" + btn.getAttribute("data-id") + "/" + act;
    if (act === "remove" && !confirm("Remove this message for everyone?")) return;
    fetch(url, { method: "POST", headers: { "X-CSRF-Token": csrf, "HX-Request": "true" }, credentials: "same-origin" })
      .then(function (r) { return r.text().then(function (t) { say("action-status", t || (r.ok ? "Done." : "That did not work.")); }); });
  });

  // voice.js is loaded when the person first presses "Join audio", so people who never
  // listen never download it. The AudioContext is made here, in the click itself, because
  // some browsers only let sound start inside the press; voice.js takes it over.
  var voiceLoading = false;
  document.addEventListener("click", function (e) {
    var b = e.target.closest && e.target.closest("#voice .voice-join");
    if (!b || voiceLoading || window.RoundtableVoice) return;
    voiceLoading = true;
    try {
      window.RoundtableLive.context = new AudioContext({ sampleRate: 48000, latencyHint: "interactive" });
      window.RoundtableLive.context.resume();
    } catch (x) { /* voice.js says that this browser cannot play the room */ }
    live.setAttribute("data-voice-pressed", "1");
    var script = document.createElement("script");
    script.src = $("voice").getAttribute("data-script");
    script.onerror = function () {
      voiceLoading = false;
      say("voice-message", "The sound could not be started: check your connection and try again.");
    };
    document.head.appendChild(script);
  });

  setInterval(function () {
    tick();
    if ((socket || stream) && Date.now() - lastSeen > STALE) connect();
  }, 1000);
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && Date.now() - lastSeen > STALE) connect();
  });
  readCursors();
  tick();
  video();
  connect();
})();
