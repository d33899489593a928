// Roundtable tech check: the browser's features, the connection (WebSocket or the
// compatibility mode, and the round trip), the microphone's level, and a sample caption of
// a few seconds of speech (16 kHz PCM from mic-worklet.js, sent as a WAV file). What it
// finds goes with a request for help, so IT support need not ask again.
(function () {
  "use strict";
  var root = document.getElementById("tech-check");
  if (!root) return;
  var csrf = JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRF-Token"];
  var SECONDS = +root.getAttribute("data-seconds") || 5, RATE = 16000;
  var found = { browser: "", connection: "", mic: "", caption: "" };
  var mic = null, peak = 0;

  function $(id) { return document.getElementById(id); }
  function say(id, text) { var el = $(id); if (el) el.textContent = text; }

  // -- the browser --
  var FEATURES = [
    ["WebSocket", "WebSocket" in window, "live updates reach you at once.",
      "the live session uses its compatibility mode instead (a little slower)."],
    ["EventSource (server-sent events)", "EventSource" in window, "the compatibility mode can stream updates.",
      "the compatibility mode asks for updates every few seconds instead."],
    ["Microphone access (getUserMedia)", !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia),
      "the page can use your microphone when you allow it.", "your speech cannot be captioned in this browser."],
    ["AudioWorklet", !!window.AudioWorkletNode, "your microphone's sound can be prepared for captioning.",
      "your speech cannot be captioned in this browser."],
    ["WebCodecs AudioEncoder", !!window.AudioEncoder, "your sound is compressed before it is sent (less data).",
      "your sound is sent uncompressed: it still works, using more data."],
    ["WebCodecs AudioDecoder", !!window.AudioDecoder, "you hear the room with little delay.",
      "you hear the room through a slower stream, a few seconds behind."],
    ["MediaRecorder", !!window.MediaRecorder, "you can record voice notes for your group's evidence.",
      "record voice notes in another app and upload them instead."]
  ];
  function checkBrowser() {
    var list = $("tc-features"), missing = [];
    list.textContent = "";
    FEATURES.forEach(function (f) {
      var li = document.createElement("li"), b = document.createElement("b");
      b.textContent = f[0] + ": ";
      li.appendChild(b);
      li.appendChild(document.createTextNode((f[1] ? "Yes, " + f[2] : "No, " + f[3])));
      li.className = f[1] ? "tc-yes" : "tc-no";
      list.appendChild(li);
      if (!f[1]) missing.push(f[0]);
    });
    found.browser = missing.length ? "missing " + missing.join(", ") : "all features";
  }

  // -- the connection --
  function median(xs) {
    var s = xs.slice().sort(function (a, b) { return a - b; });
    return s[Math.floor(s.length / 2)];
  }
  function report(kind, note, times) {
    var ms = times.length ? Math.round(median(times)) : null;
    say("tc-transport", kind);
    say("tc-transport-note", note);
    say("tc-rtt", ms === null ? "Could not be measured." : ms + " ms (" +
      (ms < 150 ? "good" : ms < 400 ? "fine for captions and chat" : "slow: captions and chat may lag") + ")");
    found.connection = kind + (ms === null ? "" : ", " + ms + " ms");
  }
  function viaHttp() {
    var times = [], n = 0;
    (function one() {
      if (n++ >= 5) return report("Compatibility mode (no WebSocket)",
        "WebSockets do not get through on this network (often a firewall or proxy). The live session still works in its compatibility mode; updates may take a moment longer.", times);
      var t0 = performance.now();
      fetch("/tech-check/ping", { cache: "no-store", credentials: "same-origin" }).then(function (r) {
        if (!r.ok) throw new Error(r.status);
        times.push(performance.now() - t0);
        one();
      }).catch(function () {
        report("Not connected", "We could not reach the server. Check your internet connection and reload this page.", times);
      });
    })();
  }
  function checkConnection() {
    say("tc-transport", "Checking…");
    say("tc-rtt", "Measuring…");
    say("tc-transport-note", "");
    if (!("WebSocket" in window)) return viaHttp();
    var ws, opened = false, finished = false, times = [], sent = 0, t0 = 0;
    try { ws = new WebSocket(location.origin.replace(/^http/, "ws") + "/tech-check/ws"); } catch (e) { return viaHttp(); }
    var timer = setTimeout(function () { if (!opened) { ws.onclose = null; ws.close(); viaHttp(); } }, 5000);
    function finish() {
      finished = true;
      ws.onclose = null;
      ws.close();
      report("WebSocket", "Live updates reach you at once.", times);
    }
    function next() {
      if (sent >= 5) return finish();
      sent++;
      t0 = performance.now();
      ws.send("ping " + sent);
    }
    ws.onopen = function () { opened = true; clearTimeout(timer); next(); };
    ws.onmessage = function () { times.push(performance.now() - t0); next(); };
    ws.onclose = function () {
      clearTimeout(timer);
      if (!opened) return viaHttp();
      if (!finished) finish();
    };
  }

  // -- the microphone --
  function levelWord(level) {
    return level < 8 ? "silent or very quiet" : level < 30 ? "quiet" : level < 90 ? "good" : "very loud";
  }
  function startMic() {
    var me = mic = { chunks: [], recording: false };
    say("tc-mic-status", "Starting your microphone…");
    navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true, channelCount: 1 } })
      .then(function (media) {
        if (mic !== me) { media.getTracks().forEach(function (t) { t.stop(); }); return; }
        me.media = media;
        var ctx = me.ctx = new AudioContext();
        var src = ctx.createMediaStreamSource(media);
        me.analyser = ctx.createAnalyser();
        me.analyser.fftSize = 2048;
        src.connect(me.analyser);
        me.level = setInterval(function () { showLevel(me); }, 100);
        $("tc-mic-start").textContent = "Stop the microphone";
        say("tc-mic-status", "Your microphone is on. Speak, and watch the level.");
        if (!window.AudioWorkletNode) return say("tc-caption", "This browser cannot record a sample for captioning.");
        return ctx.audioWorklet.addModule(root.getAttribute("data-worklet")).then(function () {
          if (mic !== me) return;
          me.node = new AudioWorkletNode(ctx, "roundtable-mic", { numberOfOutputs: 0, processorOptions: { codec: "pcm16" } });
          me.node.port.onmessage = function (e) { if (me.recording) me.chunks.push(new Int16Array(e.data)); };
          src.connect(me.node);
          $("tc-record").disabled = root.getAttribute("data-captions") !== "ok";
          return ctx.resume();
        });
      })
      .catch(function (e) {
        stopMic();
        var text = e && e.name === "NotAllowedError" ?
          "The browser did not let us use your microphone. Allow it (usually in the address bar) and try again." :
          e && e.name === "NotFoundError" ? "We found no microphone. Plug one in, or choose one in your computer's sound settings." :
          "Your microphone could not be started" + (e && e.message ? ": " + e.message : ".");
        say("tc-mic-status", text);
        found.mic = "could not start (" + (e && e.name || "error") + ")";
      });
  }
  function showLevel(me) {
    var data = new Float32Array(me.analyser.fftSize), sum = 0;
    me.analyser.getFloatTimeDomainData(data);
    for (var i = 0; i < data.length; i++) sum += data[i] * data[i];
    var db = 20 * Math.log10(Math.sqrt(sum / data.length) || 1e-9);
    var level = Math.max(0, Math.min(100, Math.round((db + 60) / 60 * 100)));
    var meter = $("tc-level");
    meter.value = level;
    meter.textContent = level + "%";
    peak = Math.max(peak, level);
    found.mic = "level up to " + peak + "%";
    var now = Date.now();
    if (!me.said || now - me.said > 500) {
      me.said = now;
      say("tc-level-text", level + "%: " + levelWord(level) + (peak >= 8 ? "" : ". If you are speaking, check that the right microphone is chosen and not muted."));
    }
  }
  function stopMic() {
    var me = mic;
    mic = null;
    $("tc-mic-start").textContent = "Start the microphone check";
    $("tc-record").disabled = true;
    if (!me) return;
    clearInterval(me.level);
    if (me.node) { me.node.port.onmessage = null; me.node.disconnect(); }
    if (me.media) me.media.getTracks().forEach(function (t) { t.stop(); });
    if (me.ctx && me.ctx.state !== "closed") me.ctx.close();
    $("tc-level").value = 0;
    say("tc-level-text", "Stopped.");
  }

  function wav(chunks) {
    var n = 0;
    chunks.forEach(function (c) { n += c.length; });
    var buf = new ArrayBuffer(44 + n * 2), v = new DataView(buf), o = 44;
    function text(at, s) { for (var i = 0; i < s.length; i++) v.setUint8(at + i, s.charCodeAt(i)); }
    text(0, "RIFF"); v.setUint32(4, 36 + n * 2, true); text(8, "WAVE");
    text(12, "fmt "); v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, 1, true);
    v.setUint32(24, RATE, true); v.setUint32(28, RATE * 2, true); v.setUint16(32, 2, true); v.setUint16(34, 16, true);
    text(36, "data"); v.setUint32(40, n * 2, true);
    chunks.forEach(function (c) { for (var i = 0; i < c.length; i++, o += 2) v.setInt16(o, c[i], true); });
    return buf;
  }
  function record() {
    var me = mic;
    if (!me || !me.node || me.recording) return;
    me.chunks = [];
    me.recording = true;
    $("tc-record").disabled = true;
    var left = SECONDS;
    say("tc-caption", "Listening: speak now.");
    var count = setInterval(function () {
      left--;
      if (left > 0 && mic === me) return say("tc-mic-status", left + " seconds left…");
      clearInterval(count);
      me.recording = false;
      if (mic !== me) return;
      say("tc-mic-status", "Your microphone is on.");
      say("tc-caption", "Captioning what you said…");
      fetch("/tech-check/caption", {
        method: "POST", credentials: "same-origin", body: wav(me.chunks),
        headers: { "Content-Type": "audio/wav", "X-CSRF-Token": csrf }
      }).then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (body) {
          if (!r.ok) throw new Error(body.detail || "The sample could not be captioned (" + r.status + ").");
          return body;
        });
      }).then(function (body) {
        found.caption = body.text ? "“" + body.text.slice(0, 80) + "”" : "no words heard";
        say("tc-caption", body.text ? "We heard: “" + body.text + "”" :
          "We heard no words. Speak a little louder or closer to the microphone, and try again.");
      }).catch(function (e) {
        found.caption = "failed";
        say("tc-caption", e.message || "The sample could not be captioned.");
      }).then(function () { if (mic === me) $("tc-record").disabled = false; });
    }, 1000);
  }

  // -- asking for help, with what the check found --
  function summary() {
    var parts = [];
    if (found.connection) parts.push("Connection: " + found.connection + ".");
    if (found.mic) parts.push("Microphone: " + found.mic + (found.caption ? ", sample caption " + found.caption : "") + ".");
    if (found.browser) parts.push("Browser: " + found.browser + ".");
    // From tech-check-sound.js: the test sound and "hear yourself".
    ["data-sound-result", "data-voice-result"].forEach(function (name) {
      var result = root.getAttribute(name);
      if (result) parts.push("Sound: " + result + ".");
    });
    return parts.join(" ");
  }
  var form = $("tc-help-form");
  if (form) form.addEventListener("submit", function (e) {
    e.preventDefault();
    $("tc-results").value = summary();
    var out = form.querySelector(".result");
    out.textContent = "Sending…";
    fetch(form.action, {
      method: "POST", credentials: "same-origin", body: new URLSearchParams(new FormData(form)),
      headers: { "X-CSRF-Token": csrf, "HX-Request": "true" }
    }).then(function (r) {
      return r.text().then(function (t) { out.textContent = r.ok ? t : (r.headers.get("content-type") || "").indexOf("text/plain") === 0 ? t : "That did not work (" + r.status + "). Reload the page and try again."; });
    }).catch(function () { out.textContent = "Not sent: you seem to be offline. Try again."; });
  });

  $("tc-mic-start").addEventListener("click", function () {
    if (mic) { stopMic(); say("tc-mic-status", "Microphone stopped."); }
    else if (navigator.mediaDevices && navigator.mediaDevices.getUserMedia) startMic();
    else say("tc-mic-status", "This browser cannot use a microphone here. Try an up-to-date Chrome, Edge, Firefox or Safari.");
  });
  $("tc-record").addEventListener("click", record);
  $("tc-connection-again").addEventListener("click", checkConnection);
  window.addEventListener("pagehide", stopMic);
  checkBrowser();
  checkConnection();
})();
