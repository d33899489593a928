"""Voice in a live session: who may speak in a room now (the floor, open mic) and
moderators' mutes. The audio itself travels in realtime/ (the lead's voice core)."""
