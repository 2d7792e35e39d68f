"""kinema.datasets: recording episodes as LeRobotDataset v3 directories and loading them.

- ``features``: LeRobot feature descriptions of a kinema environment's observations and actions.
- ``recorder``: crash-safe recording through lerobot's own writer, one transaction per episode.
- ``teleop`` / ``keyboard``: demonstrators (the scripted expert, a person at the keyboard).
- ``record``: the ``kinema record`` loop; ``info``, ``visualize``, ``check``: the
  ``kinema dataset`` commands.
"""
