"""`python -m changeover.cli`: the same command line as the `changeover` executable."""

from changeover.cli import main

main()
