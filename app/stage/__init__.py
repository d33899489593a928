"""The stage: slides shown in step with the presenter, and the presenter's and the
sign-language interpreter's video tiles (docs/stage.md)."""
