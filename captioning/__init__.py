"""Live captions and transcription with Vosk, on our own server."""
