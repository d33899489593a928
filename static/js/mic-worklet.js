// Roundtable microphone: cuts the sound into frames for mic.js. "opus": 20 ms of 48 kHz
// float samples for the browser's Opus encoder (one packet each, so none waits for the next). "pcm16": 16 kHz 16-bit mono, 120 ms a frame,
// each output sample the mean of the input samples in its period (a simple low-pass).
class RoundtableMic extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.pcm = options.processorOptions.codec === "pcm16";
    this.step = this.pcm ? sampleRate / 16000 : 1;
    this.size = this.pcm ? 1920 : 960;
    this.sum = 0;
    this.count = 0;
    this.pos = 0;
    this.fresh();
  }

  fresh() {
    this.buf = this.pcm ? new Int16Array(this.size) : new Float32Array(this.size);
    this.fill = 0;
  }

  push(v) {
    if (this.pcm) v = Math.max(-32768, Math.min(32767, Math.round(v * 32767)));
    this.buf[this.fill++] = v;
    if (this.fill === this.size) {
      this.port.postMessage(this.buf.buffer, [this.buf.buffer]);
      this.fresh();
    }
  }

  process(inputs) {
    var ch = inputs[0] && inputs[0][0];
    if (!ch) return true;
    for (var i = 0; i < ch.length; i++) {
      if (!this.pcm) { this.push(ch[i]); continue; }
      this.sum += ch[i];
      this.count++;
      if (++this.pos >= this.step) {
        this.pos -= this.step;
        this.push(this.sum / this.count);
        this.sum = 0;
        this.count = 0;
      }
    }
    return true;
  }
}

registerProcessor("roundtable-mic", RoundtableMic);
