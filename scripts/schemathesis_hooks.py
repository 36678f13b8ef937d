"""Schemathesis hooks for open131 (scripts/schemathesis.sh): every main-API
request is signed as a partner signs it (RSA-SHA256 over the exact body bytes,
X-PARTNER-SIGN) for the demo project, so the generated cases reach the
methods themselves instead of stopping at the signature check."""
import base64, json, os
import schemathesis
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

KEY = serialization.load_pem_private_key(open(os.environ["OPEN131_KEY"], "rb").read(), password=None)

@schemathesis.hook
def before_call(ctx, case, kwargs):
    """Sends the body as exact bytes and signs them; the generated partner headers are replaced."""
    if not (case.path.startswith("/api/v1/") or case.path.startswith("/api/v2/")):
        return
    body = json.dumps(case.body if isinstance(case.body, dict) else {}, separators=(",", ":")).encode()
    kwargs.pop("json", None)
    kwargs["data"] = body
    if case.headers is None:
        case.headers = {}
    headers = case.headers
    for name in list(headers):
        if name.lower().startswith("x-partner-"):
            del headers[name]
    headers["x-partner-project"] = "demo"
    headers["Content-Type"] = "application/json"
    headers["x-partner-sign"] = base64.b64encode(KEY.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()
