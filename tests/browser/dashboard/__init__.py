"""The admin dashboard and models pages in a real browser, on a seeded data dir."""
