"""Drives hsmux through the python-pkcs11 binding, cross-checking results in software.

Usage: python hsmux_python_client.py MODULE TOKEN_LABEL SO_PIN USER_PIN

The token must be initialised, with its user PIN set, and hold no objects. Prints one
"PASS name" / "FAIL name" line per check (a failure is followed by its traceback,
indented), "NOTE ..." lines for what could not be checked and why, and last
"END n checks, f failed". Exits 1 when a check failed, 2 when it could not start.

Signatures and ciphertexts are verified with the `cryptography` package when it is
installed, else with the openssl command.
"""

import ctypes
import hashlib
import os
import subprocess
import sys
import tempfile
import threading
import traceback

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass, TokenFlag
from pkcs11.mechanisms import MGF, GCMParams
from pkcs11.util.ec import encode_ec_public_key, encode_ecdsa_signature, encode_named_curve_parameters

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives import padding as sympadding

    HAVE_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover - depends on the venv
    HAVE_CRYPTOGRAPHY = False

CKR_OK = 0x0
CKR_SESSION_EXISTS = 0xB6

P256_PARAMS = encode_named_curve_parameters("secp256r1")

checks = 0
failures = 0


def check(name, body):
    """Run one check: PASS when body returns, FAIL (with traceback) when it raises."""
    global checks, failures
    checks += 1
    try:
        body()
    except Exception:  # noqa: BLE001 - every failure is a FAIL line, never a crash
        failures += 1
        print(f"FAIL {name}")
        for line in traceback.format_exc().rstrip().splitlines()[-12:]:
            print(f"      {line}")
    else:
        print(f"PASS {name}")
    sys.stdout.flush()


def note(text):
    print(f"NOTE {text}")


def must(condition, what):
    if not condition:
        raise AssertionError(what)


def must_raise(exc_types, fn, what):
    try:
        fn()
    except exc_types:
        return
    raise AssertionError(f"{what}: no {exc_types} raised")


# --- software verification --------------------------------------------------------------


def openssl(*args, data=None):
    return subprocess.run(["openssl", *args], input=data, capture_output=True, timeout=60, check=False)


def der_to_pem_file(der, tmp, name):
    path = os.path.join(tmp, name)
    with open(path + ".der", "wb") as f:
        f.write(der)
    r = openssl("pkey", "-pubin", "-inform", "DER", "-in", path + ".der", "-out", path + ".pem")
    must(r.returncode == 0, f"openssl pkey: {r.stderr.decode()}")
    return path + ".pem"


def soft_verify(spki_der, signature_der, data, pss_salt=None):
    """Verify a SHA-256 signature (DER ECDSA, PKCS#1 v1.5 or PSS) with a SubjectPublicKeyInfo."""
    if HAVE_CRYPTOGRAPHY:
        pub = serialization.load_der_public_key(spki_der)
        try:
            if isinstance(pub, ec.EllipticCurvePublicKey):
                pub.verify(signature_der, data, ec.ECDSA(hashes.SHA256()))
            elif pss_salt is not None:
                pub.verify(signature_der, data, padding.PSS(padding.MGF1(hashes.SHA256()), pss_salt), hashes.SHA256())
            else:
                pub.verify(signature_der, data, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return False
        return True
    with tempfile.TemporaryDirectory() as tmp:
        pem = der_to_pem_file(spki_der, tmp, "pub")
        sig = os.path.join(tmp, "sig")
        msg = os.path.join(tmp, "msg")
        with open(sig, "wb") as f:
            f.write(signature_der)
        with open(msg, "wb") as f:
            f.write(data)
        args = ["dgst", "-sha256", "-verify", pem, "-signature", sig]
        if pss_salt is not None:
            args += ["-sigopt", "rsa_padding_mode:pss", "-sigopt", f"rsa_pss_saltlen:{pss_salt}",
                     "-sigopt", "rsa_mgf1_md:sha256"]
        r = openssl(*args, msg)
        return r.returncode == 0 and b"Verified OK" in r.stdout


def soft_oaep_encrypt(spki_der, plaintext):
    """RSA-OAEP with SHA-256 and MGF1-SHA-256, no label, in software."""
    if HAVE_CRYPTOGRAPHY:
        pub = serialization.load_der_public_key(spki_der)
        return pub.encrypt(plaintext, padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None))
    with tempfile.TemporaryDirectory() as tmp:
        pem = der_to_pem_file(spki_der, tmp, "pub")
        r = openssl("pkeyutl", "-encrypt", "-pubin", "-inkey", pem, "-pkeyopt", "rsa_padding_mode:oaep",
                    "-pkeyopt", "rsa_oaep_md:sha256", "-pkeyopt", "rsa_mgf1_md:sha256", data=plaintext)
        must(r.returncode == 0, f"openssl pkeyutl -encrypt: {r.stderr.decode()}")
        return r.stdout


def rsa_spki(pub):
    """SubjectPublicKeyInfo DER of a token RSA public key, from CKA_MODULUS/CKA_PUBLIC_EXPONENT."""
    n = int.from_bytes(pub[Attribute.MODULUS], "big")
    e = int.from_bytes(pub[Attribute.PUBLIC_EXPONENT], "big")
    if HAVE_CRYPTOGRAPHY:
        return rsa.RSAPublicNumbers(e, n).public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    from asn1crypto.keys import PublicKeyInfo

    return PublicKeyInfo({"algorithm": {"algorithm": "rsa"},
                          "public_key": {"modulus": n, "public_exponent": e}}).dump()


def soft_aes(mode, key_bytes, iv, data):
    """AES-256 encryption in software: "ecb" (no padding) or "cbc-pad" (PKCS#7)."""
    if HAVE_CRYPTOGRAPHY:
        if mode == "ecb":
            enc = Cipher(algorithms.AES(key_bytes), modes.ECB()).encryptor()
            return enc.update(data) + enc.finalize()
        padder = sympadding.PKCS7(128).padder()
        padded = padder.update(data) + padder.finalize()
        enc = Cipher(algorithms.AES(key_bytes), modes.CBC(iv)).encryptor()
        return enc.update(padded) + enc.finalize()
    args = ["enc", "-e", "-K", key_bytes.hex()]
    args += ["-aes-256-ecb", "-nopad"] if mode == "ecb" else ["-aes-256-cbc", "-iv", iv.hex()]
    r = openssl(*args, data=data)
    must(r.returncode == 0, f"openssl enc: {r.stderr.decode()}")
    return r.stdout


# --- raw C_InitToken --------------------------------------------------------------------


def c_init_token(module_path, slot_id, so_pin, label):
    """C_InitToken through ctypes (python-pkcs11 has no binding for it); returns the CK_RV.

    dlopen of the same path returns the library python-pkcs11 already loaded and
    initialised, so this runs in the same module instance.
    """
    so = ctypes.CDLL(module_path)
    fn = so.C_InitToken
    fn.restype = ctypes.c_ulong
    fn.argtypes = [ctypes.c_ulong, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    pin = so_pin.encode()
    padded_label = label.encode().ljust(32, b" ")
    return fn(slot_id, pin, len(pin), padded_label)


def main():
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    module_path, label, so_pin, user_pin = sys.argv[1:]
    try:
        from importlib.metadata import version

        binding = version("python-pkcs11")
    except Exception:  # noqa: BLE001 - the version is only informative
        binding = "?"
    print(f"python-pkcs11 {binding}, cryptography "
          f"{'installed' if HAVE_CRYPTOGRAPHY else 'missing: verifying with openssl'}")

    lib = pkcs11.lib(module_path)
    st = {}

    def lib_info():
        print(f"      library: {lib.library_description!r} by {lib.manufacturer_id!r}, "
              f"cryptoki {lib.cryptoki_version}, version {lib.library_version}")
        must(lib.cryptoki_version >= (2, 40), f"cryptoki version {lib.cryptoki_version}")

    check("pkcs11.lib loads the module (C_GetInfo)", lib_info)

    def find_token():
        st["token"] = lib.get_token(token_label=label)
        t = st["token"]
        must(t.label == label, f"label {t.label!r}")
        for flag in (TokenFlag.TOKEN_INITIALIZED, TokenFlag.USER_PIN_INITIALIZED, TokenFlag.LOGIN_REQUIRED,
                     TokenFlag.RNG):
            must(flag in t.flags, f"token flags {t.flags!r} lack {flag!r}")

    check(f"lib.get_token(token_label={label!r}) finds the initialised token", find_token)
    if "token" not in st:
        print(f"END {checks} checks, {failures} failed")
        sys.exit(1)
    token = st["token"]

    def mechanisms():
        mechs = token.slot.get_mechanisms()
        for m in (Mechanism.EC_KEY_PAIR_GEN, Mechanism.ECDSA, Mechanism.ECDSA_SHA256,
                  Mechanism.RSA_PKCS_KEY_PAIR_GEN, Mechanism.SHA256_RSA_PKCS, Mechanism.SHA256_RSA_PKCS_PSS,
                  Mechanism.RSA_PKCS_OAEP, Mechanism.AES_KEY_GEN, Mechanism.AES_GCM, Mechanism.AES_CBC_PAD,
                  Mechanism.SHA256):
            must(m in mechs, f"{m!r} not in the slot's mechanism list")
        info = token.slot.get_mechanism_info(Mechanism.RSA_PKCS_KEY_PAIR_GEN)
        must(info.min_key_length <= 2048 <= info.max_key_length, f"RSA key sizes {info!r}")

    check("slot.get_mechanisms lists EC, RSA (PSS, OAEP), AES (GCM, CBC-PAD) and SHA-256", mechanisms)

    def open_session():
        st["session"] = token.open(rw=True, user_pin=user_pin)
        must(st["session"].rw, "session is not R/W")

    check("token.open(rw=True, user_pin=...) opens a logged-in R/W session", open_session)
    if "session" not in st:
        print(f"END {checks} checks, {failures} failed")
        sys.exit(1)
    session = st["session"]
    data = os.urandom(1000)
    tampered = bytes([data[0] ^ 1]) + data[1:]

    # --- EC P-256 ---------------------------------------------------------------------
    def ec_generate():
        params = session.create_domain_parameters(KeyType.EC, {Attribute.EC_PARAMS: P256_PARAMS}, local=True)
        st["ec_pub"], st["ec_priv"] = params.generate_keypair(store=True, label="py-ec", id=b"\x01")
        must(st["ec_priv"].key_type == KeyType.EC, f"key type {st['ec_priv'].key_type!r}")

    check("generate an EC P-256 key pair in the token (CKM_EC_KEY_PAIR_GEN)", ec_generate)

    def ec_sign_token_verify():
        sig = st["ec_priv"].sign(data, mechanism=Mechanism.ECDSA_SHA256)
        must(len(sig) == 64, f"signature is {len(sig)} bytes, not r||s of 64")
        st["ec_sig"] = sig
        must(st["ec_pub"].verify(data, sig, mechanism=Mechanism.ECDSA_SHA256), "token says invalid")
        must(not st["ec_pub"].verify(tampered, sig, mechanism=Mechanism.ECDSA_SHA256),
             "token accepts the signature over tampered data")

    check("ECDSA-SHA256 sign; the token verifies it and rejects tampered data", ec_sign_token_verify)

    def ec_soft_verify():
        spki = encode_ec_public_key(st["ec_pub"])
        der = encode_ecdsa_signature(st["ec_sig"])
        must(soft_verify(spki, der, data), "software says the signature is invalid")
        must(not soft_verify(spki, der, tampered), "software accepts the signature over tampered data")

    check("ECDSA-SHA256 signature verifies in software ("
          + ("cryptography" if HAVE_CRYPTOGRAPHY else "openssl") + ") with the token's public key", ec_soft_verify)

    def ec_raw_sign():
        digest = hashlib.sha256(data).digest()
        sig = st["ec_priv"].sign(digest, mechanism=Mechanism.ECDSA)
        must(soft_verify(encode_ec_public_key(st["ec_pub"]), encode_ecdsa_signature(sig), data),
             "software says the raw ECDSA signature over SHA-256(data) is invalid")

    check("raw ECDSA over a SHA-256 digest verifies in software", ec_raw_sign)

    # --- RSA-2048 ---------------------------------------------------------------------
    def rsa_generate():
        st["rsa_pub"], st["rsa_priv"] = session.generate_keypair(KeyType.RSA, 2048, store=True, label="py-rsa",
                                                                 id=b"\x02")
        must(st["rsa_pub"].key_length == 2048, f"key length {st['rsa_pub'].key_length}")

    check("generate an RSA-2048 key pair in the token", rsa_generate)

    def rsa_pkcs1_sign():
        sig = st["rsa_priv"].sign(data, mechanism=Mechanism.SHA256_RSA_PKCS)
        must(len(sig) == 256, f"signature is {len(sig)} bytes")
        spki = rsa_spki(st["rsa_pub"])
        must(soft_verify(spki, sig, data), "software says the signature is invalid")
        must(not soft_verify(spki, sig, tampered), "software accepts the signature over tampered data")
        must(st["rsa_pub"].verify(data, sig, mechanism=Mechanism.SHA256_RSA_PKCS), "token says invalid")

    check("SHA256-RSA-PKCS sign; verified in software and by the token", rsa_pkcs1_sign)

    pss = (Mechanism.SHA256, MGF.SHA256, 32)

    def rsa_pss_sign():
        sig = st["rsa_priv"].sign(data, mechanism=Mechanism.SHA256_RSA_PKCS_PSS, mechanism_param=pss)
        spki = rsa_spki(st["rsa_pub"])
        must(soft_verify(spki, sig, data, pss_salt=32), "software says the PSS signature is invalid")
        must(not soft_verify(spki, sig, tampered, pss_salt=32), "software accepts the PSS signature over tampered data")
        must(st["rsa_pub"].verify(data, sig, mechanism=Mechanism.SHA256_RSA_PKCS_PSS, mechanism_param=pss),
             "token says invalid")

    check("SHA256-RSA-PKCS-PSS (MGF1-SHA256, salt 32) sign; verified in software and by the token", rsa_pss_sign)

    oaep = (Mechanism.SHA256, MGF.SHA256, None)
    secret = os.urandom(64)

    def rsa_oaep_token():
        ct = st["rsa_pub"].encrypt(secret, mechanism=Mechanism.RSA_PKCS_OAEP, mechanism_param=oaep)
        must(len(ct) == 256 and ct != secret, f"ciphertext of {len(ct)} bytes")
        pt = st["rsa_priv"].decrypt(ct, mechanism=Mechanism.RSA_PKCS_OAEP, mechanism_param=oaep)
        must(pt == secret, "decrypted plaintext differs")

    check("RSA-OAEP (SHA-256, MGF1-SHA256) encrypt/decrypt round trip in the token", rsa_oaep_token)

    def rsa_oaep_soft():
        ct = soft_oaep_encrypt(rsa_spki(st["rsa_pub"]), secret)
        pt = st["rsa_priv"].decrypt(ct, mechanism=Mechanism.RSA_PKCS_OAEP, mechanism_param=oaep)
        must(pt == secret, "decrypted plaintext differs")

    check("RSA-OAEP (SHA-256): the token decrypts a software-made ciphertext", rsa_oaep_soft)

    # --- AES-256 ----------------------------------------------------------------------
    def aes_generate():
        st["aes"] = session.generate_key(KeyType.AES, 256, store=True, label="py-aes", id=b"\x03")
        must(st["aes"].key_length == 256, f"key length {st['aes'].key_length}")

    check("generate an AES-256 key in the token", aes_generate)
    message = os.urandom(1000 + 7)
    aad = os.urandom(20)

    def aes_gcm():
        nonce = os.urandom(12)
        ct = st["aes"].encrypt(message, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(nonce, aad))
        must(len(ct) == len(message) + 16, f"ciphertext+tag of {len(ct)} bytes")
        pt = st["aes"].decrypt(ct, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(nonce, aad))
        must(pt == message, "GCM plaintext differs")
        bad = ct[:3] + bytes([ct[3] ^ 1]) + ct[4:]
        must_raise(pkcs11.exceptions.PKCS11Error,
                   lambda: st["aes"].decrypt(bad, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(nonce, aad)),
                   "tampered GCM ciphertext")

    check("AES-GCM (with AAD) round trip; a tampered ciphertext is refused", aes_gcm)

    def aes_cbc_pad():
        iv = os.urandom(16)
        ct = st["aes"].encrypt(message, mechanism=Mechanism.AES_CBC_PAD, mechanism_param=iv)
        must(len(ct) == (len(message) // 16 + 1) * 16, f"ciphertext of {len(ct)} bytes")
        must(st["aes"].decrypt(ct, mechanism=Mechanism.AES_CBC_PAD, mechanism_param=iv) == message,
             "CBC-PAD plaintext differs")
        # Multi-part (C_EncryptUpdate/C_DecryptUpdate) must give the same bytes.
        chunks = [message[i:i + 100] for i in range(0, len(message), 100)]
        ct2 = b"".join(st["aes"].encrypt(iter(chunks), mechanism=Mechanism.AES_CBC_PAD, mechanism_param=iv))
        must(ct2 == ct, "multi-part ciphertext differs from single-part")
        parts = [ct[i:i + 64] for i in range(0, len(ct), 64)]
        pt2 = b"".join(st["aes"].decrypt(iter(parts), mechanism=Mechanism.AES_CBC_PAD, mechanism_param=iv))
        must(pt2 == message, "multi-part decryption differs")

    check("AES-CBC-PAD round trip, single- and multi-part", aes_cbc_pad)

    def aes_known_answer():
        key_bytes = os.urandom(32)
        key = session.create_object({
            Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES, Attribute.TOKEN: False,
            Attribute.VALUE: key_bytes, Attribute.ENCRYPT: True, Attribute.DECRYPT: True,
            Attribute.LABEL: "py-aes-imported",
        })
        try:
            if HAVE_CRYPTOGRAPHY:
                nonce = os.urandom(12)
                token_gcm = key.encrypt(message, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(nonce, aad))
                must(token_gcm == AESGCM(key_bytes).encrypt(nonce, message, aad),
                     "GCM ciphertext differs from software")
            else:
                note("no cryptography package: the GCM known-answer comparison is skipped (openssl enc has no GCM)")
            iv = os.urandom(16)
            must(key.encrypt(message, mechanism=Mechanism.AES_CBC_PAD, mechanism_param=iv)
                 == soft_aes("cbc-pad", key_bytes, iv, message), "CBC-PAD ciphertext differs from software")
        finally:
            key.destroy()

    check("AES-GCM and AES-CBC-PAD with imported key bytes equal software's ("
          + ("cryptography" if HAVE_CRYPTOGRAPHY else "openssl") + ")", aes_known_answer)

    def digest_random():
        must(session.digest(data, mechanism=Mechanism.SHA256) == hashlib.sha256(data).digest(), "SHA-256 differs")
        a, b = session.generate_random(256), session.generate_random(256)
        must(len(a) == 32 and a != b and a != bytes(32), "C_GenerateRandom output looks wrong")

    check("C_Digest SHA-256 equals hashlib; C_GenerateRandom gives fresh bytes", digest_random)

    # --- objects and attributes ---------------------------------------------------------
    def iterate_objects():
        everything = list(session.get_objects())
        labels = sorted((o[Attribute.CLASS], o[Attribute.LABEL]) for o in everything)
        print(f"      objects: {labels}")
        must(len(everything) == 5, f"{len(everything)} objects, expected 5")
        privs = {o.label for o in session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY})}
        must(privs == {"py-ec", "py-rsa"}, f"private keys {privs}")
        pubs = {o.label for o in session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY})}
        must(pubs == {"py-ec", "py-rsa"}, f"public keys {pubs}")
        by_id = list(session.get_objects({Attribute.ID: b"\x02"}))
        must(sorted(o[Attribute.CLASS] for o in by_id) == [ObjectClass.PUBLIC_KEY, ObjectClass.PRIVATE_KEY],
             f"objects with CKA_ID 02: {by_id}")
        ec_keys = list(session.get_objects({Attribute.KEY_TYPE: KeyType.EC, Attribute.TOKEN: True}))
        must(len(ec_keys) == 2, f"{len(ec_keys)} EC token objects")
        none = list(session.get_objects({Attribute.LABEL: "no-such-object"}))
        must(none == [], f"a search for an unknown label found {none}")
        key = session.get_key(object_class=ObjectClass.SECRET_KEY, label="py-aes")
        must(key.key_type == KeyType.AES, "get_key(label='py-aes') is not the AES key")

    check("session.get_objects iterates all objects and filters by class, id, key type, label", iterate_objects)

    def bulk_attributes():
        common = [Attribute.CLASS, Attribute.TOKEN, Attribute.PRIVATE, Attribute.MODIFIABLE, Attribute.LABEL,
                  Attribute.ID, Attribute.KEY_TYPE, Attribute.LOCAL, Attribute.KEY_GEN_MECHANISM]
        for obj in session.get_objects():
            attrs = obj.get_attributes(common)
            must(set(attrs) == set(common), f"{obj}: got {sorted(attrs)}")
            must(attrs[Attribute.TOKEN] is True and attrs[Attribute.LOCAL] is True, f"{obj}: {attrs}")
            must(attrs[Attribute.LABEL] == obj.label and attrs[Attribute.ID] == obj.id, f"{obj}: label/id")
        ec_priv, ec_pub = st["ec_priv"], st["ec_pub"]
        a = ec_priv.get_attributes([Attribute.SENSITIVE, Attribute.EXTRACTABLE, Attribute.ALWAYS_SENSITIVE,
                                    Attribute.NEVER_EXTRACTABLE, Attribute.SIGN, Attribute.EC_PARAMS,
                                    Attribute.PRIVATE])
        must(a[Attribute.SENSITIVE] and not a[Attribute.EXTRACTABLE], f"EC private key: {a}")
        must(a[Attribute.ALWAYS_SENSITIVE] and a[Attribute.NEVER_EXTRACTABLE], f"EC private key: {a}")
        must(a[Attribute.SIGN] and a[Attribute.PRIVATE], f"EC private key: {a}")
        must(a[Attribute.EC_PARAMS] == P256_PARAMS, f"EC_PARAMS {a[Attribute.EC_PARAMS].hex()}")
        point = ec_pub[Attribute.EC_POINT]
        must(len(point) == 67 and point[:3] == b"\x04\x41\x04", f"EC_POINT {point.hex()}")
        must(ec_pub.id == ec_priv.id == b"\x01", "EC pair ids")
        rsa_pub, rsa_priv = st["rsa_pub"], st["rsa_priv"]
        r = rsa_pub.get_attributes([Attribute.MODULUS, Attribute.PUBLIC_EXPONENT, Attribute.MODULUS_BITS,
                                    Attribute.VERIFY, Attribute.ENCRYPT])
        must(len(r[Attribute.MODULUS]) == 256 and r[Attribute.MODULUS_BITS] == 2048, "RSA modulus")
        must(int.from_bytes(r[Attribute.PUBLIC_EXPONENT], "big") == 65537, "RSA public exponent")
        must(rsa_priv[Attribute.MODULUS] == r[Attribute.MODULUS], "private key's CKA_MODULUS differs")
        # python-pkcs11's key_length is CKA_MODULUS_BITS (public) or len(CKA_MODULUS) (private):
        # RSA only.
        must(rsa_pub.key_length == 2048 and rsa_priv.key_length == 2048, "RSA key_length")
        must(rsa_priv.label == "py-rsa" and rsa_priv.id == b"\x02", "RSA private key label/id")
        aes = st["aes"]
        s = aes.get_attributes([Attribute.VALUE_LEN, Attribute.ENCRYPT, Attribute.DECRYPT, Attribute.SENSITIVE])
        must(s[Attribute.VALUE_LEN] == 32 and s[Attribute.SENSITIVE] and s[Attribute.ENCRYPT], f"AES {s}")
        must(aes.key_length == 256 and aes.label == "py-aes", "AES key_length/label")
        for key in (ec_priv, rsa_priv, aes):
            must_raise(pkcs11.exceptions.AttributeSensitive, lambda k=key: k[Attribute.VALUE],
                       f"reading CKA_VALUE of {key}")
        must_raise(pkcs11.exceptions.AttributeSensitive, lambda: rsa_priv[Attribute.PRIVATE_EXPONENT],
                   "reading CKA_PRIVATE_EXPONENT")

    check("attributes read in bulk (get_attributes, key[...], key_length, id, label) have the right values",
          bulk_attributes)

    def check_value():
        # PKCS#11 secret key objects: CKA_CHECK_VALUE is the first three bytes of the ECB
        # encryption of a zero block (for AES). Key ceremonies compare it across systems.
        generated = st["aes"][Attribute.CHECK_VALUE]
        must(len(generated) == 3, f"generated key's CKA_CHECK_VALUE {generated!r}")
        key_bytes = os.urandom(32)
        key = session.create_object({
            Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES, Attribute.TOKEN: False,
            Attribute.VALUE: key_bytes, Attribute.ENCRYPT: True, Attribute.LABEL: "py-aes-kcv",
        })
        try:
            expected = soft_aes("ecb", key_bytes, None, bytes(16))[:3]
            must(key[Attribute.CHECK_VALUE] == expected,
                 f"imported key's CKA_CHECK_VALUE {key[Attribute.CHECK_VALUE].hex()} != {expected.hex()}")
        finally:
            key.destroy()

    check("AES keys carry CKA_CHECK_VALUE (AES-ECB of a zero block, first 3 bytes)", check_value)

    # --- concurrency ------------------------------------------------------------------
    def threads():
        n_threads, n_signs = 4, 25
        barrier = threading.Barrier(n_threads)
        results, errors = [], []
        lock = threading.Lock()

        def worker(i):
            try:
                # Login state is per application: a new session is logged in already.
                with token.open() as s:
                    priv = s.get_key(object_class=ObjectClass.PRIVATE_KEY, label="py-ec")
                    rsa_priv = s.get_key(object_class=ObjectClass.PRIVATE_KEY, label="py-rsa")
                    barrier.wait(timeout=30)
                    mine = []
                    for j in range(n_signs):
                        msg = f"thread {i} message {j}".encode()
                        mine.append(("ec", msg, priv.sign(msg, mechanism=Mechanism.ECDSA_SHA256)))
                        if j % 5 == 0:
                            mine.append(("rsa", msg, rsa_priv.sign(msg, mechanism=Mechanism.SHA256_RSA_PKCS)))
                with lock:
                    results.extend(mine)
            except Exception:  # noqa: BLE001
                with lock:
                    errors.append(f"thread {i}: {traceback.format_exc()}")

        workers = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=120)
        must(not any(w.is_alive() for w in workers), "a thread did not finish within 120 s")
        must(not errors, "\n".join(errors))
        must(len(results) == n_threads * (n_signs + 5), f"{len(results)} signatures")
        ec_spki = encode_ec_public_key(st["ec_pub"])
        rsa_key = rsa_spki(st["rsa_pub"])
        for kind, msg, sig in results:
            if kind == "ec":
                must(soft_verify(ec_spki, encode_ecdsa_signature(sig), msg), f"bad ECDSA signature over {msg!r}")
            else:
                must(soft_verify(rsa_key, sig, msg), f"bad RSA signature over {msg!r}")

    check("4 threads, each with its own session, sign concurrently (ECDSA and RSA); all signatures verify",
          threads)

    # --- re-initialisation ------------------------------------------------------------
    slot_id = token.slot.slot_id

    def init_refused_with_session():
        rv = c_init_token(module_path, slot_id, so_pin, label)
        must(rv == CKR_SESSION_EXISTS, f"C_InitToken with a session open returned 0x{rv:x}, "
                                       f"expected CKR_SESSION_EXISTS (0x{CKR_SESSION_EXISTS:x})")
        must(len(list(session.get_objects({Attribute.LABEL: "py-ec"}))) == 2, "the refused C_InitToken lost keys")

    check("C_InitToken (ctypes) is refused with CKR_SESSION_EXISTS while a session is open",
          init_refused_with_session)

    def reinit():
        session.close()
        rv = c_init_token(module_path, slot_id, so_pin, label)
        must(rv == CKR_OK, f"C_InitToken returned 0x{rv:x}")
        t = lib.get_token(token_label=label)
        must(TokenFlag.TOKEN_INITIALIZED in t.flags, f"flags {t.flags!r}")
        must(TokenFlag.USER_PIN_INITIALIZED not in t.flags, f"user PIN still initialised: {t.flags!r}")
        with t.open(rw=True, so_pin=so_pin) as so:
            so.init_pin(user_pin)
        with t.open(rw=True, user_pin=user_pin) as s:
            left = list(s.get_objects())
            must(left == [], f"objects survived C_InitToken: {left}")
            pub, priv = s.generate_keypair(KeyType.RSA, 2048, store=True, label="after-reinit")
            sig = priv.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS)
            must(soft_verify(rsa_spki(pub), sig, data), "signature after re-initialisation is invalid")

    check("C_InitToken (ctypes) on the used token with no session open: empty, PIN reset, usable again", reinit)

    print(f"END {checks} checks, {failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
