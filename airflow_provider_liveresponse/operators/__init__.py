"""Operators of the MDE Live Response provider."""
