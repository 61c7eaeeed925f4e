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
    /// Rows of the remote suite, which are not measured yet.
    pub remote: Vec<Planned>,
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
    /// ">=" or "<=".
    pub cmp: String,
    /// The bound.
    pub threshold: f64,
    /// "met", "NOT MET" or "not measured: …".
    pub status: String,
    /// Why a verdict cannot be trusted, when the run itself says so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl TargetResult {
    /// Evaluates `value cmp threshold`.
    pub fn new(name: String, value: Option<f64>, at_least: bool, threshold: f64) -> Self {
        let status = match value {
            None => "not measured".to_string(),
            Some(v) if (at_least && v >= threshold) || (!at_least && v <= threshold) => {
                "met".to_string()
            }
            Some(_) => "NOT MET".to_string(),
        };
        TargetResult {
            name,
            value,
            cmp: if at_least { ">=" } else { "<=" }.to_string(),
            threshold,
            status,
            note: None,
        }
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
        format!(
            "{}{}×",
            if self.cmp == ">=" { "≥" } else { "≤" },
            trim_float(self.threshold)
        )
    }
}

/// A row of a suite that cannot be measured yet.
#[derive(Debug, Serialize)]
pub struct Planned {
    /// Suite it belongs to.
    pub suite: String,
    /// What it will measure.
    pub name: String,
    /// Its target.
    pub target: String,
    /// Why it is not measured.
    pub status: String,
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
        let _ = writeln!(
            o,
            "{:<35} {:>3} | {:>11} {:>8} {:>8} | {:>11} {:>8} {:>8} | {:>8} | {:<15} | vs previous run",
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
        let _ = writeln!(o, "{}", "-".repeat(150));
        let mut last_op = "";
        for rr in &r.ratios {
            let op = Op::from_id(&rr.op).expect("known op");
            let get = |m: &str| {
                r.ops
                    .iter()
                    .find(|x| x.op == rr.op && x.threads == rr.threads && x.module == m)
            };
            let (ra, rb) = (get(a), get(b));
            let target = match ratio_target(op) {
                None => String::new(),
                Some(t) => {
                    let tr = TargetResult::new(String::new(), rr.ratio, true, t);
                    format!("{} {}", tr.bound(), tr.status)
                }
            };
            let cols = |x: Option<&OpResult>| match x {
                Some(x) if x.error.is_some() => {
                    let e = x.error.as_deref().unwrap_or("");
                    let e = if e.contains("CKR_MECHANISM_INVALID") {
                        "n/a (CKR_MECHANISM_INVALID)".to_string()
                    } else {
                        format!("error: {e}")
                    };
                    format!("{:<29}", e.chars().take(29).collect::<String>())
                }
                Some(x) => format!(
                    "{:>11} {:>8} {:>8}",
                    rate(x.ops_per_s),
                    micros(x.p50_us),
                    micros(x.p99_us)
                ),
                None => format!("{:>11} {:>8} {:>8}", "-", "-", "-"),
            };
            let versus = prev
                .and_then(|p| {
                    let now = ra?.ops_per_s?;
                    let before = p.ops_per_s(&rr.op, rr.threads, a)?;
                    Some(format!(
                        "{a} {}{}",
                        percent_change(now, before),
                        p.ratio(&rr.op, rr.threads)
                            .map_or_else(String::new, |x| format!(
                                ", ratio was {}",
                                ratio(Some(x))
                            ))
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
                cols(ra),
                cols(rb),
                ratio(rr.ratio),
                target,
                versus
            );
        }
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

    if !r.targets.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(o, "targets (ratios from this run):");
        for t in &r.targets {
            let before = prev
                .and_then(|p| p.target(&t.name))
                .map_or_else(String::new, |v| {
                    format!("   (previous run {})", ratio(Some(v)))
                });
            let note = t
                .note
                .as_ref()
                .map_or_else(String::new, |n| format!(" ({n})"));
            let _ = writeln!(
                o,
                "  {:<66} {:>8}  {:<6} {}{note}{}",
                t.name,
                ratio(t.value),
                t.bound(),
                t.status,
                before
            );
        }
    }
    if !r.remote.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(o, "remote suite:");
        for p in &r.remote {
            let _ = writeln!(o, "  {:<90} {:<8} {}", p.name, p.target, p.status);
        }
    }
    o
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
