#!/usr/bin/env python3
"""Fills a man page template at build time: @KEY@ placeholders from --set KEY=VALUE, and the
line `.\\" @OPTIONS@` with what `PROGRAM --help-roff` prints (the program's own flag table, the
one --help prints too), so the OPTIONS of coremq(8) and mqtt-bench(1) cannot drift from the
flags. Called by dist/meson.build; fails on a placeholder left unfilled."""
import argparse
import re
import subprocess
import sys


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("template")
    parser.add_argument("output")
    parser.add_argument("--options-from", help="program whose --help-roff fills @OPTIONS@")
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE")
    arguments = parser.parse_args()
    with open(arguments.template, encoding="utf-8") as template:
        text = template.read()
    for pair in arguments.set:
        key, _, value = pair.partition("=")
        text = text.replace(f"@{key}@", value)
    marker = '.\\" @OPTIONS@\n'
    if arguments.options_from:
        if marker not in text:
            sys.exit(f"{arguments.template}: no {marker.strip()} line")
        options = subprocess.run([arguments.options_from, "--help-roff"], check=True, capture_output=True,
                                 text=True).stdout
        text = text.replace(marker, options)
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        sys.exit(f"{arguments.template}: unfilled {', '.join(sorted(set(left)))}")
    with open(arguments.output, "w", encoding="utf-8") as output:
        output.write(text)


if __name__ == "__main__":
    main()
