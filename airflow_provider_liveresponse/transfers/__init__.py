"""Transfers of the MDE Live Response provider."""
