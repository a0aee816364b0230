#!/usr/bin/python3
"""check_schema.py: the JSON Schemas, the examples and campaignctl agree (TAP output).

usage: check_schema.py CAMPAIGNCTL SRCDIR

Checks, each one TAP line:
  - schema/campaign.schema.json and schema/campaignd.schema.json are valid draft 2020-12
    schemas;
  - examples/campaignd.yaml and every campaigns.d/*.yaml pass their schema, and every
    campaigns.d/templates/*.yaml passes the template part of the campaign schema;
  - every example passes `campaignctl -c examples/campaignd.yaml check --strict`;
  - every tests/schema/bad/*.yaml (a campaign file with one error) fails the schema and makes
    `campaignctl -c examples/campaignd.yaml check FILE` exit 1;
  - every tests/schema/bad-settings/*.yaml (a campaignd.yaml with one error) fails the schema
    and makes `campaignctl -c FILE check` exit 1;
  - the text and JSON diagnostics of campaignctl have the documented shape.

YAML is read the way YAML 1.2's core schema and campaignd read it: only true/false, null and
numbers are typed; `10:00`, `2027-01-01`, `on`, `NO` and `<<` stay strings.  Mapping keys are
always their source text.  A missing campaignctl makes its checks `not ok`; nothing here
raises.  Exit status: 0 when every check passed, 1 otherwise, 2 on a usage error.
"""
import json
import os
import re
import subprocess
import sys
import traceback

try:
    import yaml
    import jsonschema
except ImportError as e:  # reported as a failing plan below
    yaml = None
    jsonschema = None
    IMPORT_ERROR = str(e)
else:
    IMPORT_ERROR = None

TIMEOUT = 60  # seconds for one campaignctl run


# ---- YAML 1.2 core-like loading ---------------------------------------------------------

if yaml is not None:
    class CoreLoader(yaml.SafeLoader):
        """SafeLoader without YAML 1.1's sexagesimal, timestamp, yes/no/on/off and merge."""

    CoreLoader.yaml_implicit_resolvers = {}
    CoreLoader.add_implicit_resolver(
        "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])
    CoreLoader.add_implicit_resolver(
        "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
        list("tTfF"))
    CoreLoader.add_implicit_resolver(
        "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
        list("-+0123456789"))
    CoreLoader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                   r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
        list("-+0123456789."))

    def _construct_int(loader, node):
        text = loader.construct_scalar(node)
        if text.startswith("0o"):
            return int(text[2:], 8)
        if text.startswith("0x"):
            return int(text[2:], 16)
        return int(text, 10)

    def _construct_mapping(loader, node, deep=False):
        if not isinstance(node, yaml.MappingNode):
            raise yaml.constructor.ConstructorError(
                None, None, "expected a mapping", node.start_mark)
        mapping = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    "found a non-scalar key", key_node.start_mark)
            mapping[key_node.value] = loader.construct_object(value_node, deep=deep)
        return mapping

    CoreLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
    CoreLoader.construct_mapping = _construct_mapping


def load_yaml(path):
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=CoreLoader)


def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# ---- checks ------------------------------------------------------------------------------

class Failed(Exception):
    """A check failed; the message becomes TAP diagnostics."""


def schema_errors(schema, instance):
    v = jsonschema.Draft202012Validator(schema)
    return sorted(v.iter_errors(instance), key=lambda e: list(e.absolute_path))


def describe(errors, limit=5):
    lines = []
    for e in errors[:limit]:
        where = "/".join(str(p) for p in e.absolute_path) or "(top)"
        msg = e.message if len(e.message) < 300 else e.message[:300] + "..."
        lines.append(f"{where}: {msg}")
    if len(errors) > limit:
        lines.append(f"... and {len(errors) - limit} more")
    return "\n".join(lines)


def expect_valid(schema_path, file_path, subschema=None):
    def check():
        schema = load_json(schema_path)
        if subschema is not None:
            schema = {"$schema": schema["$schema"], "$defs": schema["$defs"],
                      "$ref": "#/$defs/" + subschema}
        errs = schema_errors(schema, load_yaml(file_path))
        if errs:
            raise Failed(describe(errs))
    return check


def expect_invalid(schema_path, file_path, campaign_name=None):
    def check():
        data = load_yaml(file_path)
        if campaign_name is not None:
            if not isinstance(data, dict) or data.get("campaign") != campaign_name:
                raise Failed(f"campaign: must be {campaign_name!r}, the file's name, so that "
                             "the file has only the one error it is about")
        if not schema_errors(load_json(schema_path), data):
            raise Failed("the schema accepts this file")
    return check


def expect_schema_ok(schema_path):
    def check():
        try:
            jsonschema.Draft202012Validator.check_schema(load_json(schema_path))
        except jsonschema.exceptions.SchemaError as e:
            raise Failed(str(e)[:2000])
    return check


def run_ctl(ctl, args):
    """Run campaignctl; return (exit status, stdout, stderr)."""
    if not os.path.isfile(ctl) or not os.access(ctl, os.X_OK):
        raise Failed(f"campaignctl not found or not executable: {ctl}")
    try:
        p = subprocess.run([ctl] + args, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        raise Failed(f"campaignctl did not finish within {TIMEOUT}s: {args}")
    except OSError as e:
        raise Failed(f"cannot run campaignctl: {e}")
    return (p.returncode, p.stdout.decode("utf-8", "replace"),
            p.stderr.decode("utf-8", "replace"))


def expect_exit(ctl, args, status):
    def check():
        rc, out, err = run_ctl(ctl, args)
        if rc != status:
            text = (out + err).strip()
            raise Failed(f"exit status {rc}, expected {status}: campaignctl {' '.join(args)}"
                         + ("\n" + text[:3000] if text else ""))
    return check


TEXT_LINE = re.compile(r"^(?P<file>.+?):(?P<line>[0-9]+):(?P<col>[0-9]+): "
                       r"(?P<sev>error|warning|note): .+$")
JSON_KEYS = {"file", "line", "column", "severity", "code", "message", "hint"}


def expect_text_format(ctl, config, path, files):
    """Every stdout line is PATH:LINE:COL: error|warning|note: ...; every file is named.

    A summary (N errors, M warnings ...) may follow on stderr; it is not checked here.
    """
    def check():
        if not files:
            raise Failed(f"no campaign files in {path}")
        rc, out, err = run_ctl(ctl, ["-c", config, "check", path])
        if rc != 1:
            raise Failed(f"exit status {rc}, expected 1\n{(out + err)[:3000]}")
        named = set()
        for line in out.splitlines():
            if not line.strip() or line.startswith("campaignctl:"):
                continue
            m = TEXT_LINE.match(line)
            if m is None:
                raise Failed(f"not a diagnostic line: {line!r}")
            named.add(os.path.basename(m.group("file")))
        missing = sorted(set(files) - named)
        if missing:
            raise Failed("no diagnostic for: " + ", ".join(missing))
    return check


def expect_json_format(ctl, config, path, files):
    """--format json: an array of {file, line, column, severity, code, message, hint}."""
    def check():
        if not files:
            raise Failed(f"no campaign files in {path}")
        rc, out, err = run_ctl(ctl, ["-c", config, "check", "--format", "json", path])
        if rc != 1:
            raise Failed(f"exit status {rc}, expected 1\n{(out + err)[:3000]}")
        try:
            arr = json.loads(out)
        except ValueError as e:
            raise Failed(f"stdout is not JSON ({e}): {out[:1000]!r}")
        if not isinstance(arr, list) or not arr:
            raise Failed("not a non-empty JSON array")
        named = set()
        for o in arr:
            if not isinstance(o, dict) or set(o) != JSON_KEYS:
                raise Failed(f"not a diagnostic object with keys {sorted(JSON_KEYS)}: {o!r}")
            ok = (isinstance(o["file"], str) and isinstance(o["line"], int)
                  and isinstance(o["column"], int) and o["severity"] in ("error", "warning")
                  and isinstance(o["code"], str) and re.match(r"^[a-z0-9-]+$", o["code"])
                  and isinstance(o["message"], str)
                  and (o["hint"] is None or isinstance(o["hint"], str)))
            if not ok:
                raise Failed(f"bad field types or values: {o!r}")
            named.add(os.path.basename(o["file"]))
        missing = sorted(set(files) - named)
        if missing:
            raise Failed("no diagnostic for: " + ", ".join(missing))
    return check


def yaml_files(directory):
    """The *.yaml files of a directory that campaignd would load (not hidden, no backups)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(n for n in names
                  if n.endswith(".yaml") and not n.startswith(".")
                  and os.path.isfile(os.path.join(directory, n)))


def must_exist(kind, directory, minimum):
    def check():
        n = len(yaml_files(directory))
        if n < minimum:
            raise Failed(f"{n} {kind} files in {directory}, expected at least {minimum}")
    return check


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: check_schema.py CAMPAIGNCTL SRCDIR\n")
        return 2
    ctl = os.path.abspath(argv[1])
    src = os.path.abspath(argv[2])
    if IMPORT_ERROR is not None:
        print("1..1")
        print(f"not ok 1 - python modules yaml and jsonschema load # {IMPORT_ERROR}")
        return 1

    campaign_schema = os.path.join(src, "schema", "campaign.schema.json")
    settings_schema = os.path.join(src, "schema", "campaignd.schema.json")
    config = os.path.join(src, "examples", "campaignd.yaml")
    campaigns = os.path.join(src, "campaigns.d")
    templates = os.path.join(campaigns, "templates")
    bad = os.path.join(src, "tests", "schema", "bad")
    bad_settings = os.path.join(src, "tests", "schema", "bad-settings")

    def rel(p):
        return os.path.relpath(p, src)

    tests = [
        ("schema/campaign.schema.json is a valid draft 2020-12 schema",
         expect_schema_ok(campaign_schema)),
        ("schema/campaignd.schema.json is a valid draft 2020-12 schema",
         expect_schema_ok(settings_schema)),
        ("examples/campaignd.yaml passes the schema", expect_valid(settings_schema, config)),
        ("campaigns.d has example campaigns", must_exist("campaign", campaigns, 1)),
    ]
    for n in yaml_files(campaigns):
        p = os.path.join(campaigns, n)
        tests.append((f"{rel(p)} passes the schema", expect_valid(campaign_schema, p)))
    for n in yaml_files(templates):
        p = os.path.join(templates, n)
        tests.append((f"{rel(p)} passes the template schema",
                      expect_valid(campaign_schema, p, subschema="templateFile")))

    tests.append(("campaignctl check --strict: examples/campaignd.yaml and its campaigns",
                  expect_exit(ctl, ["-c", config, "check", "--strict"], 0)))
    for n in yaml_files(campaigns):
        p = os.path.join(campaigns, n)
        tests.append((f"campaignctl check --strict {rel(p)}",
                      expect_exit(ctl, ["-c", config, "check", "--strict", p], 0)))

    tests.append(("tests/schema/bad has at least 25 files", must_exist("bad", bad, 25)))
    for n in yaml_files(bad):
        p = os.path.join(bad, n)
        tests.append((f"{rel(p)} fails the schema",
                      expect_invalid(campaign_schema, p, campaign_name=n[:-len(".yaml")])))
        tests.append((f"campaignctl check {rel(p)} exits 1",
                      expect_exit(ctl, ["-c", config, "check", p], 1)))

    tests.append(("tests/schema/bad-settings has at least 5 files",
                  must_exist("bad settings", bad_settings, 5)))
    for n in yaml_files(bad_settings):
        p = os.path.join(bad_settings, n)
        tests.append((f"{rel(p)} fails the schema", expect_invalid(settings_schema, p)))
        tests.append((f"campaignctl -c {rel(p)} check exits 1",
                      expect_exit(ctl, ["-c", p, "check"], 1)))

    tests.append(("campaignctl check tests/schema/bad: text diagnostics have the documented "
                  "shape", expect_text_format(ctl, config, bad, yaml_files(bad))))
    tests.append(("campaignctl check --format json tests/schema/bad: JSON diagnostics have the "
                  "documented shape", expect_json_format(ctl, config, bad, yaml_files(bad))))

    print(f"1..{len(tests)}", flush=True)
    failed = 0
    for i, (desc, check) in enumerate(tests, 1):
        try:
            check()
        except Failed as e:
            failed += 1
            print(f"not ok {i} - {desc}")
            for line in str(e).splitlines():
                print(f"# {line}")
        except (OSError, ValueError, yaml.YAMLError) as e:  # a missing or malformed file
            failed += 1
            print(f"not ok {i} - {desc}")
            for line in f"{type(e).__name__}: {e}".splitlines()[:10]:
                print(f"# {line}")
        except Exception as e:  # a broken file or a bug here: report it, go on
            failed += 1
            print(f"not ok {i} - {desc}")
            for line in traceback.format_exc().splitlines()[-12:]:
                print(f"# {line}")
        else:
            print(f"ok {i} - {desc}")
        sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
