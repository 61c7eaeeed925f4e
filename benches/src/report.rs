//! The results of one run (written as JSON) and the table printed from them, with the
//! change against the previous run's JSON when there is one.

use crate::child::{PopulateInfo, SetupInfo, StartupSample};
use crate::ops::Op;
use crate::stats::RunStats;
use serde::Serialize;
use serde_json::Value;
use std::fmt::Write as _;

/// Everything one run measured.
#[derive(Debug, Serialize)]
pub struct Results {
    /// Format version of this file.
    pub schema: u32,
    /// Start and end, seconds since the epoch.
    pub started_unix: u64,
    /// See `started_unix`.
    pub finished_unix: u64,
    /// "full" or "quick".
    pub mode: String,
    /// "local", "remote" or "all".
    pub suite: String,
    /// Rounds per (operation, threads, module).
    pub rounds: usize,
    /// Timed duration of one measurement, per thread.
    pub duration_ms: u64,
    /// Untimed warm-up before each measurement, per thread.
    pub warmup_ms: u64,
    /// Thread counts measured.
    pub threads: Vec<usize>,
    /// Keys on the token for the find test.
    pub find_keys: usize,
    /// Objects on the start-up token.
    pub startup_objects: usize,
    /// Source revision, when the caller passed one.
    pub rev: Option<String>,
    /// The machine.
    pub host: Host,
    /// The modules compared; the first is hsmux, the second the reference.
    pub modules: Vec<ModuleInfo>,
    /// One entry per (operation, threads, module).
    pub ops: Vec<OpResult>,
    /// hsmux / reference ops/s per (operation, threads): median of per-round ratios.
    pub ratios: Vec<RatioResult>,
    /// 2 threads / 1 thread ops/s per (operation, module): median of per-round ratios.
    pub scaling: Vec<ScalingResult>,
    /// 2 threads / 1 thread of a pure-CPU loop without any module, measured just before
    /// each signature operation of each round: the best scaling the machine allowed.
    pub machine_scaling: Option<ScalingResult>,
    /// Start-up with many token objects.
    pub startup: Option<StartupResult>,
    /// Every target and whether this run met it.
    pub targets: Vec<TargetResult>,
    /// The remote suite, when it was run.
    pub remote: Option<RemoteResults>,
}

/// The machine the run was on.
#[derive(Debug, Serialize)]
pub struct Host {
    /// Online CPUs.
    pub cpus: usize,
    /// `uname -r`.
    pub kernel: String,
    /// /proc/loadavg when the run started.
    pub loadavg_start: String,
    /// /proc/loadavg when it ended.
    pub loadavg_end: String,
}

/// One module of the comparison.
#[derive(Debug, Serialize)]
pub struct ModuleInfo {
    /// "hsmux" or "softhsm".
    pub id: String,
    /// Shared object.
    pub path: String,
    /// Preparing its bench token.
    pub setup: SetupInfo,
    /// Filling its start-up token.
    pub startup_populate: Option<PopulateInfo>,
}

/// One (operation, threads, module).
#[derive(Debug, Serialize)]
pub struct OpResult {
    /// [`Op::id`].
    pub op: String,
    /// Threads.
    pub threads: usize,
    /// [`ModuleInfo::id`].
    pub module: String,
    /// Median over rounds.
    pub ops_per_s: Option<f64>,
    /// Median over rounds of each round's p50, microseconds.
    pub p50_us: Option<f64>,
    /// Median over rounds of each round's p99, microseconds.
    pub p99_us: Option<f64>,
    /// Every round.
    pub rounds: Vec<RunStats>,
    /// Why it was not measured, if it failed.
    pub error: Option<String>,
}

/// hsmux / reference for one (operation, threads).
#[derive(Debug, Serialize)]
pub struct RatioResult {
    /// [`Op::id`].
    pub op: String,
    /// Threads.
    pub threads: usize,
    /// Median of `rounds`.
    pub ratio: Option<f64>,
    /// hsmux ops/s over reference ops/s, each round measured back to back.
    pub rounds: Vec<f64>,
}

/// 2 threads / 1 thread for one (operation, module).
#[derive(Debug, Serialize)]
pub struct ScalingResult {
    /// [`Op::id`].
    pub op: String,
    /// [`ModuleInfo::id`].
    pub module: String,
    /// Median of `rounds`.
    pub ratio: Option<f64>,
    /// ops/s with 2 threads over ops/s with 1 thread, per round.
    pub rounds: Vec<f64>,
}

/// Start-up with many objects, per module.
#[derive(Debug, Serialize)]
pub struct StartupResult {
    /// Token objects on the token.
    pub objects: usize,
    /// Fresh processes per module.
    pub rounds: usize,
    /// Per module.
    pub modules: Vec<StartupModule>,
    /// Median hsmux total time / median reference total time.
    pub time_ratio: Option<f64>,
    /// Median hsmux peak RSS / median reference peak RSS.
    pub rss_ratio: Option<f64>,
}

/// Start-up of one module (medians over fresh processes).
#[derive(Debug, Default, Serialize)]
pub struct StartupModule {
    /// [`ModuleInfo::id`].
    pub module: String,
    /// C_Initialize, ms.
    pub init_ms: Option<f64>,
    /// Finding the token, C_OpenSession and the first C_FindObjects, ms.
    pub find_ms: Option<f64>,
    /// `init_ms + find_ms`, ms.
    pub total_ms: Option<f64>,
    /// dlopen, ms (informative).
    pub load_ms: Option<f64>,
    /// Peak RSS of the process, KiB.
    pub peak_rss_kib: Option<f64>,
    /// Its RSS before loading the module, KiB.
    pub base_rss_kib: Option<f64>,
    /// Every process.
    pub samples: Vec<StartupSample>,
    /// Why it was not measured, if it failed.
    pub error: Option<String>,
}

/// One target.
#[derive(Debug, Serialize)]
pub struct TargetResult {
    /// What is compared.
    pub name: String,
    /// The measured ratio.
    pub value: Option<f64>,
    /// ">=", "<=" or "==".
    pub cmp: String,
    /// The bound.
    pub threshold: f64,
    /// What `value` and `threshold` count: "×" (a ratio), "%", "req/call", "connections".
    pub unit: String,
    /// "met", "NOT MET" or "not measured: …".
    pub status: String,
    /// Why a verdict cannot be trusted, when the run itself says so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl TargetResult {
    /// Evaluates the ratio `value >= threshold` (`at_least`) or `value <= threshold`.
    pub fn new(name: String, value: Option<f64>, at_least: bool, threshold: f64) -> Self {
        Self::with(
            name,
            value,
            if at_least { ">=" } else { "<=" },
            threshold,
            "×",
        )
    }

    /// Evaluates `value cmp threshold` (`cmp` ">=", "<=" or "==") of a quantity in `unit`.
    pub fn with(name: String, value: Option<f64>, cmp: &str, threshold: f64, unit: &str) -> Self {
        let status = match value {
            None => "not measured".to_string(),
            Some(v) => {
                let ok = match cmp {
                    ">=" => v >= threshold,
                    "<=" => v <= threshold,
                    _ => (v - threshold).abs() < 1e-9,
                };
                if ok { "met" } else { "NOT MET" }.to_string()
            }
        };
        TargetResult {
            name,
            value,
            cmp: cmp.to_string(),
            threshold,
            unit: unit.to_string(),
            status,
            note: None,
        }
    }

    /// Marks the target as not measured, saying why.
    pub fn unmeasured(mut self, why: &str) -> Self {
        self.value = None;
        self.status = format!("not measured: {why}");
        self
    }

    /// The 2-threads / 1-thread target, read against the machine's own scaling in the
    /// same run: when even a pure-CPU loop could not reach the bound, a miss says
    /// nothing about the module.
    pub fn scaling(name: String, value: Option<f64>, machine: Option<f64>) -> Self {
        let mut t = TargetResult::new(name, value, true, SCALING_TARGET);
        if let (Some(m), "NOT MET") = (machine, t.status.as_str()) {
            if m < SCALING_TARGET {
                t.note = Some(format!(
                    "inconclusive: the machine itself scaled {m:.2}× during this run"
                ));
            }
        }
        t
    }

    fn bound(&self) -> String {
        let cmp = match self.cmp.as_str() {
            ">=" => "≥",
            "<=" => "≤",
            _ => "=",
        };
        match self.unit.as_str() {
            "×" | "%" => format!("{cmp}{}{}", trim_float(self.threshold), self.unit),
            _ => format!("{cmp}{}", trim_float(self.threshold)),
        }
    }

    fn value_text(&self) -> String {
        if self.unit == "×" {
            return ratio_near(self.value, Some(self.threshold));
        }
        unit_value(&self.unit, self.value)
    }
}

/// A target's value as the table shows it.
fn unit_value(unit: &str, v: Option<f64>) -> String {
    match (unit, v) {
        (_, None) => "-".into(),
        ("×", v) => ratio(v),
        ("%", Some(v)) => format!("{v:.0}%"),
        ("req/call", Some(v)) => format!("{v:.2}"),
        (_, Some(v)) => format!("{v:.0}"),
    }
}

/// The remote suite: remote backends, measured through hsmux.
#[derive(Debug, Default, Serialize)]
pub struct RemoteResults {
    /// `backend = "pkcs11"` over SoftHSM against SoftHSM directly.
    pub pkcs11: Pkcs11Overhead,
    /// `backend = "aws-kms"` against LocalStack behind the delaying proxy.
    pub aws_kms: KmsResults,
}

/// The routing cost of the `pkcs11` backend: the same vendor token and keys, used through
/// hsmux and directly, in two worker processes alternated each round.
#[derive(Debug, Default, Serialize)]
pub struct Pkcs11Overhead {
    /// The vendor library.
    pub library: String,
    /// Module ids: hsmux over the vendor library, then the vendor library itself.
    pub modules: Vec<String>,
    /// Creating the vendor token and its keys (once, in the vendor library), seconds.
    pub keygen_s: Option<f64>,
    /// One entry per (operation, threads, module).
    pub ops: Vec<OpResult>,
    /// hsmux / vendor ops/s per (operation, threads): median of per-round ratios.
    pub ratios: Vec<RatioResult>,
    /// Why nothing was measured, if so.
    pub error: Option<String>,
}

/// The target of the pkcs11 backend: hsmux over the vendor ≥ this × the vendor directly.
pub const PKCS11_OVERHEAD_TARGET: f64 = 0.95;
/// 16 threads through one aws-kms token reach at least this share of 16 / round trip, %.
pub const KMS_PARALLEL_TARGET: f64 = 80.0;

/// Backend requests counted for a number of calls of one operation after warm-up.
#[derive(Debug, Serialize)]
pub struct Counted {
    /// [`Op::id`].
    pub op: String,
    /// Calls made (one session, one after the other).
    pub calls: u64,
    /// HTTP requests the proxy forwarded meanwhile.
    pub requests: u64,
    /// TCP connections it accepted meanwhile.
    pub connections: u64,
    /// `requests / calls`.
    pub per_call: f64,
    /// The calls' latencies.
    pub latency: RunStats,
}

/// `backend = "aws-kms"` through the loopback proxy to LocalStack.
#[derive(Debug, Default, Serialize)]
pub struct KmsResults {
    /// LocalStack's endpoint.
    pub endpoint: Option<String>,
    /// The proxy's address (the token's `endpoint`).
    pub proxy: Option<String>,
    /// Delay the proxy adds to every request, ms.
    pub delay_ms: u64,
    /// The KMS key signed with (ECC_NIST_P256, alias/bench-ec).
    pub key_id: Option<String>,
    /// C_SignInit(CKM_ECDSA) + C_Sign after warm-up, requests counted.
    pub sign: Option<Counted>,
    /// C_FindObjects by label after warm-up.
    pub find: Option<Counted>,
    /// C_GetAttributeValue after warm-up.
    pub get_attributes: Option<Counted>,
    /// Round trip of one request through the proxy: median latency of the counted
    /// C_Sign calls (one request each), ms.
    pub round_trip_ms: Option<f64>,
    /// Threads signing through one token.
    pub threads: usize,
    /// Their throughput, rounds and medians.
    pub parallel: Option<OpResult>,
    /// `threads / round trip`, ops/s.
    pub ideal_ops_per_s: Option<f64>,
    /// Median ops/s over the ideal, %.
    pub efficiency_pct: Option<f64>,
    /// Connections the proxy accepted before the timed rounds (warm-up included).
    pub warm_connections: Option<u64>,
    /// Connections the proxy accepted during the timed rounds (steady state).
    pub steady_connections: Option<u64>,
    /// Requests it forwarded during them (each round's own warm-up calls included).
    pub steady_requests: Option<u64>,
    /// Operations timed during them (warm-up calls not included).
    pub steady_ops: Option<u64>,
    /// Where the CPU went during the timed rounds.
    pub cpu: Option<CpuSplit>,
    /// The same with a longer delay, where `threads / round trip` is below what LocalStack
    /// can serve (diagnostic, no target).
    pub slow: Option<KmsSlow>,
    /// The same token straight to LocalStack, without the proxy: what the service itself
    /// allows (diagnostic, no target).
    pub direct: Option<KmsDirect>,
    /// Why nothing (or not everything) was measured.
    pub error: Option<String>,
}

/// Signing through the proxy with a longer delay.
#[derive(Debug, Default, Serialize)]
pub struct KmsSlow {
    /// Delay per request, ms.
    pub delay_ms: u64,
    /// Median latency of one C_Sign, one thread, ms.
    pub round_trip_ms: Option<f64>,
    /// `threads / round trip`, ops/s.
    pub ideal_ops_per_s: Option<f64>,
    /// Throughput of the threads.
    pub parallel: Option<OpResult>,
    /// Median ops/s over the ideal, %.
    pub efficiency_pct: Option<f64>,
}

/// Signing straight against LocalStack (no proxy, no delay).
#[derive(Debug, Default, Serialize)]
pub struct KmsDirect {
    /// Median latency of one C_Sign, one thread, ms.
    pub round_trip_ms: Option<f64>,
    /// The same number of threads as through the proxy.
    pub parallel: Option<OpResult>,
    /// Where the CPU went meanwhile.
    pub cpu: Option<CpuSplit>,
}

/// CPU time of each process involved in a run of signatures, per signature, from /proc.
#[derive(Debug, Default, Serialize)]
pub struct CpuSplit {
    /// Signatures the CPU time is divided by.
    pub ops: u64,
    /// The worker process: hsmux (SigV4, HTTP, JSON) and the bench's threads, µs.
    pub worker_us_per_op: f64,
    /// The orchestrator, i.e. the proxy's threads, µs.
    pub proxy_us_per_op: f64,
    /// LocalStack's process tree, µs (when its PID was given).
    pub service_us_per_op: Option<f64>,
    /// Busy share of all CPUs of the machine meanwhile, %.
    pub machine_busy_pct: f64,
}

impl CpuSplit {
    fn describe(&self) -> String {
        format!(
            "CPU per signature: hsmux worker {:.0} µs, proxy {:.0} µs, LocalStack {}; machine \
             {:.0}% busy",
            self.worker_us_per_op,
            self.proxy_us_per_op,
            self.service_us_per_op
                .map_or_else(|| "not known".into(), |v| format!("{v:.0} µs")),
            self.machine_busy_pct
        )
    }
}

/// The ratio target for `op` (hsmux / reference ops/s, same run), if it has one.
pub fn ratio_target(op: Op) -> Option<f64> {
    match op {
        Op::EcdsaP256 | Op::RsaPkcs | Op::RsaPss => Some(2.0),
        Op::AesGcm1k => Some(5.0),
        Op::FindByLabel | Op::GetAttributes => Some(10.0),
        _ => None,
    }
}

/// Minimum 2-threads / 1-thread ops/s of hsmux for the signature operations.
pub const SCALING_TARGET: f64 = 1.8;
/// Maximum hsmux / reference start-up time.
pub const STARTUP_TIME_TARGET: f64 = 0.2;
/// Maximum hsmux / reference start-up peak RSS.
pub const STARTUP_RSS_TARGET: f64 = 1.0;

fn trim_float(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Integer with thousands separators.
fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Microseconds with precision that suits the magnitude.
fn micros(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v < 10.0 => format!("{v:.2}"),
        Some(v) if v < 100.0 => format!("{v:.1}"),
        Some(v) => thousands(v),
    }
}

fn ratio(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v < 10.0 => format!("{v:.2}×"),
        Some(v) => format!("{v:.1}×"),
    }
}

/// A ratio, with one more digit when two would round it onto `bound` (0.949 is not 0.95).
fn ratio_near(v: Option<f64>, bound: Option<f64>) -> String {
    match (v, bound) {
        (Some(v), Some(b)) if v < 10.0 && (v - b).abs() < 0.005 && v != b => format!("{v:.3}×"),
        _ => ratio(v),
    }
}

fn rate(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), thousands)
}

fn percent_change(now: f64, before: f64) -> String {
    if before <= 0.0 {
        return "-".into();
    }
    format!("{:+.1}%", (now / before - 1.0) * 100.0)
}

/// Looks things up in the previous run's JSON (schema-tolerant: missing fields are
/// simply not compared).
pub struct Previous {
    value: Value,
    find_keys: usize,
    startup_objects: usize,
}

impl Previous {
    /// Wraps the previous results file's JSON, to compare with a run of `current`'s sizes.
    pub fn new(value: Value, current: &Results) -> Self {
        Previous {
            value,
            find_keys: current.find_keys,
            startup_objects: current.startup_objects,
        }
    }

    fn find<'a>(&'a self, list: &str, pred: impl Fn(&Value) -> bool) -> Option<&'a Value> {
        self.value.get(list)?.as_array()?.iter().find(|v| pred(v))
    }

    fn ops_per_s(&self, op: &str, threads: usize, module: &str) -> Option<f64> {
        self.comparable_op(op)?;
        self.find("ops", |v| {
            v["op"] == op && v["threads"] == threads && v["module"] == module
        })?["ops_per_s"]
            .as_f64()
    }

    fn ratio(&self, op: &str, threads: usize) -> Option<f64> {
        self.comparable_op(op)?;
        self.find("ratios", |v| v["op"] == op && v["threads"] == threads)?["ratio"].as_f64()
    }

    fn target(&self, name: &str) -> Option<f64> {
        if name.contains("find") || name.contains("C_FindObjects") {
            self.comparable_op(Op::FindByLabel.id())?;
        }
        self.find("targets", |v| v["name"] == name)?["value"].as_f64()
    }

    /// `Some` unless the previous run measured `op` on a token of another size.
    fn comparable_op(&self, op: &str) -> Option<()> {
        let same = op != Op::FindByLabel.id()
            || self.value["find_keys"].as_u64() == Some(self.find_keys as u64);
        same.then_some(())
    }

    fn startup_total(&self, module: &str) -> Option<f64> {
        if self.value["startup"]["objects"].as_u64() != Some(self.startup_objects as u64) {
            return None;
        }
        self.value["startup"]["modules"]
            .as_array()?
            .iter()
            .find(|v| v["module"] == module)?["total_ms"]
            .as_f64()
    }

    /// "when (mode, rev)" of the previous run.
    fn describe(&self) -> String {
        let v = &self.value;
        format!(
            "{} ({}, {} rounds × {} ms{})",
            v["started_unix"]
                .as_u64()
                .map_or_else(|| "?".into(), |t| format!("unix time {t}")),
            v["mode"].as_str().unwrap_or("?"),
            v["rounds"].as_u64().unwrap_or(0),
            v["duration_ms"].as_u64().unwrap_or(0),
            v["rev"]
                .as_str()
                .map_or_else(String::new, |r| format!(", rev {r}"))
        )
    }
}

/// The table of one comparison: per (operation, threads), both modules' ops/s, p50 and
/// p99, their ratio, the ratio's target and, with `prev`, the change since the last run.
fn pair_table(
    o: &mut String,
    a: &str,
    b: &str,
    ops: &[OpResult],
    ratios: &[RatioResult],
    target_of: impl Fn(Op) -> Option<f64>,
    prev: Option<&Previous>,
) {
    let (wa, wb) = (11.max(a.len() + 6), 11.max(b.len() + 6));
    let _ = writeln!(
        o,
        "{:<35} {:>3} | {:>wa$} {:>8} {:>8} | {:>wb$} {:>8} {:>8} | {:>8} | {:<15} | vs previous run",
        "operation",
        "thr",
        format!("{a} ops/s"),
        "p50 µs",
        "p99 µs",
        format!("{b} ops/s"),
        "p50 µs",
        "p99 µs",
        "ratio",
        "target",
    );
    let _ = writeln!(o, "{}", "-".repeat(128 + wa + wb));
    let mut last_op = "";
    for rr in ratios {
        let op = Op::from_id(&rr.op).expect("known op");
        let get = |m: &str| {
            ops.iter()
                .find(|x| x.op == rr.op && x.threads == rr.threads && x.module == m)
        };
        let (ra, rb) = (get(a), get(b));
        let target = match target_of(op) {
            None => String::new(),
            Some(t) => {
                let tr = TargetResult::new(String::new(), rr.ratio, true, t);
                format!("{} {}", tr.bound(), tr.status)
            }
        };
        let cols = |x: Option<&OpResult>, w: usize| match x {
            Some(x) if x.error.is_some() => {
                let e = x.error.as_deref().unwrap_or("");
                let e = if e.contains("CKR_MECHANISM_INVALID") {
                    "n/a (CKR_MECHANISM_INVALID)".to_string()
                } else {
                    format!("error: {e}")
                };
                let n = w + 18;
                format!("{:<n$}", e.chars().take(n).collect::<String>())
            }
            Some(x) => format!(
                "{:>w$} {:>8} {:>8}",
                rate(x.ops_per_s),
                micros(x.p50_us),
                micros(x.p99_us)
            ),
            None => format!("{:>w$} {:>8} {:>8}", "-", "-", "-"),
        };
        let versus = prev
            .and_then(|p| {
                let now = ra?.ops_per_s?;
                let before = p.ops_per_s(&rr.op, rr.threads, a)?;
                Some(format!(
                    "{a} {}{}",
                    percent_change(now, before),
                    p.ratio(&rr.op, rr.threads)
                        .map_or_else(String::new, |x| format!(", ratio was {}", ratio(Some(x))))
                ))
            })
            .unwrap_or_default();
        let title = if rr.op == last_op { "" } else { op.title() };
        last_op = &rr.op;
        let _ = writeln!(
            o,
            "{:<35} {:>3} | {} | {} | {:>8} | {:<15} | {}",
            title,
            rr.threads,
            cols(ra, wa),
            cols(rb, wb),
            ratio_near(rr.ratio, target_of(op)),
            target,
            versus
        );
    }
}

/// The table, as printed at the end of a run.
pub fn render(r: &Results, prev: Option<&Previous>) -> String {
    let mut o = String::new();
    let (a, b) = (&r.modules[0].id, &r.modules[1].id);
    let _ = writeln!(
        o,
        "\nhsmux benchmark — {} run, suite {}, {} rounds × {} ms per (operation, threads, module), \
         modules alternated each round, medians of rounds",
        r.mode, r.suite, r.rounds, r.duration_ms
    );
    let _ = writeln!(
        o,
        "host: {} CPUs, kernel {}, loadavg at start {} / end {}{}",
        r.host.cpus,
        r.host.kernel,
        r.host.loadavg_start,
        r.host.loadavg_end,
        r.rev
            .as_ref()
            .map_or_else(String::new, |v| format!(", rev {v}"))
    );
    for m in &r.modules {
        let _ = writeln!(o, "{:<8} {}", m.id, m.path);
    }
    match prev {
        Some(p) => {
            let _ = writeln!(o, "previous run: {}", p.describe());
        }
        None => {
            let _ = writeln!(o, "previous run: none");
        }
    }

    if !r.ops.is_empty() {
        let _ = writeln!(o);
        pair_table(&mut o, a, b, &r.ops, &r.ratios, ratio_target, prev);
    }

    if !r.scaling.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "{:<35}     | {:>8} | {:>8} | {:<15}",
            "2 threads / 1 thread (ops/s)", a, b, "target (hsmux)"
        );
        let _ = writeln!(o, "{}", "-".repeat(80));
        let ops: Vec<&str> = r
            .scaling
            .iter()
            .filter(|s| &s.module == a)
            .map(|s| s.op.as_str())
            .collect();
        for op_id in ops {
            let op = Op::from_id(op_id).expect("known op");
            let get = |m: &str| {
                r.scaling
                    .iter()
                    .find(|s| s.op == op_id && s.module == m)
                    .and_then(|s| s.ratio)
            };
            let target = if op.is_sign() {
                let machine = r.machine_scaling.as_ref().and_then(|m| m.ratio);
                let tr = TargetResult::scaling(String::new(), get(a), machine);
                let flag = if tr.note.is_some() {
                    " (inconclusive)"
                } else {
                    ""
                };
                format!("{} {}{flag}", tr.bound(), tr.status)
            } else {
                String::new()
            };
            let _ = writeln!(
                o,
                "{:<35}     | {:>8} | {:>8} | {:<15}",
                op.title(),
                ratio(get(a)),
                ratio(get(b)),
                target
            );
        }
    }

    if let Some(m) = &r.machine_scaling {
        let _ = writeln!(
            o,
            "{:<35}     | {:>8} | (pure-CPU loop in the bench, no module: what the machine \
             allowed during this run)",
            "machine itself",
            ratio(m.ratio)
        );
    }

    if let Some(s) = &r.startup {
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "start-up with {} token objects: C_Initialize, then find the token + C_OpenSession + \
             first C_FindObjects by label; a fresh process each, median of {}",
            thousands(s.objects as f64),
            s.rounds
        );
        let _ = writeln!(
            o,
            "{:<10} | {:>15} | {:>13} | {:>10} | {:>17} | {:>9} | vs previous run",
            "module", "C_Initialize ms", "first find ms", "total ms", "peak RSS MiB", "dlopen ms",
        );
        let _ = writeln!(o, "{}", "-".repeat(100));
        for m in &s.modules {
            if let Some(e) = &m.error {
                let _ = writeln!(o, "{:<10} | error: {e}", m.module);
                continue;
            }
            let ms = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.1}"));
            let versus = prev
                .and_then(|p| {
                    Some(format!(
                        "total {}",
                        percent_change(m.total_ms?, p.startup_total(&m.module)?)
                    ))
                })
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "{:<10} | {:>15} | {:>13} | {:>10} | {:>17} | {:>9} | {}",
                m.module,
                ms(m.init_ms),
                ms(m.find_ms),
                ms(m.total_ms),
                m.peak_rss_kib.map_or_else(
                    || "-".into(),
                    |v| format!(
                        "{:.1} (+{:.1})",
                        v / 1024.0,
                        (v - m.base_rss_kib.unwrap_or(0.0)) / 1024.0
                    )
                ),
                ms(m.load_ms),
                versus
            );
        }
        let _ = writeln!(
            o,
            "(peak RSS is the process's VmHWM; in brackets, the growth over the bench process \
             before loading the module)"
        );
    }

    if let Some(remote) = &r.remote {
        render_remote(&mut o, remote);
    }

    if !r.targets.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(o, "targets (from this run):");
        for t in &r.targets {
            let before = prev
                .and_then(|p| p.target(&t.name))
                .map_or_else(String::new, |v| {
                    format!("   (previous run {})", unit_value(&t.unit, Some(v)))
                });
            let note = t
                .note
                .as_ref()
                .map_or_else(String::new, |n| format!(" ({n})"));
            let _ = writeln!(
                o,
                "  {:<76} {:>8}  {:<6} {}{note}{}",
                t.name,
                t.value_text(),
                t.bound(),
                t.status,
                before
            );
        }
    }
    o
}

/// The remote suite's part of the table.
fn render_remote(o: &mut String, r: &RemoteResults) {
    let p = &r.pkcs11;
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "remote suite — pkcs11 backend: hsmux (backend = \"pkcs11\") over {} vs the same library \
         directly; one vendor token and the same keys, a worker process each, alternated \
         each round, medians of rounds",
        p.library
    );
    if let Some(e) = &p.error {
        let _ = writeln!(o, "  not measured: {e}");
    }
    if !p.ratios.is_empty() && p.modules.len() == 2 {
        pair_table(
            o,
            &p.modules[0],
            &p.modules[1],
            &p.ops,
            &p.ratios,
            |_| Some(PKCS11_OVERHEAD_TARGET),
            None,
        );
    }

    let k = &r.aws_kms;
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "remote suite — aws-kms backend: a token whose endpoint is a loopback TCP proxy (+{} ms \
         per request, requests and connections counted) in front of LocalStack{}",
        k.delay_ms,
        k.endpoint
            .as_ref()
            .map_or_else(String::new, |e| format!(" at {e}"))
    );
    if let Some(e) = &k.error {
        let _ = writeln!(o, "  not (fully) measured: {e}");
    }
    for (t, detail) in kms_targets(k) {
        let _ = writeln!(
            o,
            "  {:<66} {:>8}  {:<6} {:<12} {}",
            t.name.trim_start_matches("aws-kms: "),
            t.value_text(),
            t.bound(),
            t.status,
            detail
        );
    }
    if let Some(c) = &k.cpu {
        let _ = writeln!(o, "  {} threads via the proxy, {}", k.threads, c.describe());
        if let Some(s) = c.service_us_per_op.filter(|&s| s > 0.0) {
            let ceiling = 1e6 / s;
            let _ = writeln!(
                o,
                "  LocalStack's ceiling at that cost on one core (one Python process): {} ops/s; \
                 {} threads reached {}",
                rate(Some(ceiling)),
                k.threads,
                k.parallel.as_ref().and_then(|p| p.ops_per_s).map_or_else(
                    || "-".into(),
                    |v| format!("{:.0}% of it", v / ceiling * 100.0)
                )
            );
        }
    }
    if let Some(s) = &k.slow {
        let par = s.parallel.as_ref();
        let _ = writeln!(
            o,
            "  with +{} ms per request instead (ideal below that ceiling; no target): {} threads \
             {} ops/s = {} of ideal {} ops/s (round trip {} ms; p50 {} ms, p99 {} ms){}",
            s.delay_ms,
            k.threads,
            rate(par.and_then(|p| p.ops_per_s)),
            s.efficiency_pct
                .map_or_else(|| "-".into(), |v| format!("{v:.0}%")),
            rate(s.ideal_ops_per_s),
            s.round_trip_ms
                .map_or_else(|| "-".into(), |v| format!("{v:.2}")),
            millis(par.and_then(|p| p.p50_us)),
            millis(par.and_then(|p| p.p99_us)),
            par.and_then(|p| p.error.as_ref())
                .map_or_else(String::new, |e| format!(" error: {e}"))
        );
    }
    if let Some(d) = &k.direct {
        let par = d.parallel.as_ref();
        let _ = writeln!(
            o,
            "  LocalStack directly, no proxy (what the service allows, no target): C_Sign p50 \
             {} ms on 1 thread; {} threads {} ops/s (p50 {} ms, p99 {} ms){}",
            d.round_trip_ms
                .map_or_else(|| "-".into(), |v| format!("{v:.2}")),
            k.threads,
            rate(par.and_then(|p| p.ops_per_s)),
            millis(par.and_then(|p| p.p50_us)),
            millis(par.and_then(|p| p.p99_us)),
            par.and_then(|p| p.error.as_ref())
                .map_or_else(String::new, |e| format!(" error: {e}"))
        );
        if let Some(c) = &d.cpu {
            let _ = writeln!(o, "  {} threads directly, {}", k.threads, c.describe());
        }
    }
}

fn millis(us: Option<f64>) -> String {
    us.map_or_else(|| "-".into(), |v| format!("{:.1}", v / 1e3))
}

/// The aws-kms targets, each with the figures behind it.
pub fn kms_targets(k: &KmsResults) -> Vec<(TargetResult, String)> {
    let why = k.error.clone().unwrap_or_else(|| "not run".into());
    let finish = |t: TargetResult| {
        if t.value.is_none() {
            t.unmeasured(&why)
        } else {
            t
        }
    };
    let counted = |c: Option<&Counted>, name: &str, expect: f64| {
        let t = finish(TargetResult::with(
            format!("aws-kms: backend requests per {name}, after warm-up"),
            c.map(|c| c.per_call),
            "==",
            expect,
            "req/call",
        ));
        let detail = c.map_or_else(String::new, |c| {
            format!(
                "{} calls, {} requests, {} new connections; latency p50 {} ms, p99 {} ms",
                c.calls,
                c.requests,
                c.connections,
                millis(Some(c.latency.p50_ns as f64 / 1e3)),
                millis(Some(c.latency.p99_ns as f64 / 1e3)),
            )
        });
        (t, detail)
    };
    let mut out = vec![
        counted(k.sign.as_ref(), "C_Sign (CKM_ECDSA P-256)", 1.0),
        counted(k.find.as_ref(), "C_FindObjects by label", 0.0),
        counted(k.get_attributes.as_ref(), "C_GetAttributeValue", 0.0),
    ];
    let par = k.parallel.as_ref();
    out.push((
        finish(TargetResult::with(
            format!(
                "aws-kms: {} threads signing via one token / ({} / round trip)",
                k.threads, k.threads
            ),
            k.efficiency_pct,
            ">=",
            KMS_PARALLEL_TARGET,
            "%",
        )),
        format!(
            "{} ops/s (p50 {} ms, p99 {} ms) of ideal {} ops/s; round trip {} ms (1 thread, \
             C_Sign p50, one request each)",
            rate(par.and_then(|p| p.ops_per_s)),
            millis(par.and_then(|p| p.p50_us)),
            millis(par.and_then(|p| p.p99_us)),
            rate(k.ideal_ops_per_s),
            k.round_trip_ms
                .map_or_else(|| "-".into(), |v| format!("{v:.2}")),
        ),
    ));
    out.push((
        finish(TargetResult::with(
            format!(
                "aws-kms: TCP connections accepted during the {}-thread rounds",
                k.threads
            ),
            k.steady_connections.map(|c| c as f64),
            "<=",
            k.threads as f64,
            "connections",
        )),
        format!(
            "{} accepted before them (warm-up included); {} requests for {} timed ops{}",
            k.warm_connections
                .map_or_else(|| "-".into(), |c| c.to_string()),
            k.steady_requests
                .map_or_else(|| "-".into(), |c| thousands(c as f64)),
            k.steady_ops
                .map_or_else(|| "-".into(), |c| thousands(c as f64)),
            " (each round's own warm-up calls add requests)"
        ),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_compare_in_the_right_direction() {
        assert_eq!(
            TargetResult::new("x".into(), Some(2.0), true, 2.0).status,
            "met"
        );
        assert_eq!(
            TargetResult::new("x".into(), Some(1.99), true, 2.0).status,
            "NOT MET"
        );
        assert_eq!(
            TargetResult::new("x".into(), Some(0.1), false, 0.2).status,
            "met"
        );
        assert_eq!(
            TargetResult::new("x".into(), Some(0.3), false, 0.2).status,
            "NOT MET"
        );
        assert_eq!(
            TargetResult::new("x".into(), None, true, 2.0).status,
            "not measured"
        );
    }

    #[test]
    fn scaling_miss_is_inconclusive_only_on_a_busy_machine() {
        let busy = TargetResult::scaling("x".into(), Some(1.1), Some(1.05));
        assert_eq!(busy.status, "NOT MET");
        assert!(busy.note.is_some());
        let idle = TargetResult::scaling("x".into(), Some(1.1), Some(1.97));
        assert_eq!(idle.status, "NOT MET");
        assert!(idle.note.is_none());
        let met = TargetResult::scaling("x".into(), Some(1.9), Some(1.05));
        assert_eq!(met.status, "met");
        assert!(met.note.is_none());
    }

    #[test]
    fn number_formatting() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(micros(Some(1.234)), "1.23");
        assert_eq!(micros(Some(12.34)), "12.3");
        assert_eq!(micros(Some(1234.0)), "1,234");
        assert_eq!(ratio(Some(12.34)), "12.3×");
        assert_eq!(percent_change(110.0, 100.0), "+10.0%");
        assert_eq!(trim_float(2.0), "2");
        assert_eq!(trim_float(0.95), "0.95");
    }
}
