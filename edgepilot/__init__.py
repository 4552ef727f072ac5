"""The ``edgepilot`` command line. It sits on top of the four packages and imports them lazily."""
