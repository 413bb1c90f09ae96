"""``python -m scoring ARGS`` — and the file to give spark-submit: ``spark-submit [options]
scoring/__main__.py ARGS`` (absolute imports only, so it also runs as a plain script)."""

import sys

from scoring.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m scoring"))
