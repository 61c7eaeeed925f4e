//! The sub-modes the orchestrator runs in child processes, one module per process so the
//! two modules never share a process (they both load libcrypto, and SoftHSM changes
//! process-wide OpenSSL state):
//!
//! - `worker`: prepares the bench token, then answers `measure` requests on stdin/stdout
//!   (one JSON line each) until `quit`;
//!   A worker started with `--existing` uses a token prepared before (by `keygen`, or a
//!   remote service's keys) instead of initialising one;
//! - `keygen`: initialises a token and generates the bench keys in it (the vendor token
//!   the `pkcs11` backend and SoftHSM itself then share);
//! - `populate`: initialises the start-up token and fills it with data objects;
//! - `startup`: times C_Initialize + the first C_FindObjects in a fresh process and reports
//!   its peak RSS.

use crate::ops::{measure, Bench, Op, Prepared};
use crate::p11::{Module, Template};
use crate::stats::RunStats;
use crate::token::{
    create_data_objects, create_find_keys, find_slot, generate_keys, init_token, lookup_keys,
    Context, USER_PIN,
};
use cryptoki_sys::*;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// A request from the orchestrator to a worker.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// Run one timed measurement.
    Measure {
        /// [`Op::id`].
        op: String,
        /// Threads, each with its own session.
        threads: usize,
        /// Timed duration per thread.
        duration_ms: u64,
        /// Untimed warm-up per thread.
        warmup_ms: u64,
    },
    /// Open one session for `op` and make its checked first call (untimed, uncounted).
    Prepare {
        /// [`Op::id`].
        op: String,
    },
    /// Run the prepared operation `calls` times on the calling thread, one at a time.
    Repeat {
        /// How many calls.
        calls: u64,
    },
    /// C_Finalize and exit.
    Quit,
}

/// A worker's answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// Token prepared; ready for requests.
    Ready(SetupInfo),
    /// One measurement.
    Measured(RunStats),
    /// The request failed (the worker keeps serving).
    Failed(String),
    /// Finalized.
    Done,
}

/// How long preparing the bench token took.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SetupInfo {
    /// C_InitToken, C_InitPIN and C_Login, seconds.
    pub token_s: f64,
    /// Generating the EC, RSA and AES keys, seconds.
    pub keygen_s: f64,
    /// Keys created for the find test.
    pub find_keys: usize,
    /// Creating them, seconds.
    pub find_keys_s: f64,
}

/// Result of `populate`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PopulateInfo {
    /// Data objects created.
    pub objects: usize,
    /// Creating them, seconds.
    pub seconds: f64,
}

/// One start-up measurement in a fresh process.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StartupSample {
    /// dlopen + C_GetFunctionList, ms (not part of the compared time).
    pub load_ms: f64,
    /// C_Initialize, ms.
    pub init_ms: f64,
    /// C_GetSlotList/C_GetTokenInfo to find the token, C_OpenSession and the first
    /// C_FindObjectsInit/C_FindObjects/C_FindObjectsFinal by label, ms.
    pub find_ms: f64,
    /// `init_ms + find_ms`.
    pub total_ms: f64,
    /// VmHWM before loading the module, KiB.
    pub base_rss_kib: u64,
    /// VmHWM after the find, KiB: the process's peak resident set.
    pub peak_rss_kib: u64,
}

fn arg<'a>(args: &'a [String], name: &str) -> Result<&'a str, String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
        .ok_or_else(|| format!("missing {name}"))
}

fn print_json<T: Serialize>(value: &T) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value).map_err(|e| e.to_string())?;
    out.write_all(b"\n").map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())
}

fn load(path: &str) -> Result<Module, String> {
    let module = Module::load(Path::new(path))?;
    module.initialize().ctx("C_Initialize")?;
    Ok(module)
}

/// `worker --module PATH --label L --find-keys N [--existing]`.
pub fn worker(args: &[String]) -> Result<(), String> {
    let module = load(arg(args, "--module")?)?;
    let label = arg(args, "--label")?;
    let find_keys: usize = arg(args, "--find-keys")?
        .parse()
        .map_err(|e| format!("--find-keys: {e}"))?;
    let existing = args.iter().any(|a| a == "--existing");

    let start = Instant::now();
    let slot = if existing {
        find_slot(&module, label)?
    } else {
        init_token(&module, label)?
    };
    let login = module.open_session(slot, true).ctx("C_OpenSession")?;
    module
        .login(login, CKU_USER, USER_PIN)
        .ctx("C_Login(CKU_USER)")?;
    let token_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let keys = if existing {
        lookup_keys(&module, login)?
    } else {
        generate_keys(&module, login)?
    };
    let keygen_s = start.elapsed().as_secs_f64();
    let find_keys_s = if existing {
        0.0
    } else {
        create_find_keys(&module, login, find_keys)?
    };
    let bench = Bench {
        module: &module,
        slot,
        keys,
        find_keys,
    };
    print_json(&Reply::Ready(SetupInfo {
        token_s,
        keygen_s,
        find_keys,
        find_keys_s,
    }))?;

    // The login session stays open: PKCS#11 login state is per token, so every session
    // the measuring threads open is a user session.
    let mut prepared: Option<Prepared> = None;
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| e.to_string())?;
        let request: Request =
            serde_json::from_str(&line).map_err(|e| format!("bad request {line:?}: {e}"))?;
        match request {
            Request::Measure {
                op,
                threads,
                duration_ms,
                warmup_ms,
            } => {
                let reply = match Op::from_id(&op) {
                    None => Reply::Failed(format!("unknown operation {op:?}")),
                    Some(op) => match measure(
                        &bench,
                        op,
                        threads,
                        Duration::from_millis(duration_ms),
                        Duration::from_millis(warmup_ms),
                    ) {
                        Ok(stats) => Reply::Measured(stats),
                        Err(e) => Reply::Failed(e),
                    },
                };
                print_json(&reply)?;
            }
            Request::Prepare { op } => {
                prepared = None;
                let reply = match Op::from_id(&op) {
                    None => Reply::Failed(format!("unknown operation {op:?}")),
                    Some(op) => match Prepared::new(&bench, op) {
                        Ok(p) => {
                            prepared = Some(p);
                            Reply::Done
                        }
                        Err(e) => Reply::Failed(format!("{}: {e}", op.id())),
                    },
                };
                print_json(&reply)?;
            }
            Request::Repeat { calls } => {
                let reply = match prepared.as_mut() {
                    None => Reply::Failed("nothing prepared".into()),
                    Some(p) => match p.repeat(calls) {
                        Ok(stats) => Reply::Measured(stats),
                        Err(e) => Reply::Failed(format!("{}: {e}", p.op().id())),
                    },
                };
                print_json(&reply)?;
            }
            Request::Quit => break,
        }
    }
    drop(prepared);
    let _ = module.close_session(login);
    module.finalize().ctx("C_Finalize")?;
    print_json(&Reply::Done)
}

/// `keygen --module PATH --label L`: initialises the token and generates the bench keys
/// (as token objects), then finalizes; prints the seconds it took.
pub fn keygen(args: &[String]) -> Result<(), String> {
    let module = load(arg(args, "--module")?)?;
    let label = arg(args, "--label")?;
    let start = Instant::now();
    let slot = init_token(&module, label)?;
    let session = module.open_session(slot, true).ctx("C_OpenSession")?;
    module
        .login(session, CKU_USER, USER_PIN)
        .ctx("C_Login(CKU_USER)")?;
    generate_keys(&module, session)?;
    module.logout(session).ctx("C_Logout")?;
    module.close_session(session).ctx("C_CloseSession")?;
    module.finalize().ctx("C_Finalize")?;
    print_json(&start.elapsed().as_secs_f64())
}

/// `populate --module PATH --label L --count N`.
pub fn populate(args: &[String]) -> Result<(), String> {
    let module = load(arg(args, "--module")?)?;
    let label = arg(args, "--label")?;
    let count: usize = arg(args, "--count")?
        .parse()
        .map_err(|e| format!("--count: {e}"))?;
    let slot = init_token(&module, label)?;
    let session = module.open_session(slot, true).ctx("C_OpenSession")?;
    module
        .login(session, CKU_USER, USER_PIN)
        .ctx("C_Login(CKU_USER)")?;
    let seconds = create_data_objects(&module, session, count)?;
    module.logout(session).ctx("C_Logout")?;
    module.close_session(session).ctx("C_CloseSession")?;
    module.finalize().ctx("C_Finalize")?;
    print_json(&PopulateInfo {
        objects: count,
        seconds,
    })
}

/// Peak resident set size of this process (VmHWM), KiB.
fn vm_hwm_kib() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmHWM in /proc/self/status".to_string())
}

/// `startup --module PATH --label L --find LABEL`.
pub fn startup(args: &[String]) -> Result<(), String> {
    let path = arg(args, "--module")?;
    let label = arg(args, "--label")?;
    let wanted = arg(args, "--find")?;
    let template = Template::new().bytes(CKA_LABEL, wanted.as_bytes());
    let base_rss_kib = vm_hwm_kib()?;

    let t = Instant::now();
    let module = Module::load(Path::new(path))?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;

    let t = Instant::now();
    module.initialize().ctx("C_Initialize")?;
    let init_ms = t.elapsed().as_secs_f64() * 1e3;

    let t = Instant::now();
    let slot = find_slot(&module, label)?;
    let session = module.open_session(slot, false).ctx("C_OpenSession")?;
    let mut handles = [0; 4];
    let found = module
        .find(session, &template, &mut handles)
        .ctx("C_FindObjects")?;
    let find_ms = t.elapsed().as_secs_f64() * 1e3;
    let peak_rss_kib = vm_hwm_kib()?;

    if found != 1 {
        return Err(format!(
            "found {found} objects labelled {wanted:?}, expected 1"
        ));
    }
    module.close_session(session).ctx("C_CloseSession")?;
    module.finalize().ctx("C_Finalize")?;
    print_json(&StartupSample {
        load_ms,
        init_ms,
        find_ms,
        total_ms: init_ms + find_ms,
        base_rss_kib,
        peak_rss_kib,
    })
}
