#!/usr/bin/env python3
"""Signs a delivery with the PyPI `svix` package, so that the tests' signatures come from an
implementation firehook did not write.

Reads {"secret", "id", "timestamp", "body"} as JSON on stdin; prints the `svix-signature`
header value (`v1,<base64>`).
"""
import json
import sys
from datetime import datetime, timezone

import svix.webhooks

request = json.load(sys.stdin)
signature = svix.webhooks.Webhook(request["secret"]).sign(
    request["id"],
    datetime.fromtimestamp(request["timestamp"], tz=timezone.utc),
    request["body"],
)
print(signature)
