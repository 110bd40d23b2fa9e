"""Allow ``python -m unlatch``."""

from unlatch.cli import main

if __name__ == "__main__":
    main()
