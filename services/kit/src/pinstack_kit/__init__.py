"""Domain-free shared mechanics for Pinstack services.

Everything here is infrastructure (settings, database, errors, events, tokens, metrics); nothing
here knows about users, posts or any other domain concept.
"""
