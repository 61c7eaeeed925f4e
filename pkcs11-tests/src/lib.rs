//! Shared fixtures for the black-box tests in `tests/`.
//!
//! The tests load the *built* `libhsmux.so` through its C ABI, exactly as an application
//! would. PKCS#11 state is per process, so each test binary shares one initialised module
//! ([`shared`]) whose config holds many tokens; every test claims a token of its own and can
//! run in parallel with the others. Tests that need a pristine process (C_Initialize rules,
//! persistence, fork) re-run themselves in a child process ([`process`]).
//!
//! `HSMUX_TESTS_REFERENCE=softhsm` runs the same suite against SoftHSMv2 to check the
//! tests themselves; hsmux-specific tests (config, store layout) then fail by design.

pub mod conformance;
pub mod keys;
pub mod process;
pub mod raw;
pub mod rv;
pub mod verify;

pub use rv::{expect_rv, expect_rv_in, ok, rv_name, IntoRv};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// SO PIN every fixture token is initialised with.
pub const SO_PIN: &str = "so-pin-8642";
/// User PIN every fixture token gets through C_InitPIN.
pub const USER_PIN: &str = "user-pin-1357";
/// Tokens in the shared config of one test process: more than any test file claims.
pub const TOKENS_PER_PROCESS: usize = 64;
/// Cheap PIN hashing so C_Login costs microseconds in tests.
pub const TEST_PIN_KDF_ITERATIONS: u32 = 1000;

/// Where the module under test is: `$HSMUX_MODULE`, else the workspace's release build.
pub fn module_path() -> PathBuf {
    if let Some(path) = std::env::var_os("HSMUX_MODULE") {
        return PathBuf::from(path);
    }
    if reference_softhsm() {
        return PathBuf::from("/usr/lib/softhsm/libsofthsm2.so");
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/libhsmux.so")
}

/// The module path, or a failure that says how to build it: a missing module must never
/// look like a passing (skipped) suite.
#[track_caller]
pub fn require_module() -> PathBuf {
    let path = module_path();
    assert!(
        path.is_file(),
        "PKCS#11 module not found at {}: run `cargo build --release` first \
         (or point HSMUX_MODULE at the module to test)",
        path.display()
    );
    path
}

/// True when the suite runs against SoftHSMv2 to validate the tests themselves.
pub fn reference_softhsm() -> bool {
    std::env::var("HSMUX_TESTS_REFERENCE").as_deref() == Ok("softhsm")
}

/// `AuthPin` from a string.
pub fn pin(value: &str) -> AuthPin {
    AuthPin::from(value.to_string())
}

/// One `[[token]]` of an hsmux config file.
#[derive(Clone, Debug)]
pub struct TokenConfig {
    /// `label` (shown until C_InitToken sets the real one).
    pub label: String,
    /// `path`: the local store directory.
    pub path: PathBuf,
}

fn toml_string(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Writes an hsmux config with one local-backend token per entry, in slot order.
pub fn write_config(path: &Path, tokens: &[TokenConfig]) {
    let mut text = String::new();
    for token in tokens {
        text.push_str(&format!(
            "[[token]]\nlabel = {}\nbackend = \"local\"\npath = {}\npin_kdf_iterations = {}\n\n",
            toml_string(&token.label),
            toml_string(&token.path.to_string_lossy()),
            TEST_PIN_KDF_ITERATIONS
        ));
    }
    std::fs::write(path, text).expect("write hsmux config");
}

/// Loads the module and calls C_Initialize with `CKF_OS_LOCKING_OK`.
#[track_caller]
pub fn load_and_initialize() -> Pkcs11 {
    let path = require_module();
    let pkcs11 = Pkcs11::new(&path)
        .unwrap_or_else(|e| panic!("loading {} through cryptoki: {e}", path.display()));
    ok(
        pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)),
        "C_Initialize(CKF_OS_LOCKING_OK)",
    );
    pkcs11
}

/// A temporary directory with an hsmux config that `HSMUX_CONFIG` points at.
pub struct TempConfig {
    /// The directory (config and stores); removed on drop.
    pub dir: tempfile::TempDir,
    /// The config file.
    pub config: PathBuf,
    /// Its tokens, in slot order.
    pub tokens: Vec<TokenConfig>,
}

/// Writes a config of `count` local tokens into a new temporary directory and sets
/// `HSMUX_CONFIG` to it, so C_Initialize never falls back to the user's own config.
///
/// Call it before any other thread of the process reads the environment.
pub fn temp_config(count: usize) -> TempConfig {
    let dir = tempfile::Builder::new()
        .prefix("hsmux-tests-")
        .tempdir()
        .expect("tempdir");
    let tokens: Vec<TokenConfig> = (0..count)
        .map(|i| TokenConfig {
            label: format!("token{i:02}"),
            path: dir.path().join(format!("token{i:02}")),
        })
        .collect();
    let config = dir.path().join("hsmux.toml");
    write_config(&config, &tokens);
    std::env::set_var("HSMUX_CONFIG", &config);
    if reference_softhsm() {
        setup_softhsm(dir.path());
    }
    TempConfig {
        dir,
        config,
        tokens,
    }
}

/// Every mechanism the local backend must support (and so list in C_GetMechanismList).
pub const SUPPORTED_MECHANISMS: &[cryptoki_sys::CK_MECHANISM_TYPE] = {
    use cryptoki_sys::*;
    &[
        CKM_RSA_PKCS_KEY_PAIR_GEN,
        CKM_EC_KEY_PAIR_GEN,
        CKM_AES_KEY_GEN,
        CKM_GENERIC_SECRET_KEY_GEN,
        CKM_ECDSA,
        CKM_ECDSA_SHA1,
        CKM_ECDSA_SHA224,
        CKM_ECDSA_SHA256,
        CKM_ECDSA_SHA384,
        CKM_ECDSA_SHA512,
        CKM_RSA_PKCS,
        CKM_SHA1_RSA_PKCS,
        CKM_SHA224_RSA_PKCS,
        CKM_SHA256_RSA_PKCS,
        CKM_SHA384_RSA_PKCS,
        CKM_SHA512_RSA_PKCS,
        CKM_RSA_PKCS_PSS,
        CKM_SHA1_RSA_PKCS_PSS,
        CKM_SHA224_RSA_PKCS_PSS,
        CKM_SHA256_RSA_PKCS_PSS,
        CKM_SHA384_RSA_PKCS_PSS,
        CKM_SHA512_RSA_PKCS_PSS,
        CKM_SHA_1_HMAC,
        CKM_SHA224_HMAC,
        CKM_SHA256_HMAC,
        CKM_SHA384_HMAC,
        CKM_SHA512_HMAC,
        CKM_AES_GCM,
        CKM_AES_CBC_PAD,
        CKM_RSA_PKCS_OAEP,
        CKM_SHA_1,
        CKM_SHA224,
        CKM_SHA256,
        CKM_SHA384,
        CKM_SHA512,
    ]
};

/// A loaded, initialised module over a temporary directory of token stores.
pub struct Harness {
    /// The cryptoki client bound to the module.
    pub pkcs11: Pkcs11,
    /// Temporary directory with the config and every token's store.
    pub dir: tempfile::TempDir,
    /// The config file `HSMUX_CONFIG` points at.
    pub config: PathBuf,
    /// Token configs, in slot order.
    pub tokens: Vec<TokenConfig>,
    slots: Vec<Slot>,
    next: AtomicUsize,
    softhsm_lock: Mutex<()>,
}

impl Harness {
    /// Writes a config with `count` tokens, points `HSMUX_CONFIG` at it and initialises.
    ///
    /// Only call this before any other thread of the process reads the environment
    /// (it sets `HSMUX_CONFIG`), i.e. once per process, as [`shared`] does.
    pub fn create(count: usize) -> Harness {
        let TempConfig {
            dir,
            config,
            tokens,
        } = temp_config(count);
        let pkcs11 = load_and_initialize();
        let slots = ok(pkcs11.get_all_slots(), "C_GetSlotList");
        if !reference_softhsm() {
            assert_eq!(
                slots.len(),
                count,
                "C_GetSlotList must return one slot per configured [[token]]"
            );
        }
        Harness {
            pkcs11,
            dir,
            config,
            tokens,
            slots,
            next: AtomicUsize::new(0),
            softhsm_lock: Mutex::new(()),
        }
    }

    /// Every slot, in slot-ID (= config) order.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// Claims a slot no other test uses; its token is not initialised yet.
    pub fn fresh_slot(&self) -> (Slot, PathBuf) {
        if reference_softhsm() {
            // SoftHSM shows one free slot at a time and renumbers it on init: claim it by
            // initialising it under a unique label and finding it again.
            let _guard = self.softhsm_lock.lock().unwrap();
            let n = self.next.fetch_add(1, Ordering::SeqCst);
            let label = format!("claim-{n}");
            let free = ok(self.pkcs11.get_all_slots(), "C_GetSlotList")
                .into_iter()
                .find(|s| !self.pkcs11.get_token_info(*s).unwrap().token_initialized())
                .expect("SoftHSM free slot");
            ok(
                self.pkcs11.init_token(free, &pin(SO_PIN), &label),
                "C_InitToken",
            );
            let slot = find_slot_by_label(&self.pkcs11, &label).expect("claimed slot");
            return (slot, self.dir.path().join("softhsm-tokens"));
        }
        let i = self.next.fetch_add(1, Ordering::SeqCst);
        assert!(
            i < self.slots.len(),
            "more tokens claimed than configured: raise TOKENS_PER_PROCESS"
        );
        (self.slots[i], self.tokens[i].path.clone())
    }

    /// A token initialised with label `name` (truncated to 32 bytes), SO PIN [`SO_PIN`]
    /// and no user PIN yet.
    pub fn token_without_user_pin(&self, name: &str) -> Token {
        let (slot, store) = self.fresh_slot();
        let label: String = name.chars().take(32).collect();
        ok(
            self.pkcs11.init_token(slot, &pin(SO_PIN), &label),
            "C_InitToken",
        );
        Token {
            pkcs11: self.pkcs11.clone(),
            slot,
            label,
            store,
        }
    }

    /// A token initialised with label `name`, SO PIN [`SO_PIN`] and user PIN [`USER_PIN`].
    pub fn token(&self, name: &str) -> Token {
        let token = self.token_without_user_pin(name);
        {
            let session = token.login_so();
            ok(session.init_pin(&pin(USER_PIN)), "C_InitPIN");
            ok(session.logout(), "C_Logout (SO)");
        }
        token
    }

    /// A config file holding just `token`'s store, for another process to open it.
    pub fn single_token_config(&self, token: &Token) -> PathBuf {
        let path = self
            .dir
            .path()
            .join(format!("single-{}.toml", token.slot.id()));
        write_config(
            &path,
            &[TokenConfig {
                label: token.label.clone(),
                path: token.store.clone(),
            }],
        );
        path
    }
}

impl Harness {
    /// Environment for a child process that opens `token` on its own (see [`attach_child`]).
    pub fn child_env(&self, token: &Token) -> Vec<(&'static str, String)> {
        vec![
            (
                "HSMUX_CONFIG",
                self.single_token_config(token).display().to_string(),
            ),
            (CHILD_LABEL_ENV, token.label.clone()),
            (CHILD_STORE_ENV, token.store.display().to_string()),
        ]
    }
}

/// Environment variable with the label of the token a child process attaches to.
pub const CHILD_LABEL_ENV: &str = "HSMUX_TESTS_LABEL";
/// Environment variable with that token's store directory.
pub const CHILD_STORE_ENV: &str = "HSMUX_TESTS_STORE";

/// In a child process started with [`Harness::child_env`]: initialise the module from the
/// inherited config and find the token the parent named.
#[track_caller]
pub fn attach_child() -> Token {
    let label = std::env::var(CHILD_LABEL_ENV).expect("child started without a token label");
    let pkcs11 = load_and_initialize();
    let slot = find_slot_by_label(&pkcs11, &label)
        .unwrap_or_else(|| panic!("child process sees no initialised token labelled {label:?}"));
    Token {
        pkcs11,
        slot,
        label,
        store: std::env::var(CHILD_STORE_ENV)
            .map(PathBuf::from)
            .unwrap_or_default(),
    }
}

/// The process-wide harness: one module initialisation shared by all tests of a binary.
pub fn shared() -> &'static Harness {
    static SHARED: OnceLock<Harness> = OnceLock::new();
    SHARED.get_or_init(|| Harness::create(TOKENS_PER_PROCESS))
}

/// The slot whose initialised token carries `label`.
pub fn find_slot_by_label(pkcs11: &Pkcs11, label: &str) -> Option<Slot> {
    ok(pkcs11.get_all_slots(), "C_GetSlotList")
        .into_iter()
        .find(|slot| {
            pkcs11
                .get_token_info(*slot)
                .map(|info| info.token_initialized() && info.label() == label)
                .unwrap_or(false)
        })
}

/// Initialises a SoftHSMv2 token (in the configuration `SOFTHSM2_CONF` names) with these
/// label and PINs, through `softhsm2-util`.
#[track_caller]
pub fn softhsm_token(label: &str, so_pin: &str, pin: &str) {
    let out = std::process::Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", label])
        .args(["--so-pin", so_pin, "--pin", pin])
        .output()
        .expect("softhsm2-util runs (apt-get install softhsm2)");
    assert!(
        out.status.success(),
        "softhsm2-util --init-token {label}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A SoftHSMv2 configuration with its token directory under `dir`, in `SOFTHSM2_CONF`.
pub fn setup_softhsm(dir: &Path) {
    let tokens = dir.join("softhsm-tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    std::env::set_var("SOFTHSM2_CONF", &conf);
}

/// One token claimed by a test, with its PINs set by the fixture.
#[derive(Clone, Debug)]
pub struct Token {
    /// The module client.
    pub pkcs11: Pkcs11,
    /// This token's slot.
    pub slot: Slot,
    /// The label given to C_InitToken.
    pub label: String,
    /// The token's store directory (from the config).
    pub store: PathBuf,
}

impl Token {
    /// A new R/W session, not logged in.
    pub fn rw_session(&self) -> Session {
        ok(self.pkcs11.open_rw_session(self.slot), "C_OpenSession(R/W)")
    }

    /// A new R/O session, not logged in.
    pub fn ro_session(&self) -> Session {
        ok(self.pkcs11.open_ro_session(self.slot), "C_OpenSession(R/O)")
    }

    /// A new R/W session with the normal user logged in.
    pub fn login_user(&self) -> Session {
        let session = self.rw_session();
        ok(
            session.login(UserType::User, Some(&pin(USER_PIN))),
            "C_Login(CKU_USER)",
        );
        session
    }

    /// A new R/W session with the SO logged in.
    pub fn login_so(&self) -> Session {
        let session = self.rw_session();
        ok(
            session.login(UserType::So, Some(&pin(SO_PIN))),
            "C_Login(CKU_SO)",
        );
        session
    }

    /// The token's current CK_TOKEN_INFO.
    pub fn info(&self) -> cryptoki::slot::TokenInfo {
        ok(self.pkcs11.get_token_info(self.slot), "C_GetTokenInfo")
    }
}
