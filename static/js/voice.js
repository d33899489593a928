// Roundtable: hearing the room (issue 11, docs/voice.md). Loaded by live.js when the person
// first presses "Join audio". The live connection then carries the room's audio packets
// (window.RoundtableLive.listen); each is Opus, 13-byte header first:
//   kind:u8 source:u32 seq:u16 ts_ms:u32 length:u16 payload[length]   (big-endian)
// One WebCodecs AudioDecoder per speaker decodes them; voice-worklet.js buffers and sums
// them; a GainNode (the volume slider) plays the result. Browsers without AudioDecoder
// play the room's mix from an <audio> element (data-voice-stream), about 2 seconds late.
//
// For tests and tools: window.RoundtableVoice = { output, context, stats } where `output`
// is the final GainNode (connect your own node to it to hear exactly what is played; null
// while not listening), `context` the AudioContext and `stats` {packets, dropped,
// bufferedMs, sources}: packets received, packets dropped (malformed, late, or cut to
// catch up), the most sound buffered for any speaker now (ms), speakers heard.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || window.RoundtableVoice) return;
  var KIND_OPUS = 1, HEADER = 13, KEY = "rtVoiceVolume";
  var OPUS = { codec: "opus", sampleRate: 48000, numberOfChannels: 1 };
  var SLOW = "Sound comes through a slower path in this browser: about 2 seconds behind.";
  var panel = null, on = null, room = null;
  var stats = { packets: 0, dropped: 0, bufferedMs: 0, sources: 0 };
  var api = window.RoundtableVoice = { output: null, context: null, stats: stats };

  function $(sel) { return panel && panel.querySelector(sel); }
  function say(text) { var el = $(".voice-message"); if (el) el.textContent = text; }
  function volume() {
    var v = NaN;
    try { v = parseFloat(localStorage.getItem(KEY)); } catch (e) { /* the default */ }
    return isNaN(v) ? 100 : Math.max(0, Math.min(150, v));
  }

  function draw() {
    if (!$(".voice-join")) return;
    $(".voice-join").textContent = on ? "Leave audio" : "Join audio";
    $(".voice-volume").hidden = !on;
    var slider = $("#voice-volume");
    slider.value = volume();
    slider.setAttribute("aria-valuetext", slider.value + "%");
  }

  function join() {
    var me = on = { decoders: {}, slow: !window.AudioDecoder };
    var ctx = me.ctx = takeContext();
    api.context = ctx;
    draw();
    if (!ctx) return fail(me, "This browser cannot play sound from the room.");
    ctx.resume();
    me.gain = ctx.createGain();
    me.gain.gain.value = volume() / 100;
    me.gain.connect(ctx.destination);
    var check = me.slow ? Promise.resolve(false) :
      AudioDecoder.isConfigSupported(OPUS).then(function (r) { return r.supported; }, function () { return false; });
    check.then(function (ok) {
      if (on !== me) return;
      if (!ok) return slowPath(me);
      return ctx.audioWorklet.addModule(panel.getAttribute("data-worklet")).then(function () {
        if (on !== me) return;
        me.node = new AudioWorkletNode(ctx, "roundtable-voice", { numberOfInputs: 0, outputChannelCount: [1] });
        me.node.port.onmessage = function (e) {
          stats.bufferedMs = e.data.bufferedMs;
          stats.sources = e.data.sources;
          stats.dropped = me.droppedBefore + e.data.dropped;
        };
        me.droppedBefore = stats.dropped;
        me.node.connect(me.gain);
        api.output = me.gain;
        window.RoundtableLive.listen(function (buf) { if (on === me) packets(me, buf); });
        say("You are hearing " + roomName() + ".");
      });
    }).catch(function (e) {
      if (on === me) fail(me, "The sound could not be started" + (e && e.message ? ": " + e.message : "."));
    });
  }

  function takeContext() {
    var ctx = window.RoundtableLive && window.RoundtableLive.context;
    if (ctx && ctx.state !== "closed") { window.RoundtableLive.context = null; return ctx; }
    try { return new AudioContext({ sampleRate: 48000, latencyHint: "interactive" }); } catch (e) { return null; }
  }

  function roomName() {
    var title = document.getElementById("room-title");
    return title ? title.textContent : "the room";
  }

  // No WebCodecs decoder: the server's Ogg/Opus stream of the room's mix, played through
  // the same volume (GainNode) when the browser lets a page route an <audio> element.
  function slowPath(me) {
    var audio = me.audio = document.createElement("audio");
    audio.src = panel.getAttribute("data-voice-stream");
    audio.autoplay = true;
    audio.className = "voice-stream";
    audio.onerror = function () { if (on === me) say("The room's sound could not be played. " + SLOW); };
    panel.appendChild(audio);
    try {
      me.ctx.createMediaElementSource(audio).connect(me.gain);
      api.output = me.gain;
    } catch (e) { audio.volume = Math.min(1, volume() / 100); }
    var played = audio.play();
    if (played && played.catch) played.catch(function () {});
    say(SLOW);
  }

  function fail(me, text) {
    leave();
    say(text);
  }

  // One message: one or more packets back to back. A packet whose length runs past the end
  // is malformed: it and the rest of the message are dropped, never decoded.
  function packets(me, buf) {
    var view = new DataView(buf), at = 0;
    while (at + HEADER <= buf.byteLength) {
      var kind = view.getUint8(at), source = view.getUint32(at + 1), seq = view.getUint16(at + 5);
      var length = view.getUint16(at + 11);
      if (at + HEADER + length > buf.byteLength) { stats.dropped++; return; }
      stats.packets++;
      if (kind === KIND_OPUS && length > 0) decode(me, source, seq, new Uint8Array(buf, at + HEADER, length));
      at += HEADER + length;
    }
    if (at !== buf.byteLength) stats.dropped++;
  }

  function decoderFor(me, source) {
    var d = me.decoders[source];
    if (d && d.dec.state !== "closed") return d;
    d = me.decoders[source] = { seq: null, us: 0, dec: null };
    d.dec = new AudioDecoder({
      output: function (data) { played(me, source, data); },
      // A packet the decoder cannot take: it closes; the next packet starts a new one.
      error: function () { stats.dropped++; }
    });
    d.dec.configure(OPUS);
    return d;
  }

  function decode(me, source, seq, payload) {
    var d = decoderFor(me, source);
    if (d.seq !== null) {
      var ahead = (seq - d.seq + 65536) % 65536;
      // A repeat or a packet overtaken by later ones: too late to play.
      if (ahead === 0 || ahead > 32768) { stats.dropped++; return; }
    }
    d.seq = seq;
    d.dec.decode(new EncodedAudioChunk({ type: "key", timestamp: d.us, data: payload }));
    d.us += 20000;
    d.seen = Date.now();
  }

  function played(me, source, data) {
    if (on !== me || !me.node) return data.close();
    var pcm;
    try {
      pcm = new Float32Array(data.numberOfFrames);
      data.copyTo(pcm, { planeIndex: 0, format: "f32-planar" });
    } catch (e) {
      pcm = new Float32Array(data.allocationSize({ planeIndex: 0 }) / 4);
      data.copyTo(pcm, { planeIndex: 0 });
    }
    var rate = data.sampleRate;
    data.close();
    if (rate !== me.ctx.sampleRate) pcm = resample(pcm, rate, me.ctx.sampleRate);
    me.node.port.postMessage({ s: source, pcm: pcm }, [pcm.buffer]);
  }

  // Only where the browser would not make a 48 kHz context: straight-line resampling.
  function resample(pcm, from, to) {
    var n = Math.round(pcm.length * to / from), out = new Float32Array(n);
    for (var i = 0; i < n; i++) {
      var x = i * from / to, k = Math.floor(x), f = x - k;
      out[i] = (pcm[k] || 0) * (1 - f) + (pcm[Math.min(k + 1, pcm.length - 1)] || 0) * f;
    }
    return out;
  }

  function leave() {
    var me = on;
    on = null;
    api.output = null;
    if (!me) return draw();
    if (window.RoundtableLive) window.RoundtableLive.listen(null);
    Object.keys(me.decoders).forEach(function (k) {
      var dec = me.decoders[k].dec;
      if (dec.state !== "closed") dec.close();
    });
    if (me.node) { me.node.port.onmessage = null; me.node.disconnect(); }
    if (me.audio) { me.audio.pause(); me.audio.removeAttribute("src"); me.audio.remove(); }
    if (me.ctx && me.ctx.state !== "closed") me.ctx.close();
    stats.bufferedMs = 0;
    stats.sources = 0;
    draw();
  }

  // Speakers quiet for a while give back their decoders.
  setInterval(function () {
    var me = on;
    if (!me) return;
    Object.keys(me.decoders).forEach(function (k) {
      var d = me.decoders[k];
      if (Date.now() - (d.seen || 0) > 30000) { if (d.dec.state !== "closed") d.dec.close(); delete me.decoders[k]; }
    });
  }, 10000);

  // The room panel is drawn again on a move: what was buffered of the old room is dropped
  // at once (the server already sends only the new room's sound).
  function bind() {
    var now = document.getElementById("voice");
    if (now !== panel) {
      var text = panel && $(".voice-message") ? $(".voice-message").textContent : "";
      panel = now;
      if (text) say(text);
    }
    var here = panel ? panel.getAttribute("data-room") : null;
    if (on && !panel) leave();
    else if (on && here !== room) {
      if (on.node) on.node.port.postMessage({ flush: true });
      if (on.audio) { on.audio.src = panel.getAttribute("data-voice-stream"); on.audio.play().catch(function () {}); }
      if (on.audio) panel.appendChild(on.audio);
      say((on.slow ? SLOW + " " : "") + "You are hearing " + roomName() + ".");
    }
    room = here;
    draw();
  }

  document.addEventListener("click", function (e) {
    var b = e.target.closest && e.target.closest("#voice .voice-join");
    if (!b) return;
    if (on) { leave(); say("You left the audio: you no longer hear the room."); } else join();
  });
  document.addEventListener("input", function (e) {
    if (e.target.id !== "voice-volume") return;
    var v = +e.target.value;
    e.target.setAttribute("aria-valuetext", v + "%");
    try { localStorage.setItem(KEY, String(v)); } catch (x) { /* for this page only */ }
    if (on && on.gain) on.gain.gain.setTargetAtTime(v / 100, on.ctx.currentTime, 0.02);
    if (on && on.audio && !api.output) on.audio.volume = Math.min(1, v / 100);
  });
  window.addEventListener("pagehide", leave);
  new MutationObserver(bind).observe(live, { childList: true });
  bind();
  var pressed = live.getAttribute("data-voice-pressed");
  live.removeAttribute("data-voice-pressed");
  if (pressed && panel) join();
})();
