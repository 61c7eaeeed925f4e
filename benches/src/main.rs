//! hsmux-bench: throughput and latency of `libhsmux.so` next to SoftHSMv2, measured in
//! one interleaved run through the PKCS#11 C ABI, reported as ratios.
//!
//! The orchestrator (this process) never loads a module. Each module runs in a worker
//! child process of its own (`worker` sub-mode) that prepares its token once and then
//! serves timed measurements on request; the orchestrator asks the two workers in turn,
//! round after round, so both modules see the same machine noise. Start-up cost is
//! measured in a fresh child process per sample (`startup` sub-mode).
//!
//! Nothing here asserts on timings: this is a benchmark, run by `scripts/bench.sh`.

mod child;
mod ops;
mod p11;
mod proxy;
mod remote;
mod report;
mod stats;
mod token;

use child::{PopulateInfo, Reply, Request, SetupInfo, StartupSample};
use ops::Op;
use report::{
    ratio_target, Host, ModuleInfo, OpResult, Previous, RatioResult, Results, ScalingResult,
    StartupModule, StartupResult, TargetResult, STARTUP_RSS_TARGET, STARTUP_TIME_TARGET,
};
use stats::{median, RunStats};
use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

const USAGE: &str = "\
usage: hsmux-bench [options]

Runs every operation on libhsmux.so and on SoftHSMv2 (modules alternated, rounds
interleaved), prints the table and writes OUT/results.json (the previous one is kept as
OUT/results.prev.json and compared against).

The remote suite measures hsmux's `pkcs11` backend over SoftHSM against SoftHSM itself
(same vendor token and keys), and its `aws-kms` backend against LocalStack behind a
loopback proxy of the bench that delays and counts requests (needs --kms-endpoint;
scripts/bench.sh starts LocalStack).

options:
  --quick                 3 rounds × 150 ms, 3 start-up samples (default 5 × 500 ms, 5)
  --suite local|remote|all  which rows (default all)
  --rounds N              rounds per (operation, threads, module)
  --duration-ms N         timed duration of one measurement
  --warmup-ms N           untimed warm-up before each measurement (default 50, quick 20)
  --threads LIST          thread counts, comma-separated (default 1,2)
  --ops LIST              operation ids, comma-separated (default all):
                          OPS
  --hsmux PATH            hsmux module (default target/release/libhsmux.so)
  --softhsm PATH          reference module (default /usr/lib/softhsm/libsofthsm2.so)
  --out DIR               results directory (default target/bench)
  --work-dir DIR          where tokens and configs go (default: a new temp dir, removed)
  --find-keys N           keys on the token for C_FindObjects (default 1000)
  --startup-objects N     objects on the start-up token (default 10000)
  --startup-rounds N      fresh processes per module for start-up (0 skips it)
  --rev TEXT              source revision to record
  --kms-endpoint URL      LocalStack (http://127.0.0.1:PORT); without it the aws-kms rows
                          are not measured
  --kms-python PATH       a Python with boto3, to create the KMS key (default python3)
  --kms-threads N         threads signing through one aws-kms token (default 16)
  --kms-delay-ms N        delay the proxy adds to every request (default 10)
  --kms-duration-ms N     timed duration of one aws-kms round (default 2000, quick 1000)
  --kms-calls N           counted C_Sign calls after warm-up (default 100, quick 50)
  --kms-service-pid PID   LocalStack's PID: its CPU time (and its children's) is reported
";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("worker") => child::worker(&args[1..]),
        Some("populate") => child::populate(&args[1..]),
        Some("keygen") => child::keygen(&args[1..]),
        Some("startup") => child::startup(&args[1..]),
        Some("-h" | "--help" | "help") => {
            let ids: Vec<&str> = Op::ALL.iter().map(|o| o.id()).collect();
            print!("{}", USAGE.replace("OPS", &ids.join(",")));
            Ok(())
        }
        _ => parse(&args).and_then(|o| run(&o)),
    };
    if let Err(e) = result {
        eprintln!("hsmux-bench: {e}");
        std::process::exit(1);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Suite {
    Local,
    Remote,
    All,
}

impl Suite {
    fn name(self) -> &'static str {
        match self {
            Suite::Local => "local",
            Suite::Remote => "remote",
            Suite::All => "all",
        }
    }
    fn local(self) -> bool {
        self != Suite::Remote
    }
    fn remote(self) -> bool {
        self != Suite::Local
    }
}

#[derive(Debug)]
struct Options {
    quick: bool,
    suite: Suite,
    rounds: usize,
    duration_ms: u64,
    warmup_ms: u64,
    threads: Vec<usize>,
    ops: Vec<Op>,
    hsmux: PathBuf,
    softhsm: PathBuf,
    out: PathBuf,
    work_dir: Option<PathBuf>,
    find_keys: usize,
    startup_objects: usize,
    startup_rounds: usize,
    rev: Option<String>,
    kms_endpoint: Option<String>,
    kms_python: PathBuf,
    kms_threads: usize,
    kms_delay_ms: u64,
    kms_duration_ms: u64,
    kms_calls: u64,
    kms_service_pid: Option<u32>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = manifest.parent().unwrap_or(manifest).join("target");
    let mut flags: HashMap<&str, &str> = HashMap::new();
    let mut quick = false;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        if a == "--quick" {
            quick = true;
            i += 1;
            continue;
        }
        let known = [
            "--suite",
            "--rounds",
            "--duration-ms",
            "--warmup-ms",
            "--threads",
            "--ops",
            "--hsmux",
            "--softhsm",
            "--out",
            "--work-dir",
            "--find-keys",
            "--startup-objects",
            "--startup-rounds",
            "--rev",
            "--kms-endpoint",
            "--kms-python",
            "--kms-threads",
            "--kms-delay-ms",
            "--kms-duration-ms",
            "--kms-calls",
            "--kms-service-pid",
        ];
        if !known.contains(&a) {
            return Err(format!("unknown argument {a:?} (see --help)"));
        }
        let v = args.get(i + 1).ok_or(format!("{a} needs a value"))?;
        flags.insert(a, v);
        i += 2;
    }
    fn num<T: std::str::FromStr>(
        flags: &HashMap<&str, &str>,
        name: &str,
        default: T,
    ) -> Result<T, String> {
        match flags.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("{name}: not a number: {v:?}")),
        }
    }
    let suite = match flags.get("--suite").copied().unwrap_or("all") {
        "local" => Suite::Local,
        "remote" => Suite::Remote,
        "all" => Suite::All,
        s => return Err(format!("--suite: local, remote or all, not {s:?}")),
    };
    let threads = match flags.get("--threads") {
        None => vec![1, 2],
        Some(v) => v
            .split(',')
            .map(|t| match t.trim().parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!("--threads: bad count {t:?}")),
            })
            .collect::<Result<_, _>>()?,
    };
    let ops = match flags.get("--ops") {
        None => Op::ALL.to_vec(),
        Some(v) => v
            .split(',')
            .map(|id| Op::from_id(id.trim()).ok_or(format!("--ops: unknown operation {id:?}")))
            .collect::<Result<_, _>>()?,
    };
    let path = |name: &str, default: PathBuf| flags.get(name).map(PathBuf::from).unwrap_or(default);
    let opts = Options {
        quick,
        suite,
        rounds: num(&flags, "--rounds", if quick { 3 } else { 5 })?,
        duration_ms: num(&flags, "--duration-ms", if quick { 150 } else { 500 })?,
        warmup_ms: num(&flags, "--warmup-ms", if quick { 20 } else { 50 })?,
        threads,
        ops,
        hsmux: path("--hsmux", target.join("release/libhsmux.so")),
        softhsm: path(
            "--softhsm",
            PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"),
        ),
        out: path("--out", target.join("bench")),
        work_dir: flags.get("--work-dir").map(PathBuf::from),
        find_keys: num(&flags, "--find-keys", 1000)?,
        startup_objects: num(&flags, "--startup-objects", 10_000)?,
        startup_rounds: num(&flags, "--startup-rounds", if quick { 3 } else { 5 })?,
        rev: flags.get("--rev").map(|s| s.to_string()),
        kms_endpoint: flags.get("--kms-endpoint").map(|s| s.to_string()),
        kms_python: path("--kms-python", PathBuf::from("python3")),
        kms_threads: num(&flags, "--kms-threads", 16)?,
        kms_delay_ms: num(&flags, "--kms-delay-ms", 10)?,
        kms_duration_ms: num(&flags, "--kms-duration-ms", if quick { 1000 } else { 2000 })?,
        kms_calls: num(&flags, "--kms-calls", if quick { 50 } else { 100 })?,
        kms_service_pid: match flags.get("--kms-service-pid") {
            None => None,
            Some(v) => Some(
                v.parse()
                    .map_err(|_| format!("--kms-service-pid: not a PID: {v:?}"))?,
            ),
        },
    };
    if opts.kms_threads == 0 || opts.kms_calls == 0 {
        return Err("--kms-threads and --kms-calls must be at least 1".into());
    }
    if opts.rounds == 0 {
        return Err("--rounds must be at least 1".into());
    }
    if opts.ops.contains(&Op::FindByLabel) && opts.find_keys == 0 {
        return Err("--find-keys must be at least 1 to measure find_by_label".into());
    }
    Ok(opts)
}

/// One module under comparison.
struct Spec {
    id: &'static str,
    path: PathBuf,
}

/// Environment of a child: both modules' config variables, pointing at one profile's
/// files (each module reads only its own).
type Env = Vec<(&'static str, OsString)>;

/// A work directory removed on drop when this process created it.
struct WorkDir {
    path: PathBuf,
    remove: bool,
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn io(what: &str) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// Writes the hsmux and SoftHSM configs of one profile ("bench" or "startup"), each
/// with its own token store, and returns the environment that selects them.
fn write_profile(work: &Path, profile: &str) -> Result<Env, String> {
    let hsmux_config = work.join(format!("hsmux-{profile}.toml"));
    let store = work.join(format!("hsmux-{profile}-token"));
    // The default PIN KDF is kept on purpose: login is not measured.
    std::fs::write(
        &hsmux_config,
        format!(
            "[[token]]\nlabel = \"{profile}\"\nbackend = \"local\"\npath = \"{}\"\n",
            store.display()
        ),
    )
    .map_err(io("writing hsmux config"))?;
    let tokendir = work.join(format!("softhsm-{profile}-tokens"));
    std::fs::create_dir_all(&tokendir).map_err(io("creating SoftHSM tokendir"))?;
    let softhsm_conf = work.join(format!("softhsm-{profile}.conf"));
    std::fs::write(
        &softhsm_conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n\
             slots.removable = false\n",
            tokendir.display()
        ),
    )
    .map_err(io("writing SoftHSM config"))?;
    Ok(vec![
        ("HSMUX_CONFIG", hsmux_config.into()),
        ("SOFTHSM2_CONF", softhsm_conf.into()),
    ])
}

fn command(args: &[&str], env: &Env) -> Result<Command, String> {
    let exe = std::env::current_exe().map_err(io("finding the bench executable"))?;
    let mut cmd = Command::new(exe);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Ok(cmd)
}

/// A worker child process serving one module.
struct Worker {
    id: &'static str,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    dead: Option<String>,
}

impl Worker {
    fn spawn(spec: &Spec, env: &Env, find_keys: usize) -> Result<Worker, String> {
        Worker::spawn_on(spec, env, "bench", find_keys, false)
    }

    /// A worker on the token labelled `label`; `existing`: a token prepared before (its
    /// keys found by label) rather than one to initialise.
    fn spawn_on(
        spec: &Spec,
        env: &Env,
        label: &str,
        find_keys: usize,
        existing: bool,
    ) -> Result<Worker, String> {
        let path = spec.path.to_string_lossy();
        let find_keys = find_keys.to_string();
        let mut args = vec![
            "worker",
            "--module",
            &path,
            "--label",
            label,
            "--find-keys",
            &find_keys,
        ];
        if existing {
            args.push("--existing");
        }
        let mut child = command(&args, env)?
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(io("starting a worker"))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Ok(Worker {
            id: spec.id,
            child,
            stdin,
            stdout,
            dead: None,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn read(&mut self) -> Result<Reply, String> {
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .map_err(io("reading from a worker"))?;
        if n == 0 {
            let status = self.child.wait().map_err(io("waiting for a worker"))?;
            return Err(format!("{} worker exited ({status})", self.id));
        }
        serde_json::from_str(&line).map_err(|e| format!("bad reply {line:?}: {e}"))
    }

    fn request(&mut self, request: &Request) -> Result<Reply, String> {
        if let Some(e) = &self.dead {
            return Err(e.clone());
        }
        let result = (|| {
            let mut line = serde_json::to_string(request).map_err(|e| e.to_string())?;
            line.push('\n');
            self.stdin
                .write_all(line.as_bytes())
                .and_then(|()| self.stdin.flush())
                .map_err(io("writing to a worker"))?;
            self.read()
        })();
        if let Err(e) = &result {
            self.dead = Some(e.clone());
        }
        result
    }

    fn quit(mut self) {
        if self.dead.is_none() {
            match self.request(&Request::Quit) {
                Ok(Reply::Done) => {}
                other => eprintln!("{} worker did not finalize cleanly: {other:?}", self.id),
            }
        }
        drop(self.stdin);
        let _ = self.child.wait();
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Measurements of one (operation, threads, module), indexed by round.
type Samples = HashMap<(Op, usize, usize), Vec<Option<RunStats>>>;

/// Start-up samples per module, and why a module could not be measured.
type Startup = (Vec<Vec<StartupSample>>, Vec<Option<String>>);

fn run(o: &Options) -> Result<(), String> {
    let started_unix = now_unix();
    let loadavg_start = loadavg();
    let specs = [
        Spec {
            id: "hsmux",
            path: o.hsmux.clone(),
        },
        Spec {
            id: "softhsm",
            path: o.softhsm.clone(),
        },
    ];
    if o.suite.local() {
        let load: f64 = loadavg_start
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        if load > 0.5 {
            eprintln!(
                "note: load average {load:.2} before starting: something else is using the \
                 CPU, expect noisy numbers (the ratios stay comparable)"
            );
        }
    }
    for s in &specs {
        if o.suite.local() && !s.path.is_file() {
            return Err(format!("{} module not found at {}", s.id, s.path.display()));
        }
    }
    let work = match &o.work_dir {
        Some(p) => WorkDir {
            path: p.clone(),
            remove: false,
        },
        None => WorkDir {
            path: std::env::temp_dir().join(format!(
                "hsmux-bench-{}-{}",
                std::process::id(),
                started_unix
            )),
            remove: true,
        },
    };
    std::fs::create_dir_all(&work.path).map_err(io("creating the work directory"))?;

    let mut modules: Vec<ModuleInfo> = specs
        .iter()
        .map(|s| ModuleInfo {
            id: s.id.to_string(),
            path: s.path.display().to_string(),
            setup: SetupInfo::default(),
            startup_populate: None,
        })
        .collect();
    let mut samples: Samples = HashMap::new();
    let mut cpu = Vec::new();
    let mut errors: HashMap<(Op, usize, usize), String> = HashMap::new();
    let mut startup_samples: Vec<Vec<StartupSample>> = vec![Vec::new(); specs.len()];
    let mut startup_errors: Vec<Option<String>> = vec![None; specs.len()];
    let startup_wanted = o.suite.local() && o.startup_rounds > 0 && o.startup_objects > 0;

    if o.suite.local() {
        let bench_env = write_profile(&work.path, "bench")?;
        let startup_env = write_profile(&work.path, "startup")?;

        // Preparation, all at once: the start-up tokens are filled while the workers
        // prepare their bench tokens. Nothing is timed yet.
        eprintln!(
            "preparing: bench tokens ({} keys for the find test) and start-up tokens ({} objects) \
             on both modules, in {}",
            o.find_keys,
            if startup_wanted { o.startup_objects } else { 0 },
            work.path.display()
        );
        let mut populating = Vec::new();
        if startup_wanted {
            for s in &specs {
                let count = o.startup_objects.to_string();
                let path = s.path.to_string_lossy();
                let child = command(
                    &[
                        "populate", "--module", &path, "--label", "startup", "--count", &count,
                    ],
                    &startup_env,
                )?
                .stdout(Stdio::piped())
                .spawn()
                .map_err(io("starting populate"))?;
                populating.push(child);
            }
        }
        let mut workers = Vec::new();
        for s in &specs {
            workers.push(Worker::spawn(s, &bench_env, o.find_keys)?);
        }
        for (w, info) in workers.iter_mut().zip(modules.iter_mut()) {
            match w.read() {
                Ok(Reply::Ready(setup)) => {
                    eprintln!(
                        "  {}: token {:.2} s, key generation {:.2} s, {} find keys {:.2} s",
                        w.id, setup.token_s, setup.keygen_s, setup.find_keys, setup.find_keys_s
                    );
                    info.setup = setup;
                }
                other => return Err(format!("{} worker failed to prepare: {other:?}", w.id)),
            }
        }
        for (i, child) in populating.into_iter().enumerate() {
            let out = child
                .wait_with_output()
                .map_err(io("waiting for populate"))?;
            let parsed: Result<PopulateInfo, String> = if out.status.success() {
                serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
            } else {
                Err(format!("populate exited with {}", out.status))
            };
            match parsed {
                Ok(p) => {
                    eprintln!(
                        "  {}: {} start-up objects in {:.1} s",
                        specs[i].id, p.objects, p.seconds
                    );
                    modules[i].startup_populate = Some(p);
                }
                Err(e) => startup_errors[i] = Some(e),
            }
        }

        measure_rounds(
            &Plan::new(o, &o.ops, &o.threads, true),
            &mut workers,
            &mut samples,
            &mut errors,
            &mut cpu,
        );
        for w in workers {
            w.quit();
        }

        if startup_wanted {
            let find = token::data_object_label(o.startup_objects / 2);
            // Round 0 is an untimed warm-up per module (page and dentry caches), the
            // same for both.
            for round in 0..=o.startup_rounds {
                for mi in order(round, specs.len()) {
                    if startup_errors[mi].is_some() {
                        continue;
                    }
                    let path = specs[mi].path.to_string_lossy();
                    let out = command(
                        &[
                            "startup", "--module", &path, "--label", "startup", "--find", &find,
                        ],
                        &startup_env,
                    )?
                    .stderr(Stdio::inherit())
                    .output()
                    .map_err(io("running startup"))?;
                    let parsed: Result<StartupSample, String> = if out.status.success() {
                        serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
                    } else {
                        Err(format!("startup child exited with {}", out.status))
                    };
                    match parsed {
                        Ok(s) => {
                            eprintln!(
                                "[start-up {}] {}: {:.1} ms, peak RSS {:.1} MiB",
                                if round == 0 {
                                    "warm-up, not counted".to_string()
                                } else {
                                    format!("{round}/{}", o.startup_rounds)
                                },
                                specs[mi].id,
                                s.total_ms,
                                s.peak_rss_kib as f64 / 1024.0
                            );
                            if round > 0 {
                                startup_samples[mi].push(s);
                            }
                        }
                        Err(e) => startup_errors[mi] = Some(e),
                    }
                }
            }
        }
    }

    // The remote suite runs after the local one, so the local numbers never share the
    // machine with the proxy and LocalStack's work.
    let remote = if o.suite.remote() {
        Some(remote::run(o, &work.path))
    } else {
        None
    };

    let results = assemble(
        o,
        &specs,
        modules,
        &samples,
        &errors,
        &cpu,
        startup_wanted.then_some((startup_samples, startup_errors)),
        remote,
        started_unix,
        loadavg_start,
    );
    write_outputs(o, &results)
}

/// Module order in `round`: alternated so neither module always goes first.
fn order(round: usize, n: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    if round % 2 == 1 {
        v.reverse();
    }
    v
}

/// What [`measure_rounds`] measures.
struct Plan<'a> {
    rounds: usize,
    duration_ms: u64,
    warmup_ms: u64,
    threads: &'a [usize],
    ops: &'a [Op],
    /// Time a pure-CPU loop at 1 and 2 threads before each signature operation.
    machine: bool,
}

impl<'a> Plan<'a> {
    fn new(o: &Options, ops: &'a [Op], threads: &'a [usize], machine: bool) -> Self {
        Plan {
            rounds: o.rounds,
            duration_ms: o.duration_ms,
            warmup_ms: o.warmup_ms,
            threads,
            ops,
            machine,
        }
    }
}

fn measure_rounds(
    plan: &Plan,
    workers: &mut [Worker],
    samples: &mut Samples,
    errors: &mut HashMap<(Op, usize, usize), String>,
    cpu: &mut Vec<(Option<f64>, Option<f64>)>,
) {
    for round in 0..plan.rounds {
        for &op in plan.ops {
            let mut progress = format!("[round {}/{}] {:<20}", round + 1, plan.rounds, op.id());
            if plan.machine
                && op.is_sign()
                && plan.threads.contains(&1)
                && plan.threads.contains(&2)
            {
                // The machine's own 1 -> 2 thread scaling just before the measurements
                // the scaling target is read from.
                let spin = |t: usize| {
                    ops::measure_cpu(
                        t,
                        std::time::Duration::from_millis(plan.duration_ms / 2 + 1),
                    )
                    .ok()
                    .map(|s| s.ops_per_s)
                };
                let (one, two) = (spin(1), spin(2));
                if let (Some(a), Some(b)) = (one, two) {
                    let _ = write!(progress, " machine {:.2}×", b / a);
                }
                cpu.push((one, two));
            }
            for &threads in plan.threads {
                let _ = write!(progress, " {threads}T");
                for mi in order(round, workers.len()) {
                    let key = (op, threads, mi);
                    let mut result = None;
                    if let std::collections::hash_map::Entry::Vacant(slot) = errors.entry(key) {
                        let reply = workers[mi].request(&Request::Measure {
                            op: op.id().to_string(),
                            threads,
                            duration_ms: plan.duration_ms,
                            warmup_ms: plan.warmup_ms,
                        });
                        match reply {
                            Ok(Reply::Measured(s)) => result = Some(s),
                            Ok(Reply::Failed(e)) => {
                                eprintln!("{} {} {threads}T: {e}", workers[mi].id, op.id());
                                slot.insert(e);
                            }
                            Ok(other) => {
                                slot.insert(format!("unexpected reply {other:?}"));
                            }
                            Err(e) => {
                                eprintln!("{}: {e}", workers[mi].id);
                                slot.insert(e);
                            }
                        }
                    }
                    let _ = write!(
                        progress,
                        " {} {}",
                        workers[mi].id,
                        result.map_or_else(|| "-".into(), |s| format!("{:.0}/s", s.ops_per_s))
                    );
                    let entry = samples.entry(key).or_default();
                    entry.resize(round, None);
                    entry.push(result);
                }
            }
            eprintln!("{progress}");
        }
    }
}

use std::fmt::Write as _;

fn median_of(values: impl Iterator<Item = f64>) -> Option<f64> {
    median(&values.collect::<Vec<_>>())
}

/// One (operation, threads, module)'s rounds summarised.
fn op_result(
    op: Op,
    threads: usize,
    module: &str,
    rounds: Vec<RunStats>,
    error: Option<String>,
) -> OpResult {
    OpResult {
        op: op.id().into(),
        threads,
        module: module.into(),
        ops_per_s: median_of(rounds.iter().map(|s| s.ops_per_s)),
        p50_us: median_of(rounds.iter().map(|s| s.p50_ns as f64 / 1e3)),
        p99_us: median_of(rounds.iter().map(|s| s.p99_ns as f64 / 1e3)),
        rounds,
        error,
    }
}

/// Per (operation, threads): each module's medians, and the ratio of the first module to
/// the second (the median of per-round ratios, each from two back-to-back measurements).
fn pair_results(
    op_list: &[Op],
    thread_list: &[usize],
    modules: &[&str],
    samples: &Samples,
    errors: &HashMap<(Op, usize, usize), String>,
) -> (Vec<OpResult>, Vec<RatioResult>) {
    let empty = Vec::new();
    let rounds_of = |op: Op, t: usize, mi: usize| samples.get(&(op, t, mi)).unwrap_or(&empty);
    let mut ops = Vec::new();
    let mut ratios = Vec::new();
    for &op in op_list {
        for &t in thread_list {
            for (mi, id) in modules.iter().enumerate() {
                let rounds: Vec<RunStats> =
                    rounds_of(op, t, mi).iter().flatten().copied().collect();
                ops.push(op_result(
                    op,
                    t,
                    id,
                    rounds,
                    errors.get(&(op, t, mi)).cloned(),
                ));
            }
            let per_round: Vec<f64> = rounds_of(op, t, 0)
                .iter()
                .zip(rounds_of(op, t, 1))
                .filter_map(|(x, y)| Some(x.as_ref()?.ops_per_s / y.as_ref()?.ops_per_s))
                .collect();
            ratios.push(RatioResult {
                op: op.id().into(),
                threads: t,
                ratio: median(&per_round),
                rounds: per_round,
            });
        }
    }
    (ops, ratios)
}

#[allow(clippy::too_many_arguments)]
fn assemble(
    o: &Options,
    specs: &[Spec],
    modules: Vec<ModuleInfo>,
    samples: &Samples,
    errors: &HashMap<(Op, usize, usize), String>,
    cpu: &[(Option<f64>, Option<f64>)],
    startup: Option<Startup>,
    remote: Option<report::RemoteResults>,
    started_unix: u64,
    loadavg_start: String,
) -> Results {
    let empty = Vec::new();
    let rounds_of = |op: Op, t: usize, mi: usize| samples.get(&(op, t, mi)).unwrap_or(&empty);
    let mut ops = Vec::new();
    let mut ratios = Vec::new();
    let mut scaling = Vec::new();
    let mut targets = Vec::new();
    let (a, b) = (specs[0].id, specs[1].id);

    let machine_scaling = (o.suite.local() && !cpu.is_empty()).then(|| {
        let rounds: Vec<f64> = cpu
            .iter()
            .filter_map(|&(one, two)| Some(two? / one?))
            .collect();
        ScalingResult {
            op: "cpu_loop".into(),
            module: "none".into(),
            ratio: median(&rounds),
            rounds,
        }
    });

    let machine = machine_scaling.as_ref().and_then(|m| m.ratio);

    if o.suite.local() {
        let ids: Vec<&str> = specs.iter().map(|s| s.id).collect();
        (ops, ratios) = pair_results(&o.ops, &o.threads, &ids, samples, errors);
        for rr in &ratios {
            let op = Op::from_id(&rr.op).expect("known op");
            let t = rr.threads;
            if let Some(threshold) = ratio_target(op) {
                targets.push(TargetResult::new(
                    format!("{}, {t} thread{}: {a} / {b}", op.title(), plural(t)),
                    rr.ratio,
                    true,
                    threshold,
                ));
            }
        }
        if o.threads.contains(&1) && o.threads.contains(&2) {
            for &op in &o.ops {
                for (mi, spec) in specs.iter().enumerate() {
                    let per_round: Vec<f64> = rounds_of(op, 1, mi)
                        .iter()
                        .zip(rounds_of(op, 2, mi))
                        .filter_map(|(one, two)| {
                            Some(two.as_ref()?.ops_per_s / one.as_ref()?.ops_per_s)
                        })
                        .collect();
                    let r = median(&per_round);
                    if mi == 0 && op.is_sign() {
                        targets.push(TargetResult::scaling(
                            format!("{}: {a} 2 threads / 1 thread", op.title()),
                            r,
                            machine,
                        ));
                    }
                    scaling.push(ScalingResult {
                        op: op.id().into(),
                        module: spec.id.into(),
                        ratio: r,
                        rounds: per_round,
                    });
                }
            }
        }
    }

    let startup = startup.map(|(all, errs)| {
        let per_module: Vec<StartupModule> = specs
            .iter()
            .zip(all)
            .zip(errs)
            .map(|((spec, samples), error)| {
                let m = |f: fn(&StartupSample) -> f64| median_of(samples.iter().map(f));
                StartupModule {
                    module: spec.id.into(),
                    init_ms: m(|s| s.init_ms),
                    find_ms: m(|s| s.find_ms),
                    total_ms: m(|s| s.total_ms),
                    load_ms: m(|s| s.load_ms),
                    peak_rss_kib: m(|s| s.peak_rss_kib as f64),
                    base_rss_kib: m(|s| s.base_rss_kib as f64),
                    samples,
                    error,
                }
            })
            .collect();
        let div = |x: Option<f64>, y: Option<f64>| Some(x? / y?);
        let time_ratio = div(per_module[0].total_ms, per_module[1].total_ms);
        let rss_ratio = div(per_module[0].peak_rss_kib, per_module[1].peak_rss_kib);
        let objects = report_objects(o.startup_objects);
        targets.push(TargetResult::new(
            format!("start-up time with {objects} objects: {a} / {b}"),
            time_ratio,
            false,
            STARTUP_TIME_TARGET,
        ));
        targets.push(TargetResult::new(
            format!("start-up peak RSS with {objects} objects: {a} / {b}"),
            rss_ratio,
            false,
            STARTUP_RSS_TARGET,
        ));
        StartupResult {
            objects: o.startup_objects,
            rounds: o.startup_rounds,
            modules: per_module,
            time_ratio,
            rss_ratio,
        }
    });

    if let Some(r) = &remote {
        targets.extend(remote::targets(r));
    }

    Results {
        schema: 1,
        started_unix,
        finished_unix: now_unix(),
        mode: if o.quick { "quick" } else { "full" }.into(),
        suite: o.suite.name().into(),
        rounds: o.rounds,
        duration_ms: o.duration_ms,
        warmup_ms: o.warmup_ms,
        threads: o.threads.clone(),
        find_keys: o.find_keys,
        startup_objects: o.startup_objects,
        rev: o.rev.clone(),
        host: Host {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            loadavg_start,
            loadavg_end: loadavg(),
        },
        modules,
        ops,
        ratios,
        scaling,
        machine_scaling,
        startup,
        targets,
        remote,
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn report_objects(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Prints the table and writes OUT/results.json, keeping the previous one as
/// results.prev.json (and comparing against it).
fn write_outputs(o: &Options, results: &Results) -> Result<(), String> {
    std::fs::create_dir_all(&o.out).map_err(io("creating the results directory"))?;
    let current = o.out.join("results.json");
    let prev_path = o.out.join("results.prev.json");
    let prev = std::fs::read_to_string(&current)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .map(|v| Previous::new(v, results));
    if current.exists() {
        std::fs::rename(&current, &prev_path).map_err(io("keeping the previous results"))?;
    }
    let json = serde_json::to_string_pretty(results).map_err(|e| e.to_string())?;
    std::fs::write(&current, json + "\n").map_err(io("writing results.json"))?;
    let table = report::render(results, prev.as_ref());
    std::fs::write(o.out.join("results.txt"), &table).map_err(io("writing results.txt"))?;
    println!("{table}");
    println!("results: {}", current.display());
    Ok(())
}
