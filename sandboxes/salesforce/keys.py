"""The dev connected app's JWT signing key, and reading the keys registered clients sign with.

The JWT bearer flow (REST API Developer Guide, "OAuth 2.0 JWT Bearer Flow for Server-to-Server
Integration") checks an RS256 assertion against the certificate or public key uploaded to the connected
app; `dev_jwt_private_key_pem` signs assertions the default settings accept for `DEV_JWT_CONSUMER_KEY`.
"""

from __future__ import annotations

import functools
import random

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = [
    "DEV_JWT_CONSUMER_KEY",
    "dev_jwt_key",
    "dev_jwt_private_key_pem",
    "dev_jwt_public_key_pem",
    "load_public_key",
]

DEV_JWT_CONSUMER_KEY = "stratum-sandbox"


def load_public_key(pem: str) -> rsa.RSAPublicKey:
    """An RSA public key from a PEM public key or X.509 certificate (what a connected app is given)."""
    data = pem.encode()
    key = (
        x509.load_pem_x509_certificate(data).public_key()
        if b"BEGIN CERTIFICATE" in data
        else serialization.load_pem_public_key(data)
    )
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("a JWT bearer client needs an RSA key: Salesforce verifies RS256 signatures")
    return key


def _probable_prime(candidate: int, rng: random.Random, small_primes: tuple[int, ...]) -> bool:
    for prime in small_primes:
        if candidate % prime == 0:
            return candidate == prime
    exponent, rounds = candidate - 1, 0
    while exponent % 2 == 0:
        exponent //= 2
        rounds += 1
    for _ in range(24):  # Miller-Rabin: a composite survives one round with probability <= 1/4
        witness = pow(rng.randrange(2, candidate - 1), exponent, candidate)
        if witness in (1, candidate - 1):
            continue
        for _ in range(rounds - 1):
            witness = pow(witness, 2, candidate)
            if witness == candidate - 1:
                break
        else:
            return False
    return True


@functools.cache
def dev_jwt_key() -> rsa.RSAPrivateKey:
    # Derived from a fixed generator rather than shipped as a PEM blob: the same key on every machine and
    # run, and no private key in the repository for secret scanners to (rightly) flag. It is public by
    # construction: never register it anywhere but a sandbox.
    rng = random.Random("stratum-salesforce-sandbox/dev-jwt-key")  # noqa: S311 - a published dev key
    sieve = bytearray([1]) * 2000
    sieve[0:2] = b"\x00\x00"
    for number in range(2, 45):
        if sieve[number]:
            sieve[number * number :: number] = bytes(len(sieve[number * number :: number]))
    small_primes = tuple(number for number, flag in enumerate(sieve) if flag)
    public_exponent = 65537
    primes: list[int] = []
    while len(primes) < 2:
        candidate = rng.getrandbits(1024) | (3 << 1022) | 1  # top two bits set: the modulus has 2048 bits
        usable = (candidate - 1) % public_exponent != 0 and candidate not in primes
        if usable and _probable_prime(candidate, rng, small_primes):
            primes.append(candidate)
    p, q = primes
    d = pow(public_exponent, -1, (p - 1) * (q - 1))
    numbers = rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=d,
        dmp1=rsa.rsa_crt_dmp1(d, p),
        dmq1=rsa.rsa_crt_dmq1(d, q),
        iqmp=rsa.rsa_crt_iqmp(p, q),
        public_numbers=rsa.RSAPublicNumbers(public_exponent, p * q),
    )
    return numbers.private_key()


def dev_jwt_private_key_pem() -> str:
    """The dev connected app's RSA private key (PKCS#8 PEM), for signing JWT bearer assertions in tests.

    Deterministic (the same on every machine; about half a second to derive the first time) and public:
    it only ever unlocks a sandbox.
    """
    return (
        dev_jwt_key()
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )


def dev_jwt_public_key_pem() -> str:
    """The public half of `dev_jwt_private_key_pem` (SubjectPublicKeyInfo PEM), as a connected app has it."""
    return (
        dev_jwt_key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
