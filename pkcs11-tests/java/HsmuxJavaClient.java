import java.security.GeneralSecurityException;
import java.security.Key;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.KeyStore;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.security.PrivateKey;
import java.security.Provider;
import java.security.PublicKey;
import java.security.SecureRandom;
import java.security.Security;
import java.security.Signature;
import java.security.cert.X509Certificate;
import java.security.interfaces.RSAPublicKey;
import java.security.spec.AlgorithmParameterSpec;
import java.security.spec.ECGenParameterSpec;
import java.security.spec.MGF1ParameterSpec;
import java.security.spec.PSSParameterSpec;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HexFormat;
import java.util.List;
import javax.crypto.AEADBadTagException;
import javax.crypto.Cipher;
import javax.crypto.KeyAgreement;
import javax.crypto.KeyGenerator;
import javax.crypto.Mac;
import javax.crypto.NoSuchPaddingException;
import javax.crypto.SecretKey;
import javax.crypto.spec.GCMParameterSpec;
import javax.crypto.spec.IvParameterSpec;
import javax.crypto.spec.OAEPParameterSpec;
import javax.crypto.spec.PSource;
import javax.crypto.spec.SecretKeySpec;

/**
 * Drives hsmux through Java's SunPKCS11 provider only, with keys that keytool made in the
 * token, and cross-checks every result that can be checked against the JDK's default
 * (software) providers. One "PASS name" / "FAIL name" line per check, then
 * "END n checks, f failed"; exits 1 when a check failed, 2 when it could not start.
 *
 * <p>Usage: java HsmuxJavaClient SUNPKCS11_CONFIG PIN EC_ALIAS RSA_ALIAS
 */
public final class HsmuxJavaClient {
    /** A check's body: returns normally when the behaviour holds, throws otherwise. */
    interface Body {
        void run() throws Exception;
    }

    private static int checks = 0;
    private static int failures = 0;

    private static Provider p11;
    private static final SecureRandom SOFT_RANDOM = new SecureRandom();

    public static void main(String[] args) throws Exception {
        if (args.length != 4) {
            System.err.println("usage: HsmuxJavaClient SUNPKCS11_CONFIG PIN EC_ALIAS RSA_ALIAS");
            System.exit(2);
        }
        String config = args[0];
        char[] pin = args[1].toCharArray();
        String ecAlias = args[2];
        String rsaAlias = args[3];

        // The provider is configured but NOT installed in the Security list, so every
        // getInstance(..., p11) below goes to the token and every getInstance(...) without
        // a provider goes to the JDK's software providers.
        p11 = Security.getProvider("SunPKCS11").configure(config);
        System.out.println("provider: " + p11.getName() + " " + p11.getVersionStr());

        KeyStore ks = KeyStore.getInstance("PKCS11", p11);
        ks.load(null, pin);

        check("KeyStore lists '" + ecAlias + "' and '" + rsaAlias + "' as key entries with a certificate", () -> {
            List<String> aliases = Collections.list(ks.aliases());
            System.out.println("      aliases: " + aliases);
            must(ks.isKeyEntry(ecAlias), ecAlias + " is not a key entry");
            must(ks.isKeyEntry(rsaAlias), rsaAlias + " is not a key entry");
            must(ks.getCertificate(ecAlias) != null, "no certificate for " + ecAlias);
            must(ks.getCertificate(rsaAlias) != null, "no certificate for " + rsaAlias);
        });

        PrivateKey ecPriv = (PrivateKey) ks.getKey(ecAlias, pin);
        PrivateKey rsaPriv = (PrivateKey) ks.getKey(rsaAlias, pin);
        X509Certificate ecCert = (X509Certificate) ks.getCertificate(ecAlias);
        X509Certificate rsaCert = (X509Certificate) ks.getCertificate(rsaAlias);
        if (ecPriv == null || rsaPriv == null || ecCert == null || rsaCert == null) {
            System.out.println("FAIL keys and certificates can be read from the KeyStore");
            System.out.println("END " + (checks + 1) + " checks, " + (failures + 1) + " failed");
            System.exit(1);
        }
        PublicKey ecPub = ecCert.getPublicKey();
        PublicKey rsaPub = rsaCert.getPublicKey();

        check("private keys from the KeyStore are token keys (EC, RSA-2048)", () -> {
            must(ecPriv.getAlgorithm().equals("EC"), "EC key algorithm " + ecPriv.getAlgorithm());
            must(rsaPriv.getAlgorithm().equals("RSA"), "RSA key algorithm " + rsaPriv.getAlgorithm());
            must(ecPriv.getClass().getName().startsWith("sun.security.pkcs11."),
                    "EC key is a " + ecPriv.getClass().getName());
            must(rsaPriv.getClass().getName().startsWith("sun.security.pkcs11."),
                    "RSA key is a " + rsaPriv.getClass().getName());
            must(ecPriv.getEncoded() == null, "the EC private key's value left the token");
            must(rsaPriv.getEncoded() == null, "the RSA private key's value left the token");
            must(((RSAPublicKey) rsaPub).getModulus().bitLength() == 2048, "RSA modulus is not 2048 bits");
        });
        check("keytool's self-signed certificates (signed by the token) verify in software", () -> {
            ecCert.verify(ecPub);
            rsaCert.verify(rsaPub);
        });

        byte[] data = random(1000);

        // ---- signatures -------------------------------------------------------------
        signatureChecks("SHA256withECDSA", null, ecPriv, ecPub, data);
        signatureChecks("SHA384withECDSA", null, ecPriv, ecPub, data);
        signatureChecks("SHA256withRSA", null, rsaPriv, rsaPub, data);
        PSSParameterSpec pss = new PSSParameterSpec("SHA-256", "MGF1", MGF1ParameterSpec.SHA256, 32, 1);
        // "RSASSA-PSS" hashes in Java and signs with CKM_RSA_PKCS_PSS; "SHA256withRSASSA-PSS"
        // lets the token hash (CKM_SHA256_RSA_PKCS_PSS).
        signatureChecks("RSASSA-PSS", pss, rsaPriv, rsaPub, data);
        signatureChecks("SHA256withRSASSA-PSS", pss, rsaPriv, rsaPub, data);

        // ---- RSA decryption ---------------------------------------------------------
        byte[] secret = random(48);
        check("RSA/ECB/PKCS1Padding: token decrypts what the default provider encrypted", () -> {
            Cipher enc = Cipher.getInstance("RSA/ECB/PKCS1Padding");
            enc.init(Cipher.ENCRYPT_MODE, rsaPub);
            byte[] ct = enc.doFinal(secret);
            Cipher dec = Cipher.getInstance("RSA/ECB/PKCS1Padding", p11);
            dec.init(Cipher.DECRYPT_MODE, rsaPriv);
            mustEqual(secret, dec.doFinal(ct), "decrypted plaintext");
        });
        OAEPParameterSpec oaep = new OAEPParameterSpec("SHA-256", "MGF1", MGF1ParameterSpec.SHA256,
                PSource.PSpecified.DEFAULT);
        Cipher oaepP11 = null;
        try {
            oaepP11 = Cipher.getInstance("RSA/ECB/OAEPWithSHA-256AndMGF1Padding", p11);
        } catch (NoSuchAlgorithmException | NoSuchPaddingException e) {
            System.out.println("      note: this JDK's SunPKCS11 has no OAEP cipher (" + e.getMessage()
                    + "); the OAEP ciphertext is decrypted by the token with RSA/ECB/NoPadding"
                    + " (CKM_RSA_X_509) and OAEP-decoded in Java");
        }
        final Cipher oaepCipher = oaepP11;
        check("RSA/ECB/OAEPWithSHA-256AndMGF1Padding (MGF1-SHA-256): token decrypts what the default provider encrypted", () -> {
            Cipher enc = Cipher.getInstance("RSA/ECB/OAEPWithSHA-256AndMGF1Padding");
            enc.init(Cipher.ENCRYPT_MODE, rsaPub, oaep);
            byte[] ct = enc.doFinal(secret);
            byte[] pt;
            if (oaepCipher != null) {
                oaepCipher.init(Cipher.DECRYPT_MODE, rsaPriv, oaep);
                pt = oaepCipher.doFinal(ct);
            } else {
                Cipher raw = Cipher.getInstance("RSA/ECB/NoPadding", p11);
                raw.init(Cipher.DECRYPT_MODE, rsaPriv);
                byte[] em = raw.doFinal(ct);
                int k = (((RSAPublicKey) rsaPub).getModulus().bitLength() + 7) / 8;
                must(em.length == k, "raw RSA decryption gave " + em.length + " bytes, not " + k);
                pt = oaepDecodeSha256(em);
            }
            mustEqual(secret, pt, "decrypted plaintext");
        });

        // ---- ECDH -------------------------------------------------------------------
        check("KeyAgreement ECDH with the token's P-256 key equals the software side's secret", () -> {
            KeyPairGenerator kpg = KeyPairGenerator.getInstance("EC");
            kpg.initialize(new ECGenParameterSpec("secp256r1"));
            KeyPair peer = kpg.generateKeyPair();
            KeyAgreement token = KeyAgreement.getInstance("ECDH", p11);
            token.init(ecPriv);
            token.doPhase(peer.getPublic(), true);
            byte[] tokenSecret = token.generateSecret();
            KeyAgreement soft = KeyAgreement.getInstance("ECDH");
            soft.init(peer.getPrivate());
            soft.doPhase(ecPub, true);
            byte[] softSecret = soft.generateSecret();
            must(tokenSecret.length == 32, "shared secret is " + tokenSecret.length + " bytes");
            mustEqual(softSecret, tokenSecret, "ECDH shared secret");
        });

        // The same with a session key pair whose template asks for CKA_DERIVE explicitly (a
        // second provider instance on the same library whose config adds that attribute, as
        // the SunPKCS11 guide tells users to do): C_DeriveKey and reading the derived
        // CKA_VALUE, independently of the module's default for CKA_DERIVE.
        check("KeyAgreement ECDH with a session P-256 key generated with CKA_DERIVE=true equals the software side's secret", () -> {
            String text = new String(java.nio.file.Files.readAllBytes(java.nio.file.Paths.get(config)),
                    java.nio.charset.StandardCharsets.UTF_8);
            text = text.replaceFirst("(?m)^\\s*name\\s*=.*$", "name = hsmux-derive")
                    + "\nattributes(generate, CKO_PRIVATE_KEY, CKK_EC) = {\n  CKA_DERIVE = true\n}\n";
            Provider derive = Security.getProvider("SunPKCS11").configure("--" + text);
            KeyPairGenerator tokenKpg = KeyPairGenerator.getInstance("EC", derive);
            tokenKpg.initialize(new ECGenParameterSpec("secp256r1"));
            KeyPair mine = tokenKpg.generateKeyPair();
            KeyPairGenerator kpg = KeyPairGenerator.getInstance("EC");
            kpg.initialize(new ECGenParameterSpec("secp256r1"));
            KeyPair peer = kpg.generateKeyPair();
            KeyAgreement token = KeyAgreement.getInstance("ECDH", derive);
            token.init(mine.getPrivate());
            token.doPhase(peer.getPublic(), true);
            byte[] tokenSecret = token.generateSecret();
            KeyAgreement soft = KeyAgreement.getInstance("ECDH");
            soft.init(peer.getPrivate());
            soft.doPhase(mine.getPublic(), true);
            mustEqual(soft.generateSecret(), tokenSecret, "ECDH shared secret");
        });

        // ---- AES with session keys --------------------------------------------------
        SecretKey[] aes = new SecretKey[1];
        check("KeyGenerator AES-256 makes a session key in the token", () -> {
            KeyGenerator kg = KeyGenerator.getInstance("AES", p11);
            kg.init(256);
            aes[0] = kg.generateKey();
            must(aes[0].getClass().getName().startsWith("sun.security.pkcs11."),
                    "key is a " + aes[0].getClass().getName());
            must(aes[0].getAlgorithm().equals("AES"), "algorithm " + aes[0].getAlgorithm());
        });
        SecretKey aesKey = aes[0];
        byte[] message = random(1000 + 7);
        byte[] aad = random(20);
        check("AES/GCM/NoPadding round trip (session key, with AAD)", () -> {
            byte[] iv = random(12);
            byte[] ct = crypt("AES/GCM/NoPadding", p11, Cipher.ENCRYPT_MODE, aesKey,
                    new GCMParameterSpec(128, iv), aad, message);
            must(ct.length == message.length + 16, "ciphertext+tag is " + ct.length + " bytes");
            byte[] pt = crypt("AES/GCM/NoPadding", p11, Cipher.DECRYPT_MODE, aesKey,
                    new GCMParameterSpec(128, iv), aad, ct);
            mustEqual(message, pt, "GCM plaintext");
        });
        check("AES/GCM/NoPadding rejects a tampered ciphertext (AEADBadTagException)", () -> {
            byte[] iv = random(12);
            byte[] ct = crypt("AES/GCM/NoPadding", p11, Cipher.ENCRYPT_MODE, aesKey,
                    new GCMParameterSpec(128, iv), aad, message);
            ct[5] ^= 1;
            try {
                crypt("AES/GCM/NoPadding", p11, Cipher.DECRYPT_MODE, aesKey, new GCMParameterSpec(128, iv), aad, ct);
            } catch (AEADBadTagException expected) {
                return;
            }
            throw new AssertionError("tampered GCM ciphertext was accepted");
        });
        check("AES/CBC/PKCS5Padding round trip, multi-part (session key)", () -> {
            IvParameterSpec iv = new IvParameterSpec(random(16));
            byte[] ct = crypt("AES/CBC/PKCS5Padding", p11, Cipher.ENCRYPT_MODE, aesKey, iv, null, message);
            must(ct.length == (message.length / 16 + 1) * 16, "padded ciphertext is " + ct.length + " bytes");
            mustEqual(message, crypt("AES/CBC/PKCS5Padding", p11, Cipher.DECRYPT_MODE, aesKey, iv, null, ct),
                    "CBC plaintext");
        });
        check("AES/CBC/NoPadding round trip (session key)", () -> {
            IvParameterSpec iv = new IvParameterSpec(random(16));
            byte[] block = random(64);
            byte[] ct = crypt("AES/CBC/NoPadding", p11, Cipher.ENCRYPT_MODE, aesKey, iv, null, block);
            must(!Arrays.equals(block, ct), "ciphertext equals plaintext");
            mustEqual(block, crypt("AES/CBC/NoPadding", p11, Cipher.DECRYPT_MODE, aesKey, iv, null, ct),
                    "CBC plaintext");
        });
        check("AES/CTR/NoPadding round trip, odd length, multi-part (session key)", () -> {
            IvParameterSpec iv = new IvParameterSpec(random(16));
            byte[] ct = crypt("AES/CTR/NoPadding", p11, Cipher.ENCRYPT_MODE, aesKey, iv, null, message);
            must(ct.length == message.length, "CTR ciphertext is " + ct.length + " bytes");
            must(!Arrays.equals(message, ct), "ciphertext equals plaintext");
            mustEqual(message, crypt("AES/CTR/NoPadding", p11, Cipher.DECRYPT_MODE, aesKey, iv, null, ct),
                    "CTR plaintext");
        });

        // Known key bytes imported into the token (SunPKCS11 turns a SecretKeySpec into a
        // session key object): the token's ciphertext must equal the JDK's.
        byte[] aesBytes = random(32);
        SecretKeySpec aesSpec = new SecretKeySpec(aesBytes, "AES");
        String[][] modes = {
            {"AES/GCM/NoPadding", "12"}, {"AES/CBC/PKCS5Padding", "16"}, {"AES/CTR/NoPadding", "16"},
        };
        for (String[] mode : modes) {
            check(mode[0] + " with imported key bytes: token ciphertext equals the default provider's", () -> {
                byte[] iv = random(Integer.parseInt(mode[1]));
                AlgorithmParameterSpec spec = mode[0].contains("GCM")
                        ? new GCMParameterSpec(128, iv) : new IvParameterSpec(iv);
                byte[] withAad = mode[0].contains("GCM") ? aad : null;
                byte[] tokenCt = crypt(mode[0], p11, Cipher.ENCRYPT_MODE, aesSpec, spec, withAad, message);
                byte[] softCt = crypt(mode[0], null, Cipher.ENCRYPT_MODE, aesSpec, spec, withAad, message);
                mustEqual(softCt, tokenCt, "ciphertext");
                // And the other way round: the token decrypts the software ciphertext. (A GCM
                // decryption with the key and IV just used for encryption is allowed.)
                mustEqual(message, crypt(mode[0], p11, Cipher.DECRYPT_MODE, aesSpec, spec, withAad, softCt),
                        "plaintext");
            });
        }

        // ---- HMAC ---------------------------------------------------------------------
        check("HmacSHA256 with a generated session key: deterministic, 32 bytes, key- and data-dependent", () -> {
            KeyGenerator kg = KeyGenerator.getInstance("HmacSHA256", p11);
            SecretKey k = kg.generateKey();
            must(k.getClass().getName().startsWith("sun.security.pkcs11."), "key is a " + k.getClass().getName());
            byte[] m1 = mac(p11, k, data);
            must(m1.length == 32, "MAC is " + m1.length + " bytes");
            mustEqual(m1, mac(p11, k, data), "second MAC of the same data");
            byte[] other = data.clone();
            other[0] ^= 1;
            must(!Arrays.equals(m1, mac(p11, k, other)), "MAC does not depend on the data");
            must(!Arrays.equals(m1, mac(p11, kg.generateKey(), data)), "MAC does not depend on the key");
        });
        check("HmacSHA256 with imported key bytes equals the default provider's", () -> {
            SecretKeySpec spec = new SecretKeySpec(random(32), "HmacSHA256");
            mustEqual(mac(null, spec, data), mac(p11, spec, data), "HMAC-SHA256");
        });

        // ---- digest and random --------------------------------------------------------
        check("MessageDigest SHA-256 (multi-part) equals the default provider's", () -> {
            MessageDigest md = MessageDigest.getInstance("SHA-256", p11);
            md.update(data, 0, 333);
            md.update(data, 333, data.length - 333);
            mustEqual(MessageDigest.getInstance("SHA-256").digest(data), md.digest(), "SHA-256");
            mustEqual(HexFormat.of().parseHex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
                    MessageDigest.getInstance("SHA-256", p11).digest(), "SHA-256 of the empty string");
        });
        check("SecureRandom PKCS11 returns fresh, non-constant bytes", () -> {
            SecureRandom sr = SecureRandom.getInstance("PKCS11", p11);
            must(sr.getProvider() == p11, "SecureRandom comes from " + sr.getProvider().getName());
            byte[] a = new byte[64];
            byte[] b = new byte[64];
            sr.nextBytes(a);
            sr.nextBytes(b);
            must(!Arrays.equals(a, b), "two draws are equal");
            must(!Arrays.equals(a, new byte[64]), "64 zero bytes");
            int distinct = 0;
            boolean[] seen = new boolean[256];
            for (byte x : a) {
                if (!seen[x & 0xff]) {
                    seen[x & 0xff] = true;
                    distinct++;
                }
            }
            must(distinct > 16, "only " + distinct + " distinct byte values in 64 bytes");
        });

        System.out.println("END " + checks + " checks, " + failures + " failed");
        System.exit(failures == 0 ? 0 : 1);
    }

    /** Sign with the token, verify with the token and with the default provider, reject tampering. */
    private static void signatureChecks(String alg, AlgorithmParameterSpec spec, PrivateKey priv,
            PublicKey pub, byte[] data) {
        byte[][] sig = new byte[1][];
        check(alg + ": the token signs and SunPKCS11 verifies", () -> {
            Signature s = Signature.getInstance(alg, p11);
            if (spec != null) {
                s.setParameter(spec);
            }
            s.initSign(priv);
            s.update(data, 0, 100);
            s.update(data, 100, data.length - 100);
            sig[0] = s.sign();
            Signature v = Signature.getInstance(alg, p11);
            if (spec != null) {
                v.setParameter(spec);
            }
            v.initVerify(pub);
            v.update(data);
            must(v.verify(sig[0]), "SunPKCS11 says the signature is invalid");
        });
        check(alg + ": the default provider verifies the token's signature with the certificate's key", () -> {
            must(sig[0] != null, "no signature (signing failed)");
            // The JDK's software provider names PSS with the hash in its parameters only.
            Signature v = Signature.getInstance(alg.endsWith("withRSASSA-PSS") ? "RSASSA-PSS" : alg);
            must(!v.getProvider().getName().startsWith("SunPKCS11"), "default provider is SunPKCS11");
            if (spec != null) {
                v.setParameter(spec);
            }
            v.initVerify(pub);
            v.update(data);
            must(v.verify(sig[0]), v.getProvider().getName() + " says the signature is invalid");
            byte[] tampered = data.clone();
            tampered[data.length / 2] ^= 1;
            v.initVerify(pub);
            v.update(tampered);
            must(!v.verify(sig[0]), v.getProvider().getName() + " accepts the signature over other data");
        });
        check(alg + ": SunPKCS11 rejects the signature over tampered data", () -> {
            must(sig[0] != null, "no signature (signing failed)");
            Signature v = Signature.getInstance(alg, p11);
            if (spec != null) {
                v.setParameter(spec);
            }
            v.initVerify(pub);
            byte[] tampered = data.clone();
            tampered[0] ^= 1;
            v.update(tampered);
            boolean ok;
            try {
                ok = v.verify(sig[0]);
            } catch (java.security.SignatureException e) {
                ok = false; // some providers report an invalid signature by exception
            }
            must(!ok, "a signature over other data verified");
        });
    }

    /** One cipher operation; with update() in 100-byte parts so multi-part C_*Update runs. */
    private static byte[] crypt(String transformation, Provider provider, int mode, Key key,
            AlgorithmParameterSpec spec, byte[] aad, byte[] input) throws GeneralSecurityException {
        Cipher c = provider == null ? Cipher.getInstance(transformation) : Cipher.getInstance(transformation, provider);
        c.init(mode, key, spec);
        if (aad != null) {
            c.updateAAD(aad);
        }
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        for (int off = 0; off < input.length; off += 100) {
            byte[] part = c.update(input, off, Math.min(100, input.length - off));
            if (part != null) {
                out.writeBytes(part);
            }
        }
        out.writeBytes(c.doFinal());
        return out.toByteArray();
    }

    private static byte[] mac(Provider provider, Key key, byte[] data) throws GeneralSecurityException {
        Mac m = provider == null ? Mac.getInstance("HmacSHA256") : Mac.getInstance("HmacSHA256", provider);
        m.init(key);
        m.update(data, 0, 10);
        m.update(data, 10, data.length - 10);
        return m.doFinal();
    }

    /** EME-OAEP decoding (RFC 8017, 7.1.2) with SHA-256, MGF1-SHA-256 and an empty label. */
    private static byte[] oaepDecodeSha256(byte[] em) throws GeneralSecurityException {
        int hLen = 32;
        if (em.length < 2 * hLen + 2 || em[0] != 0) {
            throw new AssertionError("not an OAEP encoding (first byte " + (em.length > 0 ? em[0] : -1) + ")");
        }
        byte[] maskedSeed = Arrays.copyOfRange(em, 1, 1 + hLen);
        byte[] maskedDb = Arrays.copyOfRange(em, 1 + hLen, em.length);
        byte[] seed = xor(maskedSeed, mgf1(maskedDb, hLen));
        byte[] db = xor(maskedDb, mgf1(seed, maskedDb.length));
        byte[] lHash = MessageDigest.getInstance("SHA-256").digest(new byte[0]);
        if (!MessageDigest.isEqual(lHash, Arrays.copyOf(db, hLen))) {
            throw new AssertionError("OAEP label hash mismatch");
        }
        int i = hLen;
        while (i < db.length && db[i] == 0) {
            i++;
        }
        if (i == db.length || db[i] != 1) {
            throw new AssertionError("OAEP separator byte missing");
        }
        return Arrays.copyOfRange(db, i + 1, db.length);
    }

    private static byte[] mgf1(byte[] seed, int len) throws GeneralSecurityException {
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        byte[] out = new byte[len];
        int done = 0;
        for (int counter = 0; done < len; counter++) {
            md.update(seed);
            md.update(new byte[] {(byte) (counter >>> 24), (byte) (counter >>> 16), (byte) (counter >>> 8), (byte) counter});
            byte[] h = md.digest();
            int n = Math.min(h.length, len - done);
            System.arraycopy(h, 0, out, done, n);
            done += n;
        }
        return out;
    }

    private static byte[] xor(byte[] a, byte[] b) {
        byte[] out = new byte[a.length];
        for (int i = 0; i < a.length; i++) {
            out[i] = (byte) (a[i] ^ b[i]);
        }
        return out;
    }

    private static byte[] random(int n) {
        byte[] b = new byte[n];
        SOFT_RANDOM.nextBytes(b);
        return b;
    }

    private static void must(boolean condition, String what) {
        if (!condition) {
            throw new AssertionError(what);
        }
    }

    private static void mustEqual(byte[] expected, byte[] actual, String what) {
        if (!Arrays.equals(expected, actual)) {
            throw new AssertionError(what + " differs: expected "
                    + (expected == null ? "null" : HexFormat.of().formatHex(expected, 0, Math.min(32, expected.length)))
                    + "..., got "
                    + (actual == null ? "null" : HexFormat.of().formatHex(actual, 0, Math.min(32, actual.length)))
                    + "...");
        }
    }

    /** Run one check; a FAIL line is followed by the exception and its causes, indented. */
    private static void check(String name, Body body) {
        checks++;
        try {
            body.run();
            System.out.println("PASS " + name);
        } catch (Throwable e) {
            failures++;
            System.out.println("FAIL " + name);
            List<String> seen = new ArrayList<>();
            for (Throwable c = e; c != null && seen.size() < 6; c = c.getCause()) {
                seen.add(c.toString());
                System.out.println("      " + (seen.size() == 1 ? "" : "caused by: ") + c);
                StackTraceElement[] st = c.getStackTrace();
                for (int i = 0; i < Math.min(4, st.length); i++) {
                    System.out.println("        at " + st[i]);
                }
            }
        }
    }
}
