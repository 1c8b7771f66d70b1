"""Operations on a running services tree: backup, update and rollback, health, doctor.

The CLI modules (labdock.cli.backup, update, health, doctor) only parse
options and print; the work is here, and every subprocess goes through
labdock.execute.
"""
