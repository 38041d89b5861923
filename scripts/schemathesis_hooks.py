"""schemathesis hooks for firstcall (loaded by scripts/schemathesis.sh via SCHEMATHESIS_HOOKS).

Signs every generated webhook request the way its CRM would, so that requests get past the
signature check and reach the parsers and the database:

- generic: X-Firstcall-Signature: t=<unix>,v1=hex(HMAC-SHA256(secret, "<t>.<raw body>"))
- HubSpot: X-HubSpot-Signature-v3 = base64(HMAC-SHA256(secret, method + URI + body + timestamp))
  with X-HubSpot-Request-Timestamp (Unix milliseconds); the URI is firstcall's public URL + path
- Pipedrive: Authorization: Basic base64(user:password)
- Salesforce: outbound messages carry no signature but name their org; the generated body (a
  string) is put into one field of an outbound message from the accepted org, so it reaches the
  field parser. One body in five is sent as generated (not XML: refused when read, before the
  org check). The secret path segment endpoint is not configured here and always answers 401.

Each body is serialized here and sent as these exact bytes, so the signature covers what is
sent. Every webhook response's status is counted; the counts are written as JSON to
$SCHEMATHESIS_COUNTS when schemathesis exits.
"""

import atexit
import base64
import hashlib
import hmac
import json
import os
import threading
import time
from collections import defaultdict
from xml.sax.saxutils import escape

import schemathesis
from schemathesis.core import NotSet

GENERIC_SECRET = os.environ["FIRSTCALL__WEBHOOKS__GENERIC__SECRETS"].encode()
HUBSPOT_SECRET = os.environ["FIRSTCALL__WEBHOOKS__HUBSPOT__CLIENT_SECRETS"].encode()
PIPEDRIVE_AUTH = os.environ["FIRSTCALL__WEBHOOKS__PIPEDRIVE__BASIC_AUTH"]
SALESFORCE_ORG = json.loads(os.environ["FIRSTCALL__WEBHOOKS__SALESFORCE__ORGANIZATION_IDS"])[0]
PUBLIC_URL = os.environ["FIRSTCALL__HTTP__PUBLIC_URL"].rstrip("/")
API_TOKEN = os.environ["FIRSTCALL__API__TOKENS"]

# The Opportunity fields firstcall reads; a generated string lands in one of them.
SALESFORCE_FIELDS = {
    "Id": "0065e00000Bq3ZtAAJ",
    "Amount": "48000.0",
    "CurrencyIsoCode": "USD",
    "IsClosed": "true",
    "IsWon": "true",
    "LastModifiedDate": None,  # now, so the event is inside the accepted window
    "Name": "Acme - Platform rollout",
    "Owner_Email__c": "ana.silva@example.com",
    "StageName": "Closed Won",
}

_counts = defaultdict(lambda: defaultdict(int))
_lock = threading.Lock()


def _raw_json(body):
    return json.dumps(body, allow_nan=False).encode()


def _salesforce_message(generated):
    digest = hashlib.sha256(generated.encode("utf-8", "surrogatepass")).digest()
    if digest[0] % 5 == 0:
        return generated.encode("utf-8", "surrogatepass")
    names = list(SALESFORCE_FIELDS)
    target = names[digest[1] % len(names)]
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    fields = "".join(
        f"<sf:{n}>{escape(generated) if n == target else (v or now)}</sf:{n}>" for n, v in SALESFORCE_FIELDS.items()
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
        '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        f"<OrganizationId>{SALESFORCE_ORG}</OrganizationId><ActionId>04k5e000000CaRkAAK</ActionId>"
        f'<Notification><Id>04l5e00000Gx7QzAAJ</Id><sObject xsi:type="sf:Opportunity" '
        f'xmlns:sf="urn:sobject.enterprise.soap.sforce.com">{fields}</sObject></Notification>'
        "</notifications></soapenv:Body></soapenv:Envelope>"
    ).encode("utf-8", "surrogatepass")


@schemathesis.hook
def before_call(ctx, case, kwargs):
    path = case.operation.path
    if not path.startswith("/webhooks/"):
        # Set here, not with --header: a header given on the command line would replace the
        # Pipedrive webhook's basic auth too.
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {API_TOKEN}"}
        return
    if path == "/webhooks/salesforce":
        if isinstance(case.body, str):
            kwargs["data"] = _salesforce_message(case.body)
        return
    if path not in ("/webhooks/generic", "/webhooks/hubspot", "/webhooks/pipedrive"):
        return
    try:
        raw = b"" if isinstance(case.body, NotSet) else _raw_json(case.body)
    except (TypeError, ValueError):
        return  # not JSON (a negative case): sent as generated, unsigned
    kwargs["data"] = raw
    headers = case.headers if case.headers is not None else {}
    if path == "/webhooks/generic":
        t = str(int(time.time()))
        mac = hmac.new(GENERIC_SECRET, t.encode() + b"." + raw, hashlib.sha256).hexdigest()
        headers["X-Firstcall-Signature"] = f"t={t},v1={mac}"
    elif path == "/webhooks/hubspot":
        ts = str(int(time.time() * 1000))
        message = b"POST" + (PUBLIC_URL + path).encode() + raw + ts.encode()
        headers["X-HubSpot-Signature-v3"] = base64.b64encode(hmac.new(HUBSPOT_SECRET, message, hashlib.sha256).digest()).decode()
        headers["X-HubSpot-Request-Timestamp"] = ts
    else:
        headers["Authorization"] = "Basic " + base64.b64encode(PIPEDRIVE_AUTH.encode()).decode()
    case.headers = headers


@schemathesis.hook
def after_call(ctx, case, response):
    path = case.operation.path
    if path.startswith("/webhooks/"):
        with _lock:
            _counts[path][str(response.status_code)] += 1


@atexit.register
def _write_counts():
    target = os.environ.get("SCHEMATHESIS_COUNTS")
    if target:
        with _lock, open(target, "w") as f:
            json.dump({p: dict(c) for p, c in _counts.items()}, f)
