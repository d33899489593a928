// Roundtable: the speaker's microphone, heard by the room and captioned (docs/voice.md,
// docs/captioning.md). Opus from WebCodecs where the browser has it (20 kbit/s, 20 ms
// packets), else 16 kHz PCM from mic-worklet.js (captioned only). Nothing starts before the
// person agrees and unmutes. Muting keeps the microphone open and tells the server
// ({"type":"pause"}/"resume"), so unmuting is instant and a person talking while muted is
// told so. The socket is .../live/audio; where it cannot open, short POSTs carry the packets
// (.../live/audio/http/...). Turning the microphone off, a facilitator turning captions off,
// or leaving the page frees the microphone.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live) return;
  var base = live.getAttribute("data-base"), KEY = "rtMicConsent:" + base, PTT = "rtPushToTalk";
  var csrf = JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRF-Token"];
  var OPUS = { codec: "opus", sampleRate: 48000, numberOfChannels: 1, bitrate: 20000, opus: { frameDuration: 20000 } };
  var RETRY = [1001, 1005, 1006, 1012, 1013, 1014], MUTED = "A facilitator has turned off live captions of your microphone.";
  var OPEN_TIMEOUT = 5000, LOUD = 0.02;
  var panel = null, s = null, yes = false, held = false;

  function $(sel) { return panel && panel.querySelector(sel); }
  function text(sel, t) { var el = $(sel); if (el) el.textContent = t; }
  function say(t) { text(".mic-message", t); }
  function store(key, value) { try { localStorage.setItem(key, value); } catch (e) { /* this page only */ } }
  function stored(key) { try { return localStorage.getItem(key); } catch (e) { return null; } }
  function agreed() { return yes || stored(KEY) === "1"; }
  function ptt() { return stored(PTT) === "1"; }
  function roomName() { var t = document.getElementById("room-title"); return t ? t.textContent : "the room"; }

  // Longer than 30 lines because every control's state is drawn here, in one place.
  function draw() {
    if (!$(".mic-consent")) return;
    var ok = !!(navigator.mediaDevices && window.AudioWorkletNode), heard = !!(s && s.ready && !s.muted && s.floor);
    $(".mic-consent").hidden = !ok || agreed();
    $(".mic-controls").hidden = !ok || !agreed();
    if (!ok) say("This browser cannot send your microphone.");
    $(".mic-toggle").textContent = !s || s.muted ? "Unmute my microphone" : "Mute my microphone";
    $(".mic-ptt").checked = ptt();
    $(".mic-hold").hidden = !ptt();
    $(".mic-hold").classList.toggle("held", held && !!s && !s.muted);
    $(".mic-off").hidden = !s;
    panel.classList.toggle("mic-on", heard);
    $(".mic-state-text").textContent = !s ? "Microphone off: nobody hears you." :
      s.muted ? "Microphone muted: nobody hears you." :
      !s.ready ? "Starting your microphone…" :
      !s.floor ? "You do not have the floor: nobody hears you." :
      "Microphone on: " + roomName() + " hears you" + (s.codec === "pcm16" ? " (captions only in this browser)." : " and your speech is captioned.");
  }

  function announce() { text(".mic-announce", !s ? "Microphone off" : s.muted ? "Microphone muted" : "Microphone on"); }

  function start(muted) {
    var me = s = { queue: [], ts: 0, retry: 1000, muted: muted, floor: true, room: panel.getAttribute("data-room"), worklet: panel.getAttribute("data-worklet") };
    say("");
    draw();
    navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 } })
      .then(function (media) {
        me.media = media;
        if (s !== me) throw 0;
        return window.AudioEncoder && AudioEncoder.isConfigSupported(OPUS).then(function (r) { return r.supported; }, function () {});
      })
      .then(function (opus) { if (s !== me) throw 0; return wire(me, opus ? "opus" : "pcm16"); })
      .then(function () { if (s === me) { connect(me); announce(); } })
      .catch(function (e) {
        if (s !== me) return release(me);
        stop();
        say(e && e.name === "NotAllowedError" ? "The browser did not let us use your microphone. Allow it (usually in the address bar) and try again." :
          "Your microphone could not be started" + (e && e.message ? ": " + e.message : "."));
      });
  }

  function wire(me, codec) {
    var ctx = me.ctx = new AudioContext(codec === "opus" ? { sampleRate: 48000 } : {});
    return ctx.audioWorklet.addModule(me.worklet).then(function () {
      if (s !== me) throw 0;
      var src;
      try { src = ctx.createMediaStreamSource(me.media); } catch (e) {
        // Some browsers cannot resample a microphone into a 48 kHz context: send PCM then.
        if (codec !== "opus") throw e;
        ctx.close();
        return wire(me, "pcm16");
      }
      me.codec = codec;
      me.node = new AudioWorkletNode(ctx, "roundtable-mic", { numberOfOutputs: 0, processorOptions: { codec: codec } });
      src.connect(me.node);
      me.level = ctx.createAnalyser();
      me.level.fftSize = 2048;
      src.connect(me.level);
      me.watch = setInterval(function () { listen(me); }, 100);
      if (codec === "opus") {
        me.enc = new AudioEncoder({
          output: function (chunk) { var b = new ArrayBuffer(chunk.byteLength); chunk.copyTo(b); send(me, b); },
          error: function () { if (s === me) { stop(); say("The browser's sound encoder stopped. Unmute to try again."); } }
        });
        me.enc.configure(OPUS);
      }
      me.node.port.onmessage = function (e) { heard(me, e.data); };
      return ctx.resume();
    });
  }

  function heard(me, buf) {
    if (me.muted || !me.floor) return;
    if (!me.enc) return send(me, buf);
    if (me.enc.state !== "configured") return;
    var n = buf.byteLength / 4;
    var data = new AudioData({ format: "f32", sampleRate: 48000, numberOfFrames: n, numberOfChannels: 1, timestamp: me.ts, data: buf });
    me.ts += n * 1e6 / 48000;
    me.enc.encode(data);
    data.close();
  }

  // "You are muted": while muted, about a second of sound above speech level in one stretch
  // of talking (pauses under 1.5 s belong to the same stretch) says so, once a stretch.
  function listen(me) {
    if (!me.muted) { me.loud = me.quiet = 0; return; }
    var a = new Float32Array(me.level.fftSize), sum = 0;
    me.level.getFloatTimeDomainData(a);
    for (var i = 0; i < a.length; i++) sum += a[i] * a[i];
    if (Math.sqrt(sum / a.length) > LOUD) { me.loud = (me.loud || 0) + 100; me.quiet = 0; } else me.quiet = (me.quiet || 0) + 100;
    if (me.quiet >= 1500) { me.loud = 0; me.told = false; }
    if (me.loud >= 1000 && !me.told && s === me) {
      me.told = true;
      text(".mic-notice", ptt() ? "You are muted. Hold the Space bar or the Hold to talk button to speak." :
        "You are muted. Press Alt+M or the Unmute button to speak.");
    }
  }

  function setMuted(me, muted, quiet) {
    if (!me || me.muted === muted) return;
    me.muted = muted;
    if (!muted) text(".mic-notice", "");
    me.told = false;
    if (!quiet && me.tx) me.tx.text({ type: muted ? "pause" : "resume" });
    announce();
    draw();
  }

  // Sound waits (a second at most) while the connection starts or comes back; a congested
  // connection drops it rather than piling it up.
  function send(me, b) {
    if (me.tx && me.ready && me.tx.send(b)) return;
    me.queue.push(b);
    if (me.queue.length > (me.enc ? 50 : 9)) me.queue.shift();
  }

  // Longer than 30 lines because it answers every message the server sends the microphone.
  function message(me, m) {
    if (m.t === "started") {
      me.ready = true; me.retry = 1000; say("");
      if (me.muted) me.tx.text({ type: "pause" });
      me.queue.splice(0).forEach(function (b) { send(me, b); });
    } else if (m.t === "muted") {
      stop();
      say(m.message || MUTED);
    } else if (m.t === "floor") {
      me.floor = !!m.may_speak;
      if (!me.floor) me.queue = [];
      var why = m.message || "";
      say(me.floor ? "You may speak now." : why + (/raise your hand/i.test(why) ? "" : (why ? " " : "") + "Raise your hand to ask to speak."));
    } else if (m.t === "voice_muted") {
      setMuted(me, true, true);
      say((m.by || "A facilitator") + " muted your microphone. Unmute when you want to speak.");
    } else if (m.t === "recording") {
      var rec = $(".mic-recording");
      if (rec) rec.hidden = !m.on;
      // Said only when it changes: a stream starting where nothing is recorded says nothing
      // (and leaves a floor message in place).
      if (!!m.on !== !!me.recording) say(m.on ? "Recording started: this room is being recorded." : "Recording stopped.");
      me.recording = !!m.on;
    } else if (m.t === "moved") {
      moved(me);
    } else if (m.t === "error") me.error = m.message;
    draw();
  }

  function closed(me, code, reason) {
    if (s !== me) return;
    me.ready = false;
    draw();
    if (RETRY.indexOf(code) < 0) {
      stop();
      // 4001: a facilitator's mute (its message may not have come before the close).
      return say(code === 4001 ? me.error || MUTED : (me.error || "Your microphone stopped" + (reason ? ": " + reason : "")) + ". Unmute to try again.");
    }
    say("The connection for your microphone was lost; trying again…");
    me.timer = setTimeout(function () { if (s === me) connect(me); }, me.retry);
    me.retry = Math.min(me.retry * 2, 30000);
  }

  function startMessage(me) {
    return { type: "start", codec: me.codec, sample_rate: me.enc ? 48000 : 16000, consent: true };
  }

  function connect(me) {
    me.ready = false;
    // The page's live connection may be on a fallback while this socket gets through (or
    // the other way round), so the microphone tries its own socket first every time.
    if (me.http || !("WebSocket" in window)) return viaHttp(me);
    var opened = false, ws = new WebSocket(location.origin.replace(/^http/, "ws") + base + "/audio");
    ws.binaryType = "arraybuffer";
    var tx = me.tx = {
      send: function (b) { if (ws.readyState !== 1) return false; if (ws.bufferedAmount < 65536) ws.send(b); return true; },
      text: function (m) { if (ws.readyState === 1) ws.send(JSON.stringify(m)); },
      stop: function () {
        if (ws.readyState !== 1) return ws.close();
        // The server captions the last words and closes; close anyway if it does not.
        ws.send('{"type":"stop"}');
        setTimeout(function () { ws.close(); }, 5000);
      }
    };
    // A socket that cannot open (a firewall, a proxy) within 5 s: the HTTP way instead.
    var timer = setTimeout(function () { if (!opened && me.tx === tx) { ws.onclose = null; ws.close(); viaHttp(me); } }, OPEN_TIMEOUT);
    ws.onopen = function () { opened = true; clearTimeout(timer); ws.send(JSON.stringify(startMessage(me))); };
    ws.onmessage = function (e) {
      var m;
      try { m = JSON.parse(e.data); } catch (x) { return; }
      if (s === me && me.tx === tx) message(me, m);
    };
    ws.onclose = function (e) {
      clearTimeout(timer);
      if (s !== me || me.tx !== tx) return;
      if (!opened) return viaHttp(me);
      closed(me, e.code, e.reason);
    };
  }

  // The HTTP way (no WebSocket): a start POST, then a POST every quarter second carrying the
  // packets as frames (type:u8 0 packet / 1 JSON text, length:u16, data), every 2 s while
  // nothing is sent; each answer brings the server's messages and, at the end, "closed".
  function viaHttp(me) {
    me.http = true;
    var frames = [], stream = null, busy = false, last = 0, failing = 0;
    var tx = me.tx = {
      send: function (b) {
        if (!stream) return false;
        frames.push([0, b]);
        var audio = frames.filter(function (f) { return f[0] === 0; }).length;
        if (audio > 50) frames.splice(frames.findIndex(function (f) { return f[0] === 0; }), 1);
        return true;
      },
      text: function (m) { frames.push([1, new TextEncoder().encode(JSON.stringify(m)).buffer]); },
      stop: function () {
        clearInterval(tick);
        tx.text({ type: "stop" });
        (function last() { if (busy) setTimeout(last, 100); else post(); })();
      }
    };
    // A stream the server has forgotten (404 after 20 s without a POST) starts again; a
    // refused start does not.
    function answer(r, starting) {
      return r.json().then(null, function () { return {}; }).then(function (body) {
        if (r.ok) return body;
        throw { code: r.status >= 500 ? 1011 : r.status === 404 && !starting ? 1001 : 1008, reason: body.message || body.detail || "refused (" + r.status + ")" };
      });
    }
    function take(body) {
      if (me.tx !== tx || s !== me) return;
      (body.messages || []).forEach(function (m) { message(me, m); });
      if (body.closed) { clearInterval(tick); closed(me, body.closed.code, body.closed.reason); }
    }
    function gone(e) {
      busy = false;
      if (me.tx !== tx) return;
      if (e && e.code) { clearInterval(tick); me.error = me.error || e.reason; return closed(me, e.code, e.reason); }
      if (++failing > 40) { clearInterval(tick); closed(me, 1006, ""); }
    }
    function post() {
      if (busy || !stream) return;
      busy = true;
      last = Date.now();
      var out = frames.splice(0), size = 0;
      out.forEach(function (f) { size += 3 + f[1].byteLength; });
      var body = new Uint8Array(size), view = new DataView(body.buffer), at = 0;
      out.forEach(function (f) {
        view.setUint8(at, f[0]); view.setUint16(at + 1, f[1].byteLength);
        body.set(new Uint8Array(f[1]), at + 3);
        at += 3 + f[1].byteLength;
      });
      fetch(base + "/audio/http/" + encodeURIComponent(stream), {
        method: "POST", body: body, credentials: "same-origin",
        headers: { "Content-Type": "application/octet-stream", "X-CSRF-Token": csrf }
      }).then(answer).then(function (b) { busy = false; failing = 0; take(b); }, gone);
    }
    var tick = setInterval(function () {
      if (me.tx !== tx) return clearInterval(tick);
      if (frames.length || Date.now() - last >= 2000) post();
    }, 250);
    fetch(base + "/audio/http/start", {
      method: "POST", body: JSON.stringify(startMessage(me)), credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf }
    }).then(function (r) { return answer(r, true); }).then(function (b) {
      if (me.tx !== tx) return;
      stream = b.stream;
      var msgs = b.messages || [];
      if (!msgs.some(function (m) { return m.t === "started"; })) msgs.unshift({ t: "started" });
      take({ messages: msgs });
    }, function (e) { gone(e && e.code ? e : { code: 1006, reason: "" }); });
  }

  function release(me) {
    clearTimeout(me.timer);
    clearInterval(me.watch);
    me.ready = false;
    if (me.tx) me.tx.stop();
    me.tx = null;
    if (me.node) { me.node.port.onmessage = null; me.node.disconnect(); }
    if (me.enc && me.enc.state !== "closed") me.enc.close();
    if (me.media) me.media.getTracks().forEach(function (t) { t.stop(); });
    if (me.ctx && me.ctx.state !== "closed") me.ctx.close();
  }

  function stop() {
    var me = s;
    s = null;
    held = false;
    text(".mic-notice", "");
    if (me) { release(me); announce(); }
    draw();
  }

  // A move to another room: the consent named the old one, so the microphone is muted.
  function moved(me) {
    if (me.muted) return;
    setMuted(me, true);
    say("You are in " + roomName() + " now, so your microphone is muted. Unmute to be heard here.");
  }

  // The room panel is drawn again when rooms open or close or someone is moved.
  function bind() {
    var now = document.getElementById("mic");
    if (now === panel) return;
    panel = now;
    if (s && !panel) stop();
    else if (s && panel.getAttribute("data-room") !== s.room) { s.room = panel.getAttribute("data-room"); moved(s); }
    draw();
  }

  function toggle() {
    if (!s) start(false);
    else setMuted(s, !s.muted);
  }

  function hold(down) {
    if (held === down) return;
    held = down;
    if (down && !s) start(false);
    else setMuted(s, !down);
    draw();
  }

  function press(what) {
    if (what === "agree") {
      yes = true;
      store(KEY, "1");
      start(ptt());
      draw();
      $(".mic-toggle").focus();
    } else if (what === "toggle") toggle();
    else if (what === "off") { stop(); say("Microphone off."); }
    else if (what === "ptt") {
      store(PTT, $(".mic-ptt").checked ? "1" : "0");
      if (ptt()) setMuted(s, true);
      say(ptt() ? "Push to talk is on: hold the Space bar or the Hold to talk button to speak." : "Push to talk is off.");
      draw();
    }
  }

  // Text fields, and controls the Space bar operates, keep the Space bar.
  function textField(el) {
    var tag = el && el.tagName;
    if (!tag) return false;
    // Checkboxes and radio buttons too: the Space bar is the only key that operates them.
    if (tag === "INPUT") return !/^(button|submit|reset|range|color|file)$/i.test(el.type);
    return tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }

  document.addEventListener("click", function (e) {
    var b = e.target.closest && e.target.closest("#mic button, #mic .mic-ptt");
    if (!b || b.classList.contains("mic-hold")) return;
    press(b.classList.contains("mic-agree") ? "agree" : b.classList.contains("mic-off") ? "off" : b.classList.contains("mic-ptt") ? "ptt" : "toggle");
  });
  document.addEventListener("pointerdown", function (e) { if (e.target.closest && e.target.closest("#mic .mic-hold")) hold(true); });
  ["pointerup", "pointercancel"].forEach(function (n) { document.addEventListener(n, function () { if (held) hold(false); }); });
  document.addEventListener("keydown", function (e) {
    if (e.altKey && !e.ctrlKey && !e.metaKey && e.code === "KeyM") {
      e.preventDefault();
      if (panel && agreed()) toggle();
      else if ($(".mic-agree")) { $(".mic-agree").focus(); say("To speak, first read this and agree to turn on your microphone."); }
      return;
    }
    var holdKey = e.target.closest && e.target.closest("#mic .mic-hold") && e.key === "Enter";
    if ((e.code !== "Space" && !holdKey) || !ptt() || !panel || !agreed() || e.altKey || e.ctrlKey || e.metaKey || textField(e.target)) return;
    e.preventDefault();
    if (!e.repeat) hold(true);
  });
  document.addEventListener("keyup", function (e) { if ((e.code === "Space" || e.key === "Enter") && held) { e.preventDefault(); hold(false); } });
  window.addEventListener("blur", function () { if (held) hold(false); });
  window.addEventListener("pagehide", stop);
  new MutationObserver(bind).observe(live, { childList: true });
  bind();
  // captions.js loads this script when the person first presses one of the controls.
  var pressed = live.getAttribute("data-mic-pressed");
  live.removeAttribute("data-mic-pressed");
  // A press of "Hold to talk" that loaded this script has ended by now: get ready, muted.
  if (pressed === "hold") { if (agreed()) { start(true); say("Your microphone is ready: hold the button to talk."); } }
  else if (pressed) press(pressed);
})();
