"""The Integration API v2 and authentication service routes, one module per group of Anaplan's API docs:
`authentication`, `workspaces` (and models), `files` (and chunks), `imports`, `exports`, `tasks` (of
both) and `actions` (and processes)."""
