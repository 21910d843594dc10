"""Which claims a client gets about a person: by scope, by what the client may ask, by ``claims``."""
