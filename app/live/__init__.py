"""A live session: rooms, chat, breakouts, help and moderation, published through
`realtime/` after each change commits."""
