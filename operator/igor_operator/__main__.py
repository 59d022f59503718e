import sys


def main() -> int:
    print("igor-operator: not implemented yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
