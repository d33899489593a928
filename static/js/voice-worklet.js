// Roundtable player: a jitter buffer per speaker, summed into one output (voice.js feeds
// it decoded 48 kHz mono samples: {s: source, pcm: Float32Array}; {flush: true} forgets
// everything, as when the person moves room).
// - A speaker starts to play once START seconds are buffered, or once the first sound has
//   waited START (the end of a short remark is not held back for more).
// - When a speaker's buffer runs dry, that is silence (the server sends none), not a stall:
//   the output goes quiet and the next sound waits START again.
// - More than MOST buffered (the network stalled, then delivered a burst): the oldest is
//   dropped down to START, so the room is never heard more than about half a second late.
var START = 0.1, MOST = 0.35, FORGET = 10;

class RoundtableVoice extends AudioWorkletProcessor {
  constructor() {
    super();
    this.sources = new Map();
    this.dropped = 0;
    this.reported = 0;
    var self = this;
    this.port.onmessage = function (e) { self.take(e.data); };
  }

  take(m) {
    if (m.flush) { this.sources.clear(); return; }
    var src = this.sources.get(m.s);
    if (!src) {
      src = { chunks: [], off: 0, n: 0, playing: false, since: currentTime, heard: currentTime };
      this.sources.set(m.s, src);
    }
    if (!src.playing && src.n === 0) src.since = currentTime;
    src.chunks.push(m.pcm);
    src.n += m.pcm.length;
    src.heard = currentTime;
    var most = MOST * sampleRate, keep = START * sampleRate;
    if (src.n > most) {
      // Drop whole packets from the front until about START is left.
      while (src.n - (src.chunks[0].length - src.off) >= keep) {
        src.n -= src.chunks[0].length - src.off;
        src.chunks.shift();
        src.off = 0;
        this.dropped++;
      }
    }
  }

  play(src, out) {
    if (!src.playing) {
      if (src.n === 0) return;
      if (src.n < START * sampleRate && currentTime - src.since < START) return;
      src.playing = true;
    }
    var i = 0;
    while (i < out.length && src.chunks.length) {
      var c = src.chunks[0], k = Math.min(out.length - i, c.length - src.off);
      for (var j = 0; j < k; j++) out[i + j] += c[src.off + j];
      i += k;
      src.off += k;
      src.n -= k;
      if (src.off === c.length) { src.chunks.shift(); src.off = 0; }
    }
    if (src.n === 0) src.playing = false;
  }

  process(inputs, outputs) {
    var out = outputs[0][0], most = 0, self = this;
    this.sources.forEach(function (src, key) {
      self.play(src, out);
      if (src.n === 0 && currentTime - src.heard > FORGET) self.sources.delete(key);
      most = Math.max(most, src.n);
    });
    for (var i = 0; i < out.length; i++) out[i] = Math.max(-1, Math.min(1, out[i]));
    for (var ch = 1; ch < outputs[0].length; ch++) outputs[0][ch].set(out);
    if (currentTime - this.reported >= 0.1) {
      this.reported = currentTime;
      this.port.postMessage({ bufferedMs: Math.round(most * 1000 / sampleRate), dropped: this.dropped, sources: this.sources.size });
    }
    return true;
  }
}

registerProcessor("roundtable-voice", RoundtableVoice);
