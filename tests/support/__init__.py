"""Test helpers: a real op-proxy process, a person with a browser-like cookie jar, databases."""
