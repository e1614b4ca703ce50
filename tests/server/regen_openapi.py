"""Rewrite openapi.json, the snapshot test_server compares the served schema with.
Run after a deliberate change to the API, and review the diff."""

import json
from pathlib import Path

from nacrith.server import create_app

schema = create_app().openapi()
Path(__file__).with_name("openapi.json").write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
