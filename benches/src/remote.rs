//! The remote suite: hsmux's remote backends, measured through its C ABI like the local
//! token, each module in a worker process of its own.
//!
//! - `pkcs11` backend: one SoftHSM token with the bench keys is generated once (`keygen`
//!   child, SoftHSM directly); then one worker signs through hsmux (a `backend = "pkcs11"`
//!   token over that SoftHSM token) and another signs with SoftHSM directly, with the same
//!   keys, alternated each round like the local suite. Target: hsmux ≥ 0.95× SoftHSM.
//! - `aws-kms` backend: a KMS key is created in LocalStack (boto3), and a worker uses an
//!   aws-kms token whose `endpoint` is the bench's loopback proxy (`proxy.rs`: +10 ms per
//!   request, requests and connections counted). Measured: requests per `C_Sign`,
//!   `C_FindObjects` and `C_GetAttributeValue` after warm-up; 16 threads signing through
//!   the one token against 16 / round trip; connections opened once warm.

use crate::child::{Reply, Request};
use crate::ops::Op;
use crate::proxy::{Counts, Proxy};
use crate::report::{
    kms_targets, Counted, CpuSplit, KmsDirect, KmsResults, KmsSlow, OpResult, Pkcs11Overhead,
    RemoteResults, TargetResult, PKCS11_OVERHEAD_TARGET,
};
use crate::stats::RunStats;
use crate::token::USER_PIN;
use crate::{
    command, io, measure_rounds, op_result, pair_results, plural, Env, Options, Plan, Samples,
    Spec, Worker,
};
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// Module id of hsmux over the vendor library.
const HSMUX_P11: &str = "hsmux-p11";
/// Module id of the vendor library itself.
const VENDOR: &str = "softhsm";
/// Module id of hsmux with the aws-kms token.
const HSMUX_KMS: &str = "hsmux-kms";
/// The vendor token's label (in SoftHSM).
const VENDOR_TOKEN: &str = "vendor";
/// The label of the hsmux slot that routes to it.
const ROUTED_TOKEN: &str = "via-hsmux";
/// Labels of the aws-kms tokens: through the proxy, and straight to LocalStack.
const KMS_TOKEN: &str = "kms";
const KMS_DIRECT_TOKEN: &str = "kms-direct";
/// Calls counted for C_FindObjects and C_GetAttributeValue (cheap: no request expected).
const CHEAP_CALLS: u64 = 200;
/// The longer delay of the diagnostic phase, ms: 16 threads / (100 ms + LocalStack's
/// ~3 ms) ≈ 155 ops/s, about a third of what one LocalStack process (~2.3 ms of CPU per
/// Sign, one core) serves on this kind of machine, so it queues little.
const SLOW_DELAY_MS: u64 = 100;
/// Counted calls that measure its round trip.
const SLOW_CALLS: u64 = 20;
/// The signing operations of the pkcs11 comparison.
const PKCS11_OPS: [Op; 2] = [Op::EcdsaP256, Op::RsaPkcs];

/// Runs both parts; a part that cannot run says why in its `error`.
pub fn run(o: &Options, work: &Path) -> RemoteResults {
    eprintln!("remote suite: pkcs11 backend over {}", o.softhsm.display());
    let mut pkcs11 = Pkcs11Overhead {
        library: o.softhsm.display().to_string(),
        modules: vec![HSMUX_P11.into(), VENDOR.into()],
        ..Default::default()
    };
    if let Err(e) = pkcs11_overhead(o, work, &mut pkcs11) {
        eprintln!("remote suite: pkcs11 backend: {e}");
        pkcs11.error = Some(e);
    }

    let mut kms = KmsResults {
        endpoint: o.kms_endpoint.clone(),
        delay_ms: o.kms_delay_ms,
        threads: o.kms_threads,
        ..Default::default()
    };
    match &o.kms_endpoint {
        None => {
            kms.error =
                Some("no --kms-endpoint (scripts/bench.sh starts LocalStack and passes it)".into());
        }
        Some(endpoint) => {
            eprintln!("remote suite: aws-kms backend, LocalStack at {endpoint}");
            if let Err(e) = aws_kms(o, work, endpoint, &mut kms) {
                eprintln!("remote suite: aws-kms backend: {e}");
                kms.error = Some(e);
            }
        }
    }
    RemoteResults {
        pkcs11,
        aws_kms: kms,
    }
}

/// The remote suite's targets.
pub fn targets(r: &RemoteResults) -> Vec<TargetResult> {
    let p = &r.pkcs11;
    let mut out = Vec::new();
    for rr in &p.ratios {
        let op = Op::from_id(&rr.op).expect("known op");
        out.push(TargetResult::new(
            format!(
                "pkcs11 backend, {}, {} thread{}: {HSMUX_P11} / {VENDOR}",
                op.title(),
                rr.threads,
                plural(rr.threads)
            ),
            rr.ratio,
            true,
            PKCS11_OVERHEAD_TARGET,
        ));
    }
    if p.ratios.is_empty() {
        out.push(
            TargetResult::new(
                format!("pkcs11 backend, sign: {HSMUX_P11} / {VENDOR}"),
                None,
                true,
                PKCS11_OVERHEAD_TARGET,
            )
            .unmeasured(p.error.as_deref().unwrap_or("not run")),
        );
    }
    out.extend(kms_targets(&r.aws_kms).into_iter().map(|(t, _)| t));
    out
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Waits for a worker's `Ready`.
fn ready(w: &mut Worker) -> Result<(), String> {
    match w.read() {
        Ok(Reply::Ready(setup)) => {
            eprintln!(
                "  {}: token found and logged in, keys looked up in {:.2} s",
                w.id,
                setup.token_s + setup.keygen_s
            );
            Ok(())
        }
        other => Err(format!("{} worker failed to start: {other:?}", w.id)),
    }
}

fn pkcs11_overhead(o: &Options, work: &Path, out: &mut Pkcs11Overhead) -> Result<(), String> {
    for (what, p) in [("hsmux module", &o.hsmux), ("vendor library", &o.softhsm)] {
        if !p.is_file() {
            return Err(format!("{what} not found at {}", p.display()));
        }
    }
    let tokendir = work.join("vendor-tokens");
    std::fs::create_dir_all(&tokendir).map_err(io("creating the vendor tokendir"))?;
    let softhsm_conf = work.join("softhsm-vendor.conf");
    write(
        &softhsm_conf,
        &format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n\
             slots.removable = false\n",
            tokendir.display()
        ),
    )?;
    let hsmux_conf = work.join("hsmux-pkcs11.toml");
    write(
        &hsmux_conf,
        &format!(
            "[[token]]\nlabel = \"{ROUTED_TOKEN}\"\nbackend = \"pkcs11\"\nlibrary = \"{}\"\n\
             token = \"{VENDOR_TOKEN}\"\npin = \"env:HSMUX_BENCH_VENDOR_PIN\"\n",
            o.softhsm.display()
        ),
    )?;
    let env: Env = vec![
        ("HSMUX_CONFIG", hsmux_conf.into()),
        ("SOFTHSM2_CONF", softhsm_conf.into()),
        ("HSMUX_BENCH_VENDOR_PIN", USER_PIN.into()),
    ];

    // The vendor token and its keys, made once by the vendor library itself.
    let softhsm = o.softhsm.to_string_lossy();
    let made = command(
        &["keygen", "--module", &softhsm, "--label", VENDOR_TOKEN],
        &env,
    )?
    .stderr(Stdio::inherit())
    .output()
    .map_err(io("running keygen"))?;
    if !made.status.success() {
        return Err(format!("keygen in {softhsm} exited with {}", made.status));
    }
    let seconds: f64 = serde_json::from_slice(&made.stdout).map_err(|e| e.to_string())?;
    out.keygen_s = Some(seconds);
    eprintln!("  vendor token {VENDOR_TOKEN:?} with EC P-256 and RSA-2048 keys in {seconds:.2} s");

    let specs = [
        Spec {
            id: HSMUX_P11,
            path: o.hsmux.clone(),
        },
        Spec {
            id: VENDOR,
            path: o.softhsm.clone(),
        },
    ];
    let mut workers = vec![
        Worker::spawn_on(&specs[0], &env, ROUTED_TOKEN, 0, true)?,
        Worker::spawn_on(&specs[1], &env, VENDOR_TOKEN, 0, true)?,
    ];
    for w in &mut workers {
        ready(w)?;
    }
    let mut samples: Samples = HashMap::new();
    let mut errors = HashMap::new();
    measure_rounds(
        &Plan::new(o, &PKCS11_OPS, &o.threads, false),
        &mut workers,
        &mut samples,
        &mut errors,
        &mut Vec::new(),
    );
    for w in workers {
        w.quit();
    }
    (out.ops, out.ratios) = pair_results(
        &PKCS11_OPS,
        &o.threads,
        &[HSMUX_P11, VENDOR],
        &samples,
        &errors,
    );
    Ok(())
}

/// 127.0.0.1:PORT of an `http://HOST:PORT` endpoint.
fn socket_addr(endpoint: &str) -> Result<SocketAddr, String> {
    let hostport = endpoint
        .strip_prefix("http://")
        .ok_or_else(|| format!("--kms-endpoint {endpoint:?}: expected http://HOST:PORT"))?
        .trim_end_matches('/');
    hostport
        .to_socket_addrs()
        .map_err(|e| format!("--kms-endpoint {endpoint:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("--kms-endpoint {endpoint:?}: no address"))
}

/// Creates (or finds, when a reused LocalStack has it) the ECC_NIST_P256 signing key
/// `alias/bench-ec` with boto3, straight at LocalStack; returns its key id.
fn create_kms_key(o: &Options, endpoint: &str) -> Result<String, String> {
    const SCRIPT: &str = r#"
import sys, boto3, botocore.config
cfg = botocore.config.Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 2})
kms = boto3.client("kms", endpoint_url=sys.argv[1], region_name="us-east-1", config=cfg)
alias = "alias/bench-ec"
try:
    meta = kms.describe_key(KeyId=alias)["KeyMetadata"]
    if meta["KeyState"] != "Enabled" or meta.get("KeySpec") != "ECC_NIST_P256":
        sys.exit(f"{alias} exists but is {meta['KeyState']} {meta.get('KeySpec')}")
    kid = meta["KeyId"]
except kms.exceptions.NotFoundException:
    kid = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY",
                         Description="hsmux-bench")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=alias, TargetKeyId=kid)
print(kid)
"#;
    let out = std::process::Command::new(&o.kms_python)
        .args(["-c", SCRIPT, endpoint])
        .envs(kms_credentials())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running {}: {e}", o.kms_python.display()))?;
    if !out.status.success() {
        return Err(format!(
            "creating the KMS key with {} (boto3) failed: {}",
            o.kms_python.display(),
            out.status
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// LocalStack's credentials and region, for boto3 and the workers.
fn kms_credentials() -> [(&'static str, &'static str); 4] {
    [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_REGION", "us-east-1"),
    ]
}

/// Runs `op` once untimed on a fresh session of the worker, then `calls` more times,
/// counting the proxy's requests and connections during those calls only.
fn count(w: &mut Worker, proxy: &Proxy, op: Op, calls: u64) -> Result<Counted, String> {
    match w.request(&Request::Prepare { op: op.id().into() })? {
        Reply::Done => {}
        Reply::Failed(e) => return Err(e),
        other => return Err(format!("unexpected reply {other:?}")),
    }
    let before = proxy.counts();
    let latency = match w.request(&Request::Repeat { calls })? {
        Reply::Measured(s) => s,
        Reply::Failed(e) => return Err(e),
        other => return Err(format!("unexpected reply {other:?}")),
    };
    let d: Counts = proxy.counts() - before;
    eprintln!(
        "  {}: {calls} calls after warm-up → {} requests, {} new connections (p50 {:.2} ms)",
        op.id(),
        d.requests,
        d.connections,
        latency.p50_ns as f64 / 1e6
    );
    Ok(Counted {
        op: op.id().into(),
        calls,
        requests: d.requests,
        connections: d.connections,
        per_call: d.requests as f64 / calls as f64,
        latency,
    })
}

/// One timed measurement of `threads` threads signing.
fn measure(
    w: &mut Worker,
    threads: usize,
    duration_ms: u64,
    warmup_ms: u64,
) -> Result<RunStats, String> {
    match w.request(&Request::Measure {
        op: Op::EcdsaP256.id().into(),
        threads,
        duration_ms,
        warmup_ms,
    })? {
        Reply::Measured(s) => Ok(s),
        Reply::Failed(e) => Err(e),
        other => Err(format!("unexpected reply {other:?}")),
    }
}

fn aws_kms(o: &Options, work: &Path, endpoint: &str, k: &mut KmsResults) -> Result<(), String> {
    if !o.hsmux.is_file() {
        return Err(format!("hsmux module not found at {}", o.hsmux.display()));
    }
    let upstream = socket_addr(endpoint)?;
    let key_id = create_kms_key(o, endpoint)?;
    eprintln!("  KMS key {key_id} (ECC_NIST_P256, alias/bench-ec)");
    k.key_id = Some(key_id);

    // Bounded: long enough for every phase below with a wide margin, then it stops
    // by itself.
    let n = o.kms_threads;
    let lifetime = Duration::from_secs(300)
        + Duration::from_millis(
            (o.rounds as u64 + 2) * (o.kms_duration_ms + o.warmup_ms) * 2
                + o.kms_calls * (o.kms_delay_ms + 50) * 2,
        );
    let mut proxy = Proxy::start(upstream, Duration::from_millis(o.kms_delay_ms), lifetime)?;
    k.proxy = Some(proxy.addr.to_string());
    eprintln!(
        "  proxy {} → {upstream}, +{} ms per request, stops by itself after {} s",
        proxy.addr,
        o.kms_delay_ms,
        lifetime.as_secs()
    );

    let config = work.join("hsmux-kms.toml");
    let token = |label: &str, url: &str| {
        format!(
            "[[token]]\nlabel = \"{label}\"\nbackend = \"aws-kms\"\nregion = \"us-east-1\"\n\
             endpoint = \"{url}\"\npin = \"env:HSMUX_BENCH_KMS_PIN\"\ntimeout_ms = 30000\n"
        )
    };
    write(
        &config,
        &format!(
            "{}\n{}",
            token(KMS_TOKEN, &format!("http://{}", proxy.addr)),
            token(KMS_DIRECT_TOKEN, endpoint)
        ),
    )?;
    let mut env: Env = vec![
        ("HSMUX_CONFIG", config.into()),
        ("HSMUX_BENCH_KMS_PIN", USER_PIN.into()),
    ];
    env.extend(kms_credentials().map(|(k, v)| (k, v.into())));
    let spec = Spec {
        id: HSMUX_KMS,
        path: o.hsmux.clone(),
    };

    let mut w = Worker::spawn_on(&spec, &env, KMS_TOKEN, 0, true)?;
    let result = (|| {
        ready(&mut w)?;
        let sign = count(&mut w, &proxy, Op::EcdsaP256, o.kms_calls)?;
        let rtt_s = sign.latency.p50_ns as f64 / 1e9;
        k.round_trip_ms = Some(rtt_s * 1e3);
        k.sign = Some(sign);
        k.find = Some(count(&mut w, &proxy, Op::FindByLabel, CHEAP_CALLS)?);
        k.get_attributes = Some(count(&mut w, &proxy, Op::GetAttributes, CHEAP_CALLS)?);

        // One untimed round opens the connections n threads need; then the timed rounds
        // must not open more.
        measure(&mut w, n, 500, o.warmup_ms)?;
        let cpu0 = CpuSnapshot::take(w.pid(), o.kms_service_pid);
        let before = proxy.counts();
        k.warm_connections = Some(before.connections);
        let mut rounds = Vec::new();
        let mut error = None;
        for round in 0..o.rounds {
            match measure(&mut w, n, o.kms_duration_ms, o.warmup_ms) {
                Ok(s) => {
                    eprintln!(
                        "  [round {}/{}] {n} threads: {:.0} ops/s, p50 {:.2} ms, p99 {:.2} ms",
                        round + 1,
                        o.rounds,
                        s.ops_per_s,
                        s.p50_ns as f64 / 1e6,
                        s.p99_ns as f64 / 1e6
                    );
                    rounds.push(s);
                }
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        let steady = proxy.counts() - before;
        let cpu1 = CpuSnapshot::take(w.pid(), o.kms_service_pid);
        // Every signature is one request: their count includes each round's warm-up.
        k.cpu = Some(CpuSnapshot::split(
            &cpu0,
            &cpu1,
            steady.requests,
            o.kms_service_pid.is_some(),
        ));
        k.steady_connections = Some(steady.connections);
        k.steady_requests = Some(steady.requests);
        k.steady_ops = Some(rounds.iter().map(|s| s.ops).sum());
        let par: OpResult = op_result(Op::EcdsaP256, n, HSMUX_KMS, rounds, error);
        if rtt_s > 0.0 {
            let ideal = n as f64 / rtt_s;
            k.ideal_ops_per_s = Some(ideal);
            k.efficiency_pct = par.ops_per_s.map(|v| v / ideal * 100.0);
        }
        k.parallel = Some(par);

        // Diagnostic: the same with a longer delay, where the ideal is below what
        // LocalStack can serve, so only hsmux (or the proxy) could hold the threads back.
        proxy.set_delay(Duration::from_millis(SLOW_DELAY_MS));
        let slow = (|| {
            let one = count(&mut w, &proxy, Op::EcdsaP256, SLOW_CALLS)?;
            let rtt = one.latency.p50_ns as f64 / 1e9;
            let mut rounds = Vec::new();
            let mut error = None;
            for _ in 0..if o.quick { 1 } else { 2 } {
                match measure(&mut w, n, o.kms_duration_ms, o.warmup_ms) {
                    Ok(s) => {
                        eprintln!(
                            "  +{SLOW_DELAY_MS} ms: {n} threads {:.0} ops/s, ideal {:.0}",
                            s.ops_per_s,
                            n as f64 / rtt
                        );
                        rounds.push(s);
                    }
                    Err(e) => {
                        error = Some(e);
                        break;
                    }
                }
            }
            let par = op_result(Op::EcdsaP256, n, HSMUX_KMS, rounds, error);
            let ideal = (rtt > 0.0).then(|| n as f64 / rtt);
            Ok::<_, String>(KmsSlow {
                delay_ms: SLOW_DELAY_MS,
                round_trip_ms: Some(rtt * 1e3),
                ideal_ops_per_s: ideal,
                efficiency_pct: par.ops_per_s.zip(ideal).map(|(v, i)| v / i * 100.0),
                parallel: Some(par),
            })
        })();
        proxy.set_delay(Duration::from_millis(o.kms_delay_ms));
        match slow {
            Ok(s) => k.slow = Some(s),
            Err(e) => eprintln!("  +{SLOW_DELAY_MS} ms phase: {e}"),
        }
        Ok::<_, String>(())
    })();
    w.quit();
    result?;

    // The same token kind straight at LocalStack: what the service allows by itself.
    let mut d = Worker::spawn_on(&spec, &env, KMS_DIRECT_TOKEN, 0, true)?;
    let direct = (|| {
        ready(&mut d)?;
        let (mut result, mut error) = (KmsDirect::default(), None);
        let before = proxy.counts();
        let one = count(&mut d, &proxy, Op::EcdsaP256, o.kms_calls)?;
        if proxy.counts() != before {
            return Err("requests of the direct token went through the proxy".into());
        }
        result.round_trip_ms = Some(one.latency.p50_ns as f64 / 1e6);
        let mut rounds = Vec::new();
        let cpu0 = CpuSnapshot::take(d.pid(), o.kms_service_pid);
        match measure(&mut d, n, o.kms_duration_ms, o.warmup_ms) {
            Ok(s) => {
                let cpu1 = CpuSnapshot::take(d.pid(), o.kms_service_pid);
                result.cpu = Some(CpuSnapshot::split(
                    &cpu0,
                    &cpu1,
                    s.ops,
                    o.kms_service_pid.is_some(),
                ));
                eprintln!(
                    "  LocalStack directly: 1 thread p50 {:.2} ms; {n} threads {:.0} ops/s",
                    one.latency.p50_ns as f64 / 1e6,
                    s.ops_per_s
                );
                rounds.push(s);
            }
            Err(e) => error = Some(e),
        }
        result.parallel = Some(op_result(
            Op::EcdsaP256,
            n,
            "hsmux-kms-direct",
            rounds,
            error,
        ));
        Ok::<_, String>(result)
    })();
    d.quit();
    proxy.stop();
    k.direct = Some(direct?);
    Ok(())
}

/// CPU seconds used so far by the processes the aws-kms measurement involves, and by the
/// whole machine, from /proc (clock ticks of 1/100 s, Linux's USER_HZ).
#[derive(Clone, Copy, Debug, Default)]
struct CpuSnapshot {
    worker: f64,
    proxy: f64,
    service: f64,
    busy: f64,
    total: f64,
}

const TICK: f64 = 0.01;

/// (ppid, utime + stime in seconds) of `/proc/PID/stat`.
fn proc_stat(pid: u32) -> Option<(u32, f64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in brackets and may hold spaces: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ppid = f.get(1)?.parse().ok()?;
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((ppid, (utime + stime) * TICK))
}

/// CPU seconds of `root` and every live descendant of it.
fn tree_cpu(root: u32) -> f64 {
    let mut procs: Vec<(u32, u32, f64)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) {
                if let Some((ppid, cpu)) = proc_stat(pid) {
                    procs.push((pid, ppid, cpu));
                }
            }
        }
    }
    let mut tree = vec![root];
    let mut total = 0.0;
    while let Some(p) = tree.pop() {
        for &(pid, ppid, cpu) in &procs {
            if pid == p {
                total += cpu;
            }
            if ppid == p && pid != p {
                tree.push(pid);
            }
        }
    }
    total
}

/// (busy, total) CPU seconds of the machine since boot, all CPUs.
fn machine_cpu() -> (f64, f64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<f64> = text
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: f64 = v.iter().take(8).sum();
    // idle + iowait are not busy.
    let idle = v.get(3).copied().unwrap_or(0.0) + v.get(4).copied().unwrap_or(0.0);
    ((total - idle) * TICK, total * TICK)
}

impl CpuSnapshot {
    fn take(worker: u32, service: Option<u32>) -> Self {
        let (busy, total) = machine_cpu();
        CpuSnapshot {
            worker: tree_cpu(worker),
            proxy: proc_stat(std::process::id()).map_or(0.0, |(_, c)| c),
            service: service.map_or(0.0, tree_cpu),
            busy,
            total,
        }
    }

    /// Where the CPU went between `before` and now, per operation.
    fn split(before: &Self, after: &Self, ops: u64, service: bool) -> CpuSplit {
        let per_op = |a: f64, b: f64| (a - b) * 1e6 / ops.max(1) as f64;
        CpuSplit {
            ops,
            worker_us_per_op: per_op(after.worker, before.worker),
            proxy_us_per_op: per_op(after.proxy, before.proxy),
            service_us_per_op: service.then(|| per_op(after.service, before.service)),
            machine_busy_pct: if after.total > before.total {
                (after.busy - before.busy) / (after.total - before.total) * 100.0
            } else {
                0.0
            },
        }
    }
}
