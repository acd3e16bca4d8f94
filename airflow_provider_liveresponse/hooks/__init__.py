"""Hooks of the MDE Live Response provider."""
