"""Voice in a live session: who may speak in a room now (the floor, open mic),
moderators' mutes, and recordings of a room's mix. The audio itself travels in realtime/
(docs/voice.md)."""
