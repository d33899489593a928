"""Voice in the rooms of a live session."""
