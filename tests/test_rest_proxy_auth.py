"""Claim: the REST proxy lets in only whom rest.authentication allows (docs/rest-proxy.md):
with `basic`, users of a file of bcrypt and argon2 hashes; with `bearer`, JWTs signed by the
configured RSA or EC keys (a PEM file, a JWKS file) with the right issuer, audience, expiry and
groups. Everything else gets 401 (40101) with a WWW-Authenticate challenge saying what was wrong,
or 403 (40301) for a valid caller outside the allowed groups; the failures are counted by mode
and reason in /metrics and the request log names the principal. An https:// listener serves
with the configured certificate, and bad authentication or TLS settings stop start-up naming
the setting.

The users, keys, tokens and certificates are made here with bcrypt, argon2-cffi, PyJWT and
cryptography; every request goes through `requests`; records are read back with kcat."""

from __future__ import annotations

import base64
import concurrent.futures
import datetime
import hashlib
import hmac
import ipaddress
import json
import time

import argon2
import bcrypt
import jwt
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from confluent_kafka import Producer

from clients import create_topic
from lantern import free_port, run_broker_expect_exit
from test_rest_proxy import cluster_id, kcat_records

ISSUER = "https://idp.example"
AUDIENCE = "lantern-rest"


def refused(r: requests.Response, status: int, code: int) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["error_code"] == code and set(body) == {"error_code", "message"}, body
    return body["message"]


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def produce_one(base: str, headers: dict, topic: str, value: str) -> dict:
    root = f"{base}/v3/clusters/{cluster_id_with(base, headers)}"
    r = requests.post(f"{root}/topics/{topic}/records", json={"value": {"type": "STRING", "data": value}}, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def cluster_id_with(base: str, headers: dict) -> str:
    r = requests.get(f"{base}/v3/clusters", headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["data"][0]["cluster_id"]


def metric(http_base: str, mode: str, reason: str) -> float:
    text = requests.get(f"{http_base}/metrics", timeout=10).text
    line = f'kafka_rest_restmetrics_authenticationfailures_total{{mode="{mode}",reason="{reason}"}} '
    return next((float(x[len(line):]) for x in text.splitlines() if x.startswith(line)), 0.0)


def request_log(path, want: int) -> list[dict]:
    deadline = time.monotonic() + 10
    rest = []
    while time.monotonic() < deadline:
        lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []
        rest = [x for x in lines if x.get("listener") == "REST"]
        if len(rest) >= want:
            break
        time.sleep(0.2)
    return rest


def test_basic_users_of_bcrypt_and_argon2_hashes(broker_factory, topic_name, tmp_path):
    # alice's hash costs what a deployment would use (2^12 rounds, about 0.2 s a check), so the
    # cache of proven passwords shows in the timing below.
    alice = bcrypt.hashpw(b"wonder land", bcrypt.gensalt(rounds=12)).decode()
    # argon2-cffi's defaults (t=3, m=64 MiB, p=4) differ from the Rust crate's, so the check
    # must take them from the hash.
    bob = argon2.PasswordHasher().hash("b0b:pa55")
    assert alice.startswith("$2b$12$") and bob.startswith("$argon2id$v=19$m=65536,t=3,p=4$"), bob
    users = tmp_path / "users"
    users.write_text(f"# REST proxy users\nalice:{alice}\nbob:{bob}\n")
    log = tmp_path / "requests.log"
    b = broker_factory(props={"rest.authentication": "basic", "rest.authentication.basic.users.file": str(users),
                              "request.log.path": str(log)})
    create_topic(b.bootstrap, topic_name, 1)
    base = b.rest_base

    r = requests.get(f"{base}/v3/clusters", timeout=10)
    assert "Authorization" in refused(r, 401, 40101)
    assert r.headers["WWW-Authenticate"].startswith('Basic realm="'), r.headers
    for headers, why in [(basic("alice", "wonder"), "wrong password"), (basic("carol", "wonder land"), "unknown user"),
                         (basic("bob", "b0b"), "argon2 user, wrong password")]:
        r = requests.get(f"{base}/v3/clusters", headers=headers, timeout=10)
        message = refused(r, 401, 40101)
        assert "wrong password" in message and "wonder" not in message and "b0b" not in message, (why, message)
    for header in ["Basic !!!notbase64", "Basic " + base64.b64encode(b"no-colon").decode(), "Bearer abc", "Basic"]:
        r = requests.get(f"{base}/v3/clusters", headers={"Authorization": header}, timeout=10)
        assert "Malformed" in refused(r, 401, 40101), header
    # The OpenAPI document and unknown paths are behind the same check.
    refused(requests.get(f"{base}/openapi.yaml", timeout=10), 401, 40101)
    refused(requests.get(f"{base}/no/such/path", timeout=10), 401, 40101)

    report = produce_one(base, basic("alice", "wonder land"), topic_name, "from alice")
    produce_one(base, basic("bob", "b0b:pa55"), topic_name, "from bob")
    stored = kcat_records(b.bootstrap, topic_name)
    assert stored[(report["partition_id"], report["offset"])] == (None, b"from alice")
    assert sorted(v for _, v in stored.values()) == [b"from alice", b"from bob"]
    assert requests.get(f"{base}/openapi.yaml", headers=basic("bob", "b0b:pa55"), timeout=10).status_code == 200

    # A proven password is remembered: 20 requests cost far less than 20 bcrypt checks (4 s).
    started = time.monotonic()
    for _ in range(20):
        assert requests.get(f"{base}/v3/clusters", headers=basic("alice", "wonder land"), timeout=10).status_code == 200
    assert time.monotonic() - started < 2.0
    # ... but only that password.
    refused(requests.get(f"{base}/v3/clusters", headers=basic("alice", "wonder land!"), timeout=10), 401, 40101)

    assert metric(b.http_base, "basic", "missing") == 3
    assert metric(b.http_base, "basic", "bad_credentials") == 4
    assert metric(b.http_base, "basic", "malformed") == 4
    rest = request_log(log, 35)
    principals = {(x["principal"], x["status"]) for x in rest}
    assert {("User:alice", 200), ("User:bob", 200), ("User:ANONYMOUS", 401)} <= principals, principals

    # A storm of wrong passwords (each a full bcrypt check, a few at a time on the blocking
    # pool) holds up neither a user the cache knows nor Kafka traffic.
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        started = time.monotonic()
        storm = [pool.submit(requests.get, f"{base}/v3/clusters", headers=basic("alice", f"guess {i}"), timeout=60) for i in range(8)]
        time.sleep(0.2)
        t0 = time.monotonic()
        assert requests.get(f"{base}/v3/clusters", headers=basic("alice", "wonder land"), timeout=10).status_code == 200
        known = time.monotonic() - t0
        producer = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 0})
        t0 = time.monotonic()
        for i in range(20):
            producer.produce(topic_name, f"during the storm {i}".encode())
            assert producer.flush(5) == 0
        kafka = time.monotonic() - t0
        assert all(f.result().status_code == 401 for f in storm)
        storm_time = time.monotonic() - started
    assert known < 0.5 and kafka < 2.0, (known, kafka, storm_time)


def keys_and_files(tmp_path):
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    pem = tmp_path / "rsa.pub.pem"
    pem.write_bytes(rsa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key()))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "ec-1", "alg": "ES256", "use": "sig"}]}))
    return rsa_key, ec_key, pem, jwks


def test_bearer_tokens_from_pem_and_jwks_keys(broker_factory, topic_name, tmp_path):
    rsa_key, ec_key, pem, jwks = keys_and_files(tmp_path)
    log = tmp_path / "requests.log"
    b = broker_factory(props={
        "rest.authentication": "bearer",
        "rest.authentication.bearer.public.key.file": str(pem),
        "rest.authentication.bearer.jwks.file": str(jwks),
        "rest.authentication.bearer.issuer": ISSUER,
        "rest.authentication.bearer.audience": AUDIENCE,
        "rest.authentication.bearer.allowed.groups": "kafka-writers,kafka-admins",
        "request.log.path": str(log),
    })
    create_topic(b.bootstrap, topic_name, 1)
    base = b.rest_base
    now = int(time.time())

    def claims(**over):
        c = {"iss": ISSUER, "aud": AUDIENCE, "sub": "svc-orders", "iat": now, "exp": now + 300, "groups": ["kafka-writers"]}
        c.update(over)
        return {k: v for k, v in c.items() if v is not None}

    def rs(**over):
        return jwt.encode(claims(**over), rsa_key, algorithm="RS256")

    def es(**over):
        return jwt.encode(claims(**over), ec_key, algorithm="ES256", headers={"kid": "ec-1"})

    def get(headers):
        return requests.get(f"{base}/v3/clusters", headers=headers, timeout=10)

    r = get({})
    assert "Authorization" in refused(r, 401, 40101)
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="lantern-rest-proxy"'
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    b64 = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims())}."
    # HS256 keyed with the RSA public key: the classic algorithm-confusion forgery.
    signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(claims())}"
    mac = hmac.new(pem.read_bytes(), signing_input.encode(), hashlib.sha256).digest()
    confused = signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    cases = [
        ("abc", "malformed", "Malformed"),
        (rs(exp=now - 120), "expired", "expired"),
        (es(exp=now - 120), "expired", "expired"),
        (rs(nbf=now + 600), "not_yet_valid", "not valid yet"),
        (rs(iss="https://evil.example"), "wrong_issuer", "issuer"),
        (es(aud="someone-else"), "wrong_audience", "audience"),
        (rs(sub=None), "missing_claim", "sub"),
        (jwt.encode(claims(), other, algorithm="RS256"), "bad_signature", "signature"),
        (unsigned, "bad_algorithm", "algorithm none"),
        (confused, "bad_algorithm", "algorithm HS256"),
        (jwt.encode(claims(), ec_key, algorithm="ES256", headers={"kid": "unknown"}), "unknown_key", "No configured key"),
    ]
    for token, reason, words in cases:
        r = get(bearer(token))
        message = refused(r, 401, 40101)
        assert words in message and token not in message, (reason, message)
        challenge = r.headers["WWW-Authenticate"]
        assert challenge.startswith('Bearer realm="lantern-rest-proxy", error="invalid_token", error_description="'), challenge
        assert metric(b.http_base, "bearer", reason) >= 1, reason

    # Valid tokens outside the allowed groups are authenticated but not authorised.
    for token in [rs(groups=["readers"]), es(groups=None), rs(groups="readers kafka-writer")]:
        r = get(bearer(token))
        assert "svc-orders" in refused(r, 403, 40301)
        assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
    assert metric(b.http_base, "bearer", "group_not_allowed") == 3

    # RS256 from the PEM key, ES256 from the JWKS, groups as a list or a string.
    report = produce_one(base, bearer(rs()), topic_name, "rs256")
    # Providers put a kid in every token; a PEM key has none and is tried for any.
    with_kid = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "rsa-2026"})
    assert get(bearer(with_kid)).status_code == 200
    produce_one(base, bearer(es(sub="svc-billing", groups="kafka-admins other")), topic_name, "es256")
    stored = kcat_records(b.bootstrap, topic_name)
    assert stored[(report["partition_id"], report["offset"])] == (None, b"rs256")
    assert sorted(v for _, v in stored.values()) == [b"es256", b"rs256"]

    rest = request_log(log, len(cases) + 8)
    principals = {(x["principal"], x["status"]) for x in rest}
    assert {("User:svc-orders", 200), ("User:svc-billing", 200), ("User:svc-orders", 403), ("User:ANONYMOUS", 401)} <= principals, principals


def self_signed(tmp_path):
    """A CA and a server certificate for 127.0.0.1 signed by it, as PEM files."""
    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("lantern test CA")).issuer_name(name("lantern test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name("127.0.0.1")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = {n: tmp_path / f"{n}.pem" for n in ("ca", "cert", "key")}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return paths


def test_https_listener_serves_with_the_configured_certificate(broker_factory, topic_name, tmp_path):
    pem = self_signed(tmp_path)
    b = broker_factory(start=False)
    plain = free_port()
    b.props.update({"rest.listeners": f"https://127.0.0.1:{b.rest_port},http://127.0.0.1:{plain}",
                    "rest.tls.cert": str(pem["cert"]), "rest.tls.key": str(pem["key"])})
    b.start()
    create_topic(b.bootstrap, topic_name, 1)
    base = f"https://127.0.0.1:{b.rest_port}"
    r = requests.get(f"{base}/v3/clusters", verify=str(pem["ca"]), timeout=10)
    assert r.status_code == 200, r.text
    c = r.json()["data"][0]["cluster_id"]
    # Links name the scheme the client used, even when it claims otherwise; beside it, a plain
    # listener links over http unless a TLS-terminating proxy in front says https.
    assert r.json()["data"][0]["metadata"]["self"] == f"{base}/v3/clusters/{c}"
    r = requests.get(f"{base}/v3/clusters", headers={"X-Forwarded-Proto": "http"}, verify=str(pem["ca"]), timeout=10)
    assert r.json()["data"][0]["metadata"]["self"].startswith("https://"), r.text
    r = requests.get(f"http://127.0.0.1:{plain}/v3/clusters", timeout=10)
    assert r.json()["data"][0]["metadata"]["self"] == f"http://127.0.0.1:{plain}/v3/clusters/{c}"
    r = requests.get(f"http://127.0.0.1:{plain}/v3/clusters", headers={"X-Forwarded-Proto": "https"}, timeout=10)
    assert r.json()["data"][0]["metadata"]["self"] == f"https://127.0.0.1:{plain}/v3/clusters/{c}"
    r = requests.post(f"{base}/v3/clusters/{c}/topics/{topic_name}/records", json={"value": {"type": "STRING", "data": "over tls"}},
                      verify=str(pem["ca"]), timeout=30)
    assert r.status_code == 200, r.text
    assert list(kcat_records(b.bootstrap, topic_name).values()) == [(None, b"over tls")]
    # Not trusted without the CA; plain HTTP to the TLS port gets no HTTP answer.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{base}/v3/clusters", timeout=10)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{b.rest_port}/v3/clusters", timeout=10)
    # A client that connects and never handshakes does not stop others.
    import socket
    idle = socket.create_connection(("127.0.0.1", b.rest_port))
    assert requests.get(f"{base}/v3/clusters", verify=str(pem["ca"]), timeout=10).status_code == 200
    idle.close()


def test_bad_authentication_and_tls_settings_stop_start_up(tmp_path):
    pem = self_signed(tmp_path)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    plain_users = tmp_path / "plain-users"
    plain_users.write_text("alice:wonderland\n")
    other_key = tmp_path / "other.key.pem"
    other_key.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    missing = str(tmp_path / "missing")
    bearer_base = {"rest.authentication": "bearer", "rest.authentication.bearer.issuer": ISSUER, "rest.authentication.bearer.audience": AUDIENCE}
    https = {"rest.listeners": "https://127.0.0.1:0"}
    cases = [
        ({"rest.authentication": "kerberos"}, "rest.authentication"),
        ({"rest.authentication": "basic"}, "rest.authentication.basic.users.file"),
        ({"rest.authentication": "basic", "rest.authentication.basic.users.file": missing}, "rest.authentication.basic.users.file"),
        ({"rest.authentication": "basic", "rest.authentication.basic.users.file": str(plain_users)}, "line 1"),
        ({**bearer_base}, "rest.authentication.bearer.jwks.file"),
        ({**bearer_base, "rest.authentication.bearer.public.key.file": str(garbage)}, "rest.authentication.bearer.public.key.file"),
        ({**bearer_base, "rest.authentication.bearer.jwks.file": str(garbage)}, "rest.authentication.bearer.jwks.file"),
        ({**bearer_base, "rest.authentication.bearer.issuer": None, "rest.authentication.bearer.jwks.file": str(garbage)}, "rest.authentication.bearer.issuer"),
        ({**https}, "rest.tls.cert"),
        ({**https, "rest.tls.cert": str(pem["cert"])}, "rest.tls.key"),
        ({**https, "rest.tls.cert": missing, "rest.tls.key": str(pem["key"])}, "rest.tls.cert"),
        ({**https, "rest.tls.cert": str(pem["cert"]), "rest.tls.key": str(pem["cert"])}, "rest.tls.key"),
        ({**https, "rest.tls.cert": str(pem["cert"]), "rest.tls.key": str(other_key)}, "does not go with"),
    ]
    for i, (props, words) in enumerate(cases):
        props = {"rest.listeners": "http://127.0.0.1:0", **props}
        args = [f"--log.dirs={tmp_path / f'd{i}'}", "--listeners=PLAINTEXT://127.0.0.1:0", "--http.listener=127.0.0.1:0"]
        args += [f"--{k}={v}" for k, v in props.items() if v is not None]
        code, err = run_broker_expect_exit(args)
        assert code != 0 and words in err, (props, err[-1500:])
