"""An example fvopt plugin (installed by tests/test_extending.py): fvopt imports each module
named by an entry point the first time it needs a name it does not know."""
