"""Real protocol peers for the tests, started on 127.0.0.1 with free ports."""
