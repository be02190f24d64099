"""The tools above the services: the `tinyllm` command, the launcher, the env-file generator
and the process helper. This package may know every service; `services/` knows none.
"""
