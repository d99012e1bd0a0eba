"""`python -m gateway.cli`: the same entry point as the `parley` script."""

from gateway.cli import main

if __name__ == "__main__":
    main()
