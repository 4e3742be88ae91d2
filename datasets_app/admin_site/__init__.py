"""datasets_app's admin, one module per area: datasets and failure classes, cases, incidents."""
