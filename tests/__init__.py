"""changeover test suite (a regular package, so it wins over stray site-packages `tests` packages)."""
