"""Roundtable: facilitated online co-production."""
