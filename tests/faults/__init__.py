"""The fault suite: a cluster under a nemesis, its history, and the checker that judges it."""
