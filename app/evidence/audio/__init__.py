"""Sound files: what they hold, whether they are whole, and their audio as 16 kHz mono PCM.

Decoding is PyAV's (FFmpeg): WAV, MP3, M4A/AAC, Ogg (Opus, Vorbis), WebM/Opus as browsers
record it, FLAC. Everything here blocks; async callers run it in a thread
(`probe.probe_audio_async`, or `anyio.to_thread` around the PCM iterator's `next`).

- `limits`: what we take as sound, and the refusals with their messages for people;
- `probe`: a file's length and codec, refusing what is not sound or not whole;
- `truncation`: what each container says about its own length (a cut-off file plays
  without complaint, so this is how one is told);
- `pcm`: the audio decoded to the 16 kHz mono PCM the recognizer takes.
"""
