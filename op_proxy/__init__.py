"""op-proxy: a federating OpenID Connect provider."""

__version__ = "0.1.0"
