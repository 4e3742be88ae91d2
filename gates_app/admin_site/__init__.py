"""gates_app's admin, one module per area (gates and rules, checks, tokens)."""
