"""The slow-client benchmark: this stack against the servers people use instead of it.

`make bench` runs it (about fifteen minutes) and writes results.md and results.png here. It
serves the same Django project, with the same number of workers, four ways, and measures
how ordinary fast clients fare while slow ones attack. What is where:

    settings.py, urls.py, views.py   the project plus three pages the benchmark requests
    servers.py                       the four ways to serve it, started and stopped
    load.py                          fast clients and the three kinds of attacker
    capacity.py                      this stack alone: one abusive address, a crowd, a Standard-1X
    __main__.py                      the run: scenarios, the table, the chart

tests/test_slow_clients.py runs a small part of it as an ordinary test.
"""
