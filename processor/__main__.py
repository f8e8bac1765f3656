"""Allow `python -m processor` as an alias of the `complaints` command."""

from processor.cli import main

main()
