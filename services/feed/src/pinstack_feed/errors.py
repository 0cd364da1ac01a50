"""Domain errors of the feed: it has none of its own (a bad cursor is the kit's 400 `validation failed`)."""
