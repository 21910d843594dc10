"""Token minting: ID tokens, JWT access tokens (RFC 9068) and opaque refresh tokens."""
