"""Helpers the tests import: plain modules, so that conftest.py files hold only fixtures and hooks."""
