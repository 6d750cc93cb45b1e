"""`python -m usdirect.mapping check FILE...`: validate templates after editing them.

Exit status 0 when every file is valid, 1 when any is not (each problem printed as
`file:line: message. Fix: ...`), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import sys

from usdirect.mapping.errors import TemplateError
from usdirect.mapping.template import load_template
from usdirect.mapping.validate import check_value_map_file
from usdirect.mapping.yaml_lines import load_located_yaml


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m usdirect.mapping", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="validate mapping template files")
    check.add_argument("files", nargs="+", metavar="FILE")
    args = parser.parse_args(argv)
    failed = False
    for file in args.files:
        try:
            located = load_located_yaml(file)
            if (
                isinstance(located.data, dict)
                and "value_maps" in located.data
                and "operation" not in located.data
            ):
                names = check_value_map_file(located)
                print(f"{file}: OK (value maps: {', '.join(names)})")
                continue
            template = load_template(file)
        except TemplateError as exc:
            failed = True
            print(exc, file=sys.stderr)
            continue
        writable = ""
        if template.switches is not None:
            writable = f"; a run may write: {', '.join(template.writable_fields())}"
        print(f"{file}: OK ({template.operation} template{writable})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
