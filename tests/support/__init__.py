"""Helpers the tests share. Tests import from here, never from a conftest or another test module."""
