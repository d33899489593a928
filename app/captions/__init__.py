"""Captions as the web app keeps them: stored segments, corrections, mutes and
preferences, and the sink that stores and publishes what the recognizer hears."""
