"""Checks an AWS Signature Version 4 with botocore's signer, independently of ours.

Reads a JSON object from stdin: method, url, headers (as received), body (base64), region,
service, access key id and secret. Signs the same request (the headers our Authorization names,
at its x-amz-date) with botocore.auth.SigV4Auth and prints "ok", or what differs and exits 1.
"""
import base64
import json
import sys

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

given = json.load(sys.stdin)
headers = {k.lower(): v for k, v in given["headers"].items()}
authorization = headers.pop("authorization")
signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
request = AWSRequest(
    method=given["method"],
    url=given["url"],
    data=base64.b64decode(given["body"]),
    headers={name: headers[name] for name in signed},
)
signer = SigV4Auth(
    Credentials(given["key_id"], given["secret"]), given["service"], given["region"]
)
request.context["timestamp"] = headers["x-amz-date"]
canonical = signer.canonical_request(request)
string_to_sign = signer.string_to_sign(request, canonical)
expected = signer.signature(string_to_sign, request)
names = ";".join(signer.signed_headers(signer.headers_to_sign(request)).split(";"))
ours = authorization.split("Signature=")[1]
if ours != expected or names != ";".join(signed):
    print(f"botocore signs {names} as {expected}; ours signs {';'.join(signed)} as {ours}")
    print(canonical)
    sys.exit(1)
print("ok")
