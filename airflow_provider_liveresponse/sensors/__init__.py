"""Sensors of the MDE Live Response provider."""
