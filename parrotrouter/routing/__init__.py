"""Which deployment serves a request, in which order, with which fallbacks."""
