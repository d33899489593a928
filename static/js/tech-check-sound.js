// Roundtable tech check, sound: "Play a test sound" (a short chime from OscillatorNodes,
// then "Did you hear it?"), and "Hear yourself": about 4 seconds of your microphone as
// Opus packets (WebCodecs AudioEncoder, 20 ms), sent to the server, which sends them
// straight back, over the WebSocket /tech-check/voice or, when that is blocked, in POSTs
// of a quarter of a second (frames: type:u8 length:u16 data); then the packets that came
// back are decoded (AudioDecoder) and played, so you hear yourself as others will.
// What it finds is kept on #tech-check (data-sound-result, data-voice-result) for the
// request for help (tech-check.js).
(function () {
  "use strict";
  var root = document.getElementById("tech-check");
  if (!root) return;
  var csrf = JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRF-Token"];
  var OPUS = { codec: "opus", sampleRate: 48000, numberOfChannels: 1, bitrate: 20000, opus: { frameDuration: 20000 } };
  var SECONDS = 4, BATCH_MS = 250, WS_WAIT_MS = 3000, TAIL_MS = 3000;
  var NOTE_WS = "WebSocket", NOTE_HTTP = "Compatibility mode (no WebSocket): sound will be about half a second later";

  function $(id) { return document.getElementById(id); }
  function say(id, text) { var el = $(id); if (el) el.textContent = text; }

  // -- a test sound --
  var chime = null;
  function playChime() {
    var Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return say("tc-sound-status", "This browser cannot play sounds from a page. Try an up-to-date Chrome, Edge, Firefox or Safari.");
    if (chime && chime.state !== "closed") chime.close();
    var ctx = chime = new Ctx(), t = ctx.currentTime + 0.05;
    // C major, rising, each note fading gently in and out.
    [523.25, 659.25, 783.99, 1046.5].forEach(function (hz, i) {
      var osc = ctx.createOscillator(), gain = ctx.createGain(), at = t + i * 0.28;
      osc.type = "sine";
      osc.frequency.value = hz;
      gain.gain.setValueAtTime(0.0001, at);
      gain.gain.exponentialRampToValueAtTime(0.25, at + 0.03);
      gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.45);
      osc.connect(gain).connect(ctx.destination);
      osc.start(at);
      osc.stop(at + 0.5);
    });
    ctx.resume();
    say("tc-sound-status", "Playing a short chime of four rising notes…");
    say("tc-sound-advice", "");
    setTimeout(function () {
      say("tc-sound-status", "Did you hear the chime?");
      $("tc-heard").hidden = false;
      $("tc-heard-yes").focus();
    }, 1400);
  }
  function heard(yes) {
    $("tc-heard").hidden = true;
    root.setAttribute("data-sound-result", yes ? "heard the test sound" : "did not hear the test sound");
    say("tc-sound-status", yes ? "Good: you can hear sound from this page." : "You did not hear the chime.");
    say("tc-sound-advice", yes ? "" :
      "Turn the volume up and check the computer is not muted; choose the right speakers or headphones " +
      "in your computer's sound settings (and plug headphones in firmly); check this browser tab is not muted " +
      "(right-click the tab). Then play the test sound again.");
    $("tc-sound-play").focus();
  }

  // -- hear yourself --
  function frame(packets) {
    var n = 0;
    packets.forEach(function (p) { n += 3 + p.byteLength; });
    var out = new Uint8Array(n), o = 0;
    packets.forEach(function (p) {
      out[o] = 0; out[o + 1] = p.byteLength >> 8; out[o + 2] = p.byteLength & 255;
      out.set(new Uint8Array(p), o + 3);
      o += 3 + p.byteLength;
    });
    return out.buffer;
  }
  function unframe(buf) {
    var b = new Uint8Array(buf), o = 0, out = [];
    while (o + 3 <= b.length) {
      var len = (b[o + 1] << 8) | b[o + 2];
      out.push(b.slice(o + 3, o + 3 + len).buffer);
      o += 3 + len;
    }
    return out;
  }

  // A transport: send(packet) and end() -> a promise of the packets that came back.
  // Over the WebSocket, end() waits for every packet sent to come back, or TAIL_MS at most.
  function overWebSocket(ws, back) {
    var sent = 0, finish = null;
    function settle() { if (finish) { var f = finish; finish = null; f(); } }
    ws.onmessage = function (e) { back.push(e.data); if (back.length >= sent) settle(); };
    ws.onclose = settle;
    return {
      kind: NOTE_WS,
      send: function (p) { if (ws.readyState === 1) { sent++; ws.send(p); } },
      end: function () {
        return new Promise(function (done) {
          var timer = setTimeout(settle, TAIL_MS);
          finish = function () { clearTimeout(timer); ws.onclose = null; ws.close(); done(back); };
          if (back.length >= sent || ws.readyState > 1) settle();
        });
      }
    };
  }
  function overPosts(back) {
    var waiting = [], busy = Promise.resolve(), failed = "";
    function flush() {
      if (!waiting.length) return busy;
      var body = frame(waiting.splice(0));
      busy = busy.then(function () {
        return fetch("/tech-check/voice", {
          method: "POST", credentials: "same-origin", body: body,
          headers: { "Content-Type": "application/octet-stream", "X-CSRF-Token": csrf }
        }).then(function (r) {
          if (!r.ok) return r.json().catch(function () { return {}; }).then(function (j) { failed = j.detail || "the server answered " + r.status; });
          return r.arrayBuffer().then(function (a) { unframe(a).forEach(function (p) { back.push(p); }); });
        }).catch(function () { failed = "you seem to be offline"; });
      });
      return busy;
    }
    var timer = setInterval(flush, BATCH_MS);
    return {
      kind: NOTE_HTTP,
      send: function (p) { waiting.push(p); },
      end: function () {
        clearInterval(timer);
        return flush().then(function () { if (failed) throw new Error(failed); return back; });
      }
    };
  }
  function connect() {
    var back = [];
    if (!("WebSocket" in window)) return Promise.resolve(overPosts(back));
    return new Promise(function (done) {
      var ws, settled = false;
      function fallback() { if (!settled) { settled = true; done(overPosts(back)); } }
      try { ws = new WebSocket(location.origin.replace(/^http/, "ws") + "/tech-check/voice"); } catch (e) { return fallback(); }
      ws.binaryType = "arraybuffer";
      var timer = setTimeout(function () { ws.onclose = null; ws.close(); fallback(); }, WS_WAIT_MS);
      ws.onopen = function () { clearTimeout(timer); settled = true; done(overWebSocket(ws, back)); };
      ws.onclose = function () { clearTimeout(timer); fallback(); };
    });
  }

  function decode(packets) {
    return new Promise(function (done, fail) {
      var pieces = [], total = 0;
      var dec = new AudioDecoder({
        output: function (d) {
          var f = new Float32Array(d.numberOfFrames);
          try { d.copyTo(f, { planeIndex: 0, format: "f32-planar" }); } catch (e) { d.copyTo(f, { planeIndex: 0 }); }
          pieces.push(f);
          total += f.length;
          d.close();
        },
        error: function (e) { fail(e); }
      });
      dec.configure({ codec: "opus", sampleRate: 48000, numberOfChannels: 1 });
      packets.forEach(function (p, i) { dec.decode(new EncodedAudioChunk({ type: "key", timestamp: i * 20000, data: p })); });
      dec.flush().then(function () {
        dec.close();
        var all = new Float32Array(total), o = 0;
        pieces.forEach(function (f) { all.set(f, o); o += f.length; });
        done(all);
      }, fail);
    });
  }
  function play(samples) {
    var ctx = new AudioContext({ sampleRate: 48000 });
    var buf = ctx.createBuffer(1, Math.max(1, samples.length), 48000);
    buf.copyToChannel(samples, 0);
    var src = ctx.createBufferSource();
    src.buffer = buf;
    src.connect(ctx.destination);
    src.onended = function () { ctx.close(); };
    src.start();
    return ctx.resume();
  }

  var busy = false;
  function hearYourself() {
    if (busy) return;
    if (!window.AudioEncoder || !window.AudioDecoder || !window.AudioWorkletNode || !(navigator.mediaDevices && navigator.mediaDevices.getUserMedia)) {
      root.setAttribute("data-voice-result", "hear yourself: not possible in this browser");
      return say("tc-voice-status", "This browser cannot do this check (it lacks WebCodecs sound). In a session you still hear the room through a slower stream.");
    }
    busy = true;
    $("tc-voice-start").disabled = true;
    var me = { sent: 0 };
    say("tc-voice-status", "Starting your microphone…");
    say("tc-voice-path", "");
    navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 } })
      .then(function (media) { me.media = media; return connect(); })
      .then(function (link) { me.link = link; say("tc-voice-path", link.kind); return record(me); })
      .then(function () { say("tc-voice-status", "Sending back the last of it…"); return me.link.end(); })
      .then(function (back) {
        me.back = back.length;
        if (!back.length) throw new Error("none of your sound came back from the server");
        return decode(back);
      })
      .then(function (samples) {
        root.setAttribute("data-voice-result", "hear yourself: " + me.back + " of " + me.sent + " packets back over " + (me.link.kind === NOTE_WS ? "WebSocket" : "compatibility mode"));
        say("tc-voice-status", "Playing back what the server sent back (" + me.back + " of " + me.sent + " packets): this is how others will hear you.");
        return play(samples);
      })
      .catch(function (e) {
        root.setAttribute("data-voice-result", "hear yourself failed");
        say("tc-voice-status", e && e.name === "NotAllowedError" ?
          "The browser did not let us use your microphone. Allow it (usually in the address bar) and try again." :
          "The check did not work" + (e && e.message ? ": " + e.message : "") + ". Try again, or ask IT support for help below.");
      })
      .then(function () {
        release(me);
        busy = false;
        $("tc-voice-start").disabled = false;
      });
  }
  function record(me) {
    var ctx = me.ctx = new AudioContext({ sampleRate: 48000 });
    return ctx.audioWorklet.addModule(root.getAttribute("data-worklet")).then(function () {
      var src = ctx.createMediaStreamSource(me.media), ts = 0;
      me.enc = new AudioEncoder({
        output: function (chunk) {
          var b = new ArrayBuffer(chunk.byteLength);
          chunk.copyTo(b);
          me.sent++;
          me.link.send(b);
        },
        error: function () { /* the flush below fails and says so */ }
      });
      me.enc.configure(OPUS);
      me.node = new AudioWorkletNode(ctx, "roundtable-mic", { numberOfOutputs: 0, processorOptions: { codec: "opus" } });
      me.node.port.onmessage = function (e) {
        if (me.enc.state !== "configured") return;
        var n = e.data.byteLength / 4;
        var data = new AudioData({ format: "f32", sampleRate: 48000, numberOfFrames: n, numberOfChannels: 1, timestamp: ts, data: e.data });
        ts += n * 1e6 / 48000;
        me.enc.encode(data);
        data.close();
      };
      src.connect(me.node);
      return ctx.resume();
    }).then(function () {
      return new Promise(function (done) {
        var left = SECONDS;
        say("tc-voice-status", "Speak now: recording " + left + " seconds…");
        var count = setInterval(function () {
          if (--left > 0) return say("tc-voice-status", "Speak now: " + left + " seconds left…");
          clearInterval(count);
          me.node.port.onmessage = null;
          done(me.enc.flush());
        }, 1000);
      });
    });
  }
  function release(me) {
    if (me.node) { me.node.port.onmessage = null; me.node.disconnect(); }
    if (me.enc && me.enc.state !== "closed") me.enc.close();
    if (me.media) me.media.getTracks().forEach(function (t) { t.stop(); });
    if (me.ctx && me.ctx.state !== "closed") me.ctx.close();
  }

  $("tc-sound-play").addEventListener("click", playChime);
  $("tc-heard-yes").addEventListener("click", function () { heard(true); });
  $("tc-heard-no").addEventListener("click", function () { heard(false); });
  $("tc-voice-start").addEventListener("click", hearYourself);
})();
