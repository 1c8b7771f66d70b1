"""The services tree: laying it down, rendering it, checking it and running it.

Modules: `tree` (the shipped copy, `labdock init`, template rendering),
`envfile` (the site's .env), `compose` (calls to the Compose v2 binary),
`policy` and `report` (`labdock validate`), `secrets` (`labdock secrets`),
`lifecycle` (`labdock up|down|status|logs`) and `harbor`.
"""
