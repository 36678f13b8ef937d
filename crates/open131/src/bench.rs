//! Load generator: `open131 bench kyc`.
//!
//! Requests are built and signed *before* the timed window (RSA signing costs
//! ~0.4 ms on the client, far more than the server's verify), then sent by
//! `concurrency` tasks over keep-alive connections. Reports requests/s and
//! p50/p99 latency per phase.
//!
//! With `--ceiling URL` every write phase first sends the same pre-signed
//! requests, with the same load generator, to the ceiling server (the
//! minimal signed, durable writer of `../shared/bench/ceiling`, started with
//! the project's public key) and prints open131's ratio to it: the
//! performance goals are ratios measured in one run, because this machine's
//! speed varies by tens of per cent from hour to hour.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Subcommand;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use open131_domain::ident::Inn;
use open131_store::layout::DataDir;
use open131_store::Location;
use open131_wire::headers;
use open131_wire::sign::SigningKey;

/// Which server and project a benchmark loads, and how hard.
#[derive(clap::Args, Debug)]
pub struct Target {
    /// The server; several (comma-separated or repeated) for nodes sharing one
    /// database: request `i` goes to node `i mod n`.
    #[arg(long, default_value = "http://127.0.0.1:8131", value_delimiter = ',')]
    pub url: Vec<String>,
    #[arg(long, default_value = "demo")]
    pub project: String,
    /// Private key of the project (default: the demo key in the data directory).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// The ceiling server to measure beside open131, e.g.
    /// `http://127.0.0.1:9131` for `ceiling serve --port 9131 --verify awslc
    /// --pubkey <the project's public key> --db FILE --sync full`: each write
    /// phase sends it the same signed requests first and prints the ratio.
    #[arg(long)]
    pub ceiling: Option<String>,
    /// Process ids of the open131 servers (Linux): each write phase that
    /// prints a ratio to the ceiling (sessions, KYC checks, payouts) then also
    /// prints the CPU time they used per request, beside the ceiling's when
    /// `--ceiling-pid` names it.
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    /// Process id of the ceiling server (Linux), for its CPU time per request.
    #[arg(long)]
    pub ceiling_pid: Option<u32>,
}

/// A [`Target`] made ready: the signing key read, the URL normalised.
pub(crate) struct Loaded {
    pub key: SigningKey,
    /// Base URLs of the nodes, without a trailing slash.
    pub bases: Vec<String>,
    pub project: String,
    pub concurrency: usize,
    /// The ceiling's base URL, without a trailing slash.
    pub ceiling: Option<String>,
    /// Processes whose CPU time a phase of open131's requests is charged with.
    pub server_pids: Vec<u32>,
    /// The same for the ceiling's phase.
    pub ceiling_pids: Vec<u32>,
}

impl Target {
    pub(crate) fn load(self, data_dir: &Path) -> anyhow::Result<Loaded> {
        let key_path = self.key.unwrap_or_else(|| DataDir::new(data_dir).demo_key());
        let key = SigningKey::from_pem(
            &std::fs::read_to_string(&key_path).with_context(|| format!("reading {}", key_path.display()))?,
        )?;
        Ok(Loaded {
            key,
            bases: self.url.iter().map(|u| u.trim_end_matches('/').to_string()).collect(),
            project: self.project,
            concurrency: self.concurrency.max(1),
            ceiling: self.ceiling.map(|u| u.trim_end_matches('/').to_string()),
            server_pids: self.server_pid,
            ceiling_pids: self.ceiling_pid.into_iter().collect(),
        })
    }
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Signed `session/create` (durable creations, each body distinct and
    /// pre-signed): the request the ceiling server models.
    Sessions {
        #[command(flatten)]
        target: Target,
        /// Sessions to create.
        #[arg(long, default_value_t = 100_000)]
        sessions: usize,
    },
    /// POST check (durable creations) then GET check/{id} (status reads).
    Kyc {
        #[command(flatten)]
        target: Target,
        /// Distinct checks to create (each pre-signed).
        #[arg(long, default_value_t = 20_000)]
        checks: usize,
        /// Status reads to send after the creations.
        #[arg(long, default_value_t = 100_000)]
        reads: usize,
    },
    /// Complete card payment flows: signed `session/init/payment`, the bank's
    /// authorization (a hold), signed `session/capture`, until every payment
    /// is finished. Run the server with `--payout-delay 0`.
    Payments {
        #[command(flatten)]
        target: Target,
        /// Payments to run through (each request pre-signed).
        #[arg(long, default_value_t = 10_000)]
        payments: usize,
    },
    /// Signed `session/init/payout` (creations), `session/status` (reads), then
    /// webhook deliveries to a receiver in this process that verifies each signature.
    /// Needs the server's data directory (`--data-dir`) to point the project's
    /// webhook URL at the receiver.
    Payouts {
        #[command(flatten)]
        target: Target,
        /// Payouts to create (each pre-signed).
        #[arg(long, default_value_t = 20_000)]
        payouts: usize,
        /// Status reads (each pre-signed).
        #[arg(long, default_value_t = 50_000)]
        reads: usize,
    },
    /// A day's payouts register of many operations, written from a seeded
    /// ledger: rows/s and peak memory (no server needed).
    Reports {
        /// Payouts in the day.
        #[arg(long, default_value_t = 1_000_000)]
        operations: u64,
        /// Also write it as XLSX.
        #[arg(long)]
        xlsx: bool,
    },
}

pub(crate) type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

pub async fn run(location: &Location, data_dir: &Path, cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Sessions { target, sessions } => create_sessions(target.load(data_dir)?, sessions).await,
        BenchCommand::Kyc { target, checks, reads } => kyc(target.load(data_dir)?, checks, reads).await,
        BenchCommand::Payments { target, payments } => {
            crate::bench_payments::run(location, target.load(data_dir)?, payments).await
        }
        BenchCommand::Payouts { target, payouts, reads } => {
            crate::bench_payouts::run(location, data_dir, target.load(data_dir)?, payouts, reads).await
        }
        BenchCommand::Reports { operations, xlsx } => crate::bench_reports::run(location, operations, xlsx).await,
    }
}

/// `path` on each node, for request `i` to take `uris[i % uris.len()]`.
pub(crate) fn node_uris(bases: &[String], path: &str) -> anyhow::Result<Vec<hyper::Uri>> {
    if bases.is_empty() {
        bail!("--url names no server");
    }
    Ok(bases.iter().map(|b| format!("{b}{path}").parse()).collect::<Result<_, _>>()?)
}

/// `session/create` with the body of the ceiling's benchmark
/// (`../shared/bench/session-create.json`), each one's metadata distinct.
async fn create_sessions(target: Loaded, sessions: usize) -> anyhow::Result<()> {
    let t = Instant::now();
    let signed = parallel(sessions, |i| {
        let body = serde_json::to_vec(&serde_json::json!({
            "amount_details": {"amount": 10000, "currency": "rub"},
            "payout_details": {
                "payment_method": {"type": "card", "card": {"type": "bank_card", "bank_card": {"number": "4242424242424242"}}},
                "recipient": {"full_name": "Ivan Petrov"}
            },
            "participant_details": {"recipient": {"full_name": "Ivan Petrov", "reference": "user_42"}},
            "metadata": {"order": i.to_string()}
        }))?;
        let sign = target.key.sign_base64(&body)?;
        Ok((body, sign))
    })?;
    println!("pre-signed {sessions} sessions in {:.1}s (outside the timed window)", t.elapsed().as_secs_f64());
    let signed: Signed = Arc::new(signed);
    let path = "/api/v1/session/create";
    let ceiling = ceiling_phase(&target, path, &signed, sessions).await?;
    let (report, _) = signed_posts(&target, path, signed, sessions, read_ok).await?;
    report.print("POST /api/v1/session/create (sessions created)");
    report.print_ratio(ceiling.as_ref());
    if report.requests == report.errors {
        bail!("no session was created; are the servers at {:?} and project {:?} right?", target.bases, target.project);
    }
    Ok(())
}

async fn kyc(target: Loaded, checks: usize, reads: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    let bodies = presign(&target.key, checks)?;
    println!("pre-signed {checks} checks in {:.1}s (outside the timed window)", started.elapsed().as_secs_f64());
    // The ceiling reads its signature from the header: the same bodies, signed
    // over their bytes (the KYC API signs inside the body).
    let ceiling = match target.ceiling {
        Some(_) => {
            let signed = parallel(checks, |i| Ok((bodies[i].clone(), target.key.sign_base64(&bodies[i])?)))?;
            ceiling_phase(&target, "/api/v1.1/check", &Arc::new(signed), checks).await?
        }
        None => None,
    };
    let Loaded { bases, project, concurrency, server_pids, .. } = target;

    let client = http_client(concurrency);

    let post_uris = node_uris(&bases, "/api/v1.1/check")?;
    let bodies = Arc::new(bodies);
    let (report, ids) = metered(
        &server_pids,
        phase(
            &client,
            concurrency,
            checks,
            {
                let bodies = bodies.clone();
                let project = project.clone();
                move |i| {
                    hyper::Request::post(post_uris[i % post_uris.len()].clone())
                        .header("content-type", "application/json")
                        .header(headers::PROJECT, project.as_str())
                        .body(Full::new(Bytes::from(bodies[i].clone())))
                }
            },
            kyc_id,
        ),
    )
    .await?;
    report.print("POST /api/v1.1/check (durable creations)");
    report.print_ratio(ceiling.as_ref());
    if ids.is_empty() {
        bail!("no check was created; are the servers at {bases:?} and project {project:?} right?");
    }

    let ids = Arc::new(ids);
    let (report, _) = phase(
        &client,
        concurrency,
        reads,
        {
            let ids = ids.clone();
            move |i| {
                let base = &bases[i % bases.len()];
                hyper::Request::get(format!("{base}/api/v1.1/check/{}", ids[i % ids.len()]))
                    .header(headers::PROJECT, project.as_str())
                    .body(Full::new(Bytes::new()))
            }
        },
        read_ok,
    )
    .await?;
    report.print("GET /api/v1.1/check/{id} (status reads)");
    Ok(())
}

/// A keep-alive HTTP/1 client with up to `concurrency` pooled connections.
pub(crate) fn http_client(concurrency: usize) -> HttpClient {
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).pool_max_idle_per_host(concurrency).build(connector)
}

/// The two fields of an answer the load generator reads. Why typed: serde
/// skips the rest without building it, where a `Value` would allocate the
/// whole answer; the ceiling's answers are only counted, so parsing open131's
/// into trees would charge the shared cores for work the ceiling's run does
/// not have.
#[derive(serde::Deserialize)]
struct Answer<'a> {
    #[serde(borrow)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow, alias = "data")]
    session: Option<Identified<'a>>,
}

#[derive(serde::Deserialize)]
struct Identified<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
}

/// Whether an answer is HTTP 200 with a `status` that `good` accepts, and
/// the `id` of its `session` (the KYC API's `data`). The status is only
/// compared, never copied.
fn judged(status: u16, body: &[u8], good: impl Fn(&str) -> bool) -> (bool, Option<String>) {
    match serde_json::from_slice::<Answer>(body) {
        Ok(a) => {
            (status == 200 && a.status.as_deref().is_some_and(good), a.session.and_then(|s| s.id).map(Cow::into_owned))
        }
        Err(_) => (false, None),
    }
}

/// A KYC answer is good when pending or ok; its id is `data.id`.
fn kyc_id(status: u16, body: &[u8]) -> (bool, Option<String>) {
    judged(status, body, |said| matches!(said, "pending" | "ok"))
}

/// A main-API answer is good when it says ok; its id is `session.id`.
pub(crate) fn session_id(status: u16, body: &[u8]) -> (bool, Option<String>) {
    judged(status, body, |said| said == "ok")
}

/// A read is good when it answers HTTP 200 with `"status":"ok"` or `"pending"`
/// first; checked on the bytes so the load generator spends no time parsing.
pub(crate) fn read_ok(status: u16, body: &[u8]) -> (bool, Option<String>) {
    let ok = body.starts_with(br#"{"status":"ok""#) || body.starts_with(br#"{"status":"pending""#);
    (status == 200 && ok, None)
}

/// This machine's cores (2 when it cannot tell).
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
}

/// Runs `f(i)` for `0..n` on every core, keeping the order.
pub(crate) fn parallel<T: Send>(n: usize, f: impl Fn(usize) -> anyhow::Result<T> + Sync) -> anyhow::Result<Vec<T>> {
    let threads = cores();
    let chunk = n.div_ceil(threads.max(1)).max(1);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .step_by(chunk)
            .map(|from| scope.spawn(move || (from..(from + chunk).min(n)).map(f).collect::<anyhow::Result<Vec<T>>>()))
            .collect();
        let mut all = Vec::with_capacity(n);
        for h in handles {
            all.extend(h.join().map_err(|_| anyhow::anyhow!("a worker thread panicked"))??);
        }
        Ok(all)
    })
}

/// Distinct, valid v1.1 checks, signed on all cores.
fn presign(key: &SigningKey, n: usize) -> anyhow::Result<Vec<Vec<u8>>> {
    let run = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    let threads = cores();
    let chunk = n.div_ceil(threads.max(1)).max(1);
    let ranges: Vec<(usize, usize)> = (0..n).step_by(chunk).map(|s| (s, (s + chunk).min(n))).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = ranges
            .into_iter()
            .map(|(from, to)| {
                scope.spawn(move || -> anyhow::Result<Vec<Vec<u8>>> {
                    (from..to)
                        .map(|i| {
                            let mut payload = open131_server::demo::sample_payload();
                            let inn =
                                Inn::complete_individual(&format!("77{:08}", i % 100_000_000)).unwrap_or_default();
                            payload["inn"] = inn.into();
                            payload["passport_number"] = format!("4510{:06}", 100_000 + i % 900_000).into();
                            payload["agent_contract_number"] = format!("BENCH-{run}-{i}").into();
                            Ok(open131_client::signed_check_body(&payload, key)?)
                        })
                        .collect()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(n);
        for h in handles {
            all.extend(h.join().map_err(|_| anyhow::anyhow!("a signing thread panicked"))??);
        }
        Ok(all)
    })
}

pub(crate) struct Report {
    requests: usize,
    errors: usize,
    elapsed: Duration,
    latencies_us: Vec<u64>,
    /// CPU time of the measured server's processes during the phase, when
    /// their ids were given.
    cpu: Option<Duration>,
}

impl Report {
    pub(crate) fn elapsed_s(&self) -> f64 {
        self.elapsed.as_secs_f64()
    }

    pub(crate) fn p50_ms(&self) -> f64 {
        self.percentile(0.50)
    }

    pub(crate) fn p99_ms(&self) -> f64 {
        self.percentile(0.99)
    }

    /// Answered requests per second.
    pub(crate) fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// open131's figures against the ceiling's of the same run, when measured.
    pub(crate) fn print_ratio(&self, ceiling: Option<&Report>) {
        if let Some(c) = ceiling {
            println!("{}", ratio_line(self.rate(), c.rate(), self.p99_ms(), c.p99_ms()));
        }
        if let Some(line) = cpu_line(self.cpu_per_request_us(), ceiling.and_then(Report::cpu_per_request_us)) {
            println!("{line}");
        }
    }

    /// The server's CPU time per answered request, in µs.
    fn cpu_per_request_us(&self) -> Option<f64> {
        let cpu = self.cpu?;
        (self.requests > 0).then(|| cpu.as_secs_f64() * 1e6 / self.requests as f64)
    }

    fn percentile(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let idx = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[idx] as f64 / 1000.0
    }

    pub(crate) fn print(&self, title: &str) {
        println!(
            "{title}: {} requests in {:.2}s = {:.0} req/s; p50 {:.2} ms, p99 {:.2} ms; {} not ok",
            self.requests,
            self.elapsed.as_secs_f64(),
            self.rate(),
            self.percentile(0.50),
            self.percentile(0.99),
            self.errors
        );
    }
}

/// `ratio open131/ceiling = R; p99 = P × the ceiling's`.
fn ratio_line(rate: f64, ceiling_rate: f64, p99_ms: f64, ceiling_p99_ms: f64) -> String {
    format!(
        "ratio open131/ceiling = {:.2}; p99 = {:.2}× the ceiling's",
        rate / ceiling_rate.max(1e-9),
        p99_ms / ceiling_p99_ms.max(1e-9)
    )
}

/// `server CPU per request: open131 N µs; ceiling M µs (R×)`, from what
/// was measured.
fn cpu_line(open131_us: Option<f64>, ceiling_us: Option<f64>) -> Option<String> {
    let open131_us = open131_us?;
    Some(match ceiling_us {
        // A phase too short for one tick of the ceiling's has no ratio.
        Some(c) if c > 0.0 => {
            format!("server CPU per request: open131 {open131_us:.1} µs; ceiling {c:.1} µs ({:.2}×)", open131_us / c)
        }
        Some(c) => format!("server CPU per request: open131 {open131_us:.1} µs; ceiling {c:.1} µs"),
        None => format!("server CPU per request: open131 {open131_us:.1} µs"),
    })
}

/// The CPU time (user and system, every thread, the dead ones too) that
/// some processes use over a phase, from `/proc/<pid>/stat` (Linux).
///
/// Why beside the ratio: the load generator shares the cores with the
/// server, so requests/s move with its share from run to run; the server's
/// own CPU per request is the steadier measure of the work it does. A phase
/// is charged with everything its processes do meanwhile, background
/// workers included (the KYC verifier, the bank's timers, webhooks).
pub(crate) struct CpuMeter {
    pids: Vec<u32>,
    start_ticks: Option<u64>,
}

/// Units of `/proc/<pid>/stat`'s times: Linux's `USER_HZ`, 100 on every
/// architecture the project builds for (it is part of the kernel's ABI).
const PROC_TICKS_PER_S: u64 = 100;

impl CpuMeter {
    pub(crate) fn start(pids: &[u32]) -> Self {
        let start_ticks = cpu_ticks(pids);
        if start_ticks.is_none() && !pids.is_empty() {
            eprintln!("cannot read /proc/<pid>/stat of {pids:?}: no CPU figure for this phase");
        }
        CpuMeter { pids: pids.to_vec(), start_ticks }
    }

    /// The CPU time since [`Self::start`]; `None` when no process was named
    /// or one could not be read.
    pub(crate) fn stop(self) -> Option<Duration> {
        let ticks = cpu_ticks(&self.pids)?.checked_sub(self.start_ticks?)?;
        Some(Duration::from_millis(ticks * 1000 / PROC_TICKS_PER_S))
    }
}

/// The sum of `utime + stime` over `pids`; `None` for none or an unreadable one.
fn cpu_ticks(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|pid| stat_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)).sum()
}

/// `utime + stime` of one `/proc/<pid>/stat` line: fields 14 and 15
/// (1-based: the pid is field 1, the command name field 2), counted from the
/// last `)`, since the name is in parentheses and may hold spaces.
fn stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Pre-signed main-API bodies (`(body, X-PARTNER-SIGN)`).
pub(crate) type Signed = Arc<Vec<(Vec<u8>, String)>>;

/// Sends `signed` to the ceiling (when `--ceiling` names one) exactly as
/// [`signed_posts`] sends them to open131, and prints its figures. The
/// ceiling answers every verified request with 200 after its commit.
pub(crate) async fn ceiling_phase(
    target: &Loaded,
    path: &str,
    signed: &Signed,
    total: usize,
) -> anyhow::Result<Option<Report>> {
    let Some(base) = &target.ceiling else { return Ok(None) };
    let make = signed_requests(node_uris(std::slice::from_ref(base), path)?, target.project.clone(), signed.clone());
    let ok = |status: u16, _: &[u8]| (status == 200, None);
    let client = http_client(target.concurrency);
    let (report, _) = metered(&target.ceiling_pids, phase(&client, target.concurrency, total, make, ok)).await?;
    report.print(&format!("ceiling, the same requests to {base}{path}"));
    Ok(Some(report))
}

/// Request `i`: a POST of `signed[i mod len]` to `uris[i mod n]`.
fn signed_requests(
    uris: Vec<hyper::Uri>,
    project: String,
    signed: Signed,
) -> impl Fn(usize) -> Result<hyper::Request<Full<Bytes>>, hyper::http::Error> + Send + Sync + 'static {
    move |i: usize| {
        let (body, sign) = &signed[i % signed.len()];
        hyper::Request::post(uris[i % uris.len()].clone())
            .header("content-type", "application/json")
            .header(headers::PROJECT, project.as_str())
            .header(headers::SIGN, sign.as_str())
            .body(Full::new(Bytes::from(body.clone())))
    }
}

/// POSTs `total` requests to `path` on the target's nodes (request `i` to
/// node `i mod n`), request `i` carrying `signed[i mod len]`.
pub(crate) async fn signed_posts<C>(
    target: &Loaded,
    path: &str,
    signed: Signed,
    total: usize,
    classify: C,
) -> anyhow::Result<(Report, Vec<String>)>
where
    C: Fn(u16, &[u8]) -> (bool, Option<String>) + Send + Sync + Copy + 'static,
{
    if signed.is_empty() {
        bail!("nothing to send to {path}");
    }
    let make = signed_requests(node_uris(&target.bases, path)?, target.project.clone(), signed);
    let client = http_client(target.concurrency);
    metered(&target.server_pids, phase(&client, target.concurrency, total, make, classify)).await
}

/// Runs a phase, its report charged with the CPU time `pids` used meanwhile.
async fn metered<T>(
    pids: &[u32],
    phase: impl std::future::Future<Output = anyhow::Result<(Report, T)>>,
) -> anyhow::Result<(Report, T)> {
    let meter = CpuMeter::start(pids);
    let (mut report, out) = phase.await?;
    report.cpu = meter.stop();
    Ok((report, out))
}

/// Sends `total` requests built by `make(i)` with `concurrency` tasks. `classify`
/// says whether an answer is good and which id it carries. Returns the report
/// and the ids of the good answers.
pub(crate) async fn phase<F, C>(
    client: &HttpClient,
    concurrency: usize,
    total: usize,
    make: F,
    classify: C,
) -> anyhow::Result<(Report, Vec<String>)>
where
    F: Fn(usize) -> Result<hyper::Request<Full<Bytes>>, hyper::http::Error> + Send + Sync + 'static,
    C: Fn(u16, &[u8]) -> (bool, Option<String>) + Send + Sync + Copy + 'static,
{
    let make = Arc::new(make);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, make, next) = (client.clone(), make.clone(), next.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut ids = Vec::new();
                let mut errors = 0usize;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let request = make(i)?;
                    let t = Instant::now();
                    let response = client.request(request).await?;
                    let status = response.status();
                    let body = response.into_body().collect().await?.to_bytes();
                    latencies.push(t.elapsed().as_micros() as u64);
                    match classify(status.as_u16(), &body) {
                        (true, Some(id)) => ids.push(id),
                        (true, None) => {}
                        (false, _) => errors += 1,
                    }
                }
                anyhow::Ok((latencies, ids, errors))
            })
        })
        .collect();
    let mut report =
        Report { requests: 0, errors: 0, elapsed: Duration::ZERO, latencies_us: Vec::with_capacity(total), cpu: None };
    let mut ids = Vec::new();
    for w in workers {
        let (lat, got, errors) = w.await??;
        report.latencies_us.extend(lat);
        ids.extend(got);
        report.errors += errors;
    }
    report.elapsed = started.elapsed();
    report.requests = report.latencies_us.len();
    report.latencies_us.sort_unstable();
    Ok((report, ids))
}

#[cfg(test)]
mod tests {
    use super::ratio_line;

    #[test]
    fn answers_are_read_for_their_status_and_id_only() {
        let session = br#"{"status":"ok","session":{"id":"ps_1","payouts":[{"id":"po_1","amount_details":{"amount":1}}],"id_note":"x"}}"#;
        assert_eq!(super::session_id(200, session), (true, Some("ps_1".to_string())));
        assert!(!super::session_id(500, session).0, "an HTTP error is not good");
        let error = br#"{"status":"error","error":{"code":"internal_error"}}"#;
        assert_eq!(super::session_id(200, error), (false, None));
        let check = br#"{"status":"pending","data":{"id":"c_\u0031","passport":"x"}}"#;
        assert_eq!(super::kyc_id(200, check), (true, Some("c_1".to_string())), "escapes are read");
        assert_eq!(super::kyc_id(200, b"not json"), (false, None));
    }

    #[test]
    fn cpu_is_read_after_the_command_name_and_compared_per_request() {
        // A command name with a space and a parenthesis, as a thread may have.
        let stat = "4242 (open131 (x) y) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 37 0 0 20 0 5 0 100 0 0";
        assert_eq!(super::stat_ticks(stat), Some(287));
        assert_eq!(super::stat_ticks("4242 (open131) S 1"), None, "a cut line reads as nothing");
        let own = std::process::id();
        let meter = super::CpuMeter::start(&[own]);
        let before = super::cpu_ticks(&[own]).expect("this process's own stat");
        // Spin until the kernel has charged a tick (bounded, never timed).
        let (bound, mut x) = (std::time::Instant::now() + std::time::Duration::from_secs(30), 0u64);
        while super::cpu_ticks(&[own]) == Some(before) && std::time::Instant::now() < bound {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        assert!(meter.stop().is_some_and(|cpu| cpu > std::time::Duration::ZERO), "spinning used CPU");
        assert!(super::CpuMeter::start(&[]).stop().is_none(), "no process, no figure");
        assert_eq!(
            super::cpu_line(Some(73.0), Some(39.0)).as_deref(),
            Some("server CPU per request: open131 73.0 µs; ceiling 39.0 µs (1.87×)")
        );
        assert_eq!(super::cpu_line(None, Some(39.0)), None);
        assert_eq!(
            super::cpu_line(Some(73.0), Some(0.0)).as_deref(),
            Some("server CPU per request: open131 73.0 µs; ceiling 0.0 µs"),
            "no ratio over nothing"
        );
    }

    #[test]
    fn the_ratio_line_divides_open131_by_the_ceiling() {
        assert_eq!(
            ratio_line(8_000.0, 20_000.0, 15.0, 10.0),
            "ratio open131/ceiling = 0.40; p99 = 1.50× the ceiling's"
        );
    }
}
