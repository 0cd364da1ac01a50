"""End-to-end helpers: a public-API client and one bounded wait for eventual consistency."""
