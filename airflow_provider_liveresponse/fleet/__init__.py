"""A fleet sweep: the same live-response commands on thousands of devices from one task.

:mod:`.planner` decides who is submitted, skipped and in what order; :mod:`.limiter` paces submissions and reads
inside MDE's limits; :mod:`.ledger` rebuilds each device's state from the sweep's own actions in MDE, so a retry
redoes only what is not done; :mod:`.outcome` is the per-device table; :mod:`.sweep` drives them.
"""
