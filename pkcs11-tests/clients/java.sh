#!/usr/bin/env bash
# Drives Java's SunPKCS11 provider (OpenJDK 17) against the module: keytool listing, key
# pair and certificate generation (EC P-256, RSA-2048) in the token, deletion, and a Java
# program (pkcs11-tests/java/HsmuxJavaClient.java) that signs, verifies, decrypts, derives
# (ECDH), encrypts (AES-GCM/CBC/CTR), MACs, digests and draws random numbers through
# SunPKCS11 only, cross-checking the results with the JDK's software providers.
# Usage: pkcs11-tests/clients/java.sh   (MODULE=/path/to/module.so to override)
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_module
cd "$WORK"
JAVA_SRC=$REPO_ROOT/pkcs11-tests/java

java_tools() {
    local tool
    for tool in java javac keytool; do
        command -v "$tool"
    done
    java -version 2>&1
}
check "java, javac and keytool are installed (apt: openjdk-17-jdk-headless)" java_tools
if [[ $CHECK_RC != 0 ]]; then
    finish
    exit 1
fi

# ---------------------------------------------------------------------------------------
log "token set-up (pkcs11-tool) and the SunPKCS11 configuration"
use_token java
check "token 'java' initialised with SO and user PINs" init_token java

# SunPKCS11 wants the decimal slot ID; the token's own configuration holds only this token.
write_java_config() {
    local slot
    slot=$(p11 --list-slots | awk '/^Slot [0-9]+ / { print $2; exit }')
    [[ $slot =~ ^[0-9]+$ ]]
    printf 'name = hsmux\nlibrary = %s\nslot = %s\n' "$MODULE" "$slot" >"$WORK/sunpkcs11.cfg"
    cat "$WORK/sunpkcs11.cfg"
}
check "SunPKCS11 configuration names the token's slot" write_java_config

# kt COMMAND ARGS...: keytool on the token's PKCS#11 keystore with the user PIN.
kt() {
    local cmd=$1
    shift
    t keytool "$cmd" -keystore NONE -storetype PKCS11 \
        -providerClass sun.security.pkcs11.SunPKCS11 -providerArg "$WORK/sunpkcs11.cfg" \
        -storepass "$USER_PIN" "$@"
}

log "keytool"
check_output "keytool -list on the empty token" "Your keystore contains 0 entries" kt -list
wrong_pin_list() {
    t keytool -list -v -keystore NONE -storetype PKCS11 \
        -providerClass sun.security.pkcs11.SunPKCS11 -providerArg "$WORK/sunpkcs11.cfg" \
        -storepass 999999
}
check_fails "keytool -list with a wrong PIN is refused (CKR_PIN_INCORRECT)" "CKR_PIN_INCORRECT" \
    wrong_pin_list

check_output "keytool -genkeypair EC secp256r1 (key pair and certificate in the token)" \
    "Generating 256 bit EC key pair" \
    kt -genkeypair -alias ecjava -keyalg EC -groupname secp256r1 -sigalg SHA256withECDSA \
    -dname CN=ecjava -validity 30
check_output "keytool -genkeypair RSA 2048 (key pair and certificate in the token)" \
    "Generating 2,?048 bit RSA key pair" \
    kt -genkeypair -alias rsajava -keyalg RSA -keysize 2048 -sigalg SHA256withRSA \
    -dname CN=rsajava -validity 30
check_output "keytool -genkeypair EC secp256r1 (a third key, to be deleted)" \
    "Generating 256 bit EC key pair" \
    kt -genkeypair -alias doomed -keyalg EC -groupname secp256r1 -dname CN=doomed -validity 30

list_has_all() {
    kt -list >list1.txt 2>&1
    cat list1.txt
    must_match list1.txt "Your keystore contains 3 entries"
    must_match list1.txt "^ecjava, PrivateKeyEntry"
    must_match list1.txt "^rsajava, PrivateKeyEntry"
    must_match list1.txt "^doomed, PrivateKeyEntry"
}
check "keytool -list shows the three keys as PrivateKeyEntry" list_has_all
cert_is_ec() {
    kt -list -v -alias ecjava >ec-entry.txt 2>&1
    cat ec-entry.txt
    must_match ec-entry.txt "^Owner: CN=ecjava$"
    must_match ec-entry.txt "Signature algorithm name: SHA256withECDSA"
    must_match ec-entry.txt "Subject Public Key Algorithm: 256-bit EC"
}
check "keytool -list -v shows ecjava's certificate (P-256 key, SHA256withECDSA)" cert_is_ec
cert_export() {
    kt -exportcert -rfc -alias rsajava -file rsajava.pem
    openssl x509 -in rsajava.pem -noout -subject -text >rsajava.txt
    cat rsajava.txt
    must_match rsajava.txt "subject=CN ?= ?rsajava"
    must_match rsajava.txt "Public-Key: \(2048 bit\)"
    # Self-signed by the token's key: OpenSSL checks the signature with the certificate's key.
    openssl verify -check_ss_sig -CAfile rsajava.pem rsajava.pem
}
check "keytool -exportcert gives rsajava's certificate, whose token signature OpenSSL verifies" cert_export

# ---------------------------------------------------------------------------------------
log "Java program through SunPKCS11 (pkcs11-tests/java/HsmuxJavaClient.java)"
compile_java() {
    mkdir -p "$WORK/classes"
    t javac -Xlint:all -d "$WORK/classes" "$JAVA_SRC/HsmuxJavaClient.java"
}
check "javac compiles HsmuxJavaClient.java" compile_java

run_java_client() {
    t java -cp "$WORK/classes" HsmuxJavaClient "$WORK/sunpkcs11.cfg" "$USER_PIN" ecjava rsajava
}
# The program prints "PASS name" or "FAIL name" (then indented details) per check and ends
# with "END n checks, f failed"; each of its checks is counted here as one check.
run_logged run_java_client
JAVA_LOG=$CHECK_LOG
JAVA_RC=$CHECK_RC
sed -n '/^provider:/p; /^      note:/p' "$JAVA_LOG"
detail=$WORK/java-detail.txt
current=""
flush_java_fail() {
    if [[ -n $current ]]; then fail "java: $current" "$detail"; fi
    current=""
}
while IFS= read -r line; do
    case $line in
        "PASS "*)
            flush_java_fail
            pass "java: ${line#PASS }"
            ;;
        "FAIL "*)
            flush_java_fail
            current=${line#FAIL }
            : >"$detail"
            ;;
        "      "*)
            if [[ -n $current ]]; then printf '%s\n' "$line" >>"$detail"; fi
            ;;
        *)
            flush_java_fail
            ;;
    esac
done <"$JAVA_LOG"
flush_java_fail
java_ran_to_end() {
    # Ran to its END line (no crash, no timeout) and its exit status says whether a check
    # failed.
    cat "$JAVA_LOG"
    echo "(exit status $JAVA_RC)"
    must_match "$JAVA_LOG" "^END [0-9]+ checks, [0-9]+ failed$"
    if grep -q "^FAIL " "$JAVA_LOG"; then test "$JAVA_RC" = 1; else test "$JAVA_RC" = 0; fi
}
check "HsmuxJavaClient ran to the end (all its checks reported)" java_ran_to_end

# ---------------------------------------------------------------------------------------
log "keytool -delete"
check "keytool -delete doomed" kt -delete -alias doomed
list_after_delete() {
    kt -list >list2.txt 2>&1
    cat list2.txt
    must_match list2.txt "Your keystore contains 2 entries"
    must_not_match list2.txt "^doomed,"
    must_match list2.txt "^ecjava, PrivateKeyEntry"
    must_match list2.txt "^rsajava, PrivateKeyEntry"
}
check "keytool -list no longer shows doomed, still shows ecjava and rsajava" list_after_delete
no_doomed_objects() {
    p11u --list-objects >objects.txt 2>&1
    cat objects.txt
    # SunPKCS11 labels the certificate with the alias; the private key shares its CKA_ID
    # and goes with it.
    must_not_match objects.txt "label: +doomed$"
    must_match objects.txt "label: +ecjava$"
    test "$(grep -c "^Private Key Object" objects.txt)" = 2
}
check "pkcs11-tool finds no doomed certificate and two private keys after the delete" no_doomed_objects

finish
