//! `hsmux`: the command for people. It reads the same configuration as `libhsmux.so` and
//! opens the same tokens with the same code, so what it shows is what every PKCS#11
//! client of the module sees.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use cryptoki_sys::*;
use hsmux::config::{self, Source};
use hsmux::module::{Module, Slot};
use hsmux::Attributes;
use serde::Serialize;

const EXIT_CODES: &str = "\
Exit status:
  0  everything asked about is fine
  1  a problem was found: a slot without its token, a configuration problem, a failed check
  2  the command line or the configuration file could not be used at all

Environment:
  HSMUX_CONFIG   the configuration file (else $XDG_CONFIG_HOME/hsmux/hsmux.toml, else
                 /etc/hsmux/hsmux.toml, else one local token in $XDG_DATA_HOME/hsmux)
  HSMUX_LOG      the module's log level on stderr (default here: error)
  NO_COLOR       no colours, even on a terminal";

/// Shows and checks what the hsmux PKCS#11 module serves: its slots and their backends,
/// the keys in them, the configuration, and how each PKCS#11 client is set up to use it.
#[derive(Parser)]
#[command(name = "hsmux", version, after_help = EXIT_CODES)]
struct Cli {
    /// Print JSON instead of text (one document on stdout).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every slot: label, slot id, backend, health (with the last error), latency of a
    /// listing, the keys it shows without login, PIN state.
    Tokens,
    /// The keys of one token (or of every token): label, CKA_ID, type, size, usage, and
    /// where each lives.
    Keys {
        /// The token's `label` (default: every token).
        token: Option<String>,
        /// The user PIN, as a reference: `env:NAME`, `file:PATH` (or a literal). Without
        /// it only public objects are shown.
        #[arg(long, value_name = "REF")]
        pin: Option<String>,
    },
    /// Configuration files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Checks the module file, the configuration, each backend's reachability and
    /// credentials, and the PKCS#11 clients on this machine, and prints how to set each up.
    Doctor {
        /// The module file (default: libhsmux.so next to this program, then the usual
        /// install places).
        #[arg(long, value_name = "PATH")]
        module: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validates a configuration file and prints every problem with its location.
    Check {
        /// The file (default: the one the module would read).
        file: Option<PathBuf>,
    },
}

/// What a command found: printed as text or JSON, and the exit status.
struct Report<T: Serialize> {
    value: T,
    text: String,
    ok: bool,
    /// The input could not be used at all (exit status 2).
    unusable: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The module logs its warnings to stderr; a person reads them in the report instead.
    if std::env::var_os("HSMUX_LOG").is_none() {
        std::env::set_var("HSMUX_LOG", "error");
    }
    let result = match &cli.command {
        Command::Tokens => module().map(|m| emit(cli.json, tokens(&m))),
        Command::Keys { token, pin } => module()
            .and_then(|m| keys(&m, token.as_deref(), pin.as_deref()).map(|r| emit(cli.json, r))),
        Command::Config {
            command: ConfigCommand::Check { file },
        } => Ok(emit(cli.json, config_check(file.as_deref()))),
        Command::Doctor { module: path } => Ok(emit(cli.json, doctor(path.as_deref()))),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hsmux: {e}");
            ExitCode::from(2)
        }
    }
}

fn emit<T: Serialize>(json: bool, r: Report<T>) -> ExitCode {
    if json {
        match serde_json::to_string_pretty(&r.value) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("hsmux: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        print!("{}", r.text);
    }
    match (r.unusable, r.ok) {
        (true, _) => ExitCode::from(2),
        (false, true) => ExitCode::SUCCESS,
        (false, false) => ExitCode::from(1),
    }
}

fn module() -> Result<Module, String> {
    Module::new().map_err(|e| e.msg)
}

/// `word` in green (good) or red, when stdout is a terminal that wants colours.
fn paint(word: &str, good: bool) -> String {
    if std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none() {
        format!("\x1b[{}m{word}\x1b[0m", if good { 32 } else { 31 })
    } else {
        word.to_string()
    }
}

// ---- tokens ---------------------------------------------------------------------------

#[derive(Serialize)]
struct TokenRow {
    slot: CK_SLOT_ID,
    label: String,
    backend: String,
    health: &'static str,
    error: Option<String>,
    latency_ms: Option<f64>,
    keys: Option<usize>,
    pin: Option<String>,
    /// Local tokens: consecutive wrong user PINs, and the number that locks the PIN.
    pin_failures: Option<u32>,
    pin_retries: Option<u32>,
    serial: Option<String>,
}

fn pin_state(flags: CK_FLAGS) -> &'static str {
    if flags & CKF_TOKEN_INITIALIZED == 0 {
        "token not initialised (C_InitToken)"
    } else if flags & CKF_USER_PIN_LOCKED != 0 {
        "user PIN locked (SO C_InitPIN sets a new one)"
    } else if flags & CKF_USER_PIN_INITIALIZED == 0 {
        "no user PIN (SO C_InitPIN)"
    } else if flags & CKF_USER_PIN_FINAL_TRY != 0 {
        "user PIN: one try left"
    } else if flags & CKF_USER_PIN_COUNT_LOW != 0 {
        "user PIN: wrong PINs were given"
    } else {
        "user PIN set"
    }
}

/// Key objects the token shows to a session that is not logged in.
fn visible_keys(slot: &Slot) -> Result<usize, String> {
    let t = slot.token().map_err(|e| e.msg)?;
    let handles = t.find(&Attributes::new()).map_err(|e| e.msg)?;
    Ok(handles
        .iter()
        .filter_map(|h| t.object(*h).ok())
        .filter(|o| matches!(o.class(), CKO_PRIVATE_KEY | CKO_PUBLIC_KEY | CKO_SECRET_KEY))
        .count())
}

fn token_row(slot: &Slot) -> TokenRow {
    let mut row = TokenRow {
        slot: slot.id,
        label: slot.label.clone(),
        backend: slot.backend.clone(),
        health: "down",
        error: slot.problem(),
        latency_ms: None,
        keys: None,
        pin: None,
        pin_failures: None,
        pin_retries: None,
        serial: None,
    };
    let Ok(t) = slot.token() else { return row };
    let start = Instant::now();
    match t.refresh() {
        Ok(()) => {
            row.latency_ms = Some((start.elapsed().as_secs_f64() * 1e4).round() / 10.0);
            row.health = "ok";
        }
        Err(e) => row.error = Some(e.msg),
    }
    if let Ok(st) = t.status() {
        row.pin = Some(pin_state(st.flags).to_string());
        row.pin_failures = st.user_pin_tries.map(|t| t.0);
        row.pin_retries = st.user_pin_tries.map(|t| t.1);
        row.serial = Some(st.serial);
    }
    if row.health == "ok" {
        row.keys = visible_keys(slot).ok();
    }
    row
}

fn tokens(m: &Module) -> Report<Vec<TokenRow>> {
    let rows: Vec<TokenRow> = m.slots.iter().map(token_row).collect();
    let mut text = String::new();
    if rows.is_empty() {
        text.push_str("no slot: the configuration has no [[token]]\n");
    }
    for r in &rows {
        text.push_str(&format!(
            "slot {}  {}  ({})  {}\n",
            r.slot,
            r.label,
            r.backend,
            paint(r.health, r.health == "ok")
        ));
        if let Some(e) = &r.error {
            text.push_str(&format!("    error:   {e}\n"));
        }
        if let Some(l) = r.latency_ms {
            text.push_str(&format!("    listing: {l} ms\n"));
        }
        if let Some(k) = r.keys {
            text.push_str(&format!(
                "    keys:    {k} key objects visible without login\n"
            ));
        }
        if let Some(p) = &r.pin {
            text.push_str(&format!("    PIN:     {p}"));
            if let (Some(f), Some(n)) = (r.pin_failures, r.pin_retries) {
                text.push_str(&format!(" ({f} wrong in a row; {n} lock it)"));
            }
            text.push('\n');
        }
        if let Some(s) = &r.serial {
            text.push_str(&format!("    serial:  {s}\n"));
        }
    }
    let ok = rows.iter().all(|r| r.health == "ok");
    Report {
        value: rows,
        text,
        ok,
        unusable: false,
    }
}

// ---- keys -----------------------------------------------------------------------------

#[derive(Serialize)]
struct KeyRow {
    token: String,
    label: String,
    id: String,
    class: &'static str,
    key_type: String,
    size: Option<usize>,
    usage: Vec<&'static str>,
    location: String,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn key_type_name(t: CK_KEY_TYPE) -> String {
    match t {
        CKK_RSA => "RSA".into(),
        CKK_EC => "EC".into(),
        CKK_EC_EDWARDS => "EdDSA".into(),
        CKK_AES => "AES".into(),
        CKK_DES => "DES".into(),
        CKK_DES2 => "DES2".into(),
        CKK_DES3 => "DES3".into(),
        CKK_GENERIC_SECRET => "generic secret".into(),
        CKK_SHA_1_HMAC => "HMAC-SHA1".into(),
        CKK_SHA224_HMAC => "HMAC-SHA224".into(),
        CKK_SHA256_HMAC => "HMAC-SHA256".into(),
        CKK_SHA384_HMAC => "HMAC-SHA384".into(),
        CKK_SHA512_HMAC => "HMAC-SHA512".into(),
        other => format!("{other:#x}"),
    }
}

fn key_rows(slot: &Slot) -> Result<Vec<KeyRow>, String> {
    let t = slot.token().map_err(|e| e.msg)?;
    let mut rows = Vec::new();
    for h in t.find(&Attributes::new()).map_err(|e| e.msg)? {
        let Ok(o) = t.object(h) else { continue };
        let class = match o.class() {
            CKO_PRIVATE_KEY => "private",
            CKO_PUBLIC_KEY => "public",
            CKO_SECRET_KEY => "secret",
            _ => continue,
        };
        let a = &o.attrs;
        let ulong = |t| a.get_ulong(t).ok().flatten();
        let key_type = ulong(CKA_KEY_TYPE).unwrap_or(CK_UNAVAILABLE_INFORMATION);
        let size = o
            .key()
            .ok()
            .map(|k| k.size())
            .or_else(|| ulong(CKA_VALUE_LEN).map(|n| n as usize * 8));
        let usage = [
            (CKA_SIGN, "sign"),
            (CKA_VERIFY, "verify"),
            (CKA_ENCRYPT, "encrypt"),
            (CKA_DECRYPT, "decrypt"),
            (CKA_WRAP, "wrap"),
            (CKA_UNWRAP, "unwrap"),
            (CKA_DERIVE, "derive"),
        ]
        .into_iter()
        .filter(|(t, _)| o.flag(*t))
        .map(|(_, n)| n)
        .collect();
        let location = match &o.remote {
            Some(r) => format!("{}: {}", slot.backend, r.key_ref),
            None if o.owner.is_some() => "session".into(),
            None => format!("{} store", slot.backend),
        };
        rows.push(KeyRow {
            token: slot.label.clone(),
            label: String::from_utf8_lossy(a.get(CKA_LABEL).unwrap_or_default()).into_owned(),
            id: hex(a.get(CKA_ID).unwrap_or_default()),
            class,
            key_type: key_type_name(key_type),
            size,
            usage,
            location,
        });
    }
    Ok(rows)
}

fn keys(m: &Module, token: Option<&str>, pin: Option<&str>) -> Result<Report<Vec<KeyRow>>, String> {
    let slots: Vec<&Slot> = m
        .slots
        .iter()
        .filter(|s| match token {
            Some(l) => s.label == l,
            None => true,
        })
        .collect();
    if let (Some(l), true) = (token, slots.is_empty()) {
        let known: Vec<&str> = m.slots.iter().map(|s| s.label.as_str()).collect();
        return Err(format!(
            "no token labelled {l:?} (tokens: {})",
            known.join(", ")
        ));
    }
    let pin = match pin {
        Some(r) => Some(hsmux_backends::resolve_secret(r).map_err(|e| format!("--pin: {e}"))?),
        None => None,
    };
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for s in slots {
        let t = match s.token() {
            Ok(t) => t,
            Err(e) => {
                problems.push(e.msg);
                continue;
            }
        };
        if let Some(p) = &pin {
            if let Err(e) = t.login(CKU_USER, p) {
                problems.push(format!("token {:?}: login: {}", s.label, e.msg));
            }
        }
        match key_rows(s) {
            Ok(r) => rows.extend(r),
            Err(e) => problems.push(format!("token {:?}: {e}", s.label)),
        }
    }
    let mut text = String::new();
    for r in &rows {
        text.push_str(&format!(
            "{}  {:<24} id={:<16} {:<7} {} {}  [{}]  {}\n",
            r.token,
            r.label,
            r.id,
            r.class,
            r.key_type,
            r.size.map(|n| format!("{n} bits")).unwrap_or_default(),
            r.usage.join(","),
            r.location
        ));
    }
    if rows.is_empty() {
        text.push_str("no keys visible");
        text.push_str(if pin.is_none() {
            " (without login: --pin shows private keys)\n"
        } else {
            "\n"
        });
    }
    for p in &problems {
        text.push_str(&format!("{}: {p}\n", paint("problem", false)));
    }
    Ok(Report {
        value: rows,
        text,
        ok: problems.is_empty(),
        unusable: false,
    })
}

// ---- config check ---------------------------------------------------------------------

#[derive(Serialize)]
struct ConfigReport {
    file: Option<String>,
    tokens: usize,
    problems: Vec<String>,
}

fn config_check(file: Option<&Path>) -> Report<ConfigReport> {
    let loaded = match file {
        Some(f) => config::parse_file(f).map(|c| (c, Source::File(f.to_path_buf()))),
        None => config::load(),
    };
    let unusable = loaded.is_err();
    let (value, text) = match loaded {
        Err(e) => (
            ConfigReport {
                file: file.map(|f| f.display().to_string()),
                tokens: 0,
                problems: vec![e.msg.clone()],
            },
            format!("{}: {}\n", paint("problem", false), e.msg),
        ),
        Ok((cfg, source)) => {
            let name = match &source {
                Source::File(p) => Some(p.display().to_string()),
                Source::Default => None,
            };
            let problems: Vec<String> = cfg.problems().map(str::to_string).collect();
            let mut text = format!(
                "{}: {} token(s)",
                name.as_deref()
                    .unwrap_or("no file (the embedded default: one local token)"),
                cfg.token.len()
            );
            if cfg.token.is_empty() {
                text.push_str(", no [[token]]: the module would show no slot");
            }
            if problems.is_empty() {
                text.push_str(&format!(", {}\n", paint("no problems", true)));
            } else {
                text.push('\n');
            }
            for p in &problems {
                text.push_str(&format!("{}: {p}\n", paint("problem", false)));
            }
            (
                ConfigReport {
                    file: name,
                    tokens: cfg.token.len(),
                    problems,
                },
                text,
            )
        }
    };
    let ok = value.problems.is_empty() && value.tokens > 0;
    Report {
        value,
        text,
        ok,
        unusable,
    }
}

// ---- doctor ---------------------------------------------------------------------------

#[derive(Serialize)]
struct Check {
    what: String,
    ok: bool,
    detail: String,
}

#[derive(Serialize)]
struct Client {
    name: &'static str,
    found: Option<String>,
    setup: String,
}

#[derive(Serialize)]
struct DoctorReport {
    module: Option<String>,
    checks: Vec<Check>,
    clients: Vec<Client>,
}

/// The module file: the one asked for, else next to this program, else where packages
/// put PKCS#11 modules.
fn find_module(asked: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = asked {
        // Snippets name the file as clients must: by an absolute path.
        return Ok(std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()));
    }
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        candidates.push(dir.join("libhsmux.so"));
    }
    for d in [
        "/usr/lib/x86_64-linux-gnu/pkcs11",
        "/usr/lib/aarch64-linux-gnu/pkcs11",
        "/usr/lib/pkcs11",
        "/usr/local/lib",
    ] {
        candidates.push(Path::new(d).join("libhsmux.so"));
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| {
            format!(
                "libhsmux.so not found (looked in {}); give --module PATH",
                candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

fn module_check(path: &Path) -> Check {
    let what = format!("module {}", path.display());
    let head = std::fs::read(path).map(|b| b.get(..4).map(<[u8]>::to_vec));
    match head {
        Ok(Some(h)) if h == b"\x7fELF" => Check {
            what,
            ok: true,
            detail: "an ELF shared object".into(),
        },
        Ok(_) => Check {
            what,
            ok: false,
            detail: "not an ELF shared object".into(),
        },
        Err(e) => Check {
            what,
            ok: false,
            detail: format!("cannot read: {e}"),
        },
    }
}

fn on_path(program: &str) -> Option<String> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}

fn clients(module: &str) -> Vec<Client> {
    let engine = [
        "/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so",
        "/usr/lib/aarch64-linux-gnu/engines-3/pkcs11.so",
    ]
    .into_iter()
    .find(|p| Path::new(p).is_file());
    vec![
        Client {
            name: "pkcs11-tool (OpenSC)",
            found: on_path("pkcs11-tool"),
            setup: format!("pkcs11-tool --module {module} --list-slots"),
        },
        Client {
            name: "OpenSSL engine (libengine-pkcs11-openssl)",
            found: engine.map(str::to_string),
            setup: format!(
                "openssl_conf = conf\n[conf]\nengines = engines\n[engines]\npkcs11 = pkcs11\n\
                 [pkcs11]\ndynamic_path = {}\nMODULE_PATH = {module}\n# then: -engine pkcs11 \
                 -keyform engine -key 'pkcs11:token=LABEL;object=KEY;type=private'",
                engine.unwrap_or("/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so")
            ),
        },
        Client {
            name: "OpenSSL 3 provider (pkcs11-provider)",
            found: ["/usr/lib/x86_64-linux-gnu/ossl-modules/pkcs11.so"]
                .into_iter()
                .find(|p| Path::new(p).is_file())
                .map(str::to_string),
            setup: format!(
                "openssl_conf = conf\n[conf]\nproviders = providers\n[providers]\n\
                 default = default_sect\npkcs11 = pkcs11_sect\n[default_sect]\nactivate = 1\n\
                 [pkcs11_sect]\nmodule = /usr/lib/x86_64-linux-gnu/ossl-modules/pkcs11.so\n\
                 pkcs11-module-path = {module}\npkcs11-module-token-pin = file:/path/to/pin\n\
                 activate = 1"
            ),
        },
        Client {
            name: "p11-kit",
            found: on_path("p11-kit"),
            setup: format!(
                "# /etc/pkcs11/modules/hsmux.module\nmodule: {module}\ncritical: no"
            ),
        },
        Client {
            name: "Java SunPKCS11",
            found: on_path("keytool"),
            setup: format!(
                "# hsmux.cfg (keys are listed only when a certificate shares the key's CKA_ID)\n\
                 name = hsmux\nlibrary = {module}\nslot = 0\n# then: keytool -list -keystore NONE \
                 -storetype PKCS11 -providerClass sun.security.pkcs11.SunPKCS11 -providerArg hsmux.cfg"
            ),
        },
        Client {
            name: "NSS (modutil)",
            found: on_path("modutil"),
            setup: format!("modutil -dbdir sql:$HOME/.pki/nssdb -add hsmux -libfile {module}"),
        },
        Client {
            name: "OpenSSH",
            found: on_path("ssh-keygen"),
            setup: format!("ssh-keygen -D {module}   # and: ssh -I {module} host"),
        },
        Client {
            name: "GnuTLS (p11tool)",
            found: on_path("p11tool"),
            setup: format!("p11tool --provider {module} --list-tokens"),
        },
    ]
}

fn doctor(asked: Option<&Path>) -> Report<DoctorReport> {
    let mut checks = Vec::new();
    let module = match find_module(asked) {
        Ok(p) => {
            checks.push(module_check(&p));
            Some(p.display().to_string())
        }
        Err(e) => {
            checks.push(Check {
                what: "module".into(),
                ok: false,
                detail: e,
            });
            None
        }
    };
    let cfg = config_check(None);
    checks.push(Check {
        what: format!(
            "configuration {}",
            cfg.value.file.as_deref().unwrap_or("(embedded default)")
        ),
        ok: cfg.ok,
        detail: if cfg.value.problems.is_empty() {
            format!("{} token(s), no problems", cfg.value.tokens)
        } else {
            cfg.value.problems.join("; ")
        },
    });
    if let Ok(m) = Module::new() {
        for s in &m.slots {
            let r = token_row(s);
            checks.push(Check {
                what: format!("slot {} {} ({})", r.slot, r.label, r.backend),
                ok: r.health == "ok",
                detail: match (&r.error, r.latency_ms) {
                    (Some(e), _) => e.clone(),
                    (None, Some(l)) if r.backend == "local" => {
                        format!("store opened; listing {l} ms")
                    }
                    (None, Some(l)) => format!("reachable, credentials accepted; listing {l} ms"),
                    (None, None) => String::new(),
                },
            });
        }
    }
    let shown = module
        .clone()
        .unwrap_or_else(|| "/path/to/libhsmux.so".into());
    let clients = clients(&shown);
    let mut text = String::new();
    for c in &checks {
        text.push_str(&format!(
            "{}  {}: {}\n",
            paint(if c.ok { "ok  " } else { "FAIL" }, c.ok),
            c.what,
            c.detail
        ));
    }
    text.push_str("\nPKCS#11 clients on this machine, and how to point each at hsmux:\n");
    for c in &clients {
        text.push_str(&format!(
            "\n{} — {}\n",
            c.name,
            c.found
                .as_deref()
                .map_or("not found".to_string(), |p| format!("found: {p}"))
        ));
        for line in c.setup.lines() {
            text.push_str(&format!("    {line}\n"));
        }
    }
    let ok = checks.iter().all(|c| c.ok);
    Report {
        value: DoctorReport {
            module,
            checks,
            clients,
        },
        text,
        ok,
        unusable: false,
    }
}
