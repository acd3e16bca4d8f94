"""Triggers of the MDE Live Response provider."""
