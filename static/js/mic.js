// Roundtable: captions the speaker's microphone (protocol: docs/captioning.md). Opus from
// WebCodecs where the browser has it, else 16 kHz PCM from mic-worklet.js. Nothing starts
// before the person agrees and unmutes; muting, a facilitator's mute, another room or
// leaving the page stops it all and frees the microphone.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live) return;
  var base = live.getAttribute("data-base"), KEY = "rtMicConsent:" + base;
  var OPUS = { codec: "opus", sampleRate: 48000, numberOfChannels: 1, bitrate: 24000 };
  var RETRY = [1001, 1005, 1006, 1012, 1013, 1014], MUTED = "A facilitator has turned off live captions of your microphone.";
  var panel = null, s = null, yes = false;

  function $(sel) { return panel && panel.querySelector(sel); }
  function say(text) { var el = $(".mic-message"); if (el) el.textContent = text; }
  function agreed() { try { return yes || localStorage.getItem(KEY) === "1"; } catch (e) { return yes; } }

  function draw() {
    if (!$(".mic-consent")) return;
    var ok = !!(navigator.mediaDevices && window.AudioWorkletNode), on = !!(s && s.ready);
    $(".mic-consent").hidden = !ok || agreed();
    $(".mic-controls").hidden = !ok || !agreed();
    if (!ok) say("This browser cannot send your microphone for captioning.");
    $(".mic-toggle").setAttribute("aria-pressed", s ? "false" : "true");
    panel.classList.toggle("mic-on", on);
    $(".mic-state-text").textContent = on ? "Your speech is being captioned" :
      s ? "Starting captioning…" : "Microphone muted: nothing you say is captioned.";
  }

  function start() {
    var me = s = { queue: [], ts: 0, retry: 1000, room: panel.getAttribute("data-room"), worklet: panel.getAttribute("data-worklet") };
    say("");
    draw();
    navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true, channelCount: 1 } })
      .then(function (media) {
        me.media = media;
        if (s !== me) throw 0;
        return window.AudioEncoder && AudioEncoder.isConfigSupported(OPUS).then(function (r) { return r.supported; }, function () {});
      })
      .then(function (opus) { if (s !== me) throw 0; return wire(me, opus ? "opus" : "pcm16"); })
      .then(function () { if (s === me) connect(me); })
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
    if (!me.enc) return send(me, buf);
    if (me.enc.state !== "configured") return;
    var n = buf.byteLength / 4;
    var data = new AudioData({ format: "f32", sampleRate: 48000, numberOfFrames: n, numberOfChannels: 1, timestamp: me.ts, data: buf });
    me.ts += n * 1e6 / 48000;
    me.enc.encode(data);
    data.close();
  }

  // Sound waits (about two seconds at most) while the connection starts or comes back;
  // a congested connection drops it rather than piling it up.
  function send(me, b) {
    var ws = me.ws;
    if (me.ready && ws.readyState === 1) { if (ws.bufferedAmount < 65536) ws.send(b); return; }
    me.queue.push(b);
    if (me.queue.length > (me.enc ? 100 : 17)) me.queue.shift();
  }

  function connect(me) {
    var ws = me.ws = new WebSocket(location.origin.replace(/^http/, "ws") + base + "/audio");
    ws.binaryType = "arraybuffer";
    me.ready = false;
    ws.onopen = function () {
      ws.send(JSON.stringify({ type: "start", codec: me.codec, sample_rate: me.enc ? 48000 : 16000, consent: true }));
    };
    ws.onmessage = function (e) {
      var m;
      try { m = JSON.parse(e.data); } catch (x) { return; }
      if (m.t === "started") {
        me.ready = true; me.retry = 1000; say(""); draw();
        me.queue.splice(0).forEach(function (b) { send(me, b); });
      } else if (m.t === "muted") {
        stop();
        say(m.message || MUTED);
      } else if (m.t === "error") me.error = m.message;
    };
    ws.onclose = function (e) {
      if (s !== me || me.ws !== ws) return;
      me.ready = false;
      draw();
      if (RETRY.indexOf(e.code) < 0) {
        stop();
        // 4001: a facilitator's mute (its message may not have come before the close).
        return say(e.code === 4001 ? me.error || MUTED : (me.error || "Captioning stopped" + (e.reason ? ": " + e.reason : "")) + ". Unmute to try again.");
      }
      say("The connection for captions was lost; trying again…");
      me.timer = setTimeout(function () { if (s === me) connect(me); }, me.retry);
      me.retry = Math.min(me.retry * 2, 30000);
    };
  }

  function release(me) {
    clearTimeout(me.timer);
    me.ready = false;
    var ws = me.ws;
    if (ws && ws.readyState === 1) {
      // The server captions the last words and closes; close anyway if it does not.
      ws.send('{"type":"stop"}');
      setTimeout(function () { ws.close(); }, 5000);
    } else if (ws) ws.close();
    if (me.node) { me.node.port.onmessage = null; me.node.disconnect(); }
    if (me.enc && me.enc.state !== "closed") me.enc.close();
    if (me.media) me.media.getTracks().forEach(function (t) { t.stop(); });
    if (me.ctx && me.ctx.state !== "closed") me.ctx.close();
  }

  function stop() {
    var me = s;
    s = null;
    if (me) release(me);
    draw();
  }

  // The room panel is drawn again when rooms open or close or someone is moved.
  function bind() {
    var now = document.getElementById("mic");
    if (now === panel) return;
    panel = now;
    if (s && (!panel || panel.getAttribute("data-room") !== s.room)) {
      stop();
      say("You are in another room now, so captioning of your microphone stopped. Unmute to be captioned here.");
    }
    draw();
  }

  function press(agree) {
    if (agree) {
      yes = true;
      try { localStorage.setItem(KEY, "1"); } catch (x) { /* agreed for this page only */ }
      start();
      $(".mic-toggle").focus();
    } else if (s) { stop(); say("Microphone muted."); } else start();
  }

  document.addEventListener("click", function (e) {
    var b = e.target.closest && e.target.closest("#mic button");
    if (b) press(b.classList.contains("mic-agree"));
  });
  window.addEventListener("pagehide", stop);
  new MutationObserver(bind).observe(live, { childList: true });
  bind();
  // captions.js loads this script when the person first presses one of these buttons.
  var pressed = live.getAttribute("data-mic-pressed");
  live.removeAttribute("data-mic-pressed");
  if (pressed) press(pressed === "agree");
})();
