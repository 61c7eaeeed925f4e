//! The measured operations and the timed loop that runs one of them on N threads, each
//! thread with its own session.

use crate::p11::{Mech, Module, ReadTemplate, Template, P11};
use crate::stats::RunStats;
use crate::token::{find_key_label, Context, Keys, EC_LABEL};
use cryptoki_sys::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// One benchmarked operation: what a client does for one unit of work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// C_SignInit(CKM_ECDSA) + C_Sign of a 32-byte digest, P-256.
    EcdsaP256,
    /// C_SignInit(CKM_ECDSA_SHA256) + C_Sign of 1 KiB, P-256.
    EcdsaSha256,
    /// C_SignInit(CKM_SHA256_RSA_PKCS) + C_Sign of 1 KiB, RSA-2048.
    RsaPkcs,
    /// C_SignInit(CKM_SHA256_RSA_PKCS_PSS, MGF1-SHA256, 32-byte salt) + C_Sign of 1 KiB.
    RsaPss,
    /// C_EncryptInit(CKM_AES_GCM, 12-byte IV, 128-bit tag) + C_Encrypt of 1 KiB.
    AesGcm1k,
    /// The same with 64 KiB.
    AesGcm64k,
    /// C_DigestInit(CKM_SHA256) + C_Digest of 1 KiB.
    Sha256,
    /// C_FindObjectsInit(CKA_LABEL) + C_FindObjects + C_FindObjectsFinal among the keys.
    FindByLabel,
    /// C_GetAttributeValue(CKA_LABEL, CKA_ID) of the EC private key.
    GetAttributes,
    /// C_GenerateRandom of 32 bytes.
    Random,
    /// C_OpenSession + C_CloseSession.
    OpenClose,
}

impl Op {
    /// Every operation, in report order.
    pub const ALL: [Op; 11] = [
        Op::EcdsaP256,
        Op::EcdsaSha256,
        Op::RsaPkcs,
        Op::RsaPss,
        Op::AesGcm1k,
        Op::AesGcm64k,
        Op::Sha256,
        Op::FindByLabel,
        Op::GetAttributes,
        Op::Random,
        Op::OpenClose,
    ];

    /// Stable identifier (command line, JSON).
    pub fn id(self) -> &'static str {
        match self {
            Op::EcdsaP256 => "ecdsa_p256_sign",
            Op::EcdsaSha256 => "ecdsa_sha256_1k",
            Op::RsaPkcs => "rsa2048_sha256_pkcs",
            Op::RsaPss => "rsa2048_sha256_pss",
            Op::AesGcm1k => "aes256_gcm_1k",
            Op::AesGcm64k => "aes256_gcm_64k",
            Op::Sha256 => "sha256_1k",
            Op::FindByLabel => "find_by_label",
            Op::GetAttributes => "get_attribute_value",
            Op::Random => "generate_random_32",
            Op::OpenClose => "open_close_session",
        }
    }

    /// Human-readable name for the table.
    pub fn title(self) -> &'static str {
        match self {
            Op::EcdsaP256 => "ECDSA P-256 sign (CKM_ECDSA, 32 B)",
            Op::EcdsaSha256 => "CKM_ECDSA_SHA256 P-256, 1 KiB",
            Op::RsaPkcs => "RSA-2048 CKM_SHA256_RSA_PKCS",
            Op::RsaPss => "RSA-2048 CKM_SHA256_RSA_PKCS_PSS",
            Op::AesGcm1k => "AES-256-GCM encrypt 1 KiB",
            Op::AesGcm64k => "AES-256-GCM encrypt 64 KiB",
            Op::Sha256 => "SHA-256 digest 1 KiB",
            Op::FindByLabel => "C_FindObjects by label",
            Op::GetAttributes => "C_GetAttributeValue LABEL+ID",
            Op::Random => "C_GenerateRandom 32 B",
            Op::OpenClose => "C_OpenSession+C_CloseSession",
        }
    }

    /// The operation with identifier `id`.
    pub fn from_id(id: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.id() == id)
    }

    /// True for the signature operations (the 2-threads-vs-1 scaling target).
    pub fn is_sign(self) -> bool {
        matches!(
            self,
            Op::EcdsaP256 | Op::EcdsaSha256 | Op::RsaPkcs | Op::RsaPss
        )
    }
}

/// What every thread needs: the module, the prepared token and its keys.
pub struct Bench<'a> {
    /// The loaded, initialised module.
    pub module: &'a Module,
    /// The bench token's slot (the user is logged in by a session the worker keeps open).
    pub slot: CK_SLOT_ID,
    /// The signing / encryption keys.
    pub keys: Keys,
    /// How many `find-NNNNN` keys the token holds.
    pub find_keys: usize,
}

/// One thread's session and buffers for one operation.
struct ThreadState<'a> {
    bench: &'a Bench<'a>,
    op: Op,
    session: CK_SESSION_HANDLE,
    thread: usize,
    n: u64,
    input: Vec<u8>,
    out: Vec<u8>,
    find: Vec<Template>,
    handles: [CK_OBJECT_HANDLE; 8],
    read: ReadTemplate,
}

impl<'a> ThreadState<'a> {
    fn new(bench: &'a Bench<'a>, op: Op, thread: usize) -> Result<Self, String> {
        let session = bench
            .module
            .open_session(bench.slot, false)
            .ctx("C_OpenSession")?;
        let input_len = match op {
            Op::EcdsaP256 => 32,
            Op::AesGcm64k => 64 * 1024,
            _ => 1024,
        };
        let find = if op == Op::FindByLabel && bench.find_keys == 0 {
            // A token without find keys (a remote one): the EC private key by label.
            vec![Template::new()
                .ulong(CKA_CLASS, CKO_PRIVATE_KEY)
                .bytes(CKA_LABEL, EC_LABEL.as_bytes())]
        } else if op == Op::FindByLabel {
            (0..bench.find_keys)
                .map(|i| Template::new().bytes(CKA_LABEL, find_key_label(i).as_bytes()))
                .collect()
        } else {
            Vec::new()
        };
        Ok(ThreadState {
            bench,
            op,
            session,
            thread,
            n: 0,
            input: (0..input_len).map(|i| (i * 31 + 7) as u8).collect(),
            out: vec![0; input_len + 1024],
            find,
            handles: [0; 8],
            read: ReadTemplate::new(&[CKA_LABEL, CKA_ID], 64),
        })
    }

    /// One unit of work; returns the length of its output (bytes or handles found) so the
    /// first call can be checked.
    fn run_once(&mut self) -> P11<usize> {
        let m = self.bench.module;
        let keys = self.bench.keys;
        let s = self.session;
        self.n += 1;
        match self.op {
            Op::EcdsaP256 => m.sign(
                s,
                &Mech::Plain(CKM_ECDSA),
                keys.ec,
                &self.input,
                &mut self.out,
            ),
            Op::EcdsaSha256 => m.sign(
                s,
                &Mech::Plain(CKM_ECDSA_SHA256),
                keys.ec,
                &self.input,
                &mut self.out,
            ),
            Op::RsaPkcs => m.sign(
                s,
                &Mech::Plain(CKM_SHA256_RSA_PKCS),
                keys.rsa,
                &self.input,
                &mut self.out,
            ),
            Op::RsaPss => m.sign(
                s,
                &Mech::Pss {
                    mechanism: CKM_SHA256_RSA_PKCS_PSS,
                    hash: CKM_SHA256,
                    mgf: CKG_MGF1_SHA256,
                    salt_len: 32,
                },
                keys.rsa,
                &self.input,
                &mut self.out,
            ),
            Op::AesGcm1k | Op::AesGcm64k => {
                // A fresh IV per encryption (thread number + counter), as a real client
                // must use: a module may legitimately refuse a repeated one.
                let mut iv = [0u8; 12];
                iv[0] = self.thread as u8;
                iv[4..].copy_from_slice(&self.n.to_be_bytes());
                m.encrypt(
                    s,
                    &Mech::Gcm {
                        iv: &iv,
                        tag_bits: 128,
                    },
                    keys.aes,
                    &self.input,
                    &mut self.out,
                )
            }
            Op::Sha256 => m.digest(s, &Mech::Plain(CKM_SHA256), &self.input, &mut self.out),
            Op::FindByLabel => {
                // Walk the labels in a stride so consecutive finds hit different keys.
                let count = self.find.len() as u64;
                let i = (self.thread as u64 * 7919 + self.n * 104_729) % count;
                m.find(s, &self.find[i as usize], &mut self.handles)
            }
            Op::GetAttributes => m
                .get_attributes(s, keys.ec, &mut self.read)
                .map(|()| self.read.value(0).len() + self.read.value(1).len()),
            Op::Random => m.generate_random(s, &mut self.out[..32]).map(|()| 32),
            Op::OpenClose => {
                let session = m.open_session(self.bench.slot, false)?;
                m.close_session(session)?;
                Ok(0)
            }
        }
    }

    /// Runs the operation once and checks its output is what a correct module returns,
    /// so a failing module cannot look fast.
    fn check(&mut self) -> Result<(), String> {
        let len = self.run_once()?;
        let expected = match self.op {
            Op::EcdsaP256 | Op::EcdsaSha256 => Some(64),
            Op::RsaPkcs | Op::RsaPss => Some(256),
            Op::AesGcm1k | Op::AesGcm64k => Some(self.input.len() + 16),
            Op::Sha256 => Some(32),
            Op::FindByLabel => Some(1),
            Op::GetAttributes => {
                if self.read.value(0) != EC_LABEL.as_bytes() {
                    return Err(format!(
                        "CKA_LABEL is {:?}, expected {EC_LABEL:?}",
                        String::from_utf8_lossy(self.read.value(0))
                    ));
                }
                None
            }
            Op::Random | Op::OpenClose => None,
        };
        match expected {
            Some(e) if e != len => Err(format!("output length {len}, expected {e}")),
            _ => Ok(()),
        }
    }
}

impl Drop for ThreadState<'_> {
    fn drop(&mut self) {
        let _ = self.bench.module.close_session(self.session);
    }
}

/// One session prepared for `op` (opened, first call checked), to run the operation a
/// counted number of times from the calling thread: the remote suite counts the backend
/// requests of exactly those calls.
pub struct Prepared<'a>(ThreadState<'a>);

impl<'a> Prepared<'a> {
    /// Opens the session and makes the checked first call.
    pub fn new(bench: &'a Bench<'a>, op: Op) -> Result<Self, String> {
        let mut state = ThreadState::new(bench, op, 0)?;
        state.check()?;
        Ok(Prepared(state))
    }

    /// The operation this session was prepared for.
    pub fn op(&self) -> Op {
        self.0.op
    }

    /// Runs the operation `calls` times, one after the other; each call's latency.
    pub fn repeat(&mut self, calls: u64) -> Result<RunStats, String> {
        let mut latencies = Vec::with_capacity(calls as usize);
        let start = Instant::now();
        let mut t0 = start;
        for _ in 0..calls {
            self.0.run_once()?;
            let t1 = Instant::now();
            latencies.push((t1 - t0).as_nanos() as u64);
            t0 = t1;
        }
        Ok(RunStats::from_latencies(
            &mut latencies,
            (t0 - start).as_secs_f64(),
        ))
    }
}

/// What one thread hands back: its latencies and its timed window.
struct ThreadRun {
    latencies: Vec<u64>,
    start: Instant,
    end: Instant,
}

/// Runs `op` on `threads` threads, each with its own session: a checked first call and
/// `warmup` of untimed work, then all threads start together and each runs until
/// `duration` has passed. Throughput is over the common wall-clock window.
pub fn measure(
    bench: &Bench,
    op: Op,
    threads: usize,
    duration: Duration,
    warmup: Duration,
) -> Result<RunStats, String> {
    timed(
        threads,
        duration,
        warmup,
        |thread| {
            let mut state = ThreadState::new(bench, op, thread)?;
            state.check()?;
            Ok(state)
        },
        |state| state.run_once().map(|_| ()).map_err(String::from),
    )
}

/// Pure CPU work without any module, on `threads` threads: how well the machine itself
/// scales from 1 to 2 threads at this moment (other load on a 2-core machine shows here).
pub fn measure_cpu(threads: usize, duration: Duration) -> Result<RunStats, String> {
    timed(
        threads,
        duration,
        Duration::from_millis(10),
        |thread| Ok(thread as u64 + 1),
        |x| {
            for _ in 0..2000 {
                *x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                *x ^= *x >> 29;
            }
            std::hint::black_box(*x);
            Ok(())
        },
    )
}

/// The timed loop: `prepare` builds each thread's state (in that thread), `run` is one
/// unit of work. Every thread warms up, waits at a barrier, then runs for `duration`;
/// each unit's latency is recorded.
fn timed<S, P, R>(
    threads: usize,
    duration: Duration,
    warmup: Duration,
    prepare: P,
    run: R,
) -> Result<RunStats, String>
where
    P: Fn(usize) -> Result<S, String> + Sync,
    R: Fn(&mut S) -> Result<(), String> + Sync,
{
    let barrier = Barrier::new(threads);
    let failed = AtomicBool::new(false);
    let runs: Vec<Result<ThreadRun, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let (barrier, failed, prepare, run) = (&barrier, &failed, &prepare, &run);
                scope.spawn(move || {
                    // Every thread reaches the barrier, failed or not, so none waits forever.
                    let prepared = (|| {
                        let mut state = prepare(thread)?;
                        let warm_start = Instant::now();
                        let mut warm_ops = 0u64;
                        while warm_ops < 3 || warm_start.elapsed() < warmup {
                            run(&mut state)?;
                            warm_ops += 1;
                        }
                        let rate = warm_ops as f64 / warm_start.elapsed().as_secs_f64();
                        Ok::<_, String>((state, rate))
                    })();
                    if prepared.is_err() {
                        failed.store(true, Ordering::SeqCst);
                    }
                    barrier.wait();
                    let (mut state, rate) = prepared?;
                    if failed.load(Ordering::SeqCst) {
                        return Err("another thread failed".to_string());
                    }
                    let expected = (rate * duration.as_secs_f64() * 1.3) as usize + 16;
                    let mut latencies = Vec::with_capacity(expected.min(1 << 24));
                    let start = Instant::now();
                    let deadline = start + duration;
                    let mut t0 = start;
                    loop {
                        run(&mut state)?;
                        let t1 = Instant::now();
                        latencies.push((t1 - t0).as_nanos() as u64);
                        t0 = t1;
                        if t1 >= deadline {
                            break;
                        }
                    }
                    Ok(ThreadRun {
                        latencies,
                        start,
                        end: t0,
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("thread panicked".into())))
            .collect()
    });
    let mut all = Vec::new();
    let mut first_start: Option<Instant> = None;
    let mut last_end: Option<Instant> = None;
    for run in runs {
        let run = run?;
        first_start = Some(first_start.map_or(run.start, |s| s.min(run.start)));
        last_end = Some(last_end.map_or(run.end, |e| e.max(run.end)));
        all.extend_from_slice(&run.latencies);
    }
    let wall = match (first_start, last_end) {
        (Some(s), Some(e)) => (e - s).as_secs_f64(),
        _ => 0.0,
    };
    Ok(RunStats::from_latencies(&mut all, wall))
}
